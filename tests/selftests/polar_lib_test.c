// SPDX-License-Identifier: GPL-2.0
/*
 * libpolar-accel on the device, in the VM: a polarized layer gives the
 * same INT32 sums on the device as on the software backend with the same
 * chip properties (both submit paths, one and two devices), and threads
 * that each own a handle submit and reap concurrently with every result
 * verified; the io_uring path survives short submits, a handle keeps at
 * most polar_max_inflight() jobs, and a handle moves between threads.
 * GPL-2.0: includes the kselftest harness.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <liburing.h>

#include "kselftest_harness.h"

#include "polar/calib.h"
#include "polar/polar.h"
#include "polar/qlayer.h"
#include "polar_cim_hw.h"
#include "../unit/abi_cases.h"

#define FW_PATH "/lib/firmware/polar_cim.fw"

/* "sim:..." with the properties of a device, so both compute alike. */
static void sim_props_of(struct polar_device *dev, char *buf, size_t len)
{
	struct polar_caps c;
	struct polar_design d;

	polar_get_caps(dev, &c);
	polar_get_design(dev, &d);
	snprintf(buf, len, "sim:rows=%u,cols=%u,tiles=%u,adc-bits=%u,"
		 "rows-per-conv=%u,sigma-static=%u,sigma-dynamic=%u,"
		 "stuck-rate=%u,adc-offset-sigma=%u,adc-gain-sigma=%u,"
		 "seed=%llu,recon=%s,recon-frac-bits=%u,digital-planes=%u,"
		 "adc-bits-msb=%u,adc-msb-levels=%u", c.rows, c.cols,
		 c.tiles, c.adc_bits, c.rows_per_conv, c.sigma_static,
		 c.sigma_dynamic, c.stuck_ppm, c.adc_offset_sigma,
		 c.adc_gain_sigma, (unsigned long long)c.seed,
		 c.recon == POLAR_CIM_RECON_CELLS ? "cells" : "codes",
		 c.recon_frac_bits, d.digital_planes, d.adc_bits_msb,
		 d.adc_msb_levels);
}

static float *rand_floats(size_t n, unsigned int seed, int nonneg)
{
	float *v = malloc(n * sizeof(*v));
	size_t i;

	srand(seed);
	for (i = 0; i < n; i++) {
		v[i] = (float)rand() / RAND_MAX * 2 - 1;
		if (nonneg && v[i] < 0)
			v[i] = -v[i];
	}
	return v;
}

struct layer_case {
	enum polar_wfmt wfmt;
	enum polar_xfmt xfmt;
	uint32_t in, out, batch;
};

static const struct layer_case cases[] = {
	{ POLAR_WFMT_INT4, POLAR_XFMT_UINT4, 400, 130, 9 },
	{ POLAR_WFMT_NF4, POLAR_XFMT_INT8, 300, 200, 4 },
	{ POLAR_WFMT_INT8, POLAR_XFMT_INT4, 784, 128, 33 },
};

/*
 * Runs case k on devs and on the sim twin; returns 0 when the sums are
 * bit-identical, else a negative value (and logs why).
 */
static int compare_layer(struct __test_metadata *_metadata,
			 struct polar_device **devs, uint32_t ndevs,
			 struct polar_device **sims, const struct layer_case *c)
{
	struct polar_qlayer_desc d = { 0 };
	struct polar_qlayer *ld = NULL, *ls = NULL;
	float *w = rand_floats((size_t)c->in * c->out, c->in, 0);
	float *x = rand_floats((size_t)c->batch * c->in, c->out,
			       c->xfmt == POLAR_XFMT_UINT4 ||
			       c->xfmt == POLAR_XFMT_UINT8);
	float *y = malloc(sizeof(float) * c->batch * c->out);
	size_t nsums;
	int ret = -1;

	d.in_dim = c->in;
	d.out_dim = c->out;
	d.weight = w;
	d.wfmt = c->wfmt;
	d.xfmt = c->xfmt;
	d.x_scale = 1.0f / 100;
	d.job_seed = 5;
	if (polar_qlayer_create(devs, ndevs, &d, &ld) ||
	    polar_qlayer_forward(ld, c->batch, x, y, POLAR_FWD_DEVICE_ONLY)) {
		TH_LOG("device: %s", polar_errmsg());
		goto out;
	}
	/*
	 * The sim twins hold the same parts on the same tiles of as many
	 * chips: static variability depends on the tile, so they must.
	 */
	if (polar_qlayer_create(sims, ndevs, &d, &ls) ||
	    polar_qlayer_forward(ls, c->batch, x, y, POLAR_FWD_DEVICE_ONLY)) {
		TH_LOG("sim: %s", polar_errmsg());
		goto out;
	}
	nsums = (size_t)polar_qlayer_qweights(ld)->nblocks * c->batch * c->out;
	ret = memcmp(polar_qlayer_last_sums(ld), polar_qlayer_last_sums(ls),
		     nsums * sizeof(int32_t)) ? -1 : 0;
	if (ret)
		TH_LOG("sums differ: device %d, sim %d",
		       polar_qlayer_last_sums(ld)[0],
		       polar_qlayer_last_sums(ls)[0]);
out:
	polar_qlayer_destroy(ld);
	polar_qlayer_destroy(ls);
	free(w);
	free(x);
	free(y);
	return ret;
}

