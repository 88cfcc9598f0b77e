// SPDX-License-Identifier: GPL-2.0
/*
 * kselftests of job submission on polar_accel.ko: buffer objects, NOP,
 * PROGRAM_TILES + MATMUL checked bit for bit against cim_engine run on the
 * host CPU with the chip's properties and the same firmware, and the
 * rejection of invalid submissions. GPL-2.0: includes the kselftest
 * harness.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "polar_selftest.h"

#include "drm/polar_accel.h"
#include "polar/polar.h"
#include "polar_cim_hw.h"
#include "cim_command.h"

FIXTURE(job) {
	int fd;
	struct cim_engine *sim;
	struct cim_firmware fw;
	uint32_t tiles;
};

FIXTURE_SETUP(job)
{
	struct cim_config cfg = { 0 };
	static uint8_t image[POLAR_CIM_FW_MAX_SIZE];
	ssize_t n;
	int fwfd;

	self->fd = accel_open();
	ASSERT_LE(0, self->fd);
	if (param(self->fd, DRM_POLAR_ACCEL_PARAM_SIGMA_DYNAMIC))
		SKIP(return, "dynamic noise is on: results are not exact");

	/* The software engine with this chip's properties. */
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
	self->tiles = cfg.tiles;
	ASSERT_EQ(0, cim_engine_create(&cfg, &self->sim));

	/* ... running the firmware the device booted. */
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

FIXTURE_TEARDOWN(job)
{
	if (self->sim)
		cim_engine_destroy(self->sim);
	close(self->fd);
}

TEST_F(job, firmware_booted)
{
	EXPECT_EQ(self->fw.version,
		  param(self->fd, DRM_POLAR_ACCEL_PARAM_FW_VERSION));
}

TEST_F(job, bo_create_mmap_info)
{
	struct drm_polar_accel_bo_create c = { .size = 5000 };
	struct drm_polar_accel_bo_info i = { 0 };
	struct bo bo;

	ASSERT_EQ(0, bo_new(self->fd, 5000, &bo));
	EXPECT_EQ(8192, bo.size);
	memset(bo.map, 0xa5, bo.size);
	EXPECT_EQ(0xa5, ((uint8_t *)bo.map)[8191]);
	bo_free(self->fd, &bo);

	c.size = 0;
	EXPECT_EQ(-1, ioctl(self->fd, DRM_IOCTL_POLAR_ACCEL_BO_CREATE, &c));
	EXPECT_EQ(EINVAL, errno);
	c.size = 4096;
	c.flags = 1;
	EXPECT_EQ(-1, ioctl(self->fd, DRM_IOCTL_POLAR_ACCEL_BO_CREATE, &c));
	EXPECT_EQ(EINVAL, errno);
	i.handle = 0xdead;
	EXPECT_EQ(-1, ioctl(self->fd, DRM_IOCTL_POLAR_ACCEL_BO_INFO, &i));
	EXPECT_EQ(ENOENT, errno);
}

TEST_F(job, nop_on_every_queue)
{
	struct drm_polar_accel_cmd nop = { .opcode = POLAR_CIM_OP_NOP };
	uint32_t q, queues = param(self->fd, DRM_POLAR_ACCEL_PARAM_NUM_QUEUES);

	ASSERT_LE(1, queues);
	for (q = 0; q < queues; q++)
		EXPECT_EQ(0, run(self->fd, q, &nop, 1)) TH_LOG("queue %u", q);
}

