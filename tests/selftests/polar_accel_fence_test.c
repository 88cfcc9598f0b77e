// SPDX-License-Identifier: GPL-2.0
/*
 * kselftests of the jobs' dma_fences as another driver sees them: a BO
 * exported with PRIME is busy (poll() on the dma-buf, a sync_file exported
 * from it) exactly while a job writing it runs; a job failed by a hang
 * recovery signals its fence with an error; and a job honours the fence
 * of another device's write to its BO (implicit sync, with the VM's
 * second polar device as the other device). The jobs are held on the
 * device by its DELAY fault, with job_timeout_ms raised so that the delay
 * is not taken for a hang. GPL-2.0: includes the kselftest harness.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "polar_selftest.h"

#include "drm/polar_accel.h"
#include "polar_cim_hw.h"

#define TIMEOUT_PARAM "/sys/module/polar_accel/parameters/job_timeout_ms"
/* Long enough that a busy TCG guest still polls before the job ends. */
#define DELAY_US 2000000

/* The job's WAIT status right now, or -1000 - ETIME while it runs. */
static int poll_job(int fd, uint64_t seqno)
{
	struct drm_polar_accel_wait w = { .seqno = seqno, .timeout_ns = 0 };

	if (ioctl(fd, DRM_IOCTL_POLAR_ACCEL_WAIT, &w))
		return -1000 - errno;
	return w.status;
}

FIXTURE(fence) {
	int fd;
	char saved_timeout[32];
	bool timeout_changed;
};

FIXTURE_SETUP(fence)
{
	self->fd = accel_open();
	ASSERT_LE(0, self->fd);
	ASSERT_TRUE(param(self->fd, DRM_POLAR_ACCEL_PARAM_FEATURES) &
		    DRM_POLAR_ACCEL_FEATURE_IMPLICIT_FENCES);
	if (!debugfs_has(self->fd, "fault"))
		SKIP(return, "no debugfs fault file");
	ASSERT_LT(0, file_read(TIMEOUT_PARAM, self->saved_timeout,
			       sizeof(self->saved_timeout)));
	/*
	 * Above DELAY_US, and short: the watchdog, once armed, keeps the
	 * period (a quarter of this) it had, also into the next test.
	 */
	ASSERT_EQ(0, file_write(TIMEOUT_PARAM, "6000"));
	self->timeout_changed = true;
}

FIXTURE_TEARDOWN(fence)
{
	if (self->timeout_changed)
		file_write(TIMEOUT_PARAM, self->saved_timeout);
	if (self->fd >= 0)
		close(self->fd);
}

/*
 * While a job writing a BO runs, the BO's dma-buf does not poll ready for
 * reading or writing and a sync_file exported from it is pending; once
 * the job has ended both are ready, the fence signalled without error, and
 * the job's output is there (READ_COUNTERS counts the commands).
 */
TEST_F_TIMEOUT(fence, prime_dmabuf_busy_while_job_writes, 60)
{
	struct drm_polar_accel_cmd rc = { .opcode = POLAR_CIM_OP_READ_COUNTERS };
	uint64_t seqno = 0, counters[POLAR_CIM_NUM_COUNTERS];
	int dmabuf, sync, st;
	struct bo out = { 0 };
	char arm[64];

	ASSERT_EQ(0, bo_new(self->fd, 4096, &out));
	dmabuf = prime_export(self->fd, out.handle);
	ASSERT_LE(0, dmabuf) TH_LOG("PRIME export: %s", strerror(-dmabuf));
	/* Idle: nothing to wait for. */
	EXPECT_EQ(POLLIN, poll_now(dmabuf, POLLIN));
	memset(out.map, 0, 64);

	rc.dst = (struct drm_polar_accel_buf){ out.handle, 0, 0, 64 };
	snprintf(arm, sizeof(arm), "delay 0 0 %d", DELAY_US);
	ASSERT_EQ(0, debugfs_write(self->fd, "fault", arm));
	ASSERT_EQ(0, submit(self->fd, 0, &rc, 1, &seqno));
	sync = export_sync_file(dmabuf, DMA_BUF_SYNC_READ);
	ASSERT_LE(0, sync) TH_LOG("EXPORT_SYNC_FILE: %s", strerror(-sync));

	EXPECT_EQ(0, poll_now(dmabuf, POLLIN)) TH_LOG("a reader need not wait");
	EXPECT_EQ(0, poll_now(dmabuf, POLLOUT)) TH_LOG("a writer need not wait");
	EXPECT_EQ(0, poll_now(sync, POLLIN));
	EXPECT_EQ(0, sync_file_status(sync));
	/* Still running after those looks: they saw a running job. */
	EXPECT_EQ(-1000 - ETIME, poll_job(self->fd, seqno))
		TH_LOG("the job ended within the delay");

	st = wait_job(self->fd, seqno, NULL);
	ASSERT_EQ(0, st);
	EXPECT_EQ(POLLIN, poll_now(dmabuf, POLLIN));
	EXPECT_EQ(POLLOUT, poll_now(dmabuf, POLLOUT));
	EXPECT_EQ(POLLIN, poll_now(sync, POLLIN));
	EXPECT_EQ(1, sync_file_status(sync));
	memcpy(counters, out.map, sizeof(counters));
	EXPECT_NE(0, counters[POLAR_CIM_CNT_COMMANDS])
		TH_LOG("the job's output is not in the BO");

	close(sync);
	close(dmabuf);
	bo_free(self->fd, &out);
}

/*
 * A job the hang recovery fails (its delay is longer than job_timeout_ms)
 * signals its fence with the job's error, and the job after it on the
 * queue, re-run, signals its own without one.
 */
