// SPDX-License-Identifier: GPL-2.0
/*
 * kselftests of io_uring submission on polar_accel.ko: IORING_OP_URING_CMD
 * with DRM_POLAR_ACCEL_URING_SUBMIT on an IORING_SETUP_SQE128 ring.
 * PROGRAM_TILES + MATMUL jobs checked bit for bit against cim_engine on the
 * host CPU, 64 NOP jobs kept in flight, a queue's SQ kept completely
 * full, submission errors delivered as CQE results, and a ring (and a
 * file) closed with commands still in flight.
 * Everything is skipped when the driver does not report
 * DRM_POLAR_ACCEL_FEATURE_URING_CMD. GPL-2.0: includes the kselftest
 * harness.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "polar_selftest.h"
#include "polar_selftest_uring.h"

#include "drm/polar_accel.h"
#include "polar/polar.h"
#include "polar_cim_hw.h"
#include "cim_command.h"

#define CQE_WAIT_S 5

/* ---- io_uring ---------------------------------------------------------- */

/* Submits one prepared SQE and waits for its CQE: its res, or -1000+err. */
static int uring_run_one(struct io_uring *ring, uint64_t user_data)
{
	uint64_t ud = 0;
	int res = 0, ret;

	ret = io_uring_submit(ring);
	if (ret != 1)
		return -1000 + (ret < 0 ? ret : -EIO);
	ret = uring_reap(ring, &res, &ud, CQE_WAIT_S);
	if (ret)
		return -1000 + ret;
	if (ud != user_data)
		return -2000;
	return res;
}

/* ---- a MATMUL job and its expected output ------------------------------ */

struct mm_case {
	uint8_t wfmt, xfmt;
	uint32_t in_dim, out_dim, batch, adc_fs_q8;
};

struct mm_job {
	struct cim_command c;
	struct bo w, x, y;
	uint64_t wlen, xlen, ylen;
	struct drm_polar_accel_cmd cmds[2];
};

static int tiles_for(int fd, const struct mm_case *k)
{
	uint32_t rows = param(fd, DRM_POLAR_ACCEL_PARAM_TILE_ROWS);
	uint32_t cols = param(fd, DRM_POLAR_ACCEL_PARAM_TILE_COLS);

	return ((k->in_dim + rows - 1) / rows) *
	       ((k->out_dim + cols - 1) / cols);
}

static int mm_job_init(int fd, struct mm_job *j, const struct mm_case *k,
		       uint16_t tile0, unsigned int seed)
{
	uint64_t i;
	int ret;

	memset(j, 0, sizeof(*j));
	j->wlen = (uint64_t)k->in_dim * k->out_dim;
	j->xlen = (uint64_t)k->batch * k->in_dim;
	j->ylen = (uint64_t)k->batch * k->out_dim * 4;
	ret = bo_new(fd, j->wlen, &j->w);
	if (!ret)
		ret = bo_new(fd, j->xlen, &j->x);
	if (!ret)
		ret = bo_new(fd, j->ylen, &j->y);
	if (ret)
		return ret;
	srand(seed);
	for (i = 0; i < j->wlen; i++)
		((int8_t *)j->w.map)[i] = weight_code(k->wfmt, rand());
	for (i = 0; i < j->xlen; i++)
		((int8_t *)j->x.map)[i] = input_code(k->xfmt, rand());
	memset(j->y.map, 0xff, j->ylen);

	j->c.wfmt = k->wfmt;
	j->c.xfmt = k->xfmt;
	j->c.tile0 = tile0;
	j->c.in_dim = k->in_dim;
	j->c.out_dim = k->out_dim;
	j->c.batch = k->batch;
	j->c.adc_fs_q8 = k->adc_fs_q8;
	j->c.job_seed = seed;

	j->cmds[0].opcode = POLAR_CIM_OP_PROGRAM_TILES;
	j->cmds[0].wfmt = k->wfmt;
	j->cmds[0].tile0 = tile0;
	j->cmds[0].in_dim = k->in_dim;
	j->cmds[0].out_dim = k->out_dim;
	j->cmds[0].src = (struct drm_polar_accel_buf){ j->w.handle, 0, 0,
						       j->wlen };
	j->cmds[1].opcode = POLAR_CIM_OP_MATMUL;
	j->cmds[1].wfmt = k->wfmt;
	j->cmds[1].xfmt = k->xfmt;
	j->cmds[1].tile0 = tile0;
	j->cmds[1].in_dim = k->in_dim;
	j->cmds[1].out_dim = k->out_dim;
	j->cmds[1].batch = k->batch;
	j->cmds[1].adc_fs_q8 = k->adc_fs_q8;
	j->cmds[1].job_seed = seed;
	j->cmds[1].src = (struct drm_polar_accel_buf){ j->x.handle, 0, 0,
						       j->xlen };
	j->cmds[1].dst = (struct drm_polar_accel_buf){ j->y.handle, 0, 0,
						       j->ylen };
	return 0;
}

