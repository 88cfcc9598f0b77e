// SPDX-License-Identifier: MIT
/*
 * The software backend through the public API: buffers, jobs, reaping,
 * exact sums on an ideal chip, and errors that name what was wrong.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "polar/polar.h"
#include "polar_cim_hw.h"
#include "unit.h"
#include "abi_cases.h"

static struct polar_device *open_sim(const char *props)
{
	struct polar_device *dev = NULL;

	if (polar_open(props, &dev))
		fprintf(stderr, "  %s\n", polar_errmsg());
	return dev;
}

static void test_caps_follow_properties(void)
{
	struct polar_device *dev = open_sim("sim:rows=64,cols=32,tiles=8,"
					    "adc-bits=6,seed=99");
	struct polar_caps c;
	struct polar_design d;

	CHECK(dev != NULL);
	if (!dev)
		return;
	CHECK(polar_get_caps(dev, &c) == 0);
	CHECK(c.sim == 1);
	CHECK(c.rows == 64 && c.cols == 32 && c.tiles == 8);
	CHECK(c.adc_bits == 6 && c.seed == 99);
	CHECK(c.fw_version == 0x10000);
	CHECK(c.recon == POLAR_CIM_RECON_CODES && c.recon_frac_bits == 0);
	polar_close(dev);
	dev = open_sim("sim:recon=cells,recon-frac-bits=3");
	CHECK(dev != NULL);
	if (!dev)
		return;
	CHECK(polar_get_caps(dev, &c) == 0);
	CHECK(c.recon == POLAR_CIM_RECON_CELLS && c.recon_frac_bits == 3);
	CHECK(polar_get_design(dev, &d) == 0);
	CHECK(d.digital_planes == 0 && d.adc_bits_msb == 0 &&
	      d.adc_msb_levels == 0);
	polar_close(dev);
	dev = open_sim("sim:digital-planes=2,adc-bits-msb=8");
	CHECK(dev != NULL);
	if (!dev)
		return;
	CHECK(polar_get_design(dev, &d) == 0);
	/* adc-msb-levels 0 means one level when adc-bits-msb is set */
	CHECK(d.digital_planes == 2 && d.adc_bits_msb == 8 &&
	      d.adc_msb_levels == 1);
	polar_close(dev);
}

static void test_bad_properties_are_named(void)
{
	struct polar_device *dev = NULL;

	CHECK(polar_open("sim:rowz=64", &dev) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "unknown property 'rowz'") != NULL);
	CHECK(polar_open("sim:rows=abc", &dev) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "rows=abc is not a number") != NULL);
	CHECK(polar_open("sim:rows", &dev) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "'rows' has no value") != NULL);
	CHECK(polar_open("sim:adc-bits=99", &dev) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "invalid chip properties") != NULL);
	CHECK(polar_open("sim:recon=exact", &dev) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "recon=exact: not codes or cells") != NULL);
	CHECK(strchr(polar_errmsg(), '\n') == NULL);
	CHECK(polar_open("sim:recon-frac-bits=2", &dev) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "needs recon=cells") != NULL);
	CHECK(polar_open("sim:recon=cells,recon-frac-bits=9", &dev) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "invalid chip properties") != NULL);
	CHECK(polar_open("sim:digital-planes=9", &dev) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "invalid chip properties") != NULL);
	CHECK(polar_open("sim:adc-bits-msb=5", &dev) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "invalid chip properties") != NULL);
	CHECK(polar_open("sim:adc-msb-levels=1", &dev) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "invalid chip properties") != NULL);
	CHECK(strchr(polar_errmsg(), '\n') == NULL);
	CHECK(dev == NULL);
}

/*
 * With no noise and enough ADC bits, sums are exact at the full scale of
 * each reconstruction's contract (cim_engine.md): whole cells at FS = G
 * (the whole range of a 128-row group), codes at FS = L (one cell a step).
 */
