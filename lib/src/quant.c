// SPDX-License-Identifier: MIT
/*
 * Quantizers: weights (INT8/INT4 per output channel, NF4 per block),
 * activations (per tensor, calibrated) and the dequantization of the
 * device's INT32 sums. The formulas are in <polar/quant.h>.
 *
 * Choices of codes are made in double precision so that they do not depend
 * on the compiler's float evaluation; results are stored as float.
 */
#include <emmintrin.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "polar/quant.h"
#include "polar_cim_hw.h"
#include "polar_internal.h"

_Static_assert((int)POLAR_WFMT_INT8 == (int)POLAR_CIM_WFMT_INT8,
	       "wfmt INT8");
_Static_assert((int)POLAR_WFMT_INT4 == (int)POLAR_CIM_WFMT_INT4,
	       "wfmt INT4");
_Static_assert((int)POLAR_WFMT_NF4 == (int)POLAR_CIM_WFMT_NF4,
	       "wfmt NF4");
_Static_assert((int)POLAR_XFMT_INT8 == (int)POLAR_CIM_XFMT_INT8,
	       "xfmt INT8");
_Static_assert((int)POLAR_XFMT_UINT8 == (int)POLAR_CIM_XFMT_UINT8,
	       "xfmt UINT8");
_Static_assert((int)POLAR_XFMT_INT4 == (int)POLAR_CIM_XFMT_INT4,
	       "xfmt INT4");
_Static_assert((int)POLAR_XFMT_UINT4 == (int)POLAR_CIM_XFMT_UINT4,
	       "xfmt UINT4");

/* QLoRA appendix E (bitsandbytes' NF4 table). */
static const char *const wfmt_names[] = {
	[POLAR_WFMT_INT8] = "int8",
	[POLAR_WFMT_INT4] = "int4",
	[POLAR_WFMT_NF4] = "nf4",
};

static const char *const xfmt_names[] = {
	[POLAR_XFMT_INT8] = "int8",
	[POLAR_XFMT_UINT8] = "uint8",
	[POLAR_XFMT_INT4] = "int4",
	[POLAR_XFMT_UINT4] = "uint4",
};

#define NWFMT (sizeof(wfmt_names) / sizeof(wfmt_names[0]))
#define NXFMT (sizeof(xfmt_names) / sizeof(xfmt_names[0]))

const char *polar_wfmt_name(enum polar_wfmt fmt)
{
	if ((unsigned int)fmt >= NWFMT) {
		polar_fail(-EINVAL, "polar_wfmt_name: fmt %d is not a weight "
			   "format", (int)fmt);
		return NULL;
	}
	return wfmt_names[fmt];
}

int polar_wfmt_parse(const char *name)
{
	unsigned int i;

	POLAR_NONNULL("polar_wfmt_parse", name);
	for (i = 0; i < NWFMT; i++)
		if (!strcmp(name, wfmt_names[i]))
			return (int)i;
	return polar_fail(-EINVAL, "name '%s' is not a weight format (nf4, int4 "
			  "or int8)", name);
}

const char *polar_xfmt_name(enum polar_xfmt fmt)
{
	if ((unsigned int)fmt >= NXFMT) {
		polar_fail(-EINVAL, "polar_xfmt_name: fmt %d is not an input "
			   "format", (int)fmt);
		return NULL;
	}
	return xfmt_names[fmt];
}

int polar_xfmt_parse(const char *name)
{
	unsigned int i;

	POLAR_NONNULL("polar_xfmt_parse", name);
	for (i = 0; i < NXFMT; i++)
		if (!strcmp(name, xfmt_names[i]))
			return (int)i;
	return polar_fail(-EINVAL, "name '%s' is not an input format (uint4, "
			  "int4, int8 or uint8)", name);
}

