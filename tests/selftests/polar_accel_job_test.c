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
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <time.h>
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
	param_design(self->fd, &cfg.digital_planes, &cfg.adc_bits_msb,
		     &cfg.adc_msb_levels);
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
	uint64_t max_batch = param(self->fd, DRM_POLAR_ACCEL_PARAM_MAX_BATCH);
	uint64_t seqno = 0;
	struct bo x, y, bx, by;
	int k;

	ASSERT_EQ(0, bo_new(self->fd, 4096, &x));
	ASSERT_EQ(0, bo_new(self->fd, 4096, &y));
	good.in_dim = 16;
	good.out_dim = 8;
	good.batch = 2;
	good.src = (struct drm_polar_accel_buf){ x.handle, 0, 0, 32 };
	good.dst = (struct drm_polar_accel_buf){ y.handle, 0, 0, 64 };
	ASSERT_EQ(0, bo_new(self->fd, (max_batch + 1) * 16ull, &bx));
	ASSERT_EQ(0, bo_new(self->fd, (max_batch + 1) * 8ull * 4, &by));

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
		case 14: /* buffers large enough: only the batch is wrong */
			c.batch = max_batch + 1;
			c.src = (struct drm_polar_accel_buf){ bx.handle, 0, 0,
							      bx.size };
			c.dst = (struct drm_polar_accel_buf){ by.handle, 0, 0,
							      by.size };
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
	bo_free(self->fd, &bx);
	bo_free(self->fd, &by);
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
	w.timeout_ns = deadline_ns(WAIT_NS);
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

/*
 * A reset leaves a device coredump of the queue and register state. Only
 * the dump this reset made counts: the one of this device (failing_device)
 * that names this reset's number; other chips' dumps are neither read nor
 * freed. An older dump of this device is freed first: the kernel keeps one
 * per device, and on the debug kernel under load a hang check's reset left
 * one that made this test fail ("no devcoredump ... for reset 6").
 */
TEST_F(job, reset_leaves_a_devcoredump)
{
	char path[512], bdf[64], dump[320];
	uint64_t reset0;
	int fd, found;

	ASSERT_EQ(0, accel_bdf(self->fd, bdf, sizeof(bdf)));
	snprintf(path, sizeof(path), "/sys/kernel/debug/accel/%s/reset", bdf);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		SKIP(return, "no %s", path);
	devcoredump_discard(bdf);
	reset0 = param(self->fd, DRM_POLAR_ACCEL_PARAM_RESET_COUNT);
	ASSERT_EQ(2, write(fd, "1\n", 2));
	close(fd);

	found = devcoredump_find(bdf, reset0 + 1, dump, sizeof(dump));
	EXPECT_TRUE(found) TH_LOG("no devcoredump of %s for reset %llu", bdf,
				  (unsigned long long)reset0 + 1);
	/* Writing to data frees the dump: ours only. */
	if (found)
		file_write(dump, "1");
}

/*
 * The command struct can grow (cmd_stride): an old binary's 0, today's
 * size, and a larger command from a newer header whose extra bytes are
 * zero all run, the second command read at the stride; an extra byte set
 * (a field this driver does not know) and a stride below today's struct
 * or above the limit are refused.
 */
