// SPDX-License-Identifier: MIT
/*
 * Quantizer round trips: weight codes and scales (INT8, INT4, NF4 with
 * ragged blocks and a firmware codebook), activation calibration and
 * saturation, and the dequantization of device sums against a float
 * reference built from the dequantized operands. The device sums are made
 * here by hand, as an ideal device (no ADC loss) computes them.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "polar/polar.h"
#include "polar/quant.h"
#include "unit.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

/* xorshift64*: uniform in [-1, 1). */
static float frand(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (float)((double)((rng * 0x2545f4914f6cdd1dull) >> 11) /
		       (double)(1ull << 52) - 1.0);
}

/* Roughly normal: the sum of four uniforms. */
static float nrand(void)
{
	return (frand() + frand() + frand() + frand()) * 0.866f;
}

static float *alloc_weights(uint32_t out, uint32_t in)
{
	float *w = malloc((size_t)out * in * sizeof(float));
	size_t i;

	for (i = 0; w && i < (size_t)out * in; i++)
		w[i] = nrand() * (1.0f + (float)(i / in % 5));
	return w;
}

static int errmsg_has(const char *s)
{
	if (strstr(polar_errmsg(), s))
		return 1;
	fprintf(stderr, "  errmsg \"%s\" lacks \"%s\"\n", polar_errmsg(), s);
	return 0;
}

static void test_codebooks(void)
{
	/* firmware/polar_cim.fws, hw/README.md, cim_nf4_default */
	static const int8_t fw[16] = { -127, -88, -67, -50, -36, -23, -12, 0,
				       10, 20, 31, 43, 56, 71, 92, 127 };
	int i;

	for (i = 0; i < 16; i++) {
		CHECK(polar_nf4_codebook_i8[i] ==
		      lround(polar_nf4_codebook[i] * 127.0));
		CHECK(polar_nf4_codebook_i8[i] == fw[i]);
		if (i)
			CHECK(polar_nf4_codebook[i] > polar_nf4_codebook[i - 1]);
	}
	CHECK(polar_nf4_codebook[0] == -1.0f && polar_nf4_codebook[7] == 0.0f &&
	      polar_nf4_codebook[15] == 1.0f);
}

static void check_int_roundtrip(enum polar_wfmt fmt, int qmax)
{
	const uint32_t out = 37, in = 300;
	struct polar_qweights q;
	float *w = alloc_weights(out, in);
	float *d = malloc((size_t)out * in * sizeof(float));
	uint32_t o, i;

	CHECK(w && d);
	if (!w || !d)
		goto done;
	memset(w + 5 * in, 0, in * sizeof(float));	/* a zero row */
	memset(w + 6 * in, 0, in * sizeof(float));	/* one nonzero weight */
	w[6 * in + 17] = -3.5f;
	CHECK(polar_quantize_weights(w, out, in, fmt, 0, &q) == 0);
	CHECK(q.fmt == fmt && q.out_dim == out && q.in_dim == in);
	CHECK(q.nblocks == 1 && q.block == in);
	CHECK(polar_dequantize_weights(&q, d) == 0);
	for (o = 0; o < out; o++) {
		float absmax = 0.0f, s = q.scales[o];

		for (i = 0; i < in; i++)
			absmax = fmaxf(absmax, fabsf(w[o * in + i]));
		CHECK(s == absmax / (float)qmax);
		for (i = 0; i < in; i++) {
			size_t at = (size_t)o * in + i;
			int c = q.codes[at];

			CHECK(c >= -qmax && c <= qmax);
			CHECK(!isnan(d[at]));
			CHECK(fabsf(w[at] - d[at]) <= s / 2 * (1 + 1e-6f));
			CHECK(d[at] == s * (float)c);
		}
	}
	CHECK(q.scales[5] == 0.0f);
	for (i = 0; i < in; i++) {
		CHECK(q.codes[5 * in + i] == 0 && d[5 * in + i] == 0.0f);
		if (i != 17)
			CHECK(q.codes[6 * in + i] == 0);
	}
	CHECK(q.codes[6 * in + 17] == -qmax && d[6 * in + 17] == -3.5f);
	polar_qweights_free(&q);
	CHECK(!q.codes && !q.scales);
	polar_qweights_free(&q);	/* twice is fine */
done:
	free(w);
	free(d);
}

static void test_int8_roundtrip(void)
{
	check_int_roundtrip(POLAR_WFMT_INT8, 127);
}

static void test_int4_roundtrip(void)
{
	check_int_roundtrip(POLAR_WFMT_INT4, 7);
}

/* Largest gap between neighbouring float NF4 levels. */
static double nf4_max_gap(void)
{
	double g = 0.0;
	int i;

	for (i = 1; i < 16; i++)
		g = fmax(g, polar_nf4_codebook[i] - polar_nf4_codebook[i - 1]);
	return g;
}