FIXTURE(lib) {
	struct polar_device *dev;
	struct polar_device *sim;
};

FIXTURE_SETUP(lib)
{
	char props[512];

	setenv("POLAR_FIRMWARE", FW_PATH, 1);
	ASSERT_EQ(0, polar_open(NULL, &self->dev)) TH_LOG("%s", polar_errmsg());
	sim_props_of(self->dev, props, sizeof(props));
	ASSERT_EQ(0, polar_open(props, &self->sim)) TH_LOG("%s", polar_errmsg());
}

FIXTURE_TEARDOWN(lib)
{
	polar_close(self->dev);
	polar_close(self->sim);
}

/*
 * What became of one command on a handle: submit's refusal, or else the
 * status of its completion (on io_uring the driver's refusal of a command
 * arrives in the CQE, as polar_submit(3) says).
 */
static int abi_outcome(struct __test_metadata *_metadata,
		       struct polar_device *h, struct polar_buffer *buf,
		       const struct abi_case *t, uint64_t user_data)
{
	struct polar_cmd cmd = t->cmd;
	struct polar_completion c;
	int ret;

	if (t->src_bytes)
		cmd.src = (struct polar_buf_ref){ buf, 0, t->src_bytes };
	if (t->dst_bytes)
		cmd.dst = (struct polar_buf_ref){ buf, 2048, t->dst_bytes };
	ret = polar_submit(h, 0, &cmd, 1, user_data);
	if (ret)
		return ret;
	EXPECT_EQ(1, polar_reap(h, &c, 1, 1)) TH_LOG("%s", polar_errmsg());
	EXPECT_EQ(user_data, c.user_data);
	return c.status;
}

/*
 * The driver and the library's sim accept and refuse the same commands:
 * both apply the ABI's rules of hw/polar_cim_cmd.h, and this holds them to
 * one table (unit/abi_cases.h) side by side, on both submission paths.
 */
TEST_F(lib, abi_rules_same_on_device_and_sim)
{
	static const enum polar_submit_path paths[] = {
		POLAR_PATH_URING, POLAR_PATH_IOCTL,
	};
	struct polar_buffer *dbuf, *sbuf;
	size_t i, p;

	ASSERT_EQ(0, polar_buffer_create(self->dev, 4096, &dbuf))
		TH_LOG("%s", polar_errmsg());
	ASSERT_EQ(0, polar_buffer_create(self->sim, 4096, &sbuf))
		TH_LOG("%s", polar_errmsg());
	for (p = 0; p < 2; p++) {
		ASSERT_EQ(0, polar_set_submit_path(self->dev, paths[p]));
		for (i = 0; i < ABI_NUM_CASES; i++) {
			const struct abi_case *t = &abi_cases[i];

			EXPECT_EQ(t->expect, abi_outcome(_metadata, self->dev,
							 dbuf, t, i))
				TH_LOG("%s on the device (%s)", t->name,
				       p ? "ioctl" : "io_uring");
			EXPECT_EQ(t->expect, abi_outcome(_metadata, self->sim,
							 sbuf, t, i))
				TH_LOG("%s on the sim: %s", t->name,
				       polar_errmsg());
		}
	}
	polar_buffer_free(dbuf);
	polar_buffer_free(sbuf);
}

TEST_F(lib, layer_sums_match_sim_uring)
{
	size_t k;

	if (polar_set_submit_path(self->dev, POLAR_PATH_URING))
		SKIP(return, "no io_uring path: %s", polar_errmsg());
	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
		EXPECT_EQ(0, compare_layer(_metadata, &self->dev, 1, &self->sim,
					   &cases[k])) TH_LOG("case %zu", k);
}

TEST_F(lib, layer_sums_match_sim_ioctl)
{
	size_t k;

	ASSERT_EQ(0, polar_set_submit_path(self->dev, POLAR_PATH_IOCTL));
	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
		EXPECT_EQ(0, compare_layer(_metadata, &self->dev, 1, &self->sim,
					   &cases[k])) TH_LOG("case %zu", k);
}

TEST_F(lib, layer_across_two_devices)
{
	struct polar_device *devs[2] = { self->dev, NULL };
	struct polar_device *sims[2] = { self->sim, NULL };
	struct polar_caps c0, c1;
	char path[64], props[512];

	if (polar_find_device(NULL, 1, path, sizeof(path)))
		SKIP(return, "one device only (start the VM with two)");
	ASSERT_EQ(0, polar_open(path, &devs[1])) TH_LOG("%s", polar_errmsg());
	sim_props_of(devs[1], props, sizeof(props));
	ASSERT_EQ(0, polar_open(props, &sims[1])) TH_LOG("%s", polar_errmsg());
	polar_get_caps(devs[0], &c0);
	polar_get_caps(devs[1], &c1);
	/*
	 * Two chips: the second has its own seed and the other
	 * reconstruction (see run-checks.sh), so both modes are compared.
	 */
	EXPECT_NE(c0.seed, c1.seed);
	EXPECT_NE(c0.recon, c1.recon);
	EXPECT_EQ(0, compare_layer(_metadata, devs, 2, sims, &cases[1]));
	EXPECT_EQ(0, compare_layer(_metadata, devs, 2, sims, &cases[2]));
	polar_close(devs[1]);
	polar_close(sims[1]);
}