/* 0 when the device's output equals the software engine's, bit for bit. */
static int mm_job_check(struct cim_engine *sim, const struct cim_firmware *fw,
			struct mm_job *j, int32_t *first_dev,
			int32_t *first_sim)
{
	int32_t *expect = malloc(j->ylen);
	int ret = -1;

	if (!expect)
		return -1;
	j->c.opcode = POLAR_CIM_OP_PROGRAM_TILES;
	if (cim_command_program(sim, &j->c, j->w.map) != POLAR_CIM_ST_OK)
		goto out;
	j->c.opcode = POLAR_CIM_OP_MATMUL;
	if (cim_command_matmul(sim, fw, &j->c, j->x.map, expect, NULL,
			       NULL) != POLAR_CIM_ST_OK)
		goto out;
	ret = memcmp(expect, j->y.map, j->ylen) ? 1 : 0;
	*first_dev = ((int32_t *)j->y.map)[0];
	*first_sim = expect[0];
out:
	free(expect);
	return ret;
}

static void mm_job_fini(int fd, struct mm_job *j)
{
	bo_free(fd, &j->w);
	bo_free(fd, &j->x);
	bo_free(fd, &j->y);
}

FIXTURE(uring) {
	int fd;
	struct cim_engine *sim;
	struct cim_firmware fw;
	uint32_t tiles, queues;
	uint64_t features;
};

FIXTURE_SETUP(uring)
{
	struct cim_config cfg = { 0 };
	static uint8_t image[POLAR_CIM_FW_MAX_SIZE];
	ssize_t n;
	int fwfd;

	self->sim = NULL;
	self->fd = accel_open();
	ASSERT_LE(0, self->fd);
	self->features = param(self->fd, DRM_POLAR_ACCEL_PARAM_FEATURES);
	self->queues = param(self->fd, DRM_POLAR_ACCEL_PARAM_NUM_QUEUES);
	if (!(self->features & DRM_POLAR_ACCEL_FEATURE_URING_CMD))
		SKIP(return, "driver lacks DRM_POLAR_ACCEL_FEATURE_URING_CMD");
	if (param(self->fd, DRM_POLAR_ACCEL_PARAM_SIGMA_DYNAMIC))
		SKIP(return, "dynamic noise is on: results are not exact");

	cfg.rows = param(self->fd, DRM_POLAR_ACCEL_PARAM_TILE_ROWS);
	cfg.cols = param(self->fd, DRM_POLAR_ACCEL_PARAM_TILE_COLS);
	cfg.tiles = param(self->fd, DRM_POLAR_ACCEL_PARAM_NUM_TILES);
	cfg.adc_bits = param(self->fd, DRM_POLAR_ACCEL_PARAM_ADC_BITS);
	cfg.rows_per_conversion =
		param(self->fd, DRM_POLAR_ACCEL_PARAM_ROWS_PER_CONV);
	cfg.sigma_static_q16 =
		param(self->fd, DRM_POLAR_ACCEL_PARAM_SIGMA_STATIC);
	cfg.stuck_rate_ppm = param(self->fd, DRM_POLAR_ACCEL_PARAM_STUCK_PPM);
	cfg.adc_offset_sigma_q16 =
		param(self->fd, DRM_POLAR_ACCEL_PARAM_ADC_OFFSET_SIGMA);
	cfg.adc_gain_sigma_q16 =
		param(self->fd, DRM_POLAR_ACCEL_PARAM_ADC_GAIN_SIGMA);
	cfg.seed = param(self->fd, DRM_POLAR_ACCEL_PARAM_SEED);
	param_recon(self->fd, &cfg.recon, &cfg.recon_frac_bits);
	param_design(self->fd, &cfg.digital_planes, &cfg.adc_bits_msb,
		     &cfg.adc_msb_levels);
	self->tiles = cfg.tiles;
	ASSERT_EQ(0, cim_engine_create(&cfg, &self->sim));

	fwfd = open(FW_PATH, O_RDONLY);
	ASSERT_LE(0, fwfd);
	n = read(fwfd, image, sizeof(image));
	close(fwfd);
	ASSERT_LT(0, n);
	ASSERT_EQ(POLAR_CIM_FW_BOOTED,
		  cim_firmware_parse(image, n, &self->fw, NULL));
	if (self->fw.has_codebook)
		ASSERT_EQ(0, cim_engine_set_codebook(self->sim,
						     self->fw.codebook));
}

FIXTURE_TEARDOWN(uring)
{
	if (self->sim)
		cim_engine_destroy(self->sim);
	if (self->fd >= 0)
		close(self->fd);
}

/*
 * Several formats and ragged shapes, all in flight at once on different
 * queues and tile ranges, each checked bit for bit.
 */