static void test_nf4_roundtrip(void)
{
	const uint32_t out = 20, in = 200;	/* blocks 64 64 64 8 */
	const double bound = nf4_max_gap() / 2 + 0.5 / 127;
	struct polar_qweights q;
	float *w = alloc_weights(out, in);
	float *d = malloc((size_t)out * in * sizeof(float));
	uint32_t o, i, b;

	CHECK(w && d);
	if (!w || !d)
		goto done;
	memset(w + 3 * in + 64, 0, 64 * sizeof(float));	/* zero block */
	memset(w + 4 * in + 192, 0, 8 * sizeof(float));	/* zero ragged */
	CHECK(polar_quantize_weights(w, out, in, POLAR_WFMT_NF4, 0, &q) == 0);
	CHECK(q.block == POLAR_NF4_DEFAULT_BLOCK && q.nblocks == 4);
	CHECK(!memcmp(q.codebook, polar_nf4_codebook_i8, 16));
	CHECK(polar_dequantize_weights(&q, d) == 0);
	for (o = 0; o < out; o++) {
		for (b = 0; b < 4; b++) {
			uint32_t c0 = b * 64, width = b < 3 ? 64 : 8;
			float absmax = 0.0f, s = q.scales[o * 4 + b];
			int hit = 0;

			for (i = c0; i < c0 + width; i++)
				absmax = fmaxf(absmax, fabsf(w[o * in + i]));
			CHECK(s == absmax);
			for (i = c0; i < c0 + width; i++) {
				size_t at = (size_t)o * in + i;
				int c = q.codes[at], j;
				double v = s ? w[at] / (double)s : 0.0;

				CHECK(c >= 0 && c <= 15);
				if (c < 0 || c > 15)
					continue;
				CHECK(!isnan(d[at]));
				CHECK(fabs(w[at] - d[at]) <=
				      bound * s + 1e-6 * s);
				/* the nearest float level was chosen */
				for (j = 0; j < 16; j++)
					CHECK(fabs(v - polar_nf4_codebook[c]) <=
					      fabs(v - polar_nf4_codebook[j]) +
					      1e-12);
				/* with the device's level */
				CHECK(d[at] == (float)((double)s *
					polar_nf4_codebook_i8[c] / 127));
				if (fabsf(w[at]) == absmax && s) {
					CHECK(c == 0 || c == 15);
					CHECK(fabsf(d[at]) == absmax);
					hit = 1;
				}
			}
			CHECK(hit || s == 0.0f);
		}
	}
	/* zero blocks: scale 0, the code of 0, no NaN */
	CHECK(q.scales[3 * 4 + 1] == 0.0f && q.scales[4 * 4 + 3] == 0.0f);
	for (i = 0; i < 64; i++)
		CHECK(q.codes[3 * in + 64 + i] == 7 && d[3 * in + 64 + i] == 0);
	for (i = 0; i < 8; i++)
		CHECK(q.codes[4 * in + 192 + i] == 7);
	polar_qweights_free(&q);

	/* block 48 does not divide 200: 48 48 48 48 8; block > in_dim: 1 */
	CHECK(polar_quantize_weights(w, out, in, POLAR_WFMT_NF4, 48, &q) == 0);
	CHECK(q.block == 48 && q.nblocks == 5);
	CHECK(polar_qweights_block_codes(&q, 4, NULL) == 8);
	CHECK(polar_qweights_block_codes(&q, 0, NULL) == 48);
	polar_qweights_free(&q);
	CHECK(polar_quantize_weights(w, out, in, POLAR_WFMT_NF4, 1000, &q) == 0);
	CHECK(q.nblocks == 1 && polar_qweights_block_codes(&q, 0, NULL) == 200);
	polar_qweights_free(&q);
done:
	free(w);
	free(d);
}

/* A firmware codebook: uniform levels, listed in descending order. */
static void test_nf4_firmware_codebook(void)
{
	const uint32_t out = 3, in = 70;
	struct polar_qweights q;
	int8_t cb[16];
	float *w = alloc_weights(out, in), *d = malloc(out * in * sizeof(float));
	uint32_t o, i;
	int j;

	CHECK(w && d);
	if (!w || !d)
		goto done;
	for (j = 0; j < 16; j++)
		cb[j] = (int8_t)(120 - 16 * j);	/* 120 .. -120 */
	CHECK(polar_quantize_weights_cb(w, out, in, POLAR_WFMT_NF4, 32, cb,
					&q) == 0);
	CHECK(!memcmp(q.codebook, cb, 16) && q.nblocks == 3);
	CHECK(polar_dequantize_weights(&q, d) == 0);
	for (o = 0; o < out; o++) {
		for (i = 0; i < in; i++) {
			size_t at = (size_t)o * in + i;
			double s = q.scales[o * 3 + i / 32];
			double v = w[at] / s;
			int c = q.codes[at];

			CHECK(c >= 0 && c <= 15);
			if (c < 0 || c > 15)
				continue;
			for (j = 0; j < 16; j++)
				CHECK(fabs(v - cb[c] / 127.0) <=
				      fabs(v - cb[j] / 127.0) + 1e-12);
			CHECK(d[at] == (float)(s * cb[c] / 127));
		}
	}
	polar_qweights_free(&q);

	/* INT formats copy the codebook but ignore it */
	CHECK(polar_quantize_weights_cb(w, out, in, POLAR_WFMT_INT8, 0, cb,
					&q) == 0);
	CHECK(!memcmp(q.codebook, cb, 16) && q.nblocks == 1);
	polar_qweights_free(&q);
done:
	free(w);
	free(d);
}