const float polar_nf4_codebook[16] = {
	-1.0f,
	-0.6961928009986877f,
	-0.5250730514526367f,
	-0.39491748809814453f,
	-0.28444138169288635f,
	-0.18477343022823334f,
	-0.09105003625154495f,
	0.0f,
	0.07958029955625534f,
	0.16093020141124725f,
	0.24611230194568634f,
	0.33791524171829224f,
	0.44070982933044434f,
	0.5626170039176941f,
	0.7229568362236023f,
	1.0f,
};

/* round(polar_nf4_codebook[i] * 127), as firmware/polar_cim.fws and
 * cim_nf4_default hold them. */
const int8_t polar_nf4_codebook_i8[16] = {
	-127, -88, -67, -50, -36, -23, -12, 0,
	10, 20, 31, 43, 56, 71, 92, 127,
};

/* ---- helpers ------------------------------------------------------------- */

static int wfmt_valid(int fmt)
{
	return fmt == POLAR_WFMT_INT8 || fmt == POLAR_WFMT_INT4 ||
	       fmt == POLAR_WFMT_NF4;
}

static const char *wfmt_name(int fmt)
{
	switch (fmt) {
	case POLAR_WFMT_INT8: return "INT8";
	case POLAR_WFMT_INT4: return "INT4";
	case POLAR_WFMT_NF4: return "NF4";
	}
	return "?";
}

/* Largest code of a symmetric integer weight format. */
static int wfmt_qmax(int fmt)
{
	return fmt == POLAR_WFMT_INT8 ? 127 : 7;
}

/* Code range of an input format: [*lo, *hi]; 0 for an unknown format. */
static int xfmt_range(int fmt, int *lo, int *hi)
{
	switch (fmt) {
	case POLAR_XFMT_INT8: *lo = -127; *hi = 127; return 1;
	case POLAR_XFMT_UINT8: *lo = 0; *hi = 255; return 1;
	case POLAR_XFMT_INT4: *lo = -7; *hi = 7; return 1;
	case POLAR_XFMT_UINT4: *lo = 0; *hi = 15; return 1;
	}
	return 0;
}

static int xfmt_unsigned(int fmt)
{
	return fmt == POLAR_XFMT_UINT8 || fmt == POLAR_XFMT_UINT4;
}

static uint32_t ceil_div(uint32_t a, uint32_t b)
{
	return a / b + (a % b != 0);
}

/*
 * The levels of a codebook sorted ascending, with each value once (its
 * lowest index), and the midpoints between neighbours: v maps to level j
 * where j = #{midpoints m : v > m}.
 */
struct nf4_levels {
	unsigned int n;
	double val[16];
	uint8_t idx[16];
	double mid[15];
};

static void nf4_levels_init(struct nf4_levels *lv, const float *fcb,
			    const int8_t *icb)
{
	unsigned int i, j;

	lv->n = 0;
	for (i = 0; i < 16; i++) {
		double v = fcb ? (double)fcb[i] :
			(double)icb[i] / POLAR_NF4_CB_ONE;

		/* insertion sort; an equal value already present wins */
		for (j = 0; j < lv->n && lv->val[j] < v; j++)
			;
		if (j < lv->n && lv->val[j] == v)
			continue;
		memmove(&lv->val[j + 1], &lv->val[j],
			(lv->n - j) * sizeof(lv->val[0]));
		memmove(&lv->idx[j + 1], &lv->idx[j],
			(lv->n - j) * sizeof(lv->idx[0]));
		lv->val[j] = v;
		lv->idx[j] = (uint8_t)i;
		lv->n++;
	}
	for (j = 0; j + 1 < lv->n; j++)
		lv->mid[j] = (lv->val[j] + lv->val[j + 1]) / 2;
}

static int8_t nf4_nearest(const struct nf4_levels *lv, double v)
{
	unsigned int j = 0;

	while (j + 1 < lv->n && v > lv->mid[j])
		j++;
	return (int8_t)lv->idx[j];
}