/*
 * The host path (B (A x), lowrank.h) on the CPU while the device runs each
 * chunk's MATMULs: on the software backend the two are computed one after
 * the other whatever the flag, so only here can overlapping change the
 * result. Overlapped must equal serial bit for bit (same sums, same host
 * arithmetic), and both must be the device-only output plus the host-only
 * one: 1e-6 relative, as fp32 adds the two halves in its own order (about
 * 2^-23 per add). Three chunks of max_batch, the last ragged.
 */
static void host_path_on_device(struct __test_metadata *_metadata,
				struct polar_device *dev)
{
	const uint32_t in = 300, out = 40, r = 8;
	struct polar_qlayer_desc d = { 0 };
	struct polar_qlayer *l = NULL;
	struct polar_caps caps;
	float *w = rand_floats((size_t)in * out, 11, 0);
	float *A = rand_floats((size_t)r * in, 12, 0);
	float *B = rand_floats((size_t)out * r, 13, 0);
	float *x, *ov, *ser, *dev_only, *host;
	double m = 0, diff = 0, host_m = 0;
	uint32_t batch, i;

	ASSERT_EQ(0, polar_get_caps(dev, &caps));
	batch = 2 * caps.max_batch + 3;
	x = rand_floats((size_t)batch * in, 14, 0);
	ov = malloc(sizeof(float) * batch * out);
	ser = malloc(sizeof(float) * batch * out);
	dev_only = malloc(sizeof(float) * batch * out);
	host = malloc(sizeof(float) * batch * out);
	ASSERT_TRUE(ov && ser && dev_only && host);
	d.in_dim = in;
	d.out_dim = out;
	d.weight = w;
	d.wfmt = POLAR_WFMT_INT4;
	d.xfmt = POLAR_XFMT_INT8;
	d.x_scale = 1.0f / 127;
	d.job_seed = 5;
	d.rank = r;
	d.A = A;
	d.B = B;
	ASSERT_EQ(0, polar_qlayer_create(&dev, 1, &d, &l))
		TH_LOG("%s", polar_errmsg());
	ASSERT_EQ(0, polar_qlayer_forward(l, batch, x, ov, POLAR_FWD_OVERLAP))
		TH_LOG("%s", polar_errmsg());
	ASSERT_EQ(0, polar_qlayer_forward(l, batch, x, ser, POLAR_FWD_SERIAL))
		TH_LOG("%s", polar_errmsg());
	ASSERT_EQ(0, polar_qlayer_forward(l, batch, x, dev_only,
					  POLAR_FWD_DEVICE_ONLY));
	ASSERT_EQ(0, polar_qlayer_forward(l, batch, x, host,
					  POLAR_FWD_HOST_ONLY));
	EXPECT_EQ(0, memcmp(ov, ser, sizeof(float) * batch * out));
	for (i = 0; i < batch * out; i++) {
		double e = (double)dev_only[i] + host[i];

		m = fmax(m, fabs(e));
		diff = fmax(diff, fabs(ov[i] - e));
		host_m = fmax(host_m, fabs(host[i]));
	}
	TH_LOG("batch %u: |overlapped - (device + host)| %.3g of %.3g, host part up to %.3g",
	       batch, diff, m, host_m);
	EXPECT_LE(diff, 1e-6 * m);
	/* A host path of zeros would make the comparison above empty. */
	EXPECT_LT(0.01 * m, host_m);
	polar_qlayer_destroy(l);
	free(w);
	free(A);
	free(B);
	free(x);
	free(ov);
	free(ser);
	free(dev_only);
	free(host);
}

/*
 * Four forwards of 8195 vectors through TCG's device model: within the
 * harness's default 30 s at load 12, beyond it at load 28 (both seen on
 * this 2-core machine), so these two get 120 s.
 */
TEST_F_TIMEOUT(lib, host_path_overlapped_equals_serial_uring, 120)
{
	if (polar_set_submit_path(self->dev, POLAR_PATH_URING))
		SKIP(return, "no io_uring path: %s", polar_errmsg());
	host_path_on_device(_metadata, self->dev);
}

TEST_F_TIMEOUT(lib, host_path_overlapped_equals_serial_ioctl, 120)
{
	ASSERT_EQ(0, polar_set_submit_path(self->dev, POLAR_PATH_IOCTL));
	host_path_on_device(_metadata, self->dev);
}

/*
 * A job the device fails reaches the caller as a failure, on either path:
 * a MATMUL on a tile never programmed ends in -ENOENT (the device's
 * NOT_PROGRAMMED, as job.matmul_on_unprogrammed_shape_fails sees it
 * through the ioctls), and a good NOP after it succeeds.
 */