static void test_act_calibrate(void)
{
	struct polar_act_quant aq;
	float x[100];
	int i;

	for (i = 0; i < 100; i++)
		x[i] = (float)((i % 2) ? (i + 1) : -(i + 1));	/* +-1..100 */
	CHECK(polar_act_calibrate(x, 100, POLAR_XFMT_INT8, 0, &aq) == 0);
	CHECK(aq.fmt == POLAR_XFMT_INT8 && aq.scale == 100.0f / 127);
	CHECK(polar_act_calibrate(x, 100, POLAR_XFMT_INT4, 100, &aq) == 0);
	CHECK(aq.scale == 100.0f / 7);
	/* unsigned: only positive values count (the largest is 100) */
	CHECK(polar_act_calibrate(x, 100, POLAR_XFMT_UINT8, 0, &aq) == 0);
	CHECK(aq.scale == 100.0f / 255);
	x[99] = -100;
	CHECK(polar_act_calibrate(x, 100, POLAR_XFMT_UINT4, 0, &aq) == 0);
	CHECK(aq.scale == 98.0f / 15);
	x[99] = 100;
	/* nearest-rank percentiles of |x| = 1..100 */
	CHECK(polar_act_calibrate(x, 100, POLAR_XFMT_INT8, 90, &aq) == 0);
	CHECK(aq.scale == 90.0f / 127);
	CHECK(polar_act_calibrate(x, 100, POLAR_XFMT_INT8, 99.5f, &aq) == 0);
	CHECK(aq.scale == 100.0f / 127);
	CHECK(polar_act_calibrate(x, 100, POLAR_XFMT_INT8, 0.001f, &aq) == 0);
	CHECK(aq.scale == 1.0f / 127);
	/* unsigned percentile: negatives count as 0, positives 2,4,..,100 */
	CHECK(polar_act_calibrate(x, 100, POLAR_XFMT_UINT8, 75, &aq) == 0);
	CHECK(aq.scale == 50.0f / 255);
	/* all zero, all negative for unsigned: scale 0, codes 0 */
	for (i = 0; i < 100; i++)
		x[i] = -(float)i;
	CHECK(polar_act_calibrate(x, 100, POLAR_XFMT_UINT8, 0, &aq) == 0);
	CHECK(aq.scale == 0.0f);
	{
		int8_t c[100];

		memset(c, 1, sizeof(c));
		CHECK(polar_quantize_acts(&aq, x, 100, c) == 0);
		for (i = 0; i < 100; i++)
			CHECK(c[i] == 0);
	}
}