TEST_F(job, matmul_matches_software_engine)
{
	static const struct {
		uint8_t wfmt, xfmt;
		uint32_t in_dim, out_dim, batch, adc_fs_q8;
	} cases[] = {
		{ POLAR_CIM_WFMT_INT8, POLAR_CIM_XFMT_INT8, 200, 70, 5, 0 },
		{ POLAR_CIM_WFMT_INT4, POLAR_CIM_XFMT_UINT4, 128, 128, 17, 0 },
		{ POLAR_CIM_WFMT_NF4, POLAR_CIM_XFMT_INT4, 300, 150, 3, 24 << 8 },
		{ POLAR_CIM_WFMT_INT4, POLAR_CIM_XFMT_INT8, 1, 1, 1, 0 },
		{ POLAR_CIM_WFMT_INT8, POLAR_CIM_XFMT_UINT8, 129, 129, 2, 0 },
	};
	size_t k;

	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct drm_polar_accel_cmd cmds[2] = { { 0 } };
		struct cim_command c = { 0 };
		uint64_t wlen = (uint64_t)cases[k].in_dim * cases[k].out_dim;
		uint64_t xlen = (uint64_t)cases[k].batch * cases[k].in_dim;
		uint64_t ylen = (uint64_t)cases[k].batch * cases[k].out_dim * 4;
		struct bo w, x, y;
		int32_t *expect;
		uint64_t i;

		ASSERT_EQ(0, bo_new(self->fd, wlen, &w));
		ASSERT_EQ(0, bo_new(self->fd, xlen, &x));
		ASSERT_EQ(0, bo_new(self->fd, ylen, &y));
		srand(k + 1);
		for (i = 0; i < wlen; i++)
			((int8_t *)w.map)[i] = weight_code(cases[k].wfmt, rand());
		for (i = 0; i < xlen; i++)
			((int8_t *)x.map)[i] = input_code(cases[k].xfmt, rand());
		memset(y.map, 0xff, ylen);

		c.wfmt = cases[k].wfmt;
		c.xfmt = cases[k].xfmt;
		c.tile0 = 3;
		c.in_dim = cases[k].in_dim;
		c.out_dim = cases[k].out_dim;
		c.batch = cases[k].batch;
		c.adc_fs_q8 = cases[k].adc_fs_q8;
		c.job_seed = 77;

		cmds[0].opcode = POLAR_CIM_OP_PROGRAM_TILES;
		cmds[0].wfmt = c.wfmt;
		cmds[0].tile0 = c.tile0;
		cmds[0].in_dim = c.in_dim;
		cmds[0].out_dim = c.out_dim;
		cmds[0].src = (struct drm_polar_accel_buf){ w.handle, 0, 0, wlen };
		cmds[1].opcode = POLAR_CIM_OP_MATMUL;
		cmds[1].wfmt = c.wfmt;
		cmds[1].xfmt = c.xfmt;
		cmds[1].tile0 = c.tile0;
		cmds[1].in_dim = c.in_dim;
		cmds[1].out_dim = c.out_dim;
		cmds[1].batch = c.batch;
		cmds[1].adc_fs_q8 = c.adc_fs_q8;
		cmds[1].job_seed = c.job_seed;
		cmds[1].src = (struct drm_polar_accel_buf){ x.handle, 0, 0, xlen };
		cmds[1].dst = (struct drm_polar_accel_buf){ y.handle, 0, 0, ylen };
		ASSERT_EQ(0, run(self->fd, k % 2, cmds, 2)) TH_LOG("case %zu", k);

		/* The same two commands on the host's software engine. */
		expect = malloc(ylen);
		ASSERT_NE(NULL, expect);
		c.opcode = POLAR_CIM_OP_PROGRAM_TILES;
		ASSERT_EQ(POLAR_CIM_ST_OK,
			  cim_command_program(self->sim, &c, w.map));
		c.opcode = POLAR_CIM_OP_MATMUL;
		ASSERT_EQ(POLAR_CIM_ST_OK,
			  cim_command_matmul(self->sim, &self->fw, &c, x.map,
					     expect, NULL, NULL));
		EXPECT_EQ(0, memcmp(expect, y.map, ylen))
			TH_LOG("case %zu: device and software engine differ "
			       "(first: %d vs %d)", k, ((int32_t *)y.map)[0],
			       expect[0]);
		free(expect);
		bo_free(self->fd, &w);
		bo_free(self->fd, &x);
		bo_free(self->fd, &y);
	}
}

static int read_counters(int fd, struct bo *out, uint64_t *c)
{
	struct drm_polar_accel_cmd cmd = { .opcode = POLAR_CIM_OP_READ_COUNTERS };
	int ret;

	cmd.dst = (struct drm_polar_accel_buf){ out->handle, 0, 0, 64 };
	ret = run(fd, 0, &cmd, 1);
	memcpy(c, out->map, POLAR_CIM_NUM_COUNTERS * sizeof(*c));
	return ret;
}

