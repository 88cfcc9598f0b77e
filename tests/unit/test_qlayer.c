// SPDX-License-Identifier: MIT
/*
 * Polarized layers on the software backend: tiling into parts over two
 * devices and their queues, exact device sums on an ideal chip, the host
 * path added (overlapped or not), and errors that name the problem.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "polar/qlayer.h"
#include "polar/lowrank.h"
#include "polar/quant.h"
#include "polar_cim_hw.h"
#include "unit.h"

static float frand(void)
{
	return (float)rand() / RAND_MAX * 2.0f - 1.0f;
}

static float *randv(size_t n)
{
	float *v = malloc(n * sizeof(*v));
	size_t i;

	for (i = 0; i < n; i++)
		v[i] = frand();
	return v;
}

/* max |a - b| / (max |b| + tiny) */
static double rel_err(const float *a, const float *b, size_t n)
{
	double m = 0, d = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		m = fmax(m, fabs(b[i]));
		d = fmax(d, fabs(a[i] - b[i]));
	}
	return d / (m + 1e-12);
}

/* y = deq(W) deq(q(x)) + b: what an ideal chip and exact sums give. */
static void reference(const struct polar_qweights *q,
		      const struct polar_act_quant *aq, const float *x,
		      const float *bias, uint32_t batch, float *y)
{
	uint32_t in = q->in_dim, out = q->out_dim, k, o, i;
	float *w = malloc(sizeof(float) * in * out);
	int8_t *xc = malloc((size_t)batch * in);
	float *xd = malloc(sizeof(float) * batch * in);

	polar_dequantize_weights(q, w);
	polar_quantize_acts(aq, x, (size_t)batch * in, xc);
	polar_dequantize_acts(aq, xc, (size_t)batch * in, xd);
	for (k = 0; k < batch; k++)
		for (o = 0; o < out; o++) {
			double s = bias ? bias[o] : 0;

			for (i = 0; i < in; i++)
				s += (double)w[o * in + i] * xd[k * in + i];
			y[k * out + o] = (float)s;
		}
	free(w);
	free(xc);
	free(xd);
}

static void run_case(enum polar_wfmt wfmt, enum polar_xfmt xfmt, uint32_t in,
		     uint32_t out, uint32_t batch, uint32_t ndevs)
{
	struct polar_device *devs[2] = { NULL, NULL };
	struct polar_qlayer_desc d = { 0 };
	struct polar_act_quant aq;
	struct polar_qlayer *l = NULL;
	float *w = randv((size_t)in * out), *x = randv((size_t)batch * in);
	float *b = randv(out), *y = malloc(sizeof(float) * batch * out);
	float *ref = malloc(sizeof(float) * batch * out);
	uint32_t i;

	for (i = 0; i < ndevs; i++)
		CHECK(polar_open("sim:adc-bits=8,tiles=64", &devs[i]) == 0);
	if (xfmt == POLAR_XFMT_UINT8 || xfmt == POLAR_XFMT_UINT4)
		for (i = 0; i < batch * in; i++)
			x[i] = fabsf(x[i]);
	CHECK(polar_act_calibrate(x, (size_t)batch * in, xfmt, 0, &aq) == 0);
	d.in_dim = in;
	d.out_dim = out;
	d.weight = w;
	d.bias = b;
	d.wfmt = wfmt;
	d.xfmt = xfmt;
	d.x_scale = aq.scale;
	d.adc_fs_q8 = 255 << 8;		/* 8 bits, one cell a step: lossless */
	CHECK(polar_qlayer_create(devs, ndevs, &d, &l) == 0);
	if (!l) {
		fprintf(stderr, "  %s\n", polar_errmsg());
		goto out;
	}
	CHECK(polar_qlayer_forward(l, batch, x, y, POLAR_FWD_DEVICE_ONLY) == 0);
	reference(polar_qlayer_qweights(l), &aq, x, b, batch, ref);
	CHECK(rel_err(y, ref, (size_t)batch * out) < 1e-5);
	polar_qlayer_destroy(l);
out:
	for (i = 0; i < ndevs; i++)
		polar_close(devs[i]);
	free(w);
	free(x);
	free(b);
	free(y);
	free(ref);
}

static void test_int4_one_device(void)
{
	run_case(POLAR_WFMT_INT4, POLAR_XFMT_INT4, 300, 70, 5, 1);
}

static void test_int8_two_devices(void)
{
	run_case(POLAR_WFMT_INT8, POLAR_XFMT_UINT8, 200, 300, 3, 2);
}

static void test_nf4_blocks_two_devices(void)
{
	/* 5 NF4 blocks (the last ragged) x 2 column groups = 10 parts. */
	run_case(POLAR_WFMT_NF4, POLAR_XFMT_INT8, 300, 200, 4, 2);
}