static void test_act_quantize(void)
{
	struct polar_act_quant aq = { POLAR_XFMT_INT8, 0.5f };
	const float x[] = { 0.0f, 0.24f, 0.25f, -0.25f, 0.76f, 63.5f, 63.6f,
			    1e9f, -1e9f, -63.75f, INFINITY, -INFINITY };
	const int8_t want_i8[] = { 0, 0, 1, -1, 2, 127, 127, 127, -127, -127,
				   127, -127 };
	const uint8_t want_u8[] = { 0, 0, 1, 0, 2, 127, 127, 255, 0, 0, 255,
				    0 };
	const int8_t want_i4[] = { 0, 0, 1, -1, 2, 7, 7, 7, -7, -7, 7, -7 };
	const uint8_t want_u4[] = { 0, 0, 1, 0, 2, 15, 15, 15, 0, 0, 15, 0 };
	const size_t n = sizeof(x) / sizeof(x[0]);
	int8_t c[sizeof(x) / sizeof(x[0])];
	float back[sizeof(x) / sizeof(x[0])], y[1000];
	int8_t cy[1000];
	size_t i;

	CHECK(polar_quantize_acts(&aq, x, n, c) == 0);
	CHECK(!memcmp(c, want_i8, n));
	aq.fmt = POLAR_XFMT_UINT8;
	CHECK(polar_quantize_acts(&aq, x, n, c) == 0);
	CHECK(!memcmp(c, want_u8, n));
	CHECK(polar_dequantize_acts(&aq, c, n, back) == 0);
	CHECK(back[7] == 127.5f && back[8] == 0.0f);	/* read as uint8 */
	aq.fmt = POLAR_XFMT_INT4;
	CHECK(polar_quantize_acts(&aq, x, n, c) == 0);
	CHECK(!memcmp(c, want_i4, n));
	aq.fmt = POLAR_XFMT_UINT4;
	CHECK(polar_quantize_acts(&aq, x, n, c) == 0);
	CHECK(!memcmp(c, want_u4, n));
	CHECK(polar_quantize_acts(&aq, x, 0, NULL) == 0);

	/* calibrated round trip: error <= scale / 2 inside the range */
	for (i = 0; i < 1000; i++)
		y[i] = nrand() * 3.0f;
	CHECK(polar_act_calibrate(y, 1000, POLAR_XFMT_INT8, 0, &aq) == 0);
	CHECK(polar_quantize_acts(&aq, y, 1000, cy) == 0);
	{
		float *yb = malloc(1000 * sizeof(float));

		CHECK(yb && polar_dequantize_acts(&aq, cy, 1000, yb) == 0);
		for (i = 0; yb && i < 1000; i++) {
			CHECK(cy[i] >= -127);
			CHECK(fabsf(y[i] - yb[i]) <= aq.scale / 2 * 1.0001f);
		}
		free(yb);
	}
	/* unsigned after a ReLU */
	for (i = 0; i < 1000; i++)
		y[i] = fmaxf(y[i], 0.0f);
	CHECK(polar_act_calibrate(y, 1000, POLAR_XFMT_UINT8, 0, &aq) == 0);
	CHECK(polar_quantize_acts(&aq, y, 1000, cy) == 0);
	for (i = 0; i < 1000; i++)
		CHECK(fabsf(y[i] - aq.scale * (uint8_t)cy[i]) <=
		      aq.scale / 2 * 1.0001f);
}

/*
 * One layer end to end: quantize W (fmt) and X (xfmt), make the device
 * sums by hand (block by block for NF4, from polar_qweights_block_codes()),
 * dequantize, and compare with sum_i deq(W)[o][i] * deq(x)[i] + bias.
 */
static void check_layer(enum polar_wfmt fmt, enum polar_xfmt xfmt,
			uint32_t block)
{
	const uint32_t out = 19, in = 150, batch = 3;
	struct polar_qweights q;
	struct polar_act_quant aq;
	float *w = alloc_weights(out, in);
	float *wd = malloc((size_t)out * in * sizeof(float));
	float x[3 * 150], xd[3 * 150], bias[19], y[3 * 19], y2[3 * 19];
	int8_t xc[3 * 150], *bc = NULL;
	int32_t *sums = NULL;
	uint32_t k, o, i, b;

	CHECK(w && wd);
	if (!w || !wd)
		goto done;
	for (i = 0; i < batch * in; i++) {
		x[i] = nrand();
		if (xfmt == POLAR_XFMT_UINT8 || xfmt == POLAR_XFMT_UINT4)
			x[i] = fmaxf(x[i], 0.0f);
	}
	for (o = 0; o < out; o++)
		bias[o] = frand();
	CHECK(polar_quantize_weights(w, out, in, fmt, block, &q) == 0);
	CHECK(polar_dequantize_weights(&q, wd) == 0);
	CHECK(polar_act_calibrate(x, batch * in, xfmt, 0, &aq) == 0);
	CHECK(polar_quantize_acts(&aq, x, batch * in, xc) == 0);
	CHECK(polar_dequantize_acts(&aq, xc, batch * in, xd) == 0);

	/* the device: sums[(b * batch + k) * out + o] */
	sums = calloc((size_t)q.nblocks * batch * out, sizeof(int32_t));
	bc = malloc((size_t)out * in);
	CHECK(sums && bc);
	if (!sums || !bc)
		goto free_q;
	for (b = 0; b < q.nblocks; b++) {
		int width = polar_qweights_block_codes(&q, b, bc);
		uint32_t c0 = b * q.block;

		CHECK(width >= 1);
		for (k = 0; k < batch; k++) {
			for (o = 0; o < out; o++) {
				int64_t acc = 0;
				int j;

				for (j = 0; j < width; j++) {
					int wc = bc[o * width + j];
					int xv = (xfmt == POLAR_XFMT_UINT8 ||
						  xfmt == POLAR_XFMT_UINT4) ?
						(uint8_t)xc[k * in + c0 + j] :
						xc[k * in + c0 + j];

					if (fmt == POLAR_WFMT_NF4)
						wc = q.codebook[wc];
					acc += (int64_t)wc * xv;
				}
				sums[(b * batch + k) * out + o] = (int32_t)acc;
			}
		}
	}
	CHECK(polar_dequantize_sums(&q, &aq, sums, batch, bias, 0, y) == 0);
	for (k = 0; k < batch; k++) {
		for (o = 0; o < out; o++) {
			double ref = bias[o], mag = fabs(bias[o]);

			for (i = 0; i < in; i++) {
				double t = (double)wd[o * in + i] * xd[k * in + i];

				ref += t;
				mag += fabs(t);
			}
			CHECK(fabs(y[k * out + o] - ref) <= 1e-6 * mag + 1e-30);
		}
	}
	/* accumulate on top of what y holds; no bias */
	for (i = 0; i < batch * out; i++)
		y2[i] = 1.0f;
	CHECK(polar_dequantize_sums(&q, &aq, sums, batch, NULL,
				    POLAR_DEQ_ACCUMULATE, y2) == 0);
	for (k = 0; k < batch; k++)
		for (o = 0; o < out; o++)
			CHECK(fabsf(y2[k * out + o] -
				    (y[k * out + o] - bias[o] + 1.0f)) <=
			      1e-5f * (1.0f + fabsf(y[k * out + o])));
	CHECK(polar_dequantize_sums(&q, &aq, sums, 0, NULL, 0, NULL) == 0);
free_q:
	polar_qweights_free(&q);
done:
	free(sums);
	free(bc);
	free(w);
	free(wd);
}