static void failed_job_reported(struct __test_metadata *_metadata,
				struct polar_device *dev)
{
	struct polar_buffer *x = NULL, *y = NULL;
	struct polar_completion c = { .status = 1 };
	struct polar_caps caps;
	struct polar_cmd mm = {
		.opcode = POLAR_CIM_OP_MATMUL,
		.in_dim = 7, .out_dim = 5, .batch = 1,
	};
	struct polar_cmd nop = { .opcode = POLAR_CIM_OP_NOP };

	ASSERT_EQ(0, polar_get_caps(dev, &caps));
	ASSERT_EQ(0, polar_buffer_create(dev, 4096, &x));
	ASSERT_EQ(0, polar_buffer_create(dev, 4096, &y));
	mm.tile0 = caps.tiles - 1;
	mm.src = (struct polar_buf_ref){ x, 0, 7 };
	mm.dst = (struct polar_buf_ref){ y, 0, 20 };
	ASSERT_EQ(0, polar_submit(dev, 0, &mm, 1, 17)) TH_LOG("%s", polar_errmsg());
	ASSERT_EQ(1, polar_reap(dev, &c, 1, 1)) TH_LOG("%s", polar_errmsg());
	EXPECT_EQ(17, c.user_data);
	EXPECT_EQ(-ENOENT, c.status);
	c.status = 1;
	ASSERT_EQ(0, polar_submit(dev, 0, &nop, 1, 18));
	ASSERT_EQ(1, polar_reap(dev, &c, 1, 1));
	EXPECT_EQ(18, c.user_data);
	EXPECT_EQ(0, c.status);
	polar_buffer_free(x);
	polar_buffer_free(y);
}

TEST_F(lib, failed_job_reported_uring)
{
	if (polar_set_submit_path(self->dev, POLAR_PATH_URING))
		SKIP(return, "no io_uring path: %s", polar_errmsg());
	failed_job_reported(_metadata, self->dev);
}

TEST_F(lib, failed_job_reported_ioctl)
{
	ASSERT_EQ(0, polar_set_submit_path(self->dev, POLAR_PATH_IOCTL));
	failed_job_reported(_metadata, self->dev);
}

/* ---- threads: each its own handle, submitting and reaping ------------- */

struct worker {
	pthread_t thread;
	int index;
	int jobs;
	int verified;
	int failed;
	char err[256];
};

/* Runs one MATMUL on a handle and waits for it. */
static int run_one(struct polar_device *dev, const struct polar_cmd *cmd)
{
	struct polar_completion c;

	if (polar_submit(dev, 0, cmd, 1, 0) || polar_reap(dev, &c, 1, 1) != 1)
		return -1;
	return c.status;
}

/*
 * A thread with its own device handle keeps 8 jobs in flight over the
 * queues; each result is checked against the sim twin of the chip.
 */