TEST_F(job, cmd_stride_old_and_larger_commands)
{
	const uint32_t stride_ok[] = { 0, sizeof(struct drm_polar_accel_cmd),
				       STRIDE_BIG };
	const uint32_t stride_bad[] = { sizeof(struct drm_polar_accel_cmd) - 8,
					DRM_POLAR_ACCEL_MAX_CMD_STRIDE + 8 };
	uint8_t buf[2 * (DRM_POLAR_ACCEL_MAX_CMD_STRIDE + 8)];
	struct drm_polar_accel_submit s = { .num_cmds = 2 };
	uint64_t counters[2][POLAR_CIM_NUM_COUNTERS];
	struct bo out = { 0 };
	size_t k;

	ASSERT_EQ(0, bo_new(self->fd, 4096, &out));
	s.cmds = (uintptr_t)buf;
	for (k = 0; k < 3; k++) {
		memset(out.map, 0, 128);
		stride_cmds(buf, stride_ok[k] ? stride_ok[k] :
			    sizeof(struct drm_polar_accel_cmd), out.handle, 0);
		s.cmd_stride = stride_ok[k];
		ASSERT_EQ(0, ioctl(self->fd, DRM_IOCTL_POLAR_ACCEL_SUBMIT, &s))
			TH_LOG("stride %u: %s", stride_ok[k], strerror(errno));
		ASSERT_EQ(0, wait_job(self->fd, s.seqno, NULL));
		memcpy(counters, out.map, sizeof(counters));
		EXPECT_NE(0, counters[1][POLAR_CIM_CNT_COMMANDS])
			TH_LOG("stride %u: the second command did not run",
			       stride_ok[k]);
	}
	stride_cmds(buf, STRIDE_BIG, out.handle, 1);
	s.cmd_stride = STRIDE_BIG;
	EXPECT_EQ(-1, ioctl(self->fd, DRM_IOCTL_POLAR_ACCEL_SUBMIT, &s));
	EXPECT_EQ(EINVAL, errno) TH_LOG("an unknown non-zero field");
	for (k = 0; k < 2; k++) {
		stride_cmds(buf, stride_bad[k], out.handle, 0);
		s.cmd_stride = stride_bad[k];
		EXPECT_EQ(-1, ioctl(self->fd, DRM_IOCTL_POLAR_ACCEL_SUBMIT, &s));
		EXPECT_EQ(EINVAL, errno) TH_LOG("stride %u", stride_bad[k]);
	}
	bo_free(self->fd, &out);
}

/*
 * The kernel's unhandled counts of the device's queue vectors (MSI-X
 * vector q < @queues), summed from /proc/irq/N/spurious; -1 without MSI-X.
 */
static long queue_vectors_unhandled(int fd, uint32_t queues)
{
	char bdf[64], tag[96], line[512], path[64];
	unsigned int irq, vec;
	long sum = -1, n;
	FILE *f, *sp;

	if (accel_bdf(fd, bdf, sizeof(bdf)))
		return -1;
	snprintf(tag, sizeof(tag), "PCI-MSIX-%s ", bdf);
	f = fopen("/proc/interrupts", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *m = strstr(line, tag);

		if (!m || sscanf(line, " %u:", &irq) != 1 ||
		    sscanf(m + strlen(tag), "%u-edge", &vec) != 1 ||
		    vec >= queues)
			continue;
		snprintf(path, sizeof(path), "/proc/irq/%u/spurious", irq);
		sp = fopen(path, "r");
		if (!sp)
			continue;
		if (sum < 0)
			sum = 0;
		while (fgets(line, sizeof(line), sp))
			if (sscanf(line, "unhandled %ld", &n) == 1)
				sum += n;
		fclose(sp);
	}
	fclose(f);
	return sum;
}

/*
 * Completions on every queue at once: each queue's MSI-X vector finds its
 * own event. A handler that acknowledged other queues' events (all of
 * INT_STATUS) left their vectors nothing, and the kernel counts those as
 * unhandled (enough of them and it disables the interrupt).
 */