TEST_F(uring, matmul_matches_software_engine)
{
	static const struct mm_case cases[] = {
		{ POLAR_CIM_WFMT_INT8, POLAR_CIM_XFMT_INT8, 200, 70, 5, 0 },
		{ POLAR_CIM_WFMT_INT4, POLAR_CIM_XFMT_UINT4, 128, 128, 17, 0 },
		{ POLAR_CIM_WFMT_NF4, POLAR_CIM_XFMT_INT4, 300, 150, 3, 24 << 8 },
		{ POLAR_CIM_WFMT_INT4, POLAR_CIM_XFMT_INT8, 1, 1, 1, 0 },
		{ POLAR_CIM_WFMT_INT8, POLAR_CIM_XFMT_UINT8, 129, 129, 2, 0 },
		{ POLAR_CIM_WFMT_NF4, POLAR_CIM_XFMT_UINT8, 37, 255, 9, 0 },
	};
	enum { N = sizeof(cases) / sizeof(cases[0]) };
	struct mm_job jobs[N];
	bool seen[N] = { false };
	struct io_uring ring;
	uint16_t tile0 = 8;
	int k, res[N];

	ASSERT_EQ(0, ring_init(&ring, 8));
	for (k = 0; k < N; k++) {
		ASSERT_EQ(0, mm_job_init(self->fd, &jobs[k], &cases[k], tile0,
					 100 + k));
		tile0 += tiles_for(self->fd, &cases[k]);
		ASSERT_GE(self->tiles, tile0);
		ASSERT_EQ(0, uring_prep_job(&ring, self->fd, k % self->queues,
					    jobs[k].cmds, 2, 1000 + k));
	}
	ASSERT_EQ(N, io_uring_submit(&ring));
	for (k = 0; k < N; k++) {
		uint64_t ud = 0;
		int r = 0;

		ASSERT_EQ(0, uring_reap(&ring, &r, &ud, CQE_WAIT_S));
		ASSERT_LE(1000, ud);
		ASSERT_GT(1000 + N, ud);
		EXPECT_FALSE(seen[ud - 1000]);
		seen[ud - 1000] = true;
		res[ud - 1000] = r;
	}
	io_uring_queue_exit(&ring);

	for (k = 0; k < N; k++) {
		int32_t d = 0, s = 0;

		EXPECT_EQ(0, res[k]) TH_LOG("case %d: CQE res %d", k, res[k]);
		if (res[k])
			continue;
		EXPECT_EQ(0, mm_job_check(self->sim, &self->fw, &jobs[k], &d,
					  &s))
			TH_LOG("case %d: device and software engine differ "
			       "(first: %d vs %d)", k, d, s);
	}
	for (k = 0; k < N; k++)
		mm_job_fini(self->fd, &jobs[k]);
}

/* 64 NOP jobs in flight at all times; every CQE arrives once with res 0. */
TEST_F(uring, nop_batch_queue_depth_64)
{
	enum { QD = 64, TOTAL = 1024 };
	struct drm_polar_accel_cmd nop = { .opcode = POLAR_CIM_OP_NOP };
	static uint8_t seen[TOTAL];
	unsigned int submitted = 0, completed = 0, bad = 0, dup = 0;
	struct io_uring ring;

	memset(seen, 0, sizeof(seen));
	ASSERT_EQ(0, ring_init(&ring, QD));
	while (completed < TOTAL) {
		struct io_uring_cqe *cqes[QD];
		unsigned int n, i, batch = 0;
		int ret;

		while (submitted - completed < QD && submitted < TOTAL) {
			ASSERT_EQ(0, uring_prep_job(&ring, self->fd,
						    submitted % self->queues,
						    &nop, 1, submitted));
			submitted++;
			batch++;
		}
		ret = io_uring_submit_and_wait(&ring, 1);
		ASSERT_LE(0, ret) TH_LOG("submit_and_wait: %d", ret);
		ASSERT_EQ(batch, ret);
		n = io_uring_peek_batch_cqe(&ring, cqes, QD);
		for (i = 0; i < n; i++) {
			uint64_t ud = cqes[i]->user_data;

			if (cqes[i]->res)
				bad++;
			if (ud >= TOTAL || seen[ud]++)
				dup++;
		}
		io_uring_cq_advance(&ring, n);
		completed += n;
	}
	io_uring_queue_exit(&ring);
	EXPECT_EQ(TOTAL, completed);
	EXPECT_EQ(0, bad);
	EXPECT_EQ(0, dup);
	TH_LOG("%u NOP jobs at queue depth %d: %u bad, %u duplicate",
	       completed, QD, bad, dup);
}