static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	struct polar_device *dev = NULL, *sim = NULL;
	struct polar_buffer *w = NULL, *x = NULL, *y = NULL;
	struct polar_buffer *sw = NULL, *sx = NULL, *sy = NULL;
	const uint32_t in = 64, out = 32, batch = 2;
	struct polar_completion comp[8];
	uint16_t tile0 = 40 + wk->index;
	char props[512];
	int sent = 0, done = 0, i, slot_busy[8] = { 0 };
	struct polar_cmd prog = {
		.opcode = POLAR_CIM_OP_PROGRAM_TILES,
		.wfmt = POLAR_CIM_WFMT_INT8, .tile0 = tile0,
		.in_dim = in, .out_dim = out,
	};

	if (polar_open(NULL, &dev)) {
		snprintf(wk->err, sizeof(wk->err), "%s", polar_errmsg());
		return NULL;
	}
	sim_props_of(dev, props, sizeof(props));
	if (polar_open(props, &sim) ||
	    polar_buffer_create(dev, in * out, &w) ||
	    polar_buffer_create(dev, 8 * batch * in, &x) ||
	    polar_buffer_create(dev, 8 * batch * out * 4, &y) ||
	    polar_buffer_create(sim, in * out, &sw) ||
	    polar_buffer_create(sim, batch * in, &sx) ||
	    polar_buffer_create(sim, batch * out * 4, &sy)) {
		snprintf(wk->err, sizeof(wk->err), "%s", polar_errmsg());
		goto out;
	}
	for (i = 0; i < (int)(in * out); i++)
		((int8_t *)polar_buffer_map(w))[i] = (int8_t)(i * 7 + wk->index);
	memcpy(polar_buffer_map(sw), polar_buffer_map(w), in * out);
	prog.src = (struct polar_buf_ref){ w, 0, in * out };
	if (run_one(dev, &prog)) {
		snprintf(wk->err, sizeof(wk->err), "program: %s", polar_errmsg());
		goto out;
	}
	prog.src = (struct polar_buf_ref){ sw, 0, in * out };
	run_one(sim, &prog);

	while (done < wk->jobs) {
		while (sent < wk->jobs && sent - done < 8) {
			/*
			 * Jobs on different queues complete in any order: take
			 * a slot no job in flight uses.
			 */
			int slot = 0;

			while (slot_busy[slot])
				slot++;
			slot_busy[slot] = 1;
			int8_t *xs = (int8_t *)polar_buffer_map(x) +
				     slot * batch * in;
			struct polar_cmd mm = {
				.opcode = POLAR_CIM_OP_MATMUL,
				.wfmt = POLAR_CIM_WFMT_INT8,
				.xfmt = POLAR_CIM_XFMT_INT4,
				.tile0 = tile0, .in_dim = in, .out_dim = out,
				.batch = batch, .job_seed = 3,
				.src = { x, slot * batch * in, batch * in },
				.dst = { y, slot * batch * out * 4,
					 batch * out * 4 },
			};

			for (i = 0; i < (int)(batch * in); i++)
				xs[i] = (int8_t)((sent * 5 + i + wk->index) % 16 - 8);
			if (polar_submit(dev, sent % 4, &mm, 1,
					 (uint64_t)sent << 8 | slot)) {
				snprintf(wk->err, sizeof(wk->err), "%s",
					 polar_errmsg());
				goto out;
			}
			sent++;
		}
		{
			int n = polar_reap(dev, comp, 8, 1), k;

			if (n < 0) {
				snprintf(wk->err, sizeof(wk->err), "%s",
					 polar_errmsg());
				goto out;
			}
			for (k = 0; k < n; k++) {
				int slot = (int)(comp[k].user_data & 0xff);
				struct polar_cmd mm = {
					.opcode = POLAR_CIM_OP_MATMUL,
					.wfmt = POLAR_CIM_WFMT_INT8,
					.xfmt = POLAR_CIM_XFMT_INT4,
					.tile0 = tile0, .in_dim = in,
					.out_dim = out, .batch = batch,
					.job_seed = 3,
					.src = { sx, 0, batch * in },
					.dst = { sy, 0, batch * out * 4 },
				};
				int ok = comp[k].status == 0;

				/* The slot still holds the job's inputs. */
				memcpy(polar_buffer_map(sx),
				       (int8_t *)polar_buffer_map(x) +
				       slot * batch * in, batch * in);
				ok = ok && run_one(sim, &mm) == 0 &&
				     !memcmp(polar_buffer_map(sy),
					     (uint8_t *)polar_buffer_map(y) +
					     slot * batch * out * 4,
					     batch * out * 4);
				if (!ok && !wk->err[0])
					snprintf(wk->err, sizeof(wk->err),
						 "job %d: status %d (device %u): %s",
						 (int)(comp[k].user_data >> 8),
						 comp[k].status,
						 comp[k].cmd_status,
						 comp[k].status ? "failed" :
						 "differs from the sim twin");
				slot_busy[slot] = 0;
				wk->verified += ok;
				wk->failed += !ok;
			}
			done += n;
		}
	}
out:
	polar_buffer_free(w);
	polar_buffer_free(x);
	polar_buffer_free(y);
	polar_buffer_free(sw);
	polar_buffer_free(sx);
	polar_buffer_free(sy);
	polar_close(dev);
	polar_close(sim);
	return NULL;
}

TEST(threads_submit_and_reap)
{
	struct worker wk[4];
	int i, verified = 0;

	setenv("POLAR_FIRMWARE", FW_PATH, 1);
	for (i = 0; i < 4; i++) {
		memset(&wk[i], 0, sizeof(wk[i]));
		wk[i].index = i;
		wk[i].jobs = 250;
		ASSERT_EQ(0, pthread_create(&wk[i].thread, NULL, worker_main,
					    &wk[i]));
	}
	for (i = 0; i < 4; i++) {
		pthread_join(wk[i].thread, NULL);
		EXPECT_STREQ("", wk[i].err);
		EXPECT_EQ(0, wk[i].failed);
		EXPECT_EQ(wk[i].jobs, wk[i].verified);
		verified += wk[i].verified;
	}
	TH_LOG("4 threads: %d of 1000 jobs verified", verified);
}

/* ---- the calibration's dense solvers on the guest's CPU ----------------- */

/*
 * The calibration's eigensolver and Cholesky are LAPACK's (OpenBLAS's on
 * Debian), which picks its kernels from CPUID at run time. QEMU's default
 * CPU model reports an AMD CPU whose kernels use instructions TCG does
 * not emulate: make run died with SIGILL in its first fit until the guest
 * named a kernel set (OPENBLAS_CORETYPE, tests/vm/init). A rank-2 map on
 * conv1's shape (25 inputs, 16 outputs) must come back from the ridge
 * fit, and an eigendecomposition must reproduce its matrix.
 */