TEST_F(job, read_counters_count_a_matmul)
{
	uint64_t before[POLAR_CIM_NUM_COUNTERS], after[POLAR_CIM_NUM_COUNTERS];
	struct drm_polar_accel_cmd cmds[2] = { { 0 } };
	struct bo out, w, x, y;

	ASSERT_EQ(0, bo_new(self->fd, 4096, &out));
	ASSERT_EQ(0, bo_new(self->fd, 4096, &w));
	ASSERT_EQ(0, bo_new(self->fd, 4096, &x));
	ASSERT_EQ(0, bo_new(self->fd, 4096, &y));
	memset(w.map, 1, 4096);
	memset(x.map, 3, 4096);
	cmds[0].opcode = POLAR_CIM_OP_PROGRAM_TILES;
	cmds[0].in_dim = 32;
	cmds[0].out_dim = 16;
	cmds[0].src = (struct drm_polar_accel_buf){ w.handle, 0, 0, 512 };
	cmds[1] = cmds[0];
	cmds[1].opcode = POLAR_CIM_OP_MATMUL;
	cmds[1].batch = 4;
	cmds[1].src = (struct drm_polar_accel_buf){ x.handle, 0, 0, 128 };
	cmds[1].dst = (struct drm_polar_accel_buf){ y.handle, 0, 0, 256 };

	ASSERT_EQ(0, read_counters(self->fd, &out, before));
	ASSERT_EQ(0, run(self->fd, 0, cmds, 2));
	ASSERT_EQ(0, read_counters(self->fd, &out, after));
	/* PROGRAM, MATMUL and the first READ_COUNTERS have completed. */
	EXPECT_EQ(3, after[POLAR_CIM_CNT_COMMANDS] -
		     before[POLAR_CIM_CNT_COMMANDS]);
	EXPECT_EQ(4 * 32 * 16, after[POLAR_CIM_CNT_MACS] -
			       before[POLAR_CIM_CNT_MACS]);
	EXPECT_LT(before[POLAR_CIM_CNT_ADC_CONVERSIONS],
		  after[POLAR_CIM_CNT_ADC_CONVERSIONS]);
	EXPECT_LT(before[POLAR_CIM_CNT_ENERGY_FJ],
		  after[POLAR_CIM_CNT_ENERGY_FJ]);
	EXPECT_LT(before[POLAR_CIM_CNT_CYCLES], after[POLAR_CIM_CNT_CYCLES]);
	bo_free(self->fd, &out);
	bo_free(self->fd, &w);
	bo_free(self->fd, &x);
	bo_free(self->fd, &y);
}

TEST_F(job, matmul_on_unprogrammed_shape_fails)
{
	struct drm_polar_accel_cmd cmd = { .opcode = POLAR_CIM_OP_MATMUL };
	uint32_t cmd_status = 0;
	uint64_t seqno = 0;
	struct bo x, y;

	ASSERT_EQ(0, bo_new(self->fd, 4096, &x));
	ASSERT_EQ(0, bo_new(self->fd, 4096, &y));
	cmd.tile0 = self->tiles - 1;
	cmd.in_dim = 7;
	cmd.out_dim = 5;
	cmd.batch = 1;
	cmd.src = (struct drm_polar_accel_buf){ x.handle, 0, 0, 7 };
	cmd.dst = (struct drm_polar_accel_buf){ y.handle, 0, 0, 20 };
	ASSERT_EQ(0, submit(self->fd, 0, &cmd, 1, &seqno));
	EXPECT_EQ(-ENOENT, wait_job(self->fd, seqno, &cmd_status));
	EXPECT_EQ(POLAR_CIM_ST_NOT_PROGRAMMED, cmd_status);
	bo_free(self->fd, &x);
	bo_free(self->fd, &y);
}