TEST_F(job, queue_vectors_find_their_own_events)
{
	struct drm_polar_accel_cmd nop = { .opcode = POLAR_CIM_OP_NOP };
	uint32_t queues = param(self->fd, DRM_POLAR_ACCEL_PARAM_NUM_QUEUES);
	uint64_t seqno[64];
	long before, after;
	int round, i;

	before = queue_vectors_unhandled(self->fd, queues);
	if (before < 0)
		SKIP(return, "no MSI-X vectors (INTx)");
	for (round = 0; round < 20; round++) {
		for (i = 0; i < 64; i++)
			ASSERT_EQ(0, submit(self->fd, i % queues, &nop, 1,
					    &seqno[i]));
		for (i = 0; i < 64; i++)
			ASSERT_EQ(0, wait_job(self->fd, seqno[i], NULL));
	}
	/*
	 * The kernel's count is not a plain total (it restarts at 1 when
	 * unhandled interrupts are 100 ms apart) but stays 0 until the
	 * first: since boot, no queue vector may have found nothing.
	 */
	after = queue_vectors_unhandled(self->fd, queues);
	EXPECT_EQ(0, after) TH_LOG("queue vectors found nothing: unhandled %ld "
				   "(%ld before this test's jobs)", after,
				   before);
}

/*
 * The open node's device's interrupts as /proc/interrupts counts them,
 * summed over CPUs; @lines gets how many of its lines are the device's:
 * its MSI-X vectors (named after its PCI address), or, when @intx, the
 * line of its INTx pin (sysfs irq) with polar_accel among the handlers.
 * -1 when the files cannot be read.
 */
static long device_interrupts(int fd, bool intx, int *lines)
{
	char bdf[64], tag[96], line[1024], path[128];
	unsigned int irq, pin_irq = ~0u;
	int cpus = 0, c;
	long sum = 0;
	char *p, *end;
	FILE *f;

	*lines = 0;
	if (accel_bdf(fd, bdf, sizeof(bdf)))
		return -1;
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/irq", bdf);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%u", &pin_irq) != 1)
		pin_irq = ~0u;
	fclose(f);
	snprintf(tag, sizeof(tag), "PCI-MSIX-%s ", bdf);
	f = fopen("/proc/interrupts", "r");
	if (!f)
		return -1;
	/* The header names one column per CPU. */
	if (fgets(line, sizeof(line), f))
		for (p = line; (p = strstr(p, "CPU")); p += 3)
			cpus++;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, " %u:", &irq) != 1)
			continue;
		if (!strstr(line, tag) &&
		    !(intx && irq == pin_irq && strstr(line, POLAR_DRIVER_NAME)))
			continue;
		(*lines)++;
		p = strchr(line, ':') + 1;
		for (c = 0; c < cpus; c++, p = end) {
			long v = strtol(p, &end, 10);

			if (end == p)
				break;
			sum += v;
		}
	}
	fclose(f);
	return sum;
}

/*
 * The driver takes the interrupts the chip offers (hw/README.md section
 * 7.1): with CAPS.MSIX one MSI-X vector per queue and one more, else the
 * INTx pin alone; and every queue's completion arrives through them and
 * is taken at once (not by the hang check's recovery). Run
 * against make check's chip without MSI-X (tests/vm/init), this shows
 * that its jobs went through the driver's INTx handler.
 */