/* Is q a consistent result of polar_quantize_weights*()? */
static int qweights_check(const struct polar_qweights *q, const char *fn)
{
	if (!q)
		return polar_fail(-EINVAL, "%s: q is NULL", fn);
	if (!wfmt_valid(q->fmt))
		return polar_fail(-EINVAL, "%s: unknown weight format %d", fn,
				  (int)q->fmt);
	if (!q->out_dim || !q->in_dim)
		return polar_fail(-EINVAL, "%s: weights are %ux%u", fn,
				  q->out_dim, q->in_dim);
	if (!q->codes || !q->scales)
		return polar_fail(-EINVAL, "%s: q has no %s (not quantized, "
				  "or freed)", fn,
				  q->codes ? "scales" : "codes");
	if (q->fmt != POLAR_WFMT_NF4 &&
	    (q->block != q->in_dim || q->nblocks != 1))
		return polar_fail(-EINVAL, "%s: %s weights with block %u, "
				  "nblocks %u (per-channel: block = in_dim "
				  "%u, nblocks 1)", fn, wfmt_name(q->fmt),
				  q->block, q->nblocks, q->in_dim);
	if (q->fmt == POLAR_WFMT_NF4 &&
	    (!q->block || q->nblocks != ceil_div(q->in_dim, q->block)))
		return polar_fail(-EINVAL, "%s: NF4 weights with in_dim %u, "
				  "block %u, nblocks %u (want ceil(in_dim / "
				  "block))", fn, q->in_dim, q->block,
				  q->nblocks);
	return 0;
}

static int act_check(const struct polar_act_quant *aq, const char *fn)
{
	int lo, hi;

	if (!aq)
		return polar_fail(-EINVAL, "%s: aq is NULL", fn);
	if (!xfmt_range(aq->fmt, &lo, &hi))
		return polar_fail(-EINVAL, "%s: unknown input format %d", fn,
				  (int)aq->fmt);
	if (!(aq->scale >= 0.0f) || isinf(aq->scale))
		return polar_fail(-EINVAL, "%s: activation scale %g (want "
				  "finite and >= 0)", fn, (double)aq->scale);
	return 0;
}

/* ---- weights ------------------------------------------------------------- */

static void quantize_int_row(const float *w, uint32_t in_dim, int qmax,
			     int8_t *codes, float *scale)
{
	float absmax = 0.0f, s;
	uint32_t i;

	for (i = 0; i < in_dim; i++)
		if (fabsf(w[i]) > absmax)
			absmax = fabsf(w[i]);
	s = absmax / (float)qmax;
	*scale = s;
	if (s == 0.0f) {	/* all zero (or below the float range / qmax) */
		*scale = 0.0f;
		memset(codes, 0, in_dim);
		return;
	}
	for (i = 0; i < in_dim; i++) {
		double t = round((double)w[i] / (double)s);

		if (t > qmax)
			t = qmax;
		if (t < -qmax)
			t = -qmax;
		codes[i] = (int8_t)t;
	}
}

static void quantize_nf4_block(const float *w, uint32_t width,
			       const struct nf4_levels *lv, int8_t zero_code,
			       int8_t *codes, float *scale)
{
	float absmax = 0.0f;
	uint32_t i;

	for (i = 0; i < width; i++)
		if (fabsf(w[i]) > absmax)
			absmax = fabsf(w[i]);
	*scale = absmax;
	if (absmax == 0.0f) {
		memset(codes, zero_code, width);
		return;
	}
	for (i = 0; i < width; i++)
		codes[i] = nf4_nearest(lv, (double)w[i] / (double)absmax);
}

int polar_quantize_weights_cb(const float *w, uint32_t out_dim,
			      uint32_t in_dim, enum polar_wfmt fmt,
			      uint32_t block, const int8_t cb[16],
			      struct polar_qweights *q)
{
	static const char fn[] = "quantize_weights";
	struct nf4_levels lv;
	uint32_t o, b, nblocks;
	size_t n, i;
	int8_t zero_code = 0;