/* Every invalid field of SUBMIT is rejected before the device sees it. */
TEST_F(job, submit_rejects_invalid_fields)
{
	struct drm_polar_accel_cmd good = { .opcode = POLAR_CIM_OP_MATMUL };
	struct drm_polar_accel_submit s;
	uint32_t queues = param(self->fd, DRM_POLAR_ACCEL_PARAM_NUM_QUEUES);
	uint64_t seqno = 0;
	struct bo x, y;
	int k;

	ASSERT_EQ(0, bo_new(self->fd, 4096, &x));
	ASSERT_EQ(0, bo_new(self->fd, 4096, &y));
	good.in_dim = 16;
	good.out_dim = 8;
	good.batch = 2;
	good.src = (struct drm_polar_accel_buf){ x.handle, 0, 0, 32 };
	good.dst = (struct drm_polar_accel_buf){ y.handle, 0, 0, 64 };

	for (k = 0; k < 18; k++) {
		struct drm_polar_accel_cmd c = good;
		int expect = -EINVAL;

		switch (k) {
		case 0: c.opcode = 0x7f; break;
		case 1: c.pad0 = 1; break;
		case 2: c.pad1 = 1; break;
		case 3: c.src.pad = 1; break;
		case 4: c.wfmt = 3; break;
		case 5: c.xfmt = 4; break;
		case 6: c.batch = 0; break;
		case 7: c.in_dim = 0; break;
		case 8: c.src.size = 31; break;	/* shorter than batch x in */
		case 9: c.dst.size = 63; break;
		case 10: c.src.handle = 0xbad; expect = -ENOENT; break;
		case 11: c.src.offset = 4090; expect = -ERANGE; break;
		case 12: c.dst.size = 8192; expect = -ERANGE; break;
		case 13: c.tile0 = self->tiles; expect = -ERANGE; break;
		case 14: c.batch = param(self->fd,
					 DRM_POLAR_ACCEL_PARAM_MAX_BATCH) + 1;
			break;
		case 15: c.opcode = POLAR_CIM_OP_NOP; break; /* fields set */
		case 16: c.rows_per_conv = 4096; break;
		case 17: c.dst.offset = ~0ull; expect = -ERANGE; break;
		}
		EXPECT_EQ(expect, submit(self->fd, 0, &c, 1, &seqno))
			TH_LOG("mutation %d", k);
	}

	memset(&s, 0, sizeof(s));
	s.num_cmds = 1;
	s.cmds = (uintptr_t)&good;
	s.queue = queues;
	EXPECT_EQ(-1, ioctl(self->fd, DRM_IOCTL_POLAR_ACCEL_SUBMIT, &s));
	EXPECT_EQ(EINVAL, errno);
	s.queue = 0;
	s.flags = 1;
	EXPECT_EQ(-1, ioctl(self->fd, DRM_IOCTL_POLAR_ACCEL_SUBMIT, &s));
	EXPECT_EQ(EINVAL, errno);
	s.flags = 0;
	s.num_cmds = 0;
	EXPECT_EQ(-1, ioctl(self->fd, DRM_IOCTL_POLAR_ACCEL_SUBMIT, &s));
	EXPECT_EQ(EINVAL, errno);
	s.num_cmds = param(self->fd, DRM_POLAR_ACCEL_PARAM_MAX_CMDS) + 1;
	EXPECT_EQ(-1, ioctl(self->fd, DRM_IOCTL_POLAR_ACCEL_SUBMIT, &s));
	EXPECT_EQ(EINVAL, errno);
	s.num_cmds = 1;
	s.cmds = 16;
	EXPECT_EQ(-1, ioctl(self->fd, DRM_IOCTL_POLAR_ACCEL_SUBMIT, &s));
	EXPECT_EQ(EFAULT, errno);

	/* A seqno this file does not have is not waitable. */
	EXPECT_EQ(-1000 - ENOENT, wait_job(self->fd, 1ull << 60, NULL));
	bo_free(self->fd, &x);
	bo_free(self->fd, &y);
}