static void test_host_path_overlapped_or_not(void)
{
	const uint32_t in = 100, out = 40, batch = 6, r = 8;
	struct polar_device *dev = NULL;
	struct polar_qlayer_desc d = { 0 };
	struct polar_qlayer *l = NULL;
	float *w = randv(in * out), *x = randv(batch * in);
	float *A = randv(r * in), *B = randv(out * r);
	float *Ap = malloc(sizeof(float) * polar_lowrank_packed_size(r, in));
	float *Bp = malloc(sizeof(float) * polar_lowrank_packed_size(r, out));
	float dev_only[6 * 40], ov[6 * 40], ser[6 * 40], host[6 * 40];
	float z[6 * 8], e[6 * 40];
	uint32_t i;

	CHECK(polar_open("sim", &dev) == 0);
	d.in_dim = in;
	d.out_dim = out;
	d.weight = w;
	d.wfmt = POLAR_WFMT_INT4;
	d.xfmt = POLAR_XFMT_INT8;
	d.x_scale = 1.0f / 127;
	d.rank = r;
	d.A = A;
	d.B = B;
	CHECK(polar_qlayer_create(&dev, 1, &d, &l) == 0);
	if (!l)
		goto out;
	CHECK(polar_qlayer_forward(l, batch, x, dev_only,
				  POLAR_FWD_DEVICE_ONLY) == 0);
	CHECK(polar_qlayer_forward(l, batch, x, ov, POLAR_FWD_OVERLAP) == 0);
	CHECK(polar_qlayer_forward(l, batch, x, ser, POLAR_FWD_SERIAL) == 0);
	CHECK(polar_qlayer_forward(l, batch, x, host, POLAR_FWD_HOST_ONLY) == 0);
	CHECK(memcmp(ov, ser, sizeof(ov)) == 0);
	polar_lowrank_pack(A, B, r, in, out, Ap, Bp);
	polar_lowrank_apply(Ap, Bp, r, in, out, batch, x, z, e, 0);
	CHECK(memcmp(host, e, sizeof(e)) == 0);
	for (i = 0; i < batch * out; i++)
		e[i] += dev_only[i];
	CHECK(rel_err(ov, e, batch * out) < 1e-6);
	/* Without the host path the layer is the device's alone. */
	CHECK(polar_qlayer_set_lowrank(l, 0, NULL, NULL) == 0);
	CHECK(polar_qlayer_forward(l, batch, x, ov, 0) == 0);
	CHECK(memcmp(ov, dev_only, sizeof(ov)) == 0);
	polar_qlayer_destroy(l);
out:
	polar_close(dev);
	free(w);
	free(x);
	free(A);
	free(B);
	free(Ap);
	free(Bp);
}

/*
 * A batch over the device's max_batch runs in chunks, and each chunk's
 * host path runs beside that chunk's MATMULs. The result is still the
 * whole batch's host path plus the device's sums, bit for bit, overlapped
 * or serial: also when the last chunk holds one vector, a batch of one
 * (in 600 is past the kernels' in-blocks at rank 16, so a row summed in
 * another order when alone would show).
 */
static void test_host_path_every_chunk(void)
{
	const uint32_t in = 600, out = 8, r = 16, extra[] = { 1, 6 };
	struct polar_device *dev = NULL;
	struct polar_qlayer_desc d = { 0 };
	struct polar_qlayer *l = NULL;
	struct polar_act_quant aq = { POLAR_XFMT_INT8, 1.0f / 127 };
	struct polar_caps caps;
	uint32_t batch, t;
	float *w = randv(in * out), *bias = randv(out), *A = randv(r * in);
	float *B = randv(out * r), *x = NULL, *ov = NULL, *ser = NULL;
	float *e = NULL, *z = NULL;
	float *Ap = malloc(sizeof(float) * polar_lowrank_packed_size(r, in));
	float *Bp = malloc(sizeof(float) * polar_lowrank_packed_size(r, out));

	CHECK(polar_open("sim", &dev) == 0);
	CHECK(polar_get_caps(dev, &caps) == 0);
	batch = 2 * caps.max_batch + 6;		/* the larger of the two */
	x = randv((size_t)batch * in);
	ov = malloc(sizeof(float) * batch * out);
	ser = malloc(sizeof(float) * batch * out);
	e = malloc(sizeof(float) * batch * out);
	z = malloc(sizeof(float) * batch * r);
	d.in_dim = in;
	d.out_dim = out;
	d.weight = w;
	d.bias = bias;
	d.wfmt = POLAR_WFMT_INT4;
	d.xfmt = aq.fmt;
	d.x_scale = aq.scale;
	d.rank = r;
	d.A = A;
	d.B = B;
	CHECK(polar_lowrank_pack(A, B, r, in, out, Ap, Bp) == 0);
	for (t = 0; t < 2; t++) {
		batch = 2 * caps.max_batch + extra[t];	/* 3 chunks */
		/* A fresh layer: no earlier forward filled its host scratch. */
		CHECK(polar_qlayer_create(&dev, 1, &d, &l) == 0);
		if (!l)
			break;
		CHECK(polar_qlayer_forward(l, batch, x, ov,
					  POLAR_FWD_OVERLAP) == 0);
		CHECK(polar_qlayer_forward(l, batch, x, ser,
					  POLAR_FWD_SERIAL) == 0);
		CHECK(memcmp(ov, ser, sizeof(float) * batch * out) == 0);
		CHECK(polar_lowrank_apply(Ap, Bp, r, in, out, batch, x, z, e,
					  0) == 0);
		CHECK(polar_dequantize_sums(polar_qlayer_qweights(l), &aq,
					    polar_qlayer_last_sums(l), batch,
					    bias, POLAR_DEQ_ACCUMULATE, e) == 0);
		CHECK(memcmp(ov, e, sizeof(float) * batch * out) == 0);
		polar_qlayer_destroy(l);
		l = NULL;
	}
	polar_close(dev);
	free(w);
	free(bias);
	free(A);
	free(B);
	free(Ap);
	free(Bp);
	free(x);
	free(ov);
	free(ser);
	free(e);
	free(z);
}