/* Submission errors arrive as the CQE's res; the device works afterwards. */
TEST_F_TIMEOUT(uring, submit_errors_arrive_as_cqe_res, 90)
{
	struct drm_polar_accel_cmd rc = { .opcode = POLAR_CIM_OP_READ_COUNTERS };
	struct drm_polar_accel_uring_submit good = { .num_cmds = 1 }, p;
	struct io_uring_sqe *sqe;
	struct io_uring ring;
	struct bo out, foreign_bo;
	int other, k, res;

	ASSERT_EQ(0, bo_new(self->fd, 4096, &out));
	rc.dst = (struct drm_polar_accel_buf){ out.handle, 0, 0, 64 };
	good.cmds = (uintptr_t)&rc;

	/* A handle of another open file means nothing in this one. */
	other = accel_open();
	ASSERT_LE(0, other);
	do {
		ASSERT_EQ(0, bo_new(other, 4096, &foreign_bo));
	} while (foreign_bo.handle == out.handle);

	ASSERT_EQ(0, ring_init(&ring, 8));
	for (k = 0; k < 12; k++) {
		struct drm_polar_accel_cmd c = rc;
		int expect = -EINVAL;

		p = good;
		p.cmds = (uintptr_t)&c;
		switch (k) {
		case 0: p.queue = self->queues; break;
		case 1: p.queue = 0xffffffff; break;
		case 2: p.flags = 1; break;
		case 3: p.cmd_stride = 1; break;	/* below the struct */
		case 4: p.rsvd[0] = 1; break;
		case 5: p.rsvd[6] = 0x8000000000000000ull; break;
		case 6: p.num_cmds = 0; break;
		case 7: p.num_cmds = param(self->fd,
					   DRM_POLAR_ACCEL_PARAM_MAX_CMDS) + 1;
			break;
		case 8: c.dst.handle = 0xbad; expect = -ENOENT; break;
		case 9: c.dst.handle = foreign_bo.handle; expect = -ENOENT;
			break;
		case 10: c.dst.offset = 4090; expect = -ERANGE; break;
		case 11: p.cmds = 16; expect = -EFAULT; break;
		}
		ASSERT_EQ(0, uring_prep(&ring, self->fd, &p, k));
		res = uring_run_one(&ring, k);
		EXPECT_EQ(expect, res) TH_LOG("mutation %d", k);
	}

	io_uring_queue_exit(&ring);

	/* A ring without SQE128 has no room for the payload. */
	ASSERT_EQ(0, io_uring_queue_init(8, &ring, 0));
	sqe = io_uring_get_sqe(&ring);
	ASSERT_NE(NULL, sqe);
	io_uring_prep_rw(IORING_OP_URING_CMD, sqe, self->fd, NULL, 0, 0);
	sqe->cmd_op = DRM_POLAR_ACCEL_URING_SUBMIT;
	io_uring_sqe_set_data64(sqe, 5);
	res = uring_run_one(&ring, 5);
	EXPECT_GT(0, res) TH_LOG("a 64-byte SQE was accepted: %d", res);
	io_uring_queue_exit(&ring);

	/* After all that, good jobs still complete, on both paths. */
	ASSERT_EQ(0, ring_init(&ring, 8));
	ASSERT_EQ(0, uring_prep(&ring, self->fd, &good, 99));
	EXPECT_EQ(0, uring_run_one(&ring, 99));
	io_uring_queue_exit(&ring);
	EXPECT_EQ(0, run(self->fd, 0, &rc, 1));
	bo_free(other, &foreign_bo);
	close(other);
	bo_free(self->fd, &out);
}

/*
 * cmd_stride on the io_uring path: a larger command with a zero tail runs
 * (its second command read at the stride), one with a non-zero tail gets
 * -EINVAL as its CQE res.
 */
TEST_F(uring, cmd_stride_larger_commands)
{
	struct drm_polar_accel_uring_submit p = {
		.num_cmds = 2, .cmd_stride = STRIDE_BIG,
	};
	uint64_t counters[2][POLAR_CIM_NUM_COUNTERS];
	uint8_t buf[2 * STRIDE_BIG];
	struct io_uring ring;
	struct bo out = { 0 };

	ASSERT_EQ(0, bo_new(self->fd, 4096, &out));
	ASSERT_EQ(0, ring_init(&ring, 4));
	p.cmds = (uintptr_t)buf;
	memset(out.map, 0, 128);
	stride_cmds(buf, STRIDE_BIG, out.handle, 0);
	ASSERT_EQ(0, uring_prep(&ring, self->fd, &p, 1));
	EXPECT_EQ(0, uring_run_one(&ring, 1));
	memcpy(counters, out.map, sizeof(counters));
	EXPECT_NE(0, counters[1][POLAR_CIM_CNT_COMMANDS])
		TH_LOG("the second command did not run");
	stride_cmds(buf, STRIDE_BIG, out.handle, 1);
	ASSERT_EQ(0, uring_prep(&ring, self->fd, &p, 2));
	EXPECT_EQ(-EINVAL, uring_run_one(&ring, 2));
	io_uring_queue_exit(&ring);
	bo_free(self->fd, &out);
}

/* An unknown cmd_op gets an error CQE, not a job. */
TEST_F(uring, unknown_cmd_op_refused)
{
	struct drm_polar_accel_cmd nop = { .opcode = POLAR_CIM_OP_NOP };
	struct drm_polar_accel_uring_submit p = { .num_cmds = 1 };
	struct io_uring_sqe *sqe;
	struct io_uring ring;
	int res;

	p.cmds = (uintptr_t)&nop;
	ASSERT_EQ(0, ring_init(&ring, 4));
	sqe = io_uring_get_sqe(&ring);
	ASSERT_NE(NULL, sqe);
	io_uring_prep_rw(IORING_OP_URING_CMD, sqe, self->fd, NULL, 0, 0);
	sqe->cmd_op = 0x7777;
	memset(sqe->cmd, 0, 80);
	memcpy(sqe->cmd, &p, sizeof(p));
	io_uring_sqe_set_data64(sqe, 1);
	res = uring_run_one(&ring, 1);
	EXPECT_GT(0, res);
	EXPECT_TRUE(res == -EINVAL || res == -ENOTTY || res == -EOPNOTSUPP)
		TH_LOG("res %d", res);
	io_uring_queue_exit(&ring);
}

/*
 * The ring goes away while its jobs wait behind a 300 ms delay on the
 * device: no crash, no warning, and the device serves the next job.
 */