/* The definition in <polar/quant.h>: round half away from zero, clamped. */
static int act_code_ref(const struct polar_act_quant *aq, int lo, int hi,
			float x)
{
	double t = (double)x / aq->scale;

	return (int)round(t < lo ? lo : t > hi ? hi : t);
}

/*
 * A long input takes the threshold path of polar_quantize_acts(), one
 * input at a time the division: both must give the definition's codes,
 * at every rounding boundary (k + 1/2) * scale, the floats next to it,
 * signed zeros, subnormals, infinities and random values.
 */
static void test_act_quantize_thresholds(void)
{
	static const enum polar_xfmt fmts[] = { POLAR_XFMT_INT8,
		POLAR_XFMT_UINT8, POLAR_XFMT_INT4, POLAR_XFMT_UINT4 };
	static const int lo_of[] = { -127, 0, -7, 0 }, hi_of[] = { 127, 255, 7, 15 };
	static const float scales[] = { 0.5f, 0.1f, 1.0f / 3, 7.3e-3f, 1e-40f,
					3e30f };
	const size_t n = 20001;	/* a tail past the groups of four */
	float *x = malloc(sizeof(float) * n);
	int8_t *c = malloc(n), one;
	size_t f, si, i, bad;

	CHECK(x && c);
	for (f = 0; x && c && f < sizeof(fmts) / sizeof(fmts[0]); f++) {
		for (si = 0; si < sizeof(scales) / sizeof(scales[0]); si++) {
			struct polar_act_quant aq = { fmts[f], scales[si] };
			int lo = lo_of[f], hi = hi_of[f], k;

			i = 0;
			for (k = lo - 2; k <= hi + 1; k++) {
				float b = (float)((k + 0.5) * aq.scale);

				x[i++] = b;
				x[i++] = nextafterf(b, INFINITY);
				x[i++] = nextafterf(b, -INFINITY);
				x[i++] = (float)(k * (double)aq.scale);
			}
			x[i++] = 0.0f;
			x[i++] = -0.0f;
			x[i++] = 1e-45f;
			x[i++] = -1e-45f;
			x[i++] = INFINITY;
			x[i++] = -INFINITY;
			x[i++] = 3.4e38f;
			x[i++] = -3.4e38f;
			while (i < n)
				x[i++] = nrand() * (float)hi * aq.scale;
			CHECK(polar_quantize_acts(&aq, x, n, c) == 0);
			for (i = 0, bad = 0; i < n; i++) {
				int want = act_code_ref(&aq, lo, hi, x[i]);
				int got = lo < 0 ? c[i] : (uint8_t)c[i];

				CHECK(polar_quantize_acts(&aq, x + i, 1, &one) == 0);
				if ((got != want ||
				     (lo < 0 ? one : (uint8_t)one) != want) &&
				    bad++ < 3)
					CHECK(0, "fmt %d scale %g x %a: codes %d "
					      "(long) %d (short), want %d",
					      (int)aq.fmt, (double)aq.scale,
					      (double)x[i], got,
					      lo < 0 ? one : (uint8_t)one, want);
			}
		}
	}
	/* A NaN in a long input is named, as in a short one. */
	if (x && c) {
		struct polar_act_quant aq = { POLAR_XFMT_UINT4, 0.5f };

		for (i = 0; i < n; i++)
			x[i] = 1.0f;
		x[12345] = -NAN;
		CHECK(polar_quantize_acts(&aq, x, n, c) == -EINVAL);
		CHECK(errmsg_has("quantize_acts: x[12345] of 20001 is NaN"));
	}
	free(x);
	free(c);
}