TEST_F(job, interrupts_are_those_the_chip_offers)
{
	struct drm_polar_accel_cmd nop = { .opcode = POLAR_CIM_OP_NOP };
	uint32_t q, queues = param(self->fd, DRM_POLAR_ACCEL_PARAM_NUM_QUEUES);
	bool msix = param(self->fd, DRM_POLAR_ACCEL_PARAM_CAPS) &
		    POLAR_CIM_CAP_MSIX;
	uint64_t resets;
	long before, after;
	int lines;

	resets = param(self->fd, DRM_POLAR_ACCEL_PARAM_RESET_COUNT);
	before = device_interrupts(self->fd, !msix, &lines);
	ASSERT_LE(0, before);
	TH_LOG("%s, %u queues: %d interrupt lines, %ld interrupts so far",
	       msix ? "MSI-X" : "INTx", queues, lines, before);
	EXPECT_EQ(msix ? (int)queues + 1 : 1, lines);
	for (q = 0; q < queues; q++)
		ASSERT_EQ(0, run(self->fd, q, &nop, 1)) TH_LOG("queue %u", q);
	after = device_interrupts(self->fd, !msix, &lines);
	/* One job at a time: each completion is an interrupt of its own. */
	EXPECT_LE(before + queues, after)
		TH_LOG("%ld interrupts for %u jobs", after - before, queues);
	/*
	 * ... which the handler saw to: a completion it left behind is
	 * found only by the hang check, whose recovery resets the device.
	 */
	EXPECT_EQ(resets, param(self->fd, DRM_POLAR_ACCEL_PARAM_RESET_COUNT))
		TH_LOG("a queue's completion waited for a device reset");
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

struct seqno_waiter {
	int fd;
	uint64_t first;
	uint32_t count;
	uint32_t collected;
	uint32_t failed;
	int stop;
};

/* Collects jobs first, first + 1, ... as soon as each exists and ends. */
static void *seqno_waiter_thread(void *arg)
{
	struct seqno_waiter *sw = arg;
	uint64_t target = sw->first;

	while (sw->collected < sw->count &&
	       !__atomic_load_n(&sw->stop, __ATOMIC_ACQUIRE)) {
		int ret = wait_job(sw->fd, target, NULL);

		if (ret == -1000 - ENOENT)
			continue;	/* not submitted yet */
		if (ret)
			sw->failed++;
		__atomic_add_fetch(&sw->collected, 1, __ATOMIC_RELEASE);
		target++;
	}
	return NULL;
}

/*
 * SUBMIT must not touch its job once the device has it: a WAIT from
 * another thread of the same file on the predictable next seqno may
 * collect and free it at once. With init_on_free=1 (run-checks.sh) the
 * freed job reads as zeros, so a SUBMIT that reads job->seqno late
 * reports a wrong seqno; a debug kernel's KASAN reports the read itself.
 */
TEST_F_TIMEOUT(job, submit_races_wait_on_next_seqno, 300)
{
	struct drm_polar_accel_cmd nop = { .opcode = POLAR_CIM_OP_NOP };
	struct seqno_waiter sw = { .fd = self->fd, .count = 10000 };
	uint32_t i, wrong = 0, errors = 0;
	uint64_t seqno = 0, expect;
	pthread_t thread;
	char cmdline[1024] = "";
	int klog0 = klog_problems();

	file_read("/proc/cmdline", cmdline, sizeof(cmdline));
	if (!strstr(cmdline, "init_on_free=1"))
		TH_LOG("no init_on_free=1: a late read of a freed job may go unseen");
	/* The seqno after this one is the next SUBMIT's: one counter per device. */
	ASSERT_EQ(0, run(self->fd, 0, &nop, 1));
	ASSERT_EQ(0, submit(self->fd, 0, &nop, 1, &seqno));
	ASSERT_EQ(0, wait_job(self->fd, seqno, NULL));
	expect = seqno + 1;
	sw.first = expect;
	ASSERT_EQ(0, pthread_create(&thread, NULL, seqno_waiter_thread, &sw));
	for (i = 0; i < sw.count; i++, expect++) {
		/* Stay near the collector: a file may hold 4096 jobs. */
		while (i - __atomic_load_n(&sw.collected, __ATOMIC_ACQUIRE) > 1000)
			sched_yield();
		if (submit(self->fd, i % 2, &nop, 1, &seqno)) {
			errors++;
			break;
		}
		if (seqno != expect && wrong++ < 5)
			TH_LOG("SUBMIT %u returned seqno %llu, not %llu", i,
			       (unsigned long long)seqno,
			       (unsigned long long)expect);
	}
	sleep_ms(errors ? 0 : 2000);
	__atomic_store_n(&sw.stop, 1, __ATOMIC_RELEASE);
	ASSERT_EQ(0, pthread_join(thread, NULL));
	TH_LOG("%u submissions, %u wrong seqnos, %u collected by the other thread",
	       i, wrong, sw.collected);
	EXPECT_EQ(0, errors);
	EXPECT_EQ(0, wrong);
	EXPECT_EQ(0, sw.failed);
	EXPECT_EQ(sw.count, sw.collected);
	EXPECT_EQ(klog0, klog_problems())
		TH_LOG("the kernel log shows new warnings");
}

static void on_sigusr1(int sig)
{
	(void)sig;
}

struct signaller {
	pthread_t target;
	int stop;
	int sent;
};

/* Signals the target thread every 50 ms until told to stop. */
static void *signaller_thread(void *arg)
{
	struct signaller *sg = arg;

	while (!__atomic_load_n(&sg->stop, __ATOMIC_ACQUIRE)) {
		sleep_ms(50);
		pthread_kill(sg->target, SIGUSR1);
		sg->sent++;
	}
	return NULL;
}

/*
 * WAIT's deadline is absolute: a WAIT restarted after each of many
 * signals (SA_RESTART) still ends at its deadline with -ETIME, instead of
 * starting its whole timeout again after every signal. A deadline in the
 * past (0 included) polls.
 */
TEST_F_TIMEOUT(job, wait_deadline_survives_signals, 60)
{
	struct drm_polar_accel_cmd nop = { .opcode = POLAR_CIM_OP_NOP };
	struct sigaction sa = { .sa_handler = on_sigusr1,
				.sa_flags = SA_RESTART };
	struct signaller sg = { .target = pthread_self() };
	struct drm_polar_accel_wait w = { 0 };
	struct timespec t0, t1;
	pthread_t thread;
	uint64_t seqno = 0;
	long ms;
	int ret;

	if (!debugfs_has(self->fd, "fault"))
		SKIP(return, "no debugfs fault file");
	ASSERT_EQ(0, sigaction(SIGUSR1, &sa, NULL));
	/* The job completes 800 ms late: within the hang timeout. */
	ASSERT_EQ(0, debugfs_write(self->fd, "fault", "delay 0 0 800000"));
	ASSERT_EQ(0, submit(self->fd, 0, &nop, 1, &seqno));
	w.seqno = seqno;
	w.timeout_ns = 0;
	EXPECT_EQ(-1, ioctl(self->fd, DRM_IOCTL_POLAR_ACCEL_WAIT, &w));
	EXPECT_EQ(ETIME, errno) TH_LOG("WAIT with timeout 0: %s",
				       strerror(errno));

	ASSERT_EQ(0, pthread_create(&thread, NULL, signaller_thread, &sg));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	w.timeout_ns = deadline_ns(300ll * 1000 * 1000);
	ret = ioctl(self->fd, DRM_IOCTL_POLAR_ACCEL_WAIT, &w) ? -errno : 0;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	__atomic_store_n(&sg.stop, 1, __ATOMIC_RELEASE);
	pthread_join(thread, NULL);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	TH_LOG("WAIT with a 300 ms deadline under %d signals: %d after %ld ms",
	       sg.sent, ret, ms);
	EXPECT_EQ(-ETIME, ret);
	EXPECT_LT(ms, 700);
	/* The job ends; then a poll collects it. */
	sleep_ms(1000);
	w.timeout_ns = 0;
	EXPECT_EQ(0, ioctl(self->fd, DRM_IOCTL_POLAR_ACCEL_WAIT, &w))
		TH_LOG("poll after the job ended: %s", strerror(errno));
	EXPECT_EQ(0, w.status);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGUSR1, &sa, NULL);
}