static void test_errors_name_the_problem(void)
{
	struct polar_device *dev = NULL;
	struct polar_qlayer_desc d = { 0 };
	struct polar_qlayer *l = NULL, *l2 = NULL;
	float *w = randv(600 * 300);

	CHECK(polar_open("sim:tiles=6", &dev) == 0);
	d.in_dim = 600;
	d.out_dim = 300;
	d.weight = w;
	d.wfmt = POLAR_WFMT_INT8;
	d.xfmt = POLAR_XFMT_INT8;
	CHECK(polar_qlayer_create(&dev, 1, &d, &l) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "activation scale") != NULL);
	d.x_scale = 0.01f;
	/* 5 row tiles x 3 column groups: 15 tiles on a 6-tile chip. */
	CHECK(polar_qlayer_create(&dev, 1, &d, &l) == -ENOSPC);
	CHECK(strstr(polar_errmsg(), "free consecutive tiles") != NULL);
	/* Tiles freed by the failure and by destroy are free again. */
	d.in_dim = 256;
	d.out_dim = 256;
	CHECK(polar_qlayer_create(&dev, 1, &d, &l) == 0);
	CHECK(l && polar_qlayer_tiles(l) == 4);
	CHECK(polar_qlayer_create(&dev, 1, &d, &l2) == -ENOSPC);
	polar_qlayer_destroy(l);
	CHECK(polar_qlayer_create(&dev, 1, &d, &l2) == 0);
	polar_qlayer_destroy(l2);
	polar_close(dev);
	free(w);
}

/*
 * A layer reaps the completions of its own jobs, by count, on the
 * handles it was given: with an application's job in flight on the same
 * handle it would take that job's completion for one of its own (and
 * leave one of its own for the application). Both calls that reap refuse
 * a busy handle; the application's completion stays its own.
 */
static void test_busy_handle_refused(void)
{
	struct polar_device *dev = NULL;
	struct polar_qlayer_desc d = { 0 };
	struct polar_qlayer *l = NULL, *l2 = NULL;
	struct polar_cmd nop = { 0 };
	struct polar_completion c;
	float *w = randv(64 * 32), *x = randv(4 * 64), y[4 * 32];

	CHECK(polar_open("sim", &dev) == 0);
	d.in_dim = 64;
	d.out_dim = 32;
	d.weight = w;
	d.wfmt = POLAR_WFMT_INT8;
	d.xfmt = POLAR_XFMT_INT8;
	d.x_scale = 1.0f / 127;
	CHECK(polar_qlayer_create(&dev, 1, &d, &l) == 0);
	if (!l)
		goto out;
	nop.opcode = POLAR_CIM_OP_NOP;
	CHECK(polar_submit(dev, 0, &nop, 1, 0xabc) == 0);
	CHECK(polar_qlayer_forward(l, 4, x, y, 0) == -EBUSY);
	CHECK(strstr(polar_errmsg(), "in flight") != NULL, "'%s'",
	      polar_errmsg());
	CHECK(polar_qlayer_create(&dev, 1, &d, &l2) == -EBUSY);
	CHECK(l2 == NULL);
	CHECK(polar_reap(dev, &c, 1, 1) == 1);
	CHECK(c.user_data == 0xabc, "user_data %#llx",
	      (unsigned long long)c.user_data);
	CHECK(polar_inflight(dev) == 0);
	/* Idle again: the layer runs, and leaves nothing behind. */
	CHECK(polar_qlayer_forward(l, 4, x, y, 0) == 0);
	CHECK(polar_inflight(dev) == 0);
	/* The host path alone touches no device: a busy handle is fine. */
	CHECK(polar_submit(dev, 0, &nop, 1, 0xdef) == 0);
	CHECK(polar_qlayer_forward(l, 4, x, y, POLAR_FWD_HOST_ONLY) == 0);
	CHECK(polar_reap(dev, &c, 1, 1) == 1 && c.user_data == 0xdef);
	polar_qlayer_destroy(l);
out:
	polar_close(dev);
	free(w);
	free(x);
}

int main(void)
{
	setenv("POLAR_FIRMWARE", "build/firmware/polar_cim.fw", 0);
	srand(11);
	RUN(test_int4_one_device);
	RUN(test_int8_two_devices);
	RUN(test_nf4_blocks_two_devices);
	RUN(test_host_path_overlapped_or_not);
	RUN(test_host_path_every_chunk);
	RUN(test_errors_name_the_problem);
	RUN(test_busy_handle_refused);
	return unit_summary();
}