TEST(calib_solvers_on_the_guest_cpu)
{
	enum { N = 256, IN = 25, OUT = 16, R = 2 };
	static float X[N * IN], Rt[N * OUT], A[R * IN], B[OUT * R];
	static double S[IN * IN], S0[IN * IN], ev[IN], V[IN * IN];
	double err = 0, ref = 0, worst = 0;
	uint32_t i, j, k, lcg = 12345;
	int ret;


	for (i = 0; i < N * IN; i++) {	/* a fixed full-rank design */
		lcg = lcg * 1103515245u + 12345u;
		X[i] = (float)((lcg >> 8) / 16777216.0 - 0.5);
	}
	for (i = 0; i < N; i++)
		for (j = 0; j < OUT; j++) {
			double a = 0, b = 0;

			for (k = 0; k < IN; k++) {
				a += X[i * IN + k] * cos(0.3 * k);
				b += X[i * IN + k] * sin(0.7 * k + 1);
			}
			Rt[i * OUT + j] = (float)(a * (j + 1) / OUT -
						  b * (OUT - j) / OUT);
		}
	ret = polar_calib_rrr(X, Rt, N, IN, OUT, R, NULL, 1e-9, NULL, NULL, 0,
			      A, B);
	ASSERT_EQ(0, ret) TH_LOG("polar_calib_rrr: %s", polar_errmsg());
	for (i = 0; i < N; i++)
		for (j = 0; j < OUT; j++) {
			double z = 0;

			for (k = 0; k < R; k++) {
				double ax = 0;
				uint32_t c;

				for (c = 0; c < IN; c++)
					ax += (double)A[k * IN + c] * X[i * IN + c];
				z += (double)B[j * R + k] * ax;
			}
			err += (z - Rt[i * OUT + j]) * (z - Rt[i * OUT + j]);
			ref += (double)Rt[i * OUT + j] * Rt[i * OUT + j];
		}
	/* exactly rank 2: only float rounding and the tiny ridge remain */
	TH_LOG("rank-2 fit: relative residual %.2e", sqrt(err / ref));
	EXPECT_LT(sqrt(err / ref), 1e-3);

	for (i = 0; i < IN; i++)
		for (j = 0; j < IN; j++) {
			double g = 0;

			for (k = 0; k < N; k++)
				g += (double)X[k * IN + i] * X[k * IN + j];
			S[i * IN + j] = S0[i * IN + j] = g;
		}
	ASSERT_EQ(0, polar_calib_symeig(S, IN, ev, V));
	/* S0 = V diag(ev) V^T, elementwise against the largest eigenvalue */
	for (i = 0; i < IN; i++)
		for (j = 0; j < IN; j++) {
			double g = 0;

			for (k = 0; k < IN; k++)
				g += V[i * IN + k] * ev[k] * V[j * IN + k];
			if (fabs(g - S0[i * IN + j]) > worst)
				worst = fabs(g - S0[i * IN + j]);
		}
	TH_LOG("eigendecomposition: worst entry error %.2e of %.2e", worst,
	       fabs(ev[0]) > fabs(ev[IN - 1]) ? fabs(ev[0]) : fabs(ev[IN - 1]));
	EXPECT_LT(worst, 1e-9 * (fabs(ev[0]) + fabs(ev[IN - 1])));
}

/* ---- short submits, the in-flight cap, thread hand-off ----------------- */

/*
 * Short submits on demand. This test is linked with -Wl,--wrap= for the
 * liburing calls through which the library enters the kernel, so they
 * come here. While short_take >= 0, the next one publishes the queued
 * SQEs but lets the kernel take only short_take of them, and returns that
 * count without waiting (-EAGAIN for none): what io_uring_enter() does
 * when the kernel is short of memory for requests.
 */
static int short_take = -1;
static int short_done;
/* While above 0, every such call lets the kernel take none (and counts). */
static int refuse_left;

int __real_io_uring_submit(struct io_uring *ring);
int __real_io_uring_submit_and_wait(struct io_uring *ring, unsigned int nr);
int __real_io_uring_submit_and_get_events(struct io_uring *ring);
int __wrap_io_uring_submit(struct io_uring *ring);
int __wrap_io_uring_submit_and_wait(struct io_uring *ring, unsigned int nr);
int __wrap_io_uring_submit_and_get_events(struct io_uring *ring);

static int short_submit(struct io_uring *ring)
{
	unsigned int queued, take = refuse_left ? 0 : short_take;

	if (refuse_left)
		refuse_left--;
	else
		short_take = -1;
	short_done++;
	/* liburing's flush: the prepared SQEs become visible to the kernel. */
	io_uring_smp_store_release(ring->sq.ktail, ring->sq.sqe_tail);
	ring->sq.sqe_head = ring->sq.sqe_tail;
	queued = ring->sq.sqe_tail - io_uring_smp_load_acquire(ring->sq.khead);
	if (take > queued)
		take = queued;
	if (!take)
		return -EAGAIN;
	return io_uring_enter(ring->ring_fd, take, 0, 0, NULL);
}

int __wrap_io_uring_submit(struct io_uring *ring)
{
	return short_take >= 0 || refuse_left ? short_submit(ring) :
	       __real_io_uring_submit(ring);
}

int __wrap_io_uring_submit_and_wait(struct io_uring *ring, unsigned int nr)
{
	return short_take >= 0 || refuse_left ? short_submit(ring) :
	       __real_io_uring_submit_and_wait(ring, nr);
}