	if (!q)
		return polar_fail(-EINVAL, "%s: q is NULL", fn);
	memset(q, 0, sizeof(*q));
	if (!w)
		return polar_fail(-EINVAL, "%s: w is NULL", fn);
	if (!out_dim || !in_dim)
		return polar_fail(-EINVAL, "%s: %s 0 (weights %ux%u)", fn,
				  out_dim ? "in_dim" : "out_dim", out_dim,
				  in_dim);
	if (!wfmt_valid(fmt))
		return polar_fail(-EINVAL, "%s: unknown weight format %d", fn,
				  (int)fmt);
	if (fmt != POLAR_WFMT_NF4 && block)
		return polar_fail(-EINVAL, "%s: block %u given for %s weights "
				  "(their scales are per output channel: "
				  "pass 0)", fn, block, wfmt_name(fmt));
	if ((size_t)out_dim > SIZE_MAX / in_dim)
		return polar_fail(-EINVAL, "%s: %ux%u weights overflow size_t",
				  fn, out_dim, in_dim);
	n = (size_t)out_dim * in_dim;
	for (i = 0; i < n; i++)
		if (!isfinite(w[i]))
			return polar_fail(-EINVAL, "%s: w[%zu][%zu] (row %zu, "
					  "column %zu of %ux%u) is %g", fn,
					  i / in_dim, i % in_dim, i / in_dim,
					  i % in_dim, out_dim, in_dim,
					  (double)w[i]);

	if (fmt == POLAR_WFMT_NF4) {
		if (!block)
			block = POLAR_NF4_DEFAULT_BLOCK;
		nblocks = ceil_div(in_dim, block);
		nf4_levels_init(&lv, cb ? NULL : polar_nf4_codebook, cb);
		zero_code = nf4_nearest(&lv, 0.0);
	} else {
		block = in_dim;
		nblocks = 1;
	}
	if ((size_t)out_dim > SIZE_MAX / sizeof(float) / nblocks)
		return polar_fail(-EINVAL, "%s: %ux%u scales overflow size_t",
				  fn, out_dim, nblocks);

	q->codes = malloc(n);
	q->scales = malloc((size_t)out_dim * nblocks * sizeof(float));
	if (!q->codes || !q->scales) {
		polar_qweights_free(q);
		return polar_fail(-ENOMEM, "%s: out of memory for %ux%u "
				  "weights", fn, out_dim, in_dim);
	}
	q->fmt = fmt;
	q->out_dim = out_dim;
	q->in_dim = in_dim;
	q->block = block;
	q->nblocks = nblocks;
	memcpy(q->codebook, cb ? cb : polar_nf4_codebook_i8,
	       sizeof(q->codebook));

	for (o = 0; o < out_dim; o++) {
		const float *row = w + (size_t)o * in_dim;
		int8_t *crow = q->codes + (size_t)o * in_dim;

		if (fmt != POLAR_WFMT_NF4) {
			quantize_int_row(row, in_dim, wfmt_qmax(fmt), crow,
					 &q->scales[o]);
			continue;
		}
		for (b = 0; b < nblocks; b++) {
			uint32_t c0 = b * block;
			uint32_t width = in_dim - c0 < block ?
				in_dim - c0 : block;

			quantize_nf4_block(row + c0, width, &lv, zero_code,
					   crow + c0,
					   &q->scales[(size_t)o * nblocks + b]);
		}
	}
	return 0;
}

int polar_quantize_weights(const float *w, uint32_t out_dim, uint32_t in_dim,
			   enum polar_wfmt fmt, uint32_t block,
			   struct polar_qweights *q)
{
	return polar_quantize_weights_cb(w, out_dim, in_dim, fmt, block, NULL,
					 q);
}

void polar_qweights_free(struct polar_qweights *q)
{
	if (!q)
		return;
	free(q->codes);
	free(q->scales);
	memset(q, 0, sizeof(*q));
}