TEST_F_TIMEOUT(uring, ring_closed_with_commands_in_flight, 60)
{
	struct drm_polar_accel_cmd nop = { .opcode = POLAR_CIM_OP_NOP };
	static const struct mm_case mc = {
		POLAR_CIM_WFMT_INT8, POLAR_CIM_XFMT_INT8, 64, 32, 2, 0
	};
	int32_t d = 0, s = 0;
	struct io_uring ring;
	struct mm_job mj;
	int before, k, fd2;

	if (!debugfs_has(self->fd, "fault"))
		SKIP(return, "no debugfs fault file");
	before = klog_problems();

	ASSERT_EQ(0, mm_job_init(self->fd, &mj, &mc, 2, 7));
	ASSERT_EQ(0, debugfs_write(self->fd, "fault", "delay 0 0 300000"));
	ASSERT_EQ(0, ring_init(&ring, 16));
	for (k = 0; k < 6; k++)
		ASSERT_EQ(0, uring_prep_job(&ring, self->fd, k % 2, &nop, 1, k));
	ASSERT_EQ(0, uring_prep_job(&ring, self->fd, 0, mj.cmds, 2, 6));
	ASSERT_EQ(7, io_uring_submit(&ring));
	io_uring_queue_exit(&ring);
	/* The jobs hold their BOs, not the process. */
	mm_job_fini(self->fd, &mj);

	EXPECT_EQ(0, run(self->fd, 0, &nop, 1));
	EXPECT_EQ(0, run(self->fd, 1, &nop, 1));
	sleep_ms(400);

	/* The same with the file closed too, on a second open file. */
	fd2 = accel_open();
	ASSERT_LE(0, fd2);
	ASSERT_EQ(0, mm_job_init(fd2, &mj, &mc, 2, 8));
	ASSERT_EQ(0, debugfs_write(self->fd, "fault", "delay 0 0 300000"));
	ASSERT_EQ(0, ring_init(&ring, 16));
	for (k = 0; k < 4; k++)
		ASSERT_EQ(0, uring_prep_job(&ring, fd2, 0, &nop, 1, k));
	ASSERT_EQ(0, uring_prep_job(&ring, fd2, 0, mj.cmds, 2, 4));
	ASSERT_EQ(5, io_uring_submit(&ring));
	mm_job_fini(fd2, &mj);
	close(fd2);
	io_uring_queue_exit(&ring);
	sleep_ms(500);

	/* The device still works, bit-exact. */
	ASSERT_EQ(0, mm_job_init(self->fd, &mj, &mc, 2, 9));
	EXPECT_EQ(0, run(self->fd, 0, mj.cmds, 2));
	EXPECT_EQ(0, mm_job_check(self->sim, &self->fw, &mj, &d, &s))
		TH_LOG("first: %d vs %d", d, s);
	mm_job_fini(self->fd, &mj);
	EXPECT_EQ(before, klog_problems())
		TH_LOG("the kernel log shows new warnings");
}

/* Jobs of both paths on the same queues, interleaved: all complete. */
TEST_F(uring, ioctl_and_uring_interleaved)
{
	struct drm_polar_accel_cmd nop = { .opcode = POLAR_CIM_OP_NOP };
	struct io_uring ring;
	uint64_t seq[16];
	int k, res;
	uint64_t ud;

	ASSERT_EQ(0, ring_init(&ring, 16));
	for (k = 0; k < 16; k++) {
		ASSERT_EQ(0, uring_prep_job(&ring, self->fd, k % self->queues,
					    &nop, 1, k));
		ASSERT_EQ(0, submit(self->fd, k % self->queues, &nop, 1,
				    &seq[k]));
	}
	ASSERT_EQ(16, io_uring_submit(&ring));
	for (k = 0; k < 16; k++)
		EXPECT_EQ(0, wait_job(self->fd, seq[k], NULL));
	for (k = 0; k < 16; k++) {
		ASSERT_EQ(0, uring_reap(&ring, &res, &ud, CQE_WAIT_S));
		EXPECT_EQ(0, res);
	}
	io_uring_queue_exit(&ring);
}

/*
 * A BO no job has used yet cannot be pinned without sleeping, so the
 * submission goes to io_uring's worker; a fast command may then end before
 * the issue path returns. Many such jobs, reaped or abandoned with the
 * ring: every CQE arrives once with res 0 and the kernel log stays clean.
 */