int __wrap_io_uring_submit_and_get_events(struct io_uring *ring)
{
	return short_take >= 0 || refuse_left ? short_submit(ring) :
	       __real_io_uring_submit_and_get_events(ring);
}

static const struct polar_cmd nop = { .opcode = POLAR_CIM_OP_NOP };

/* Submits n NOPs tagged 0..n-1. */
static int submit_nops(struct polar_device *dev, int n)
{
	int i, ret;

	for (i = 0; i < n; i++) {
		ret = polar_submit(dev, 0, &nop, 1, i);
		if (ret)
			return ret;
	}
	return 0;
}

/* The n completions are of the NOPs tagged 0..n-1, each once, all OK. */
static int nops_all_back(const struct polar_completion *c, int n)
{
	uint64_t seen = 0;
	int i;

	for (i = 0; i < n; i++) {
		if (c[i].status || c[i].user_data >= 64 ||
		    (seen & 1ull << c[i].user_data))
			return 0;
		seen |= 1ull << c[i].user_data;
	}
	return seen == (n == 64 ? ~0ull : (1ull << n) - 1);
}

/*
 * The kernel takes part of the queued jobs: the rest are offered again,
 * never waited for (before, a reap waiting for all of them hung).
 */
TEST_F(lib, short_submit_is_offered_again)
{
	struct polar_completion c[8];

	if (polar_set_submit_path(self->dev, POLAR_PATH_URING))
		SKIP(return, "no io_uring path: %s", polar_errmsg());

	/* polar_reap: the kernel takes 1 of 8 in the first round. */
	ASSERT_EQ(0, submit_nops(self->dev, 8));
	short_take = 1;
	short_done = 0;
	ASSERT_EQ(8, polar_reap(self->dev, c, 8, 8)) TH_LOG("%s", polar_errmsg());
	EXPECT_EQ(1, short_done);
	EXPECT_TRUE(nops_all_back(c, 8));

	/* polar_flush: the kernel takes 3 of 8, then the rest. */
	ASSERT_EQ(0, submit_nops(self->dev, 8));
	short_take = 3;
	short_done = 0;
	EXPECT_EQ(0, polar_flush(self->dev)) TH_LOG("%s", polar_errmsg());
	EXPECT_EQ(1, short_done);
	ASSERT_EQ(8, polar_reap(self->dev, c, 8, 8)) TH_LOG("%s", polar_errmsg());
	EXPECT_TRUE(nops_all_back(c, 8));

	/* polar_flush, the kernel taking none: the jobs stay queued. */
	ASSERT_EQ(0, submit_nops(self->dev, 8));
	short_take = 0;
	short_done = 0;
	EXPECT_EQ(-EAGAIN, polar_flush(self->dev));
	EXPECT_EQ(1, short_done);
	EXPECT_EQ(8, polar_inflight(self->dev));
	ASSERT_EQ(8, polar_reap(self->dev, c, 8, 8)) TH_LOG("%s", polar_errmsg());
	EXPECT_TRUE(nops_all_back(c, 8));
	EXPECT_EQ(0, polar_inflight(self->dev));

	/*
	 * polar_reap, the kernel taking none of 4 queued jobs while it holds
	 * 4 others: it waits for those 4, then hands over the rest.
	 */
	ASSERT_EQ(0, submit_nops(self->dev, 4));
	ASSERT_EQ(0, polar_flush(self->dev));
	for (int i = 4; i < 8; i++)
		ASSERT_EQ(0, polar_submit(self->dev, 0, &nop, 1, i));
	short_take = 0;
	short_done = 0;
	ASSERT_EQ(8, polar_reap(self->dev, c, 8, 8)) TH_LOG("%s", polar_errmsg());
	EXPECT_EQ(1, short_done);
	EXPECT_TRUE(nops_all_back(c, 8));
	EXPECT_EQ(0, polar_inflight(self->dev));
}

/*
 * A kernel that refuses every queued job while it holds none: a reap
 * offers them again a few times (a completion race can cause one such
 * refusal), then returns -EAGAIN with a message instead of offering them
 * for ever. The jobs stay queued; once the kernel takes them again a reap
 * returns them all. Without the bound the reap here would go on until
 * the wrapper stops refusing, after 1000 offers.
 */
TEST_F(lib, reap_gives_up_on_a_kernel_that_refuses_all)
{
	struct polar_completion c[4];

	if (polar_set_submit_path(self->dev, POLAR_PATH_URING))
		SKIP(return, "no io_uring path: %s", polar_errmsg());
	ASSERT_EQ(0, submit_nops(self->dev, 4));
	refuse_left = 1000;
	short_done = 0;
	EXPECT_EQ(-EAGAIN, polar_reap(self->dev, c, 4, 4));
	TH_LOG("after %d refusals: %s", short_done, polar_errmsg());
	EXPECT_GT(100, short_done);
	EXPECT_NE(NULL, strstr(polar_errmsg(), "took none of 4 queued jobs"));
	EXPECT_EQ(4, polar_inflight(self->dev));
	refuse_left = 0;
	ASSERT_EQ(4, polar_reap(self->dev, c, 4, 4)) TH_LOG("%s", polar_errmsg());
	EXPECT_TRUE(nops_all_back(c, 4));
	EXPECT_EQ(0, polar_inflight(self->dev));
}