int polar_dequantize_weights(const struct polar_qweights *q, float *w)
{
	static const char fn[] = "dequantize_weights";
	uint32_t o, i;
	int ret = qweights_check(q, fn);

	if (ret)
		return ret;
	if (!w)
		return polar_fail(-EINVAL, "%s: w is NULL", fn);
	for (o = 0; o < q->out_dim; o++) {
		const int8_t *c = q->codes + (size_t)o * q->in_dim;
		const float *s = q->scales + (size_t)o * q->nblocks;
		float *dst = w + (size_t)o * q->in_dim;

		for (i = 0; i < q->in_dim; i++) {
			if (q->fmt != POLAR_WFMT_NF4) {
				dst[i] = s[0] * (float)c[i];
				continue;
			}
			if (c[i] < 0 || c[i] > 15)
				return polar_fail(-EINVAL, "%s: NF4 code %d at "
						  "row %u, column %u (want "
						  "0..15)", fn, c[i], o, i);
			dst[i] = (float)((double)s[i / q->block] *
					 q->codebook[c[i]] / POLAR_NF4_CB_ONE);
		}
	}
	return 0;
}

int polar_qweights_block_codes(const struct polar_qweights *q, uint32_t b,
			       int8_t *dst)
{
	static const char fn[] = "qweights_block_codes";
	uint32_t o, c0, width;
	int ret = qweights_check(q, fn);

	if (ret)
		return ret;
	if (b >= q->nblocks)
		return polar_fail(-EINVAL, "%s: block %u of %u (in_dim %u, "
				  "block %u): b out of range", fn, b,
				  q->nblocks, q->in_dim, q->block);
	c0 = b * q->block;
	width = q->in_dim - c0 < q->block ? q->in_dim - c0 : q->block;
	if (width > INT32_MAX)
		return polar_fail(-EINVAL, "%s: block width %u too large", fn,
				  width);
	if (dst)
		for (o = 0; o < q->out_dim; o++)
			memcpy(dst + (size_t)o * width,
			       q->codes + (size_t)o * q->in_dim + c0, width);
	return (int)width;
}

/* ---- activations --------------------------------------------------------- */

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return (x > y) - (x < y);
}

int polar_act_calibrate(const float *x, size_t n, enum polar_xfmt fmt,
			float percentile, struct polar_act_quant *aq)
{
	static const char fn[] = "act_calibrate";
	int lo, hi, uns = xfmt_unsigned(fmt);
	float clip = 0.0f;
	size_t i;

	if (!x || !aq)
		return polar_fail(-EINVAL, "%s: %s is NULL", fn,
				  x ? "aq" : "x");
	if (!n)
		return polar_fail(-EINVAL, "%s: n 0 (no calibration data)", fn);
	if (!xfmt_range(fmt, &lo, &hi))
		return polar_fail(-EINVAL, "%s: unknown input format %d", fn,
				  (int)fmt);
	if (!(percentile >= 0.0f && percentile <= 100.0f))
		return polar_fail(-EINVAL, "%s: percentile %g (want 0 for "
				  "absmax, or in (0, 100])", fn,
				  (double)percentile);
	for (i = 0; i < n; i++)
		if (!isfinite(x[i]))
			return polar_fail(-EINVAL, "%s: x[%zu] of %zu is %g",
					  fn, i, n, (double)x[i]);

	if (percentile == 0.0f || percentile == 100.0f) {
		for (i = 0; i < n; i++) {
			float v = uns ? x[i] : fabsf(x[i]);

			if (v > clip)
				clip = v;
		}
	} else {
		float *v;
		double r = ceil((double)percentile / 100.0 * (double)n);
		size_t k = r < 1.0 ? 0 : (size_t)r - 1;

		if (n > SIZE_MAX / sizeof(float) ||
		    !(v = malloc(n * sizeof(float))))
			return polar_fail(-ENOMEM, "%s: out of memory for a "
					  "copy of %zu values", fn, n);
		for (i = 0; i < n; i++)
			v[i] = uns ? (x[i] > 0.0f ? x[i] : 0.0f) : fabsf(x[i]);
		qsort(v, n, sizeof(float), cmp_float);
		clip = v[k < n ? k : n - 1];
		free(v);
	}
	aq->fmt = fmt;
	aq->scale = clip / (float)hi;
	return 0;
}