static void test_dequantize_sums_int(void)
{
	check_layer(POLAR_WFMT_INT8, POLAR_XFMT_INT8, 0);
	check_layer(POLAR_WFMT_INT8, POLAR_XFMT_UINT8, 0);
	check_layer(POLAR_WFMT_INT4, POLAR_XFMT_INT4, 0);
	check_layer(POLAR_WFMT_INT4, POLAR_XFMT_UINT4, 0);
}

static void test_dequantize_sums_nf4(void)
{
	check_layer(POLAR_WFMT_NF4, POLAR_XFMT_INT8, 64);	/* 64 64 22 */
	check_layer(POLAR_WFMT_NF4, POLAR_XFMT_UINT8, 50);	/* 3 even */
	check_layer(POLAR_WFMT_NF4, POLAR_XFMT_INT4, 1);	/* 150 blocks */
	check_layer(POLAR_WFMT_NF4, POLAR_XFMT_UINT4, 0);
}

/*
 * polar_dequantize_sums() works on two outputs at a time; each output must
 * get exactly the bits of the formula done in scalar double, in its order:
 * acc = sum_b scale_b * sums_b (NF4: / 127), y = (float)(acc * x_scale
 * + bias + y), for odd and even out_dim, with and without bias and
 * POLAR_DEQ_ACCUMULATE.
 */
static void test_dequantize_sums_bits(void)
{
	static const enum polar_wfmt fmts[] = { POLAR_WFMT_NF4,
						POLAR_WFMT_INT8 };
	static const uint32_t outs[] = { 1, 7, 32 };
	const uint32_t in = 150, batch = 3;
	size_t f, oi, i;
	int with_bias, acc_mode, same = 1;

	for (f = 0; f < 2; f++)
		for (oi = 0; oi < 3; oi++) {
			uint32_t out = outs[oi], k, o, b;
			struct polar_qweights q;
			struct polar_act_quant aq = { POLAR_XFMT_UINT4, 0.037f };
			float *w = alloc_weights(out, in);
			float bias[32], y[3 * 32], y0[3 * 32], ref[3 * 32];
			int32_t *sums;

			CHECK(w && polar_quantize_weights(w, out, in, fmts[f],
				fmts[f] == POLAR_WFMT_NF4 ? 64 : 0, &q) == 0);
			sums = malloc(sizeof(int32_t) * batch * q.nblocks * out);
			for (i = 0; sums && i < (size_t)batch * q.nblocks * out; i++)
				sums[i] = (int32_t)(frand() * 2e6f);
			for (o = 0; o < out; o++)
				bias[o] = frand();
			for (i = 0; i < (size_t)batch * out; i++)
				y0[i] = frand() * 10.0f;
			for (with_bias = 0; sums && with_bias < 2; with_bias++)
				for (acc_mode = 0; acc_mode < 2; acc_mode++) {
					for (k = 0; k < batch; k++)
						for (o = 0; o < out; o++) {
							size_t at = (size_t)k * out + o;
							double a = 0.0, v;

							for (b = 0; b < q.nblocks; b++)
								a += (double)q.scales[o * q.nblocks + b] *
								     sums[(b * batch + k) * out + o];
							if (fmts[f] == POLAR_WFMT_NF4)
								a /= 127;
							v = a * aq.scale;
							if (with_bias)
								v += bias[o];
							if (acc_mode)
								v += y0[at];
							ref[at] = (float)v;
						}
					memcpy(y, y0, sizeof(y));
					CHECK(polar_dequantize_sums(&q, &aq, sums, batch,
						with_bias ? bias : NULL,
						acc_mode ? POLAR_DEQ_ACCUMULATE : 0,
						y) == 0);
					for (i = 0; i < (size_t)batch * out; i++)
						if (memcmp(&y[i], &ref[i], sizeof(float))) {
							if (same)
								CHECK(0, "fmt %d out %u bias %d "
								      "acc %d y[%zu] %a want %a",
								      (int)fmts[f], out, with_bias,
								      acc_mode, i, (double)y[i],
								      (double)ref[i]);
							same = 0;
						}
				}
			free(sums);
			free(w);
			polar_qweights_free(&q);
		}
}

/*
 * Quantized y against the float y = W x, output by output, within the
 * analytic bound of the two quantizers: each weight is off by at most ew
 * (INT8/INT4: half a step, scale / 2; NF4: half the largest gap between
 * neighbouring levels plus the device levels' rounding to 1/127, times the
 * block's scale), each input by at most ex = scale / 2 (absmax calibration:
 * nothing clips), so |y - W x| <= sum_i |w_i| ex + |x_i| ew_i + ew_i ex.
 * The device sums are exact integers; 1e-6 of sum |w_i x_i| covers the
 * float arithmetic of dequantization.
 */