TEST_F_TIMEOUT(uring, fresh_bo_fast_jobs_via_worker, 90)
{
	enum { ROUNDS = 40, PER = 4 };
	struct drm_polar_accel_cmd rc[PER];
	struct bo out[PER];
	struct io_uring ring;
	int r, i, klog0, res, bad = 0;
	uint64_t ud;

	klog0 = klog_problems();
	for (r = 0; r < ROUNDS; r++) {
		ASSERT_EQ(0, ring_init(&ring, 8));
		for (i = 0; i < PER; i++) {
			ASSERT_EQ(0, bo_new(self->fd, 4096, &out[i]));
			memset(&rc[i], 0, sizeof(rc[i]));
			rc[i].opcode = POLAR_CIM_OP_READ_COUNTERS;
			rc[i].dst = (struct drm_polar_accel_buf){
				out[i].handle, 0, 0, 64 };
			ASSERT_EQ(0, uring_prep_job(&ring, self->fd,
						    i % self->queues, &rc[i], 1,
						    i));
		}
		ASSERT_EQ(PER, io_uring_submit(&ring));
		/* Odd rounds reap, even rounds close the ring at once. */
		if (r % 2) {
			for (i = 0; i < PER; i++) {
				ASSERT_EQ(0, uring_reap(&ring, &res, &ud, CQE_WAIT_S));
				if (res)
					bad++;
			}
		}
		io_uring_queue_exit(&ring);
		for (i = 0; i < PER; i++)
			bo_free(self->fd, &out[i]);
	}
	EXPECT_EQ(0, bad);
	/* The device still serves a plain job. */
	memset(&rc[0], 0, sizeof(rc[0]));
	EXPECT_EQ(0, run(self->fd, 0, &rc[0], 1));
	EXPECT_EQ(klog0, klog_problems())
		TH_LOG("the kernel log shows new warnings");
}

/*
 * A job's cmd_status reaches io_uring too: on a ring made with
 * IORING_SETUP_CQE32, big_cqe[0] of the CQE, as WAIT reports it. The old
 * cmd_op number 0x01, not _IOWR-encoded, is refused.
 */
TEST_F(uring, cmd_status_in_big_cqe)
{
	struct drm_polar_accel_cmd cmd = { .opcode = POLAR_CIM_OP_MATMUL };
	struct drm_polar_accel_uring_submit p = { .num_cmds = 1 };
	struct __kernel_timespec ts = { .tv_sec = 20 };
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	struct io_uring ring;
	struct bo x, y;

	ASSERT_EQ(0, bo_new(self->fd, 4096, &x));
	ASSERT_EQ(0, bo_new(self->fd, 4096, &y));
	/* Tiles never programmed for this shape: NOT_PROGRAMMED. */
	cmd.tile0 = param(self->fd, DRM_POLAR_ACCEL_PARAM_NUM_TILES) - 1;
	cmd.in_dim = 7;
	cmd.out_dim = 5;
	cmd.batch = 1;
	cmd.src = (struct drm_polar_accel_buf){ x.handle, 0, 0, 7 };
	cmd.dst = (struct drm_polar_accel_buf){ y.handle, 0, 0, 20 };
	p.cmds = (uintptr_t)&cmd;
	ASSERT_EQ(0, io_uring_queue_init(4, &ring, IORING_SETUP_SQE128 |
					 IORING_SETUP_CQE32));
	ASSERT_EQ(0, uring_prep(&ring, self->fd, &p, 7));
	ASSERT_EQ(1, io_uring_submit(&ring));
	ASSERT_EQ(0, io_uring_wait_cqe_timeout(&ring, &cqe, &ts));
	EXPECT_EQ(7, cqe->user_data);
	EXPECT_EQ(-ENOENT, cqe->res);
	EXPECT_EQ(POLAR_CIM_ST_NOT_PROGRAMMED, cqe->big_cqe[0]);
	io_uring_cqe_seen(&ring, cqe);

	/* The unencoded number of UAPI version 2 is no command any more. */
	sqe = io_uring_get_sqe(&ring);
	ASSERT_NE(NULL, sqe);
	io_uring_prep_rw(IORING_OP_URING_CMD, sqe, self->fd, NULL, 0, 0);
	sqe->cmd_op = 0x01;
	memset(sqe->cmd, 0, 80);
	memset(&cmd, 0, sizeof(cmd));
	cmd.opcode = POLAR_CIM_OP_NOP;
	memcpy(sqe->cmd, &p, sizeof(p));
	ASSERT_EQ(1, io_uring_submit(&ring));
	ASSERT_EQ(0, io_uring_wait_cqe_timeout(&ring, &cqe, &ts));
	EXPECT_EQ(-ENOTTY, cqe->res);
	io_uring_cqe_seen(&ring, cqe);
	io_uring_queue_exit(&ring);
	bo_free(self->fd, &x);
	bo_free(self->fd, &y);
}

/*
 * NOPs and READ_COUNTERS through an SQPOLL ring (the kernel's SQ thread
 * issues them) and with IOSQE_ASYNC (issued from an io-wq worker, the
 * blocking path): every CQE arrives, every res is 0.
 */