/* polar_max_inflight() jobs queue; one more is -EBUSY; all come back. */
static void cap_on_path(struct __test_metadata *_metadata,
			struct polar_device *dev)
{
	static struct polar_completion c[256];
	uint32_t cap = polar_max_inflight(dev), i;

	ASSERT_EQ(256, cap);
	for (i = 0; i < cap; i++)
		ASSERT_EQ(0, polar_submit(dev, 0, &nop, 1, i))
			TH_LOG("job %u: %s", i, polar_errmsg());
	EXPECT_EQ(-EBUSY, polar_submit(dev, 0, &nop, 1, cap));
	EXPECT_EQ(cap, polar_inflight(dev));
	ASSERT_EQ(256, polar_reap(dev, c, 256, 256)) TH_LOG("%s", polar_errmsg());
	for (i = 0; i < cap; i++)
		EXPECT_EQ(0, c[i].status);
	EXPECT_EQ(0, polar_inflight(dev));
}

TEST_F(lib, inflight_capped_uring)
{
	if (polar_set_submit_path(self->dev, POLAR_PATH_URING))
		SKIP(return, "no io_uring path: %s", polar_errmsg());
	cap_on_path(_metadata, self->dev);
}

TEST_F(lib, inflight_capped_ioctl)
{
	ASSERT_EQ(0, polar_set_submit_path(self->dev, POLAR_PATH_IOCTL));
	cap_on_path(_metadata, self->dev);
}

struct handoff {
	struct polar_device *dev;
	int submit, reap;
	char err[256];
};

static void *handoff_main(void *arg)
{
	struct handoff *h = arg;
	struct polar_completion c;

	h->submit = polar_submit(h->dev, 0, &nop, 1, 5);
	if (h->submit)
		snprintf(h->err, sizeof(h->err), "%s", polar_errmsg());
	h->reap = h->submit ? 0 : polar_reap(h->dev, &c, 1, 1);
	if (!h->submit && h->reap != 1)
		snprintf(h->err, sizeof(h->err), "%s", polar_errmsg());
	return NULL;
}

/*
 * The ring serves one thread (SINGLE_ISSUER): a handle opened in one
 * thread works in another once nothing is in flight; jobs in flight stay
 * with the thread that submitted them.
 */
TEST_F(lib, uring_handle_moves_between_threads)
{
	struct handoff h = { .dev = self->dev };
	struct polar_completion c;
	pthread_t t;

	if (polar_set_submit_path(self->dev, POLAR_PATH_URING))
		SKIP(return, "no io_uring path: %s", polar_errmsg());
	ASSERT_EQ(0, pthread_create(&t, NULL, handoff_main, &h));
	pthread_join(t, NULL);
	EXPECT_EQ(0, h.submit) TH_LOG("%s", h.err);
	EXPECT_EQ(1, h.reap);
	/* Back in this thread, with a job in flight from this thread. */
	ASSERT_EQ(0, polar_submit(self->dev, 0, &nop, 1, 6));
	memset(&h, 0, sizeof(h));
	h.dev = self->dev;
	ASSERT_EQ(0, pthread_create(&t, NULL, handoff_main, &h));
	pthread_join(t, NULL);
	EXPECT_EQ(-EBUSY, h.submit);
	ASSERT_EQ(1, polar_reap(self->dev, &c, 1, 1)) TH_LOG("%s", polar_errmsg());
	EXPECT_EQ(6, c.user_data);
}

/*
 * A thread that ends leaves its ring behind, and glibc gives the next
 * thread it creates the ended one's stack and pthread_t: that thread must
 * get a ring of its own, not the ended thread's, whose registered fd it
 * cannot use (io_uring_enter() fails with -EINVAL). polar eval starts its
 * workers anew for every method, so this is every method after the first.
 */
TEST_F(lib, uring_handle_moves_to_a_thread_that_reuses_an_ended_ones_id)
{
	pthread_t first, t;
	int round, reused = 0;

	if (polar_set_submit_path(self->dev, POLAR_PATH_URING))
		SKIP(return, "no io_uring path: %s", polar_errmsg());
	for (round = 0; round < 4; round++) {
		struct handoff h = { .dev = self->dev };

		ASSERT_EQ(0, pthread_create(&t, NULL, handoff_main, &h));
		pthread_join(t, NULL);
		if (!round)
			first = t;
		else if (pthread_equal(first, t))
			reused++;
		EXPECT_EQ(0, h.submit) TH_LOG("round %d: %s", round, h.err);
		EXPECT_EQ(1, h.reap) TH_LOG("round %d: %s", round, h.err);
	}
	TH_LOG("%d of 3 later threads had the first one's pthread_t", reused);
}

TEST_HARNESS_MAIN