/*
 * round() for |t| < 2^31, half away from zero, without the libm call
 * (which was a tenth of a polarized forward pass): t - (int)t is exact.
 */
static inline int round_half_away(double t)
{
	int r = (int)t;
	double f = t - r;

	return r + (f >= 0.5) - (f <= -0.5);
}

/* The code of x by the definition in <polar/quant.h>; s > 0, x not NaN. */
static int act_code(double s, int lo, int hi, float x)
{
	double t = (double)x / s;

	if (t > hi)
		t = hi;
	if (t < lo)
		t = lo;
	return round_half_away(t);
}

/*
 * Floats as int32 keys whose signed order is the floats' order (-0 just
 * below +0); the map is its own inverse. NaNs fall outside
 * [KEY_NEG_INF, KEY_POS_INF].
 */
#define KEY_POS_INF 0x7f800000
#define KEY_NEG_INF (-KEY_POS_INF - 1)

static inline int32_t float_key(uint32_t bits)
{
	int32_t k = (int32_t)bits;

	return k < 0 ? k ^ 0x7fffffff : k;
}

static float key_float(int32_t key)
{
	uint32_t bits = (uint32_t)(key < 0 ? key ^ 0x7fffffff : key);
	float x;

	memcpy(&x, &bits, sizeof(x));
	return x;
}

#define MAX_LEVELS 256		/* codes of the widest format, a power of 2 */

/*
 * act_code() never decreases as x grows (a correctly rounded division,
 * a clamp and a rounding, each monotonic), so code(x) = lo + the number
 * of thresholds t[j] <= key(x), where t[j] is the least key whose code
 * is above lo + j: found by bisection over the keys, with act_code()
 * itself, so the codes are exactly the definition's. P, a power of 2,
 * is the table's size; the entries past hi - lo never match.
 */
static uint32_t act_thresholds(double s, int lo, int hi, int32_t *t)
{
	uint32_t P = 1, j;

	while (P <= (uint32_t)(hi - lo))
		P <<= 1;
	for (j = 0; j < P; j++) {
		int64_t below = KEY_NEG_INF, at = KEY_POS_INF;

		if (j >= (uint32_t)(hi - lo)) {
			t[j] = INT32_MAX;
			continue;
		}
		while (at - below > 1) {
			int64_t mid = below + (at - below) / 2;

			if (act_code(s, lo, hi, key_float((int32_t)mid)) >
			    lo + (int)j)
				at = mid;
			else
				below = mid;
		}
		t[j] = (int32_t)at;
	}
	return P;
}

/*
 * The 4-bit formats' codes, four inputs at a time with SSE2 integer
 * compares against each of the L <= 15 thresholds (inline vector code
 * under TCG, a few cycles per input natively). Stops before the first
 * group with a NaN, which the caller's scalar loop then reports; returns
 * how many inputs it coded.
 */
static size_t act_codes_sse2(const int32_t *t, uint32_t L, int lo,
			     const float *x, size_t n, uint8_t *out)
{
	const __m128i abs_mask = _mm_set1_epi32(0x7fffffff);
	const __m128i inf = _mm_set1_epi32(KEY_POS_INF);
	const __m128i base = _mm_set1_epi32(lo);
	__m128i below[15];
	size_t i;
	uint32_t j;

	for (j = 0; j < L; j++)	/* key >= t[j] is key > t[j] - 1 */
		below[j] = _mm_set1_epi32(t[j] - 1);
	for (i = 0; i + 4 <= n; i += 4) {
		__m128i bits = _mm_loadu_si128((const __m128i *)(x + i));
		__m128i key, code = base;
		int32_t packed;

		if (_mm_movemask_epi8(_mm_cmpgt_epi32(_mm_and_si128(bits,
							abs_mask), inf)))
			break;
		/* float_key(): flip the magnitude bits of negative floats */
		key = _mm_xor_si128(bits, _mm_and_si128(_mm_srai_epi32(bits, 31),
							abs_mask));
		for (j = 0; j < L; j++)	/* a true compare is -1 */
			code = _mm_sub_epi32(code, _mm_cmpgt_epi32(key, below[j]));
		code = _mm_packs_epi32(code, code);
		packed = _mm_cvtsi128_si32(_mm_packs_epi16(code, code));
		memcpy(out + i, &packed, 4);
	}
	return i;
}