static void ideal_chip_is_exact(const char *props, uint32_t fs_q8)
{
	const uint32_t in = 300, out = 70, batch = 3;
	struct polar_device *dev = open_sim(props);
	struct polar_buffer *w, *x, *y;
	struct polar_cmd cmds[2] = { { 0 } };
	struct polar_completion c;
	int8_t *wm, *xm;
	int32_t *ym;
	uint32_t b, o, i;
	int bad = 0;

	CHECK(dev != NULL);
	if (!dev)
		return;
	CHECK(polar_buffer_create(dev, in * out, &w) == 0);
	CHECK(polar_buffer_create(dev, in * batch, &x) == 0);
	CHECK(polar_buffer_create(dev, 4 * out * batch, &y) == 0);
	wm = polar_buffer_map(w);
	xm = polar_buffer_map(x);
	ym = polar_buffer_map(y);
	srand(3);
	for (i = 0; i < in * out; i++)
		wm[i] = (int8_t)(rand() % 16 - 8);
	for (i = 0; i < in * batch; i++)
		xm[i] = (int8_t)(rand() % 16 - 8);

	cmds[0].opcode = POLAR_CIM_OP_PROGRAM_TILES;
	cmds[0].wfmt = POLAR_CIM_WFMT_INT4;
	cmds[0].tile0 = 5;
	cmds[0].in_dim = in;
	cmds[0].out_dim = out;
	cmds[0].src = (struct polar_buf_ref){ w, 0, in * out };
	cmds[1] = cmds[0];
	cmds[1].opcode = POLAR_CIM_OP_MATMUL;
	cmds[1].xfmt = POLAR_CIM_XFMT_INT4;
	cmds[1].batch = batch;
	cmds[1].adc_fs_q8 = fs_q8;
	cmds[1].src = (struct polar_buf_ref){ x, 0, in * batch };
	cmds[1].dst = (struct polar_buf_ref){ y, 0, 4 * out * batch };
	CHECK(polar_submit(dev, 1, cmds, 2, 42) == 0);
	CHECK(polar_inflight(dev) == 1);
	CHECK(polar_reap(dev, &c, 1, 1) == 1);
	CHECK(c.user_data == 42 && c.status == 0);
	CHECK(polar_inflight(dev) == 0);

	for (b = 0; b < batch; b++)
		for (o = 0; o < out; o++) {
			int32_t s = 0;

			for (i = 0; i < in; i++)
				s += wm[o * in + i] * xm[b * in + i];
			bad += ym[b * out + o] != s;
		}
	CHECK(bad == 0);
	polar_buffer_free(w);
	polar_buffer_free(x);
	polar_buffer_free(y);
	polar_close(dev);
}

static void test_ideal_chip_is_exact(void)
{
	ideal_chip_is_exact("sim:adc-bits=8,recon=cells", 128 << 8);
	ideal_chip_is_exact("sim:adc-bits=8", 255 << 8);
	ideal_chip_is_exact("sim:adc-bits=8,recon=codes", 255 << 8);
	/* a digital sign plane is exact too; 8-bit MSB conversions of a
	 * 4-bit chip at FS = 15 cells (15 divides 255) */
	ideal_chip_is_exact("sim:adc-bits=8,digital-planes=1", 255 << 8);
	ideal_chip_is_exact("sim:adc-bits=4,rows-per-conv=15,adc-bits-msb=8,"
			    "adc-msb-levels=3", 15 << 8);
	/*
	 * The firmware's default for 8-row groups is 6 cells; whole cells
	 * convert at no less than L = 31 (one cell a step), which is exact.
	 */
	ideal_chip_is_exact("sim:adc-bits=5,rows-per-conv=8,recon=cells", 0);
}

static void test_submit_errors_name_the_problem(void)
{
	struct polar_device *dev = open_sim("sim");
	struct polar_buffer *buf;
	struct polar_cmd cmd = { .opcode = POLAR_CIM_OP_MATMUL };
	struct polar_completion c;
	struct polar_caps caps;

	CHECK(dev != NULL);
	if (!dev)
		return;
	CHECK(polar_buffer_create(dev, 4096, &buf) == 0);
	cmd.in_dim = 16;
	cmd.out_dim = 8;
	cmd.batch = 2;
	cmd.src = (struct polar_buf_ref){ buf, 0, 32 };
	cmd.dst = (struct polar_buf_ref){ buf, 1024, 64 };

	CHECK(polar_submit(dev, 9, &cmd, 1, 0) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "queue 9") != NULL);
	cmd.src.offset = 4090;
	CHECK(polar_submit(dev, 0, &cmd, 1, 0) == -ERANGE);
	CHECK(strstr(polar_errmsg(), "src range 4090+32") != NULL);
	cmd.src.offset = 0;
	cmd.dst.size = 63;
	CHECK(polar_submit(dev, 0, &cmd, 1, 0) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "dst range of 63 bytes") != NULL);
	cmd.dst.size = 64;
	cmd.tile0 = 64;
	CHECK(polar_submit(dev, 0, &cmd, 1, 0) == -ERANGE);
	cmd.tile0 = 0;
	/* One vector over max_batch: the ABI's check refuses it and names
	 * the field (a buffer check would name a range instead). */
	CHECK(polar_get_caps(dev, &caps) == 0);
	cmd.batch = caps.max_batch + 1;
	CHECK(polar_submit(dev, 0, &cmd, 1, 0) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "batch") != NULL, "%s",
	      polar_errmsg());
	cmd.batch = 2;
	cmd.opcode = 0x55;
	CHECK(polar_submit(dev, 0, &cmd, 1, 0) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "opcode 85: unknown opcode") != NULL);

	/* Tiles never programmed: the job runs and fails like the device. */
	cmd.opcode = POLAR_CIM_OP_MATMUL;
	CHECK(polar_submit(dev, 0, &cmd, 1, 7) == 0);
	CHECK(polar_reap(dev, &c, 1, 1) == 1);
	CHECK(c.status == -ENOENT);
	CHECK(c.cmd_status == POLAR_CIM_ST_NOT_PROGRAMMED);
	CHECK(polar_reap(dev, &c, 1, 1) == -EINVAL);
	polar_buffer_free(buf);
	polar_close(dev);
}