/*
 * A file may leave 4096 jobs uncollected; one more SUBMIT is -EBUSY, and
 * collecting one makes room again.
 */
TEST_F_TIMEOUT(job, uncollected_jobs_limit_is_ebusy, 120)
{
	struct drm_polar_accel_cmd nop = { .opcode = POLAR_CIM_OP_NOP };
	uint64_t first = 0, seqno = 0;
	int fd = accel_open(), ret = 0;
	uint32_t i;

	ASSERT_LE(0, fd);
	for (i = 0; i < 4096 && !ret; i++)
		ret = submit(fd, i % 4, &nop, 1, i ? &seqno : &first);
	EXPECT_EQ(0, ret) TH_LOG("SUBMIT %u: %d", i, ret);
	EXPECT_EQ(-EBUSY, submit(fd, 0, &nop, 1, &seqno));
	EXPECT_EQ(0, wait_job(fd, first, NULL));
	EXPECT_EQ(0, submit(fd, 0, &nop, 1, &seqno));
	/* Closing the file drops the rest. */
	close(fd);
}

/*
 * Closing a file with jobs it never collected leaks nothing. Needs
 * kmemleak (CONFIG_DEBUG_KMEMLEAK, the debug guest kernel); elsewhere it
 * says skip.
 */
TEST_F_TIMEOUT(job, close_with_uncollected_jobs_leaks_nothing, 120)
{
	struct drm_polar_accel_cmd nop = { .opcode = POLAR_CIM_OP_NOP };
	const char *km = "/sys/kernel/debug/kmemleak";
	char cmd[256], line[512];
	int fd, i, leaks = 0;
	uint64_t seqno;
	struct bo bo;
	FILE *f;

	if (access(km, W_OK))
		SKIP(return, "no %s: this kernel has no kmemleak", km);
	file_write(km, "scan");
	file_write(km, "clear");
	fd = accel_open();
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, bo_new(fd, 4096, &bo));
	nop.opcode = POLAR_CIM_OP_READ_COUNTERS;
	nop.dst = (struct drm_polar_accel_buf){ bo.handle, 0, 0, 64 };
	for (i = 0; i < 200; i++)
		ASSERT_EQ(0, submit(fd, i % 4, &nop, 1, &seqno));
	munmap(bo.map, bo.size);
	close(fd);
	sleep_ms(2000);
	/* kmemleak reports an object only after two scans. */
	file_write(km, "scan");
	file_write(km, "scan");
	snprintf(cmd, sizeof(cmd), "cat %s", km);
	f = popen(cmd, "r");
	ASSERT_NE(NULL, f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "polar_")) {
			if (leaks++ < 10)
				TH_LOG("%s", line);
		}
	pclose(f);
	EXPECT_EQ(0, leaks) TH_LOG("kmemleak backtraces name polar_accel");
}