TEST_F_TIMEOUT(fence, hung_job_fence_signals_its_error, 120)
{
	struct drm_polar_accel_cmd rc = { .opcode = POLAR_CIM_OP_READ_COUNTERS };
	uint64_t guilty = 0, innocent = 0;
	int dmabuf[2], sync[2], st, i;
	struct bo out[2] = { { 0 } };
	char bdf[64], dump[320];

	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, bo_new(self->fd, 4096, &out[i]));
		dmabuf[i] = prime_export(self->fd, out[i].handle);
		ASSERT_LE(0, dmabuf[i]);
	}
	ASSERT_EQ(0, file_write(TIMEOUT_PARAM, "500"));
	ASSERT_EQ(0, debugfs_write(self->fd, "fault", "delay 0 0 6000000"));
	rc.dst = (struct drm_polar_accel_buf){ out[0].handle, 0, 0, 64 };
	ASSERT_EQ(0, submit(self->fd, 0, &rc, 1, &guilty));
	rc.dst.handle = out[1].handle;
	ASSERT_EQ(0, submit(self->fd, 0, &rc, 1, &innocent));
	for (i = 0; i < 2; i++) {
		sync[i] = export_sync_file(dmabuf[i], DMA_BUF_SYNC_READ);
		ASSERT_LE(0, sync[i]);
	}

	st = wait_job(self->fd, guilty, NULL);
	EXPECT_TRUE(st == -ETIMEDOUT || st == -EIO) TH_LOG("status %d", st);
	EXPECT_EQ(0, wait_job(self->fd, innocent, NULL));
	EXPECT_EQ(POLLIN, poll_now(sync[0], POLLIN));
	EXPECT_EQ(st, sync_file_status(sync[0]))
		TH_LOG("the fence of a job that failed with %d", st);
	EXPECT_EQ(1, sync_file_status(sync[1]));
	/* A device keeps one dump: free ours for the tests after us. */
	if (!accel_bdf(self->fd, bdf, sizeof(bdf)) &&
	    devcoredump_find(bdf, param(self->fd,
					DRM_POLAR_ACCEL_PARAM_RESET_COUNT),
			     dump, sizeof(dump)))
		file_write(dump, "1");
	for (i = 0; i < 2; i++) {
		EXPECT_EQ(POLLIN, poll_now(dmabuf[i], POLLIN));
		close(sync[i]);
		close(dmabuf[i]);
		bo_free(self->fd, &out[i]);
	}
}

/*
 * Implicit sync: a BO whose reservation holds another device's pending
 * write fence (here a sync_file of the second polar device's job, imported
 * into the BO's dma-buf) is not written by a job until that fence has
 * signalled: SUBMIT returns only once the other device's job has ended.
 */
TEST_F_TIMEOUT(fence, job_waits_for_another_devices_write, 60)
{
	struct drm_polar_accel_cmd rc = { .opcode = POLAR_CIM_OP_READ_COUNTERS };
	struct dma_buf_import_sync_file imp = { .flags = DMA_BUF_SYNC_WRITE };
	uint64_t seqno_b = 0, seqno_a = 0;
	int fd_b, dmabuf_a, dmabuf_b, sync_b;
	struct bo out_a = { 0 }, out_b = { 0 };
	char path[64], arm[64];

	if (polar_find_device(NULL, 1, path, sizeof(path)))
		SKIP(return, "needs a second polar device");
	fd_b = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd_b);
	ASSERT_TRUE(debugfs_has(fd_b, "fault"));
	ASSERT_EQ(0, bo_new(self->fd, 4096, &out_a));
	ASSERT_EQ(0, bo_new(fd_b, 4096, &out_b));
	dmabuf_a = prime_export(self->fd, out_a.handle);
	dmabuf_b = prime_export(fd_b, out_b.handle);
	ASSERT_LE(0, dmabuf_a);
	ASSERT_LE(0, dmabuf_b);

	/* Device B writes its BO, slowly. */
	snprintf(arm, sizeof(arm), "delay 0 0 %d", DELAY_US);
	ASSERT_EQ(0, debugfs_write(fd_b, "fault", arm));
	rc.dst = (struct drm_polar_accel_buf){ out_b.handle, 0, 0, 64 };
	ASSERT_EQ(0, submit(fd_b, 0, &rc, 1, &seqno_b));
	sync_b = export_sync_file(dmabuf_b, DMA_BUF_SYNC_READ);
	ASSERT_LE(0, sync_b);
	ASSERT_EQ(0, sync_file_status(sync_b));
	/* That write, as a write to device A's BO. */
	imp.fd = sync_b;
	ASSERT_EQ(0, ioctl(dmabuf_a, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, &imp))
		TH_LOG("IMPORT_SYNC_FILE: %s", strerror(errno));
	EXPECT_EQ(0, poll_now(dmabuf_a, POLLOUT));

	/* A job of device A writing that BO waits for device B's job. */
	rc.dst.handle = out_a.handle;
	ASSERT_EQ(0, submit(self->fd, 0, &rc, 1, &seqno_a));
	EXPECT_EQ(1, sync_file_status(sync_b))
		TH_LOG("SUBMIT returned before the other device's write ended");
	EXPECT_EQ(0, wait_job(self->fd, seqno_a, NULL));
	EXPECT_EQ(0, wait_job(fd_b, seqno_b, NULL));

	close(sync_b);
	close(dmabuf_a);
	close(dmabuf_b);
	bo_free(self->fd, &out_a);
	bo_free(fd_b, &out_b);
	close(fd_b);
}

TEST_HARNESS_MAIN