static void uring_mode_run(struct __test_metadata *_metadata, int fd,
			   unsigned int setup, uint8_t sqe_flags)
{
	enum { N = 64 };
	static struct drm_polar_accel_cmd cmds[N];
	struct io_uring_params params = { .flags = IORING_SETUP_SQE128 | setup,
					  .sq_thread_idle = 100 };
	bool seen[N] = { 0 };
	struct io_uring ring;
	struct bo out = { 0 };
	uint64_t ud;
	int i, res, ret;

	ret = io_uring_queue_init_params(N, &ring, &params);
	if (ret == -EPERM || ret == -EINVAL) {
		TH_LOG("ring setup 0x%x refused: %d", setup, ret);
		return;
	}
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, bo_new(fd, 4096, &out));
	for (i = 0; i < N; i++) {
		memset(&cmds[i], 0, sizeof(cmds[i]));
		cmds[i].opcode = i % 2 ? POLAR_CIM_OP_READ_COUNTERS :
					 POLAR_CIM_OP_NOP;
		if (i % 2)
			cmds[i].dst = (struct drm_polar_accel_buf){
				out.handle, 0, 64 * (i / 2 % 64), 64 };
		ASSERT_EQ(0, uring_prep_job(&ring, fd, i % 2, &cmds[i], 1, i));
		/* The SQE just prepared: 128-byte SQEs are two entries. */
		if (sqe_flags)
			ring.sq.sqes[((ring.sq.sqe_tail - 1) &
				      *ring.sq.kring_mask) << 1].flags |= sqe_flags;
	}
	ASSERT_EQ(N, io_uring_submit(&ring));
	for (i = 0; i < N; i++) {
		ASSERT_EQ(0, uring_reap(&ring, &res, &ud, CQE_WAIT_S));
		ASSERT_GT(N, ud);
		EXPECT_FALSE(seen[ud]);
		seen[ud] = true;
		EXPECT_EQ(0, res) TH_LOG("job %llu: res %d",
					 (unsigned long long)ud, res);
	}
	io_uring_queue_exit(&ring);
	bo_free(fd, &out);
}

/* BAR0 of @fd's device, read-only through sysfs; NULL if it cannot. */
static volatile uint32_t *bar0_of(int fd)
{
	void *bar;
	char path[128];
	struct stat st;
	int bfd;

	if (fstat(fd, &st))
		return NULL;
	snprintf(path, sizeof(path),
		 "/sys/class/accel/accel%u/device/resource0", minor(st.st_rdev));
	bfd = open(path, O_RDONLY | O_SYNC | O_CLOEXEC);
	if (bfd < 0)
		return NULL;
	bar = mmap(NULL, POLAR_CIM_BAR0_SIZE, PROT_READ, MAP_SHARED, bfd, 0);
	close(bfd);
	return bar == MAP_FAILED ? NULL : bar;
}

/* The driver's count of SQ slots in use on queue @q (debugfs "queues"). */
static int queue_inflight(int fd, uint32_t q)
{
	char buf[16384], key[32];
	unsigned int inflight;
	const char *line;

	if (debugfs_read(fd, "queues", buf, sizeof(buf)) < 0)
		return -1;
	snprintf(key, sizeof(key), "queue %u:", q);
	line = strstr(buf, key);
	if (!line || !(line = strstr(line, " inflight ")) ||
	    sscanf(line, " inflight %u", &inflight) != 1)
		return -1;
	return inflight;
}

static void on_sigalrm(int sig)
{
	(void)sig;
}

/*
 * A ring kept completely full. The device runs one command at a time and
 * holds queue 1's (a DELAY fault), so queue 0 fills with NOP jobs of one
 * command each that it does not fetch: an SQ of Q_SIZE slots holds
 * Q_SIZE - 1 commands (tail == head means empty), so exactly that many
 * SUBMITs return at once and the next waits for space (the uapi: a signal
 * then ends it with -EINTR, not queued). io_uring jobs submitted meanwhile
 * wait too, without overfilling. When the hold ends, every job completes
 * with status 0 and without a reset. A ring filled one slot further has
 * tail == head and looks empty to the device: its jobs never run until a
 * hang recovery (mutant driver-ring-full-off-by-one).
 */