static void test_layer_accuracy(void)
{
	const uint32_t out = 64, in = 256;
	static const enum polar_wfmt fmts[] = { POLAR_WFMT_INT8,
						POLAR_WFMT_INT4,
						POLAR_WFMT_NF4 };
	float *w = alloc_weights(out, in), x[256], y[64];
	int8_t xc[256], *bc = malloc((size_t)out * in);
	int32_t *sums = malloc(4 * out * sizeof(int32_t));
	struct polar_act_quant aq;
	unsigned int f;
	uint32_t o, i, b;
	double ex;

	CHECK(w && bc && sums);
	if (!w || !bc || !sums)
		goto done;
	for (i = 0; i < in; i++)
		x[i] = nrand();
	CHECK(polar_act_calibrate(x, in, POLAR_XFMT_INT8, 0, &aq) == 0);
	CHECK(polar_quantize_acts(&aq, x, in, xc) == 0);
	ex = aq.scale / 2.0;
	for (f = 0; f < 3; f++) {
		struct polar_qweights q;
		double worst = 0;

		CHECK(polar_quantize_weights(w, out, in, fmts[f], 0, &q) == 0);
		for (b = 0; b < q.nblocks; b++) {
			int width = polar_qweights_block_codes(&q, b, bc);

			for (o = 0; o < out; o++) {
				int32_t acc = 0;
				int j;

				for (j = 0; j < width; j++) {
					int wc = bc[o * width + j];

					if (fmts[f] == POLAR_WFMT_NF4)
						wc = q.codebook[wc];
					acc += wc * xc[b * q.block + j];
				}
				sums[b * out + o] = acc;
			}
		}
		CHECK(polar_dequantize_sums(&q, &aq, sums, 1, NULL, 0, y) == 0);
		for (o = 0; o < out; o++) {
			double ref = 0, bound = 0, mag = 0;

			for (i = 0; i < in; i++) {
				double wi = w[o * in + i], ew;

				if (fmts[f] == POLAR_WFMT_NF4)
					ew = (nf4_max_gap() / 2 + 0.5 / 127) *
					     q.scales[o * q.nblocks + i / q.block];
				else
					ew = q.scales[o] / 2.0;
				ref += wi * x[i];
				mag += fabs(wi * x[i]);
				bound += fabs(wi) * ex + fabs(x[i]) * ew + ew * ex;
			}
			CHECK(fabs(y[o] - ref) <= bound + 1e-6 * mag,
			      "fmt %u out %u: error %g, bound %g", f, o,
			      fabs(y[o] - ref), bound);
			worst = fmax(worst, fabs(y[o] - ref) / bound);
		}
		printf("# fmt %u: largest error %.2f of its bound\n", f, worst);
		polar_qweights_free(&q);
	}
done:
	free(w);
	free(bc);
	free(sums);
}

