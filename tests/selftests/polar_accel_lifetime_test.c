// SPDX-License-Identifier: GPL-2.0
/*
 * kselftests of polar_accel.ko's lifetime against open files: rmmod fails
 * while a file is open and the file keeps working; after the close rmmod
 * succeeds and insmod brings the device back. Unbinding the PCI function
 * with a job in flight (held on the device by a delay fault when debugfs
 * offers one): the waiter gets -ENODEV or the job's completion, later
 * ioctls on the old file get -ENODEV, close works, and bind brings a new
 * node. Teardown puts the module and the binding back whatever happened.
 * GPL-2.0: includes the kselftest harness.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "polar_selftest.h"

#include "drm/polar_accel.h"
#include "polar/polar.h"
#include "polar_cim_hw.h"

#define PCI_DRV "/sys/bus/pci/drivers/polar_accel"

/* Opens the first polar accel node, waiting up to @ms for it to appear. */
static int accel_open_wait(long ms)
{
	for (; ms > 0; ms -= 50) {
		int fd = accel_open();

		if (fd >= 0)
			return fd;
		sleep_ms(50);
	}
	return -1;
}

static int module_loaded(void)
{
	return access("/sys/module/polar_accel/initstate", F_OK) == 0;
}

static int insmod(void)
{
	const char *ko = getenv("POLAR_ACCEL_KO");
	int fd, ret;

	if (!ko)
		return -ENOENT;
	fd = open(ko, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = syscall(SYS_finit_module, fd, "", 0);
	ret = ret ? -errno : 0;
	close(fd);
	return ret;
}

static int rmmod(void)
{
	return syscall(SYS_delete_module, "polar_accel", O_NONBLOCK) ? -errno : 0;
}

static int nop(int fd, uint32_t queue)
{
	struct drm_polar_accel_cmd c = { .opcode = POLAR_CIM_OP_NOP };

	return run(fd, queue, &c, 1);
}

FIXTURE(lifetime) {
	int fd;
	char bdf[64];
};

FIXTURE_SETUP(lifetime)
{
	self->fd = accel_open();
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, accel_bdf(self->fd, self->bdf, sizeof(self->bdf)));
}

FIXTURE_TEARDOWN(lifetime)
{
	char path[512];
	int fd;

	if (self->fd >= 0)
		close(self->fd);
	/* Whatever happened, leave the driver loaded and bound. */
	if (!module_loaded())
		insmod();
	snprintf(path, sizeof(path), PCI_DRV "/%s", self->bdf);
	if (module_loaded() && access(path, F_OK))
		file_write(PCI_DRV "/bind", self->bdf);
	fd = accel_open_wait(10000);
	if (fd >= 0)
		close(fd);
}

TEST_F_TIMEOUT(lifetime, rmmod_with_open_file, 60)
{
	int fd, ret, klog0;

	if (!getenv("POLAR_ACCEL_KO"))
		SKIP(return, "POLAR_ACCEL_KO is not set");
	ASSERT_TRUE(module_loaded());
	klog0 = klog_problems();

	/* The open file holds the module. */
	ret = rmmod();
	EXPECT_TRUE(ret == -EBUSY || ret == -EAGAIN) TH_LOG("rmmod: %d", ret);
	ASSERT_TRUE(module_loaded());
	EXPECT_EQ(0, nop(self->fd, 0));
	EXPECT_NE(0, param(self->fd, DRM_POLAR_ACCEL_PARAM_FW_VERSION));

	/* Closed, it goes; insmod brings it back, working. */
	EXPECT_EQ(0, close(self->fd));
	self->fd = -1;
	ret = rmmod();
	ASSERT_EQ(0, ret) TH_LOG("rmmod after close: %s", strerror(-ret));
	EXPECT_FALSE(module_loaded());
	EXPECT_NE(0, access("/dev/accel/accel0", F_OK));
	ret = insmod();
	ASSERT_EQ(0, ret) TH_LOG("insmod: %s", strerror(-ret));
	fd = accel_open_wait(10000);
	ASSERT_LE(0, fd) TH_LOG("no accel node after insmod");
	EXPECT_EQ(0, nop(fd, 0));
	EXPECT_NE(0, param(fd, DRM_POLAR_ACCEL_PARAM_FW_VERSION));
	close(fd);
	EXPECT_EQ(klog0, klog_problems())
		TH_LOG("the kernel log shows new warnings");
}