/*
 * A command's SG list covers what the command touches, not the whole
 * range the caller named: READ_COUNTERS (64 bytes) into a 64 MiB range
 * works, and with scattered pages (a BO made after another was freed) a
 * list for the whole range would need more than the device's 4096
 * entries (-E2BIG).
 */
TEST_F(job, sgl_covers_what_the_command_touches)
{
	struct drm_polar_accel_cmd rc = { .opcode = POLAR_CIM_OP_READ_COUNTERS };
	const uint64_t size = 64ull << 20;
	struct bo big, holes[64];
	int i;

	/* Interleave two sets of BOs and free one: the next BO's pages scatter. */
	for (i = 0; i < 64; i++) {
		ASSERT_EQ(0, bo_new(self->fd, 1 << 20, &holes[i]));
		memset(holes[i].map, 1, holes[i].size);
	}
	ASSERT_EQ(0, bo_new(self->fd, size, &big));
	for (i = 0; i < 64; i += 2)
		bo_free(self->fd, &holes[i]);
	memset(big.map, 0xa5, big.size);
	rc.dst = (struct drm_polar_accel_buf){ big.handle, 0, 0, size };
	EXPECT_EQ(0, run(self->fd, 0, &rc, 1));
	/* The counters landed at the start of the range, and only there. */
	EXPECT_NE(0xa5a5a5a5a5a5a5a5ull,
		  ((uint64_t *)big.map)[POLAR_CIM_CNT_BYTES_MOVED]);
	EXPECT_EQ(0xa5, ((uint8_t *)big.map)[64]);
	for (i = 1; i < 64; i += 2)
		bo_free(self->fd, &holes[i]);
	bo_free(self->fd, &big);
}

TEST_HARNESS_MAIN