TEST_F_TIMEOUT(uring, ring_kept_full_loses_no_job, 120)
{
	enum { URING_JOBS = 32, HOLD_US = 3000000 };
	struct drm_polar_accel_cmd nop = { .opcode = POLAR_CIM_OP_NOP };
	struct sigaction sa = { .sa_handler = on_sigalrm };  /* no SA_RESTART */
	struct itimerval in_200ms = { .it_value = { 0, 200000 } };
	struct drm_polar_accel_wait poll = { 0 };
	static uint64_t seq[POLAR_CIM_MAX_QUEUE_ENTRIES];
	unsigned int done = 0, bad = 0, k;
	char timeout_ms[32] = "1000", hold[64];
	uint64_t reset0, held = 0, extra = 0, ud;
	uint32_t slots, capacity;
	volatile uint32_t *bar;
	struct io_uring ring;
	int boundary, ret, res;

	if (!debugfs_has(self->fd, "fault"))
		SKIP(return, "no debugfs fault file");
	ASSERT_LE(2, self->queues);
	bar = bar0_of(self->fd);
	ASSERT_NE(NULL, bar) TH_LOG("cannot map BAR0");
	slots = bar[POLAR_CIM_REG_Q(0, POLAR_CIM_Q_SIZE) / 4];
	ASSERT_GE(POLAR_CIM_MAX_QUEUE_ENTRIES, slots);
	capacity = slots - 1;
	reset0 = param(self->fd, DRM_POLAR_ACCEL_PARAM_RESET_COUNT);
	/* Neither the hold nor the full ring may count as a hang. */
	file_read(JOB_TIMEOUT_PARAM, timeout_ms, sizeof(timeout_ms));
	ASSERT_EQ(0, file_write(JOB_TIMEOUT_PARAM, "60000"));
	ASSERT_EQ(0, sigaction(SIGALRM, &sa, NULL));
	ASSERT_EQ(0, ring_init(&ring, URING_JOBS));

	snprintf(hold, sizeof(hold), "delay 1 0 %d", HOLD_US);
	ASSERT_EQ(0, debugfs_write(self->fd, "fault", hold));
	ASSERT_EQ(0, submit(self->fd, 1, &nop, 1, &held));
	/* Queue 0 must not get a command in before the held one. */
	for (k = 0; k < 200 && !(bar[POLAR_CIM_REG_STATUS / 4] &
				 POLAR_CIM_STATUS_BUSY); k++)
		sleep_ms(10);
	ASSERT_TRUE(bar[POLAR_CIM_REG_STATUS / 4] & POLAR_CIM_STATUS_BUSY)
		TH_LOG("the device did not start the held command in 2 s");
	for (k = 0; k < capacity; k++)
		ASSERT_EQ(0, submit(self->fd, 0, &nop, 1, &seq[k]))
			TH_LOG("SUBMIT %u of %u", k + 1, capacity);
	EXPECT_EQ((int)capacity, queue_inflight(self->fd, 0));
	/* The ring is full: the next SUBMIT waits until the signal ends it. */
	ASSERT_EQ(0, setitimer(ITIMER_REAL, &in_200ms, NULL));
	boundary = submit(self->fd, 0, &nop, 1, &extra);
	EXPECT_EQ(-EINTR, boundary)
		TH_LOG("SUBMIT to a ring holding %u commands returned %d",
		       capacity, boundary);
	for (k = 0; k < URING_JOBS; k++)
		ASSERT_EQ(0, uring_prep_job(&ring, self->fd, 0, &nop, 1, k));
	ASSERT_EQ(URING_JOBS, io_uring_submit(&ring));
	sleep_ms(200);
	EXPECT_EQ((int)capacity + (boundary ? 0 : 1),
		  queue_inflight(self->fd, 0));
	/* All of the above happened while the device held queue 1. */
	poll.seqno = held;
	EXPECT_EQ(-1, ioctl(self->fd, DRM_IOCTL_POLAR_ACCEL_WAIT, &poll));
	EXPECT_EQ(ETIME, errno) TH_LOG("the %d us hold ended too early: "
				       "the boundary was not tested", HOLD_US);

	/* Let it drain: every job completes, with no reset. */
	EXPECT_EQ(0, wait_job(self->fd, held, NULL));
	for (k = 0; k < capacity; k++) {
		ret = wait_job(self->fd, seq[k], NULL);
		if (ret && ++bad <= 4)
			TH_LOG("job %u of the full ring: %d", k, ret);
		/* Lost jobs are failed by a hang recovery, in time. */
		if (k == 0)
			file_write(JOB_TIMEOUT_PARAM, timeout_ms);
	}
	if (!boundary)
		EXPECT_EQ(0, wait_job(self->fd, extra, NULL));
	for (k = 0; k < URING_JOBS; k++) {
		if (uring_reap(&ring, &res, &ud, CQE_WAIT_S))
			break;
		done++;
		if (res && ++bad <= 4)
			TH_LOG("io_uring job %llu: %d", (unsigned long long)ud,
			       res);
	}
	io_uring_queue_exit(&ring);
	file_write(JOB_TIMEOUT_PARAM, timeout_ms);
	EXPECT_EQ(0, bad);
	EXPECT_EQ(URING_JOBS, done);
	EXPECT_EQ(0, queue_inflight(self->fd, 0));
	EXPECT_EQ(reset0, param(self->fd, DRM_POLAR_ACCEL_PARAM_RESET_COUNT))
		TH_LOG("the device was reset while the ring was full");
	munmap((void *)bar, POLAR_CIM_BAR0_SIZE);
	TH_LOG("queue 0: %u slots, %u commands taken before SUBMIT waited; "
	       "%u + %u jobs completed, %u failed", slots, capacity, capacity,
	       done, bad);
}

TEST_F(uring, sqpoll_and_async_submissions)
{
	uring_mode_run(_metadata, self->fd, IORING_SETUP_SQPOLL, 0);
	uring_mode_run(_metadata, self->fd, 0, IOSQE_ASYNC);
}

/*
 * Lock order against io_uring and the mm, seen by lockdep on the debug
 * kernel (make check-debug): a command issued from an io-wq worker
 * (IOSQE_ASYNC) marked itself cancelable, which takes the ring's lock,
 * with its BOs' reservations locked; io_uring copies from user memory
 * under the ring's lock (here: registering the ring's fd), and mmap of a
 * BO locks its reservation under mmap_lock. Lockdep reports that circle
 * as a WARNING once all three have happened, in any order. Without lockdep
 * (the stock kernel) this passes either way.
 */
TEST_F(uring, async_submit_lock_order)
{
	int before = klog_problems();
	struct io_uring ring;

	uring_mode_run(_metadata, self->fd, 0, IOSQE_ASYNC);
	ASSERT_EQ(0, ring_init(&ring, 4));
	EXPECT_EQ(1, io_uring_register_ring_fd(&ring));
	io_uring_queue_exit(&ring);
	EXPECT_EQ(before, klog_problems())
		TH_LOG("the kernel log shows a new warning (lockdep?)");
}

TEST_HARNESS_MAIN