struct waiter {
	int fd;
	uint64_t seqno;
	int result;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;

	w->result = wait_job(w->fd, w->seqno, NULL);
	return NULL;
}

TEST_F_TIMEOUT(lifetime, unbind_with_job_in_flight, 60)
{
	struct drm_polar_accel_cmd rc = { .opcode = POLAR_CIM_OP_READ_COUNTERS };
	struct drm_polar_accel_bo_create c = { .size = 4096 };
	struct drm_polar_accel_get_param gp = { 0 };
	struct io_uring_cqe *cqe;
	struct waiter w = { 0 };
	bool uring, delayed;
	struct io_uring ring;
	uint64_t seqno = 0;
	pthread_t thread;
	struct bo out = { 0 };
	char path[512];
	int fd, ret, klog0, dmabuf, sync;

	klog0 = klog_problems();
	uring = param(self->fd, DRM_POLAR_ACCEL_PARAM_FEATURES) &
		DRM_POLAR_ACCEL_FEATURE_URING_CMD;
	/* Hold the job on the device for a second, when debugfs can. */
	delayed = !debugfs_write(self->fd, "fault", "delay 0 0 1000000");
	if (!delayed)
		TH_LOG("no debugfs fault file: the job may end before unbind");

	ASSERT_EQ(0, bo_new(self->fd, 4096, &out));
	rc.dst = (struct drm_polar_accel_buf){ out.handle, 0, 0, 64 };
	ASSERT_EQ(0, submit(self->fd, 0, &rc, 1, &seqno));
	ASSERT_EQ(0, submit(self->fd, 0, &rc, 1, &w.seqno));
	if (uring) {
		struct drm_polar_accel_uring_submit p = {
			.num_cmds = 1, .cmds = (uintptr_t)&rc,
		};
		struct io_uring_sqe *sqe;

		ASSERT_EQ(0, io_uring_queue_init(4, &ring,
						 IORING_SETUP_SQE128));
		sqe = io_uring_get_sqe(&ring);
		io_uring_prep_rw(IORING_OP_URING_CMD, sqe, self->fd, NULL, 0, 0);
		sqe->cmd_op = DRM_POLAR_ACCEL_URING_SUBMIT;
		memset(sqe->cmd, 0, 80);
		memcpy(sqe->cmd, &p, sizeof(p));
		ASSERT_EQ(1, io_uring_submit(&ring));
	}
	/* The fence of the last job writing the BO, as an importer sees it. */
	dmabuf = prime_export(self->fd, out.handle);
	ASSERT_LE(0, dmabuf) TH_LOG("PRIME export: %d", dmabuf);
	sync = export_sync_file(dmabuf, DMA_BUF_SYNC_READ);
	ASSERT_LE(0, sync) TH_LOG("EXPORT_SYNC_FILE: %d", sync);
	w.fd = self->fd;
	ASSERT_EQ(0, pthread_create(&thread, NULL, wait_thread, &w));
	sleep_ms(100);

	ASSERT_EQ(0, file_write(PCI_DRV "/unbind", self->bdf));
	ASSERT_EQ(0, pthread_join(thread, NULL));
	/* Unbind leaves no fence unsignalled: done, or failed -ENODEV. */
	ret = sync_file_status(sync);
	EXPECT_TRUE(ret == 1 || ret == -ENODEV) TH_LOG("fence status %d", ret);
	EXPECT_EQ(POLLIN, poll_now(dmabuf, POLLIN));
	close(sync);
	close(dmabuf);
	EXPECT_TRUE(w.result == 0 || w.result == -ENODEV ||
		    w.result == -1000 - ENODEV)
		TH_LOG("WAIT across unbind: %d", w.result);
	ret = wait_job(self->fd, seqno, NULL);
	EXPECT_TRUE(ret == 0 || ret == -ENODEV || ret == -1000 - ENODEV)
		TH_LOG("second WAIT: %d", ret);
	if (uring) {
		struct __kernel_timespec ts = { .tv_sec = 10 };

		ret = io_uring_wait_cqe_timeout(&ring, &cqe, &ts);
		EXPECT_EQ(0, ret) TH_LOG("no CQE after unbind: %d", ret);
		if (!ret) {
			EXPECT_TRUE(cqe->res == 0 || cqe->res == -ENODEV ||
				    cqe->res == -ECANCELED)
				TH_LOG("CQE res %d", cqe->res);
			io_uring_cqe_seen(&ring, cqe);
		}
	}

	/* The old file only says -ENODEV now. */
	gp.param = DRM_POLAR_ACCEL_PARAM_DEVICE_ID;
	EXPECT_EQ(-1, ioctl(self->fd, DRM_IOCTL_POLAR_ACCEL_GET_PARAM, &gp));
	EXPECT_EQ(ENODEV, errno);
	EXPECT_EQ(-ENODEV, submit(self->fd, 0, &rc, 1, &seqno));
	EXPECT_EQ(-1, ioctl(self->fd, DRM_IOCTL_POLAR_ACCEL_BO_CREATE, &c));
	EXPECT_EQ(ENODEV, errno);
	if (uring) {
		struct drm_polar_accel_uring_submit p = {
			.num_cmds = 1, .cmds = (uintptr_t)&rc,
		};
		struct __kernel_timespec ts = { .tv_sec = 10 };
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

		io_uring_prep_rw(IORING_OP_URING_CMD, sqe, self->fd, NULL, 0, 0);
		sqe->cmd_op = DRM_POLAR_ACCEL_URING_SUBMIT;
		memset(sqe->cmd, 0, 80);
		memcpy(sqe->cmd, &p, sizeof(p));
		EXPECT_EQ(1, io_uring_submit(&ring));
		ret = io_uring_wait_cqe_timeout(&ring, &cqe, &ts);
		EXPECT_EQ(0, ret);
		if (!ret) {
			EXPECT_EQ(-ENODEV, cqe->res);
			io_uring_cqe_seen(&ring, cqe);
		}
		io_uring_queue_exit(&ring);
	}
	munmap(out.map, out.size);
	EXPECT_EQ(0, close(self->fd));
	self->fd = -1;

	/* Bind brings a new node that works. */
	ASSERT_EQ(0, file_write(PCI_DRV "/bind", self->bdf));
	snprintf(path, sizeof(path), PCI_DRV "/%s", self->bdf);
	EXPECT_EQ(0, access(path, F_OK));
	fd = accel_open_wait(10000);
	ASSERT_LE(0, fd) TH_LOG("no accel node after bind");
	EXPECT_EQ(0, nop(fd, 0));
	EXPECT_EQ(POLAR_CIM_ID_MAGIC,
		  param(fd, DRM_POLAR_ACCEL_PARAM_DEVICE_ID));
	close(fd);
	EXPECT_EQ(klog0, klog_problems())
		TH_LOG("the kernel log shows new warnings");
}