/*
 * Below this many inputs per threshold, act_thresholds() costs more than
 * it saves.
 */
#define THRESHOLD_MIN_INPUTS 32

int polar_quantize_acts(const struct polar_act_quant *aq, const float *x,
			size_t n, int8_t *codes)
{
	static const char fn[] = "quantize_acts";
	uint8_t *out = (uint8_t *)codes;
	int lo = 0, hi = 0, ret = act_check(aq, fn);
	int32_t t[MAX_LEVELS];
	uint32_t P, step, c;
	double s;
	size_t i;

	if (ret)
		return ret;
	if (!n)
		return 0;
	if (!x || !codes)
		return polar_fail(-EINVAL, "%s: %s is NULL", fn,
				  x ? "codes" : "x");
	xfmt_range(aq->fmt, &lo, &hi);
	s = aq->scale;
	if (s == 0.0) {
		for (i = 0; i < n; i++) {
			if (isnan(x[i]))
				return polar_fail(-EINVAL, "%s: x[%zu] of %zu "
						  "is NaN", fn, i, n);
			out[i] = 0;
		}
		return 0;
	}
	if (n < (size_t)THRESHOLD_MIN_INPUTS * (hi - lo)) {
		for (i = 0; i < n; i++) {
			if (isnan(x[i]))
				return polar_fail(-EINVAL, "%s: x[%zu] of %zu "
						  "is NaN", fn, i, n);
			/* two's complement byte for signed formats */
			out[i] = (uint8_t)act_code(s, lo, hi, x[i]);
		}
		return 0;
	}
	/*
	 * Integer compares against the thresholds instead of a division
	 * and a rounding per input: the same codes, and several times
	 * faster where float arithmetic is emulated (the guest of a TCG
	 * VM runs each SSE float instruction as a softfloat call).
	 */
	P = act_thresholds(s, lo, hi, t);
	i = 0;
	if (hi - lo <= 15)
		i = act_codes_sse2(t, (uint32_t)(hi - lo), lo, x, n, out);
	for (; i < n; i++) {
		uint32_t bits;
		int32_t key;

		memcpy(&bits, &x[i], sizeof(bits));
		if ((bits & 0x7fffffff) > KEY_POS_INF)
			return polar_fail(-EINVAL, "%s: x[%zu] of %zu is NaN",
					  fn, i, n);
		key = float_key(bits);
		c = 0;
		/* branch-free: which side of a threshold is data, not flow */
		for (step = P / 2; step; step /= 2)
			c += step & -(uint32_t)(key >= t[c + step - 1]);
		out[i] = (uint8_t)(lo + (int)c);
	}
	return 0;
}

int polar_dequantize_acts(const struct polar_act_quant *aq,
			  const int8_t *codes, size_t n, float *x)
{
	static const char fn[] = "dequantize_acts";
	const uint8_t *in = (const uint8_t *)codes;
	int ret = act_check(aq, fn);
	size_t i;

	if (ret)
		return ret;
	if (!n)
		return 0;
	if (!x || !codes)
		return polar_fail(-EINVAL, "%s: %s is NULL", fn,
				  x ? "codes" : "x");
	for (i = 0; i < n; i++) {
		int c = xfmt_unsigned(aq->fmt) ? in[i] : codes[i];

		if ((aq->fmt == POLAR_XFMT_INT4 && (c < -8 || c > 7)) ||
		    (aq->fmt == POLAR_XFMT_UINT4 && c > 15))
			return polar_fail(-EINVAL, "%s: code %d at %zu out of "
					  "range for %s", fn, c, i,
					  aq->fmt == POLAR_XFMT_INT4 ?
					  "INT4 (-8..7)" : "UINT4 (0..15)");
		x[i] = (float)((double)aq->scale * c);
	}
	return 0;
}