/* WAIT and BO_INFO reject every invalid field, like SUBMIT. */
TEST_F(job, wait_and_bo_info_reject_invalid_fields)
{
	struct drm_polar_accel_cmd nop = { .opcode = POLAR_CIM_OP_NOP };
	struct drm_polar_accel_wait w;
	struct drm_polar_accel_bo_info i;
	uint64_t seqno = 0;
	struct bo bo;

	ASSERT_EQ(0, submit(self->fd, 0, &nop, 1, &seqno));
	memset(&w, 0, sizeof(w));
	w.seqno = seqno;
	w.timeout_ns = WAIT_NS;
	w.flags = 1;
	EXPECT_EQ(-1, ioctl(self->fd, DRM_IOCTL_POLAR_ACCEL_WAIT, &w));
	EXPECT_EQ(EINVAL, errno);
	w.flags = 0;
	w.pad = 1;
	EXPECT_EQ(-1, ioctl(self->fd, DRM_IOCTL_POLAR_ACCEL_WAIT, &w));
	EXPECT_EQ(EINVAL, errno);
	w.pad = 0;
	w.timeout_ns = -1;
	EXPECT_EQ(-1, ioctl(self->fd, DRM_IOCTL_POLAR_ACCEL_WAIT, &w));
	EXPECT_EQ(EINVAL, errno);
	/* The job is still collectable after the rejected calls, once. */
	EXPECT_EQ(0, wait_job(self->fd, seqno, NULL));
	EXPECT_EQ(-1000 - ENOENT, wait_job(self->fd, seqno, NULL));

	ASSERT_EQ(0, bo_new(self->fd, 4096, &bo));
	memset(&i, 0, sizeof(i));
	i.handle = bo.handle;
	i.pad = 1;
	EXPECT_EQ(-1, ioctl(self->fd, DRM_IOCTL_POLAR_ACCEL_BO_INFO, &i));
	EXPECT_EQ(EINVAL, errno);
	bo_free(self->fd, &bo);
}

/* A reset leaves a device coredump of the queue and register state. */
TEST_F(job, reset_leaves_a_devcoredump)
{
	char path[256], link[300], dev[256], buf[4096];
	int fd, found = 0;
	ssize_t n;
	FILE *f;

	ASSERT_EQ(0, polar_find_device(NULL, 0, path, sizeof(path)));
	snprintf(link, sizeof(link), "/sys/class/accel/%s/device",
		 strrchr(path, '/') + 1);
	n = readlink(link, dev, sizeof(dev) - 1);
	ASSERT_LT(0, n);
	dev[n] = '\0';
	snprintf(path, sizeof(path), "/sys/kernel/debug/accel/%s/reset",
		 strrchr(dev, '/') + 1);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		SKIP(return, "no %s", path);
	ASSERT_EQ(2, write(fd, "1\n", 2));
	close(fd);

	f = popen("cat /sys/class/devcoredump/devcd*/data 2>/dev/null", "r");
	ASSERT_NE(NULL, f);
	while (fgets(buf, sizeof(buf), f))
		found |= strstr(buf, "polar_accel coredump") != NULL;
	pclose(f);
	EXPECT_TRUE(found);
	/* Writing to data frees the dump. */
	system("for d in /sys/class/devcoredump/devcd*; do echo 1 > $d/data; done 2>/dev/null");
}

/* A handle means nothing in another process's file. */
TEST_F(job, other_process_handle_unusable)
{
	struct drm_polar_accel_cmd c = { .opcode = POLAR_CIM_OP_READ_COUNTERS };
	int to_parent[2], to_child[2], status;
	uint32_t foreign;
	uint64_t seqno = 0;
	pid_t pid;

	ASSERT_EQ(0, pipe(to_parent));
	ASSERT_EQ(0, pipe(to_child));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int fd = accel_open();
		struct bo bo;
		char done;

		if (fd < 0 || bo_new(fd, 4096, &bo))
			_exit(1);
		if (write(to_parent[1], &bo.handle, sizeof(bo.handle)) < 0)
			_exit(1);
		/* Keep the BO alive until the parent has tried it. */
		if (read(to_child[0], &done, 1) < 0)
			_exit(1);
		_exit(0);
	}
	ASSERT_EQ(sizeof(foreign),
		  read(to_parent[0], &foreign, sizeof(foreign)));
	c.dst = (struct drm_polar_accel_buf){ foreign, 0, 0, 64 };
	EXPECT_EQ(-ENOENT, submit(self->fd, 0, &c, 1, &seqno));
	ASSERT_EQ(1, write(to_child[1], "x", 1));
	waitpid(pid, &status, 0);
	EXPECT_EQ(0, WEXITSTATUS(status));
	close(to_parent[0]);
	close(to_parent[1]);
	close(to_child[0]);
	close(to_child[1]);
}

TEST_HARNESS_MAIN