/*
 * The sim accepts and refuses each command exactly as the ABI says, the
 * driver's rules (selftests/polar_lib_test.c holds the device to the same
 * table): a NOP with a format or a FENCE with a buffer is refused, with a
 * message naming what is wrong.
 */
static void test_abi_rules_as_the_driver(void)
{
	struct polar_device *dev = open_sim("sim");
	struct polar_buffer *buf;
	struct polar_completion c;
	size_t i;

	CHECK(dev != NULL);
	if (!dev)
		return;
	CHECK(polar_buffer_create(dev, 4096, &buf) == 0);
	for (i = 0; i < ABI_NUM_CASES; i++) {
		const struct abi_case *t = &abi_cases[i];
		struct polar_cmd cmd = t->cmd;
		int ret;

		if (t->src_bytes)
			cmd.src = (struct polar_buf_ref){ buf, 0, t->src_bytes };
		if (t->dst_bytes)
			cmd.dst = (struct polar_buf_ref){ buf, 2048,
							  t->dst_bytes };
		ret = polar_submit(dev, 0, &cmd, 1, i);
		CHECK(ret == t->expect, "%s: %d, expected %d (%s)", t->name,
		      ret, t->expect, ret ? polar_errmsg() : "accepted");
		if (ret && t->expect)
			CHECK(strstr(polar_errmsg(), "command 0") != NULL,
			      "%s: %s", t->name, polar_errmsg());
		if (!ret)
			CHECK(polar_reap(dev, &c, 1, 1) == 1 &&
			      c.user_data == i && c.status == 0, "%s",
			      t->name);
	}
	polar_buffer_free(buf);
	polar_close(dev);
}

/* A handle keeps at most polar_max_inflight() jobs; one more is -EBUSY. */
static void test_inflight_is_capped(void)
{
	struct polar_device *dev = open_sim("sim");
	struct polar_cmd nop = { .opcode = POLAR_CIM_OP_NOP };
	struct polar_completion c[256];
	uint32_t i, cap;

	CHECK(dev != NULL);
	if (!dev)
		return;
	cap = polar_max_inflight(dev);
	CHECK(cap == 256);
	for (i = 0; i < cap; i++)
		if (polar_submit(dev, 0, &nop, 1, i))
			break;
	CHECK(i == cap);
	CHECK(polar_submit(dev, 0, &nop, 1, cap) == -EBUSY);
	CHECK(strstr(polar_errmsg(), "reap some first") != NULL);
	CHECK(polar_inflight(dev) == cap);
	CHECK(polar_reap(dev, c, 256, 256) == 256);
	CHECK(c[0].user_data == 0 && c[255].user_data == 255);
	CHECK(polar_submit(dev, 0, &nop, 1, 0) == 0);
	CHECK(polar_reap(dev, c, 1, 1) == 1);
	polar_close(dev);
}

int main(void)
{
	/* Tests run from the repository root after make firmware. */
	setenv("POLAR_FIRMWARE", "build/firmware/polar_cim.fw", 0);
	RUN(test_caps_follow_properties);
	RUN(test_bad_properties_are_named);
	RUN(test_ideal_chip_is_exact);
	RUN(test_submit_errors_name_the_problem);
	RUN(test_abi_rules_as_the_driver);
	RUN(test_inflight_is_capped);
	return unit_summary();
}