static void test_errors(void)
{
	struct polar_qweights q, bad;
	struct polar_act_quant aq = { POLAR_XFMT_INT8, 1.0f };
	float w[6] = { 1, 2, 3, 4, 5, 6 }, y[2];
	int8_t c[6];
	int32_t s[4] = { 0 };

	CHECK(polar_quantize_weights(w, 2, 0, POLAR_WFMT_INT8, 0, &q) ==
	      -EINVAL);
	CHECK(errmsg_has("quantize_weights: in_dim 0"));
	CHECK(!q.codes && !q.scales);
	CHECK(polar_quantize_weights(w, 0, 3, POLAR_WFMT_INT8, 0, &q) ==
	      -EINVAL);
	CHECK(errmsg_has("out_dim 0"));
	CHECK(polar_quantize_weights(w, 2, 3, (enum polar_wfmt)7, 0, &q) ==
	      -EINVAL);
	CHECK(errmsg_has("unknown weight format 7"));
	CHECK(polar_quantize_weights(w, 2, 3, POLAR_WFMT_INT4, 64, &q) ==
	      -EINVAL);
	CHECK(errmsg_has("block 64 given for INT4"));
	CHECK(polar_quantize_weights(NULL, 2, 3, POLAR_WFMT_INT8, 0, &q) ==
	      -EINVAL);
	CHECK(errmsg_has("w is NULL"));
	CHECK(polar_quantize_weights(w, 2, 3, POLAR_WFMT_INT8, 0, NULL) ==
	      -EINVAL);
	CHECK(errmsg_has("q is NULL"));
	w[5] = NAN;
	CHECK(polar_quantize_weights(w, 2, 3, POLAR_WFMT_NF4, 0, &q) ==
	      -EINVAL);
	CHECK(errmsg_has("row 1, column 2 of 2x3"));
	CHECK(!q.codes && !q.scales);
	w[5] = 6;

	/* inconsistent or freed weights */
	CHECK(polar_quantize_weights(w, 2, 3, POLAR_WFMT_NF4, 2, &q) == 0);
	CHECK(polar_qweights_block_codes(&q, 2, c) == -EINVAL);
	CHECK(errmsg_has("block 2 of 2"));
	bad = q;
	bad.nblocks = 3;
	CHECK(polar_dequantize_weights(&bad, w) == -EINVAL);
	CHECK(errmsg_has("nblocks 3"));
	bad = q;
	bad.codes = (int8_t[6]){ 0, 1, 2, 3, 4, 16 };
	CHECK(polar_dequantize_weights(&bad, w) == -EINVAL);
	CHECK(errmsg_has("NF4 code 16 at row 1, column 2"));
	CHECK(polar_dequantize_sums(&q, &aq, s, 1, NULL, 4, y) == -EINVAL);
	CHECK(errmsg_has("unknown flags 0x4"));
	CHECK(polar_dequantize_sums(&q, NULL, s, 1, NULL, 0, y) == -EINVAL);
	CHECK(errmsg_has("dequantize_sums: aq is NULL"));
	polar_qweights_free(&q);
	CHECK(polar_dequantize_sums(&q, &aq, s, 1, NULL, 0, y) == -EINVAL);
	CHECK(errmsg_has("dequantize_sums: weights are 0x0"));
	CHECK(polar_dequantize_weights(NULL, w) == -EINVAL);
	CHECK(errmsg_has("dequantize_weights: q is NULL"));

	/* activations */
	CHECK(polar_act_calibrate(w, 0, POLAR_XFMT_INT8, 0, &aq) == -EINVAL);
	CHECK(errmsg_has("act_calibrate: n 0"));
	CHECK(polar_act_calibrate(w, 6, POLAR_XFMT_INT8, 101, &aq) == -EINVAL);
	CHECK(errmsg_has("percentile 101"));
	CHECK(polar_act_calibrate(w, 6, POLAR_XFMT_INT8, -1, &aq) == -EINVAL);
	CHECK(errmsg_has("percentile -1"));
	CHECK(polar_act_calibrate(w, 6, (enum polar_xfmt)4, 0, &aq) == -EINVAL);
	CHECK(errmsg_has("unknown input format 4"));
	w[3] = INFINITY;
	CHECK(polar_act_calibrate(w, 6, POLAR_XFMT_INT8, 0, &aq) == -EINVAL);
	CHECK(errmsg_has("x[3] of 6 is inf"));
	w[3] = NAN;
	aq.fmt = POLAR_XFMT_INT8;
	aq.scale = 1.0f;
	CHECK(polar_quantize_acts(&aq, w, 6, c) == -EINVAL);
	CHECK(errmsg_has("quantize_acts: x[3] of 6 is NaN"));
	w[3] = 4;
	aq.scale = -1.0f;
	CHECK(polar_quantize_acts(&aq, w, 6, c) == -EINVAL);
	CHECK(errmsg_has("activation scale -1"));
	aq.scale = NAN;
	CHECK(polar_quantize_acts(&aq, w, 6, c) == -EINVAL);
	CHECK(errmsg_has("activation scale nan"));
	aq.scale = 1.0f;
	aq.fmt = POLAR_XFMT_UINT4;
	c[0] = 16;
	CHECK(polar_dequantize_acts(&aq, c, 1, w) == -EINVAL);
	CHECK(errmsg_has("code 16 at 0 out of range for UINT4"));
}

/*
 * Every format's name parses back to it, and the names are the ones
 * options and saved calibrations use; the enums' values are the device's.
 */
static void test_format_names(void)
{
	static const char *const w[] = { "int8", "int4", "nf4" };
	static const char *const x[] = { "int8", "uint8", "int4", "uint4" };
	unsigned int i;

	for (i = 0; i < 3; i++) {
		CHECK(!strcmp(polar_wfmt_name((enum polar_wfmt)i), w[i]));
		CHECK(polar_wfmt_parse(w[i]) == (int)i);
	}
	for (i = 0; i < 4; i++) {
		CHECK(!strcmp(polar_xfmt_name((enum polar_xfmt)i), x[i]));
		CHECK(polar_xfmt_parse(x[i]) == (int)i);
	}
	CHECK(polar_wfmt_parse("uint4") == -EINVAL);
	CHECK(polar_xfmt_parse("nf4") == -EINVAL);
}

int main(void)
{
	RUN(test_codebooks);
	RUN(test_int8_roundtrip);
	RUN(test_int4_roundtrip);
	RUN(test_nf4_roundtrip);
	RUN(test_nf4_firmware_codebook);
	RUN(test_act_calibrate);
	RUN(test_act_quantize);
	RUN(test_act_quantize_thresholds);
	RUN(test_dequantize_sums_int);
	RUN(test_dequantize_sums_nf4);
	RUN(test_dequantize_sums_bits);
	RUN(test_layer_accuracy);
	RUN(test_errors);
	RUN(test_format_names);
	return unit_summary();
}