/* BAR0 of a PCI function through sysfs, bound to a driver or not. */
static volatile uint32_t *bar0_map(const char *bdf)
{
	char path[256];
	void *p;
	int fd;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource0", bdf);
	fd = open(path, O_RDONLY | O_SYNC | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	p = mmap(NULL, POLAR_CIM_BAR0_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

static long elapsed_ms(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 +
	       (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

static int gem_close(int fd, struct bo *bo)
{
	struct drm_gem_close c = { .handle = bo->handle };

	munmap(bo->map, bo->size);
	return ioctl(fd, DRM_IOCTL_GEM_CLOSE, &c) ? -errno : 0;
}

/*
 * A MATMUL the device computes for seconds: 8 x 8 tiles of INT8 weights
 * and as many vectors as it takes (up to MAX_BATCH). Fills @mm with it on
 * freshly made BOs @x and @y; returns 0, or a reason to skip in @why.
 */
static int long_matmul(int fd, struct drm_polar_accel_cmd *mm, struct bo *x,
		       struct bo *y, const char **why)
{
	uint32_t rows = param(fd, DRM_POLAR_ACCEL_PARAM_TILE_ROWS);
	uint32_t cols = param(fd, DRM_POLAR_ACCEL_PARAM_TILE_COLS);
	uint32_t max_batch = param(fd, DRM_POLAR_ACCEL_PARAM_MAX_BATCH);
	struct drm_polar_accel_cmd prog = { .opcode = POLAR_CIM_OP_PROGRAM_TILES };
	uint32_t in_dim = rows * 8, out_dim = cols * 8, batch = 64, i;
	struct timespec t0;
	struct bo w = { 0 };
	long ms;

	*why = NULL;
	if (param(fd, DRM_POLAR_ACCEL_PARAM_NUM_TILES) < 64 || !max_batch) {
		*why = "the chip has fewer than 64 tiles";
		return -1;
	}
	if (bo_new(fd, (uint64_t)in_dim * out_dim, &w))
		return -1;
	for (i = 0; i < in_dim * out_dim; i++)
		((int8_t *)w.map)[i] = (int8_t)(i * 2654435761u >> 24);
	prog.in_dim = in_dim;
	prog.out_dim = out_dim;
	prog.src = (struct drm_polar_accel_buf){ w.handle, 0, 0, w.size };
	i = run(fd, 0, &prog, 1);
	if (i) {
		fprintf(stderr, "# PROGRAM_TILES %ux%u: %d\n", in_dim, out_dim,
			(int)i);
		bo_free(fd, &w);
		return -1;
	}
	bo_free(fd, &w);
	/* Time a small batch, then scale to about two and a half seconds. */
	for (;;) {
		if (bo_new(fd, (uint64_t)batch * in_dim, x) ||
		    bo_new(fd, (uint64_t)batch * out_dim * 4, y))
			return -1;
		memset(x->map, 0x5b, x->size);
		*mm = prog;
		mm->opcode = POLAR_CIM_OP_MATMUL;
		mm->batch = batch;
		mm->src = (struct drm_polar_accel_buf){ x->handle, 0, 0,
			(uint64_t)batch * in_dim };
		mm->dst = (struct drm_polar_accel_buf){ y->handle, 0, 0,
			(uint64_t)batch * out_dim * 4 };
		clock_gettime(CLOCK_MONOTONIC, &t0);
		i = run(fd, 0, mm, 1);
		if (i) {
			fprintf(stderr, "# MATMUL batch %u: %d\n", batch, (int)i);
			return -1;
		}
		ms = elapsed_ms(&t0);
		fprintf(stderr, "# MATMUL batch %u: %ld ms\n", batch, ms);
		if (ms >= 1500 || batch == max_batch)
			return 0;
		bo_free(fd, x);
		bo_free(fd, y);
		batch = batch * 2500 / (ms + 1) > max_batch ? max_batch :
			(uint32_t)(batch * 2500 / (ms + 1));
	}
}

/*
 * A reset does not stop the command the device is executing (hw/README.md
 * section 8). Unbind during a long MATMUL whose BOs only the job holds:
 * once unbind returns, the driver has freed the job's SG list and dropped
 * the BOs, so the device must be idle by then: STATUS.BUSY, read through
 * BAR0 in sysfs right after unbind returns, must be 0.
 */
TEST_F_TIMEOUT(lifetime, unbind_during_long_matmul_waits_for_idle, 120)
{
	volatile uint32_t *bar;
	struct drm_polar_accel_cmd mm;
	struct timespec t0;
	uint32_t hb, status;
	struct bo x = { 0 }, y = { 0 };
	char timeout_ms[32] = "1000";
	const char *why;
	uint64_t seqno = 0;
	long ms;
	int ret, klog0, i;

	klog0 = klog_problems();
	bar = bar0_map(self->bdf);
	ASSERT_NE(NULL, bar) TH_LOG("cannot map BAR0 of %s", self->bdf);
	/* Programming 64 tiles takes long with no HEARTBEAT: no hang. */
	file_read(JOB_TIMEOUT_PARAM, timeout_ms, sizeof(timeout_ms));
	ASSERT_EQ(0, file_write(JOB_TIMEOUT_PARAM, "60000"));
	ret = long_matmul(self->fd, &mm, &x, &y, &why);
	file_write(JOB_TIMEOUT_PARAM, timeout_ms);
	if (ret) {
		ASSERT_NE(NULL, why) TH_LOG("setting up the long MATMUL failed");
		SKIP(return, "%s", why);
	}
	ASSERT_EQ(0, submit(self->fd, 0, &mm, 1, &seqno));
	/* Only the job holds the buffers now. */
	ASSERT_EQ(0, gem_close(self->fd, &x));
	ASSERT_EQ(0, gem_close(self->fd, &y));
	/* Wait until the device computes: HEARTBEAT moves. */
	hb = bar[POLAR_CIM_REG_HEARTBEAT / 4];
	for (i = 0; i < 5000 && bar[POLAR_CIM_REG_HEARTBEAT / 4] == hb; i++)
		usleep(1000);
	ASSERT_NE(hb, bar[POLAR_CIM_REG_HEARTBEAT / 4])
		TH_LOG("the MATMUL did not start");

	clock_gettime(CLOCK_MONOTONIC, &t0);
	ASSERT_EQ(0, file_write(PCI_DRV "/unbind", self->bdf));
	ms = elapsed_ms(&t0);
	status = bar[POLAR_CIM_REG_STATUS / 4];
	TH_LOG("unbind took %ld ms, STATUS then 0x%x", ms, status);
	ASSERT_NE(0xffffffffu, status) TH_LOG("BAR0 unreadable after unbind");
	EXPECT_EQ(0, status & POLAR_CIM_STATUS_BUSY)
		TH_LOG("unbind returned, its job's memory freed, while the device still executed the job");
	ret = wait_job(self->fd, seqno, NULL);
	EXPECT_TRUE(ret == -ENODEV || ret == -1000 - ENODEV || ret == 0)
		TH_LOG("WAIT after unbind: %d", ret);
	munmap((void *)bar, POLAR_CIM_BAR0_SIZE);
	EXPECT_EQ(klog0, klog_problems())
		TH_LOG("the kernel log shows new warnings");
}

struct blocked_submit {
	int fd;
	int result;
	bool done;
};

static void *blocked_submit_thread(void *arg)
{
	struct drm_polar_accel_cmd nop = { .opcode = POLAR_CIM_OP_NOP };
	struct blocked_submit *b = arg;
	uint64_t seqno = 0;

	b->result = submit(b->fd, 0, &nop, 1, &seqno);
	__atomic_store_n(&b->done, true, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * A SUBMIT that sleeps for ring space must not hold up unbind: the ring of
 * queue 0 is full behind a command the device holds for 10 s (a DELAY
 * fault), and the watchdog, which would reset the device, does not run
 * after unplug. Unbind must return at once and the submitter get -ENODEV.
 */
TEST_F_TIMEOUT(lifetime, unbind_with_submit_waiting_for_ring_space, 120)
{
	struct drm_polar_accel_cmd nops[64];
	struct blocked_submit b = { .fd = self->fd };
	char timeout_ms[32] = "1000";
	struct timespec t0;
	uint32_t left = 255, n;
	pthread_t thread;
	uint64_t seqno = 0;
	int klog0;
	long ms;

	if (!debugfs_has(self->fd, "fault"))
		SKIP(return, "no debugfs fault file");
	klog0 = klog_problems();
	memset(nops, 0, sizeof(nops));
	for (n = 0; n < 64; n++)
		nops[n].opcode = POLAR_CIM_OP_NOP;
	/* No hang recovery may drain the ring before the unbind. */
	file_read(JOB_TIMEOUT_PARAM, timeout_ms, sizeof(timeout_ms));
	ASSERT_EQ(0, file_write(JOB_TIMEOUT_PARAM, "60000"));
	ASSERT_EQ(0, debugfs_write(self->fd, "fault", "delay 0 0 10000000"));
	/* 255 commands: one ring of 256 slots is full. */
	while (left) {
		n = left < 64 ? left : 64;
		ASSERT_EQ(0, submit(self->fd, 0, nops, n, &seqno));
		left -= n;
	}
	ASSERT_EQ(0, pthread_create(&thread, NULL, blocked_submit_thread, &b));
	sleep_ms(300);
	EXPECT_FALSE(__atomic_load_n(&b.done, __ATOMIC_ACQUIRE))
		TH_LOG("SUBMIT on a full ring did not wait: %d", b.result);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	EXPECT_EQ(0, file_write(PCI_DRV "/unbind", self->bdf));
	ms = elapsed_ms(&t0);
	ASSERT_EQ(0, pthread_join(thread, NULL));
	file_write(JOB_TIMEOUT_PARAM, timeout_ms);
	TH_LOG("unbind took %ld ms; the waiting SUBMIT returned %d", ms,
	       b.result);
	EXPECT_LT(ms, 5000) TH_LOG("unbind waited for the held command");
	EXPECT_EQ(-ENODEV, b.result);
	EXPECT_EQ(klog0, klog_problems())
		TH_LOG("the kernel log shows new warnings");
}

TEST_HARNESS_MAIN