/* ---- device sums --------------------------------------------------------- */

/* Two int32 or two floats as the lanes of a packed double. */
static inline __m128d load_i32x2(const int32_t *p)
{
	return _mm_cvtepi32_pd(_mm_loadl_epi64((const __m128i *)p));
}

static inline __m128d load_f32x2(const float *p)
{
	return _mm_cvtps_pd(_mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)p)));
}

int polar_dequantize_sums(const struct polar_qweights *q,
			  const struct polar_act_quant *aq,
			  const int32_t *sums, uint32_t batch,
			  const float *bias, unsigned int flags, float *y)
{
	static const char fn[] = "dequantize_sums";
	size_t plane;
	uint32_t k, o, b, nb;
	double *ds;
	int nf4;
	int ret = qweights_check(q, fn);

	if (ret)
		return ret;
	ret = act_check(aq, fn);
	if (ret)
		return ret;
	if (flags & ~POLAR_DEQ_ACCUMULATE)
		return polar_fail(-EINVAL, "%s: unknown flags %#x", fn,
				  flags & ~POLAR_DEQ_ACCUMULATE);
	if (!batch)
		return 0;
	if (!sums || !y)
		return polar_fail(-EINVAL, "%s: %s is NULL", fn,
				  sums ? "y" : "sums");
	plane = (size_t)batch * q->out_dim;	/* sums of one block */
	nf4 = q->fmt == POLAR_WFMT_NF4;
	nb = nf4 ? q->nblocks : 1;
	/* The scales in double, block-major: two outputs' are adjacent. */
	ds = malloc(sizeof(double) * nb * q->out_dim);
	if (!ds)
		return polar_fail(-ENOMEM, "out of memory");
	for (o = 0; o < q->out_dim; o++)
		for (b = 0; b < nb; b++)
			ds[(size_t)b * q->out_dim + o] =
				q->scales[(size_t)o * q->nblocks + b];
	for (k = 0; k < batch; k++) {
		/*
		 * Two outputs at a time in SSE2's packed doubles: each lane
		 * does the scalar loop's operations in its order, so the bits
		 * are the same, with half the instructions (every one a
		 * softfloat call in a TCG guest).
		 */
		for (o = 0; o + 2 <= q->out_dim; o += 2) {
			size_t at = (size_t)k * q->out_dim + o;
			__m128d acc, v;

			if (!nf4) {
				acc = _mm_mul_pd(_mm_loadu_pd(ds + o),
						 load_i32x2(sums + at));
			} else {
				acc = _mm_setzero_pd();
				for (b = 0; b < nb; b++)
					acc = _mm_add_pd(acc, _mm_mul_pd(
						_mm_loadu_pd(ds + (size_t)b *
							     q->out_dim + o),
						load_i32x2(sums + b * plane + at)));
				acc = _mm_div_pd(acc,
						 _mm_set1_pd(POLAR_NF4_CB_ONE));
			}
			v = _mm_mul_pd(acc, _mm_set1_pd(aq->scale));
			if (bias)
				v = _mm_add_pd(v, load_f32x2(bias + o));
			if (flags & POLAR_DEQ_ACCUMULATE)
				v = _mm_add_pd(v, load_f32x2(y + at));
			_mm_storel_pi((__m64 *)(y + at), _mm_cvtpd_ps(v));
		}
		for (; o < q->out_dim; o++) {
			size_t at = (size_t)k * q->out_dim + o;
			double acc = 0.0, v;

			if (!nf4) {
				acc = ds[o] * sums[at];
			} else {
				for (b = 0; b < nb; b++)
					acc += ds[(size_t)b * q->out_dim + o] *
					       sums[b * plane + at];
				acc /= POLAR_NF4_CB_ONE;
			}
			v = acc * aq->scale;
			if (bias)
				v += bias[o];
			if (flags & POLAR_DEQ_ACCUMULATE)
				v += y[at];
			y[at] = (float)v;
		}
	}
	free(ds);
	return 0;
}
