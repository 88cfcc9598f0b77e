// SPDX-License-Identifier: MIT
/*
 * Calibration fits on synthetic data: exact recovery of a known low-rank
 * error by svd, activation weighting beating plain svd in the weighted
 * norm, reduced-rank regression reducing the residual (also in a whole
 * output metric), the ADC full-scale
 * statistics on a matrix whose sums are known, and argument errors.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "polar/calib.h"
#include "polar/nn.h"
#include "polar/polar.h"
#include "polar_cim_hw.h"
#include "polar_internal.h"
#include "unit.h"

static uint64_t rs = 0x9E3779B97F4A7C15ull;

static float frand(void)
{
	rs ^= rs >> 12;
	rs ^= rs << 25;
	rs ^= rs >> 27;
	return (float)((double)((rs * 2685821657736338717ull) >> 40) /
		       (double)(1ull << 23)) - 1.0f;
}

static void fill(float *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = frand();
}

/* ||(E - B A) diag(s)||_F^2 (s NULL: 1) */
static double weighted_err(const float *E, const float *A, const float *B,
			   uint32_t out, uint32_t in, uint32_t r, const float *s)
{
	double acc = 0;
	uint32_t o, i, k;

	for (o = 0; o < out; o++)
		for (i = 0; i < in; i++) {
			double v = E[o * in + i];

			for (k = 0; k < r; k++)
				v -= (double)B[o * r + k] * A[k * in + i];
			v *= s ? s[i] : 1.0;
			acc += v * v;
		}
	return acc;
}

static void test_symeig(void)
{
	double S[9] = { 2, 1, 0, 1, 2, 0, 0, 0, 5 }, ev[3], V[9];

	CHECK(polar_calib_symeig(S, 3, ev, V) == 0);
	CHECK(fabs(ev[0] - 5) < 1e-12);
	CHECK(fabs(ev[1] - 3) < 1e-12);
	CHECK(fabs(ev[2] - 1) < 1e-12);
	CHECK(fabs(fabs(V[2 * 3 + 0]) - 1) < 1e-12);
}

/* A matrix with a NaN has no eigen-decomposition: an error, not NaNs. */
static void test_symeig_refuses_nan(void)
{
	double S[9] = { 2, 1, 0, 1, 2, NAN, 0, NAN, 5 }, ev[3], V[9];
	double I[4] = { INFINITY, 0, 0, 1 };

	CHECK(polar_calib_symeig(S, 3, ev, V) == -EDOM);
	CHECK(strstr(polar_errmsg(), "NaN") != NULL, "%s", polar_errmsg());
	CHECK(polar_calib_symeig(I, 2, ev, V) == -EDOM);
}

static void test_svd_exact(void)
{
	enum { OUT = 24, IN = 40, R = 3 };
	float U[OUT * R], W[R * IN], E[OUT * IN], A[8 * IN], B[OUT * 8];
	uint32_t o, i, k;

	fill(U, OUT * R);
	fill(W, R * IN);
	for (o = 0; o < OUT; o++)
		for (i = 0; i < IN; i++) {
			double v = 0;

			for (k = 0; k < R; k++)
				v += (double)U[o * R + k] * W[k * IN + i];
			E[o * IN + i] = (float)v;
		}
	CHECK(polar_calib_svd(E, OUT, IN, R, A, B) == 0);
	CHECK(weighted_err(E, A, B, OUT, IN, R, NULL) < 1e-8);
	/* Higher rank than the error's: still exact. */
	CHECK(polar_calib_svd(E, OUT, IN, 8, A, B) == 0);
	CHECK(weighted_err(E, A, B, OUT, IN, 8, NULL) < 1e-8);
	/* Lower rank: strictly worse than exact, better than nothing. */
	CHECK(polar_calib_svd(E, OUT, IN, 2, A, B) == 0);
	{
		double e2 = weighted_err(E, A, B, OUT, IN, 2, NULL), e0 = 0;

		for (i = 0; i < OUT * IN; i++)
			e0 += (double)E[i] * E[i];
		CHECK(e2 > 1e-6 && e2 < e0);
	}
}

static void test_act_weighting(void)
{
	enum { OUT = 32, IN = 64, R = 4, N = 400 };
	float *E = malloc(sizeof(float) * OUT * IN);
	float *X = malloc(sizeof(float) * N * IN);
	float s[IN], A1[R * IN], B1[OUT * R], A2[R * IN], B2[OUT * R];
	uint32_t i, k;

	fill(E, OUT * IN);
	/* Inputs with very different magnitudes per column. */
	for (k = 0; k < N; k++)
		for (i = 0; i < IN; i++)
			X[k * IN + i] = frand() * (i % 8 == 0 ? 10.0f : 0.1f);
	CHECK(polar_calib_act_scales(X, N, IN, s) == 0);
	CHECK(s[0] > 10 * s[1]);
	CHECK(polar_calib_svd(E, OUT, IN, R, A1, B1) == 0);
	CHECK(polar_calib_act(E, OUT, IN, s, R, A2, B2) == 0);
	CHECK(weighted_err(E, A2, B2, OUT, IN, R, s) <
	      0.9 * weighted_err(E, A1, B1, OUT, IN, R, s));
	/* ... and plain svd is the better one in the plain norm. */
	CHECK(weighted_err(E, A1, B1, OUT, IN, R, NULL) <=
	      weighted_err(E, A2, B2, OUT, IN, R, NULL) + 1e-6);
	free(E);
	free(X);
}

static double residual(const float *X, const float *R, const float *A,
		       const float *B, size_t n, uint32_t in, uint32_t out,
		       uint32_t r, const float *w)
{
	double acc = 0, z[8];
	size_t k;
	uint32_t o, i, j;

	for (k = 0; k < n; k++) {
		for (j = 0; j < r; j++) {
			z[j] = 0;
			for (i = 0; A && i < in; i++)
				z[j] += (double)A[j * in + i] * X[k * in + i];
		}
		for (o = 0; o < out; o++) {
			double v = R[k * out + o];

			for (j = 0; A && j < r; j++)
				v -= (double)B[o * r + j] * z[j];
			acc += v * v * (w ? w[o] : 1.0);
		}
	}
	return acc;
}

/*
 * n random inputs X (n x in) and Y = X (U V)^T + noise of amplitude noise,
 * U V a random rank-r map (r <= 8).
 */
static void lowrank_data(float *X, float *Y, size_t n, uint32_t in,
			 uint32_t out, uint32_t r, float noise)
{
	float *U = malloc(sizeof(float) * out * r);
	float *V = malloc(sizeof(float) * r * in);
	size_t k;
	uint32_t o, j, i;

	fill(X, n * in);
	fill(U, (size_t)out * r);
	fill(V, (size_t)r * in);
	for (k = 0; k < n; k++)
		for (o = 0; o < out; o++) {
			double v = noise * frand();

			for (j = 0; j < r; j++)
				for (i = 0; i < in; i++)
					v += (double)U[o * r + j] * V[j * in + i] *
					     X[k * in + i];
			Y[k * out + o] = (float)v;
		}
	free(U);
	free(V);
}

static void test_rrr(void)
{
	enum { N = 600, IN = 30, OUT = 12, R = 2 };
	float *X = malloc(sizeof(float) * N * IN), *Y = malloc(sizeof(float) * N * OUT);
	float A[8 * IN], B[OUT * 8], w[OUT];
	double r0, r1, rw_u, rw_w;
	uint32_t o;

	lowrank_data(X, Y, N, IN, OUT, R, 0.05f);
	CHECK(polar_calib_rrr(X, Y, N, IN, OUT, R, NULL, 1e-4, NULL, NULL, 0,
			      A, B) == 0);
	r0 = residual(X, Y, NULL, NULL, N, IN, OUT, R, NULL);
	r1 = residual(X, Y, A, B, N, IN, OUT, R, NULL);
	/* Only the noise (variance 0.05^2/3 per entry) is left. */
	CHECK(r1 < 0.01 * r0);
	CHECK(r1 < 2.0 * N * OUT * 0.0025 / 3);

	/* Weighted, rank 1 of a rank-2 signal: the weights decide what fits. */
	for (o = 0; o < OUT; o++)
		w[o] = o < 3 ? 100.0f : 1.0f;
	CHECK(polar_calib_rrr(X, Y, N, IN, OUT, 1, NULL, 1e-4, NULL, NULL, 0,
			      A, B) == 0);
	rw_u = residual(X, Y, A, B, N, IN, OUT, 1, w);
	CHECK(polar_calib_rrr(X, Y, N, IN, OUT, 1, w, 1e-4, NULL, NULL, 0,
			      A, B) == 0);
	rw_w = residual(X, Y, A, B, N, IN, OUT, 1, w);
	CHECK(rw_w <= rw_u * (1 + 1e-6));
	/* A huge ridge towards given factors returns (about) them. */
	CHECK(polar_calib_rrr(X, Y, N, IN, OUT, R, NULL, 1e-4, NULL, NULL, 0,
			      A, B) == 0);
	{
		float A2[8 * IN], B2[OUT * 8];

		CHECK(polar_calib_rrr(X, Y, N, IN, OUT, R, NULL, 1e6, A, B, R,
				      A2, B2) == 0);
		CHECK(fabs(residual(X, Y, A2, B2, N, IN, OUT, R, NULL) - r1) <
		      0.05 * r1 + 1e-3);
	}
	free(X);
	free(Y);
}

/*
 * The ridge solution itself, with fewer rows than inputs (the n x n dual
 * system) and with more (the in x in one): at full rank B A = M^T, which
 * must satisfy (X^T X + l I) M = X^T R + l M0, M0 = (B0 A0)^T,
 * l = lambda_rel * trace(X^T X) / in.
 */
static double ridge_equation_error(size_t n)
{
	enum { IN = 100, OUT = 4, R0 = 2 };
	float *X = malloc(sizeof(float) * n * IN);
	float *Y = malloc(sizeof(float) * n * OUT);
	float A[OUT * IN], B[OUT * OUT], A0[R0 * IN], B0[OUT * R0];
	double M[IN * OUT], lambda = 0, err = 0, norm = 0;
	const double lambda_rel = 0.1;
	uint32_t i, j, a, k;
	size_t r;

	fill(X, n * IN);
	fill(Y, n * OUT);
	fill(A0, R0 * IN);
	fill(B0, OUT * R0);
	CHECK(polar_calib_rrr(X, Y, n, IN, OUT, OUT, NULL, lambda_rel, A0, B0,
			      R0, A, B) == 0);
	for (r = 0; r < n * IN; r++)
		lambda += (double)X[r] * X[r];
	lambda *= lambda_rel / IN;
	for (i = 0; i < IN; i++)
		for (a = 0; a < OUT; a++) {
			M[i * OUT + a] = 0;
			for (k = 0; k < OUT; k++)
				M[i * OUT + a] += (double)B[a * OUT + k] *
						  A[k * IN + i];
		}
	for (i = 0; i < IN; i++)
		for (a = 0; a < OUT; a++) {
			double lhs = lambda * M[i * OUT + a], rhs = 0, m0 = 0;

			for (j = 0; j < IN; j++) {
				double g = 0;

				for (r = 0; r < n; r++)
					g += (double)X[r * IN + i] * X[r * IN + j];
				lhs += g * M[j * OUT + a];
			}
			for (r = 0; r < n; r++)
				rhs += (double)X[r * IN + i] * Y[r * OUT + a];
			for (k = 0; k < R0; k++)
				m0 += (double)B0[a * R0 + k] * A0[k * IN + i];
			rhs += lambda * m0;
			err += (lhs - rhs) * (lhs - rhs);
			norm += rhs * rhs;
		}
	free(X);
	free(Y);
	return sqrt(err / norm);
}

static void test_rrr_ridge_solution(void)
{
	CHECK(ridge_equation_error(40) < 1e-4);		/* n < in: dual */
	CHECK(ridge_equation_error(300) < 1e-4);	/* n > in: primal */
}

/*
 * The output Fisher is computed on a thread per CPU and summed in sample
 * order, from gradients that leave out the weights': it must equal the
 * plain sequential sum of the outer products of polar_model_grad()'s
 * per-sample bias gradients bit for bit, for linear and conv layers.
 */
static void fisher_matches_grad(const char *arch)
{
	enum { N = 9 };
	struct polar_model m;
	double *gram[POLAR_MODEL_MAX_LAYERS], *ref;
	float *x, *grad;
	uint8_t labels[N];
	size_t in, s;
	unsigned int l, k;
	uint32_t a, b;
	int same = 1;

	CHECK(polar_model_create(&m, arch, 5) == 0);
	in = (size_t)m.in_c * m.in_h * m.in_w;
	x = malloc(sizeof(float) * N * in);
	grad = malloc(sizeof(float) * m.nparams);
	fill(x, N * in);
	for (s = 0; s < N; s++)
		labels[s] = (uint8_t)(s % m.classes);
	CHECK(polar_calib_output_fisher_full(&m, N, x, labels, gram) == 0);
	for (l = 0; l < m.nlayers; l++) {
		uint32_t rows = m.layers[l].rows;

		if (!rows)
			continue;
		ref = calloc((size_t)rows * rows, sizeof(double));
		for (s = 0; s < N; s++) {
			const float *g = grad + m.layers[l].bias_off;

			memset(grad, 0, sizeof(float) * m.nparams);
			CHECK(polar_model_grad(&m, 1, x + s * in, labels + s, 1.0f,
					       grad, NULL, NULL) == 0);
			for (a = 0; a < rows; a++)
				for (b = 0; b < rows; b++)
					ref[(size_t)a * rows + b] +=
						(double)g[a] * g[b];
		}
		for (k = 0; k < rows * rows; k++)
			same &= ref[k] / N == gram[l][k];
		free(ref);
		free(gram[l]);
	}
	CHECK(same, "%s", arch);
	free(x);
	free(grad);
	polar_model_free(&m);
}

static void test_fisher_threads(void)
{
	fisher_matches_grad("mlp");
	fisher_matches_grad("cnn");
}

/*
 * The fits' grams are computed on and above the diagonal and mirrored:
 * they must be polar_sgemm()'s bits for the whole matrix, for X^T X and
 * X X^T, on one thread and on several, at sizes no block divides.
 */
static void test_gram_symmetric(void)
{
	static const size_t shapes[][2] = { { 37, 500 }, { 150, 301 },
					     { 200, 2000 }, { 400, 700 } };
	size_t i, t;

	for (i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		size_t n = shapes[i][0], k = shapes[i][1];
		float *x = malloc(sizeof(float) * n * k);
		float *want = malloc(sizeof(float) * n * n);
		float *got = malloc(sizeof(float) * n * n);

		CHECK(x && want && got);
		if (!x || !want || !got)
			goto next;
		fill(x, n * k);
		for (t = 0; t < 2; t++) {
			/* t = 1: x is k x n and C = x^T x; else n x k, x x^T */
			polar_sgemm(t == 1, t == 0, n, n, k, x, t ? n : k, x,
				    t ? n : k, 0.0f, want, n);
			memset(got, 0xff, sizeof(float) * n * n);
			polar_gram_sym(t == 1, n, k, x, t ? n : k, got, n);
			CHECK(!memcmp(want, got, sizeof(float) * n * n),
			      "n %zu k %zu %s", n, k, t ? "x^T x" : "x x^T");
		}
next:
		free(x);
		free(want);
		free(got);
	}
}

/* sum over rows of e^T W e, e = R - B A x (W out x out). */
static double metric_residual(const float *X, const float *R, const float *A,
			      const float *B, size_t n, uint32_t in,
			      uint32_t out, uint32_t r, const double *W)
{
	double acc = 0, z[8], e[16];
	size_t k;
	uint32_t o, p, i, j;

	for (k = 0; k < n; k++) {
		for (j = 0; j < r; j++) {
			z[j] = 0;
			for (i = 0; i < in; i++)
				z[j] += (double)A[j * in + i] * X[k * in + i];
		}
		for (o = 0; o < out; o++) {
			e[o] = R[k * out + o];
			for (j = 0; j < r; j++)
				e[o] -= (double)B[o * r + j] * z[j];
		}
		for (o = 0; o < out; o++)
			for (p = 0; p < out; p++)
				acc += e[o] * W[o * out + p] * e[p];
	}
	return acc;
}

/*
 * A whole output metric: with a diagonal one it is the weighted fit; with
 * one that only cares about a direction mixing every output, a rank-1 fit
 * in that metric beats both the plain and the diagonally weighted fit.
 */
static void test_rrr_metric(void)
{
	enum { N = 600, IN = 30, OUT = 12, R = 3 };
	float *X = malloc(sizeof(float) * N * IN), *Y = malloc(sizeof(float) * N * OUT);
	float A[8 * IN], B[OUT * 8], A2[8 * IN], B2[OUT * 8], w[OUT], u[OUT];
	double W[OUT * OUT], r_plain, r_diag, r_full, un = 0;
	uint32_t o, p;

	lowrank_data(X, Y, N, IN, OUT, R, 0.05f);
	/* Diagonal metric = per-output weights. */
	memset(W, 0, sizeof(W));
	for (o = 0; o < OUT; o++) {
		w[o] = 0.5f + (float)o;
		W[o * OUT + o] = w[o];
	}
	CHECK(polar_calib_rrr(X, Y, N, IN, OUT, 2, w, 1e-4, NULL, NULL, 0,
			      A, B) == 0);
	CHECK(polar_calib_rrr_metric(X, Y, N, IN, OUT, 2, W, 1e-4, NULL, NULL,
				     0, A2, B2) == 0);
	r_diag = metric_residual(X, Y, A, B, N, IN, OUT, 2, W);
	r_full = metric_residual(X, Y, A2, B2, N, IN, OUT, 2, W);
	CHECK(fabs(r_full - r_diag) <= 1e-4 * r_diag);

	/* W = 1e-4 I + u u^T, u a unit direction across all outputs. */
	fill(u, OUT);
	for (o = 0; o < OUT; o++)
		un += (double)u[o] * u[o];
	for (o = 0; o < OUT; o++)
		for (p = 0; p < OUT; p++)
			W[o * OUT + p] = u[o] * u[p] / un + (o == p ? 1e-4 : 0);
	for (o = 0; o < OUT; o++)
		w[o] = (float)W[o * OUT + o];
	CHECK(polar_calib_rrr(X, Y, N, IN, OUT, 1, NULL, 1e-4, NULL, NULL, 0,
			      A, B) == 0);
	r_plain = metric_residual(X, Y, A, B, N, IN, OUT, 1, W);
	CHECK(polar_calib_rrr(X, Y, N, IN, OUT, 1, w, 1e-4, NULL, NULL, 0,
			      A, B) == 0);
	r_diag = metric_residual(X, Y, A, B, N, IN, OUT, 1, W);
	CHECK(polar_calib_rrr_metric(X, Y, N, IN, OUT, 1, W, 1e-4, NULL, NULL,
				     0, A, B) == 0);
	r_full = metric_residual(X, Y, A, B, N, IN, OUT, 1, W);
	CHECK(r_full < 0.5 * r_plain);
	CHECK(r_full < 0.5 * r_diag);

	/* Not positive definite: refused, saying so. */
	for (o = 0; o < OUT; o++)
		W[o * OUT + o] -= 2e-4;
	CHECK(polar_calib_rrr_metric(X, Y, N, IN, OUT, 1, W, 1e-4, NULL, NULL,
				     0, A, B) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "positive definite") != NULL);
	free(X);
	free(Y);
}

/*
 * As many noisy rows as inputs: the smallest ridge fits the noise. The
 * ridge chosen on held-out rows must predict fresh rows of the same map
 * better, and the factors must be the fit on all rows with it.
 */
static void test_rrr_select(void)
{
	enum { N = 60, NEW = 400, IN = 60, OUT = 10, R = 2 };
	static const double lambdas[] = { 1e-6, 1e-2, 1.0, 100.0 };
	float *X = malloc(sizeof(float) * (N + NEW) * IN);
	float *Y = malloc(sizeof(float) * (N + NEW) * OUT);
	float A[8 * IN], B[OUT * 8], A2[8 * IN], B2[OUT * 8];
	uint8_t held_out[N];
	double chosen = -1, r_sel, r_small;
	size_t k;

	lowrank_data(X, Y, N + NEW, IN, OUT, R, 2.0f);
	for (k = 0; k < N; k++)
		held_out[k] = k % 5 == 4;
	CHECK(polar_calib_rrr_select(X, Y, N, IN, OUT, R, NULL, held_out,
				     lambdas, 4, NULL, NULL, 0, A, B,
				     &chosen) == 0);
	CHECK(chosen > lambdas[0]);
	CHECK(polar_calib_rrr_metric(X, Y, N, IN, OUT, R, NULL, chosen, NULL,
				     NULL, 0, A2, B2) == 0);
	CHECK(!memcmp(A, A2, sizeof(float) * R * IN) &&
	      !memcmp(B, B2, sizeof(float) * OUT * R));
	r_sel = residual(X + N * IN, Y + N * OUT, A, B, NEW, IN, OUT, R, NULL);
	CHECK(polar_calib_rrr_metric(X, Y, N, IN, OUT, R, NULL, lambdas[0],
				     NULL, NULL, 0, A2, B2) == 0);
	r_small = residual(X + N * IN, Y + N * OUT, A2, B2, NEW, IN, OUT, R,
			   NULL);
	CHECK(r_sel < 0.2 * r_small);

	/* Nothing left to fit on, or nothing to choose from: refused. */
	memset(held_out, 1, sizeof(held_out));
	CHECK(polar_calib_rrr_select(X, Y, N, IN, OUT, R, NULL, held_out,
				     lambdas, 4, NULL, NULL, 0, A, B,
				     &chosen) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "held out") != NULL);
	CHECK(polar_calib_rrr_select(X, Y, N, IN, OUT, R, NULL, held_out,
				     lambdas, 0, NULL, NULL, 0, A, B,
				     &chosen) == -EINVAL);
	free(X);
	free(Y);
}

static void test_adc_fs(void)
{
	enum { OUT = 4, IN = 64 };
	struct polar_qweights q;
	float w[OUT * IN];
	int8_t x[2 * IN];
	uint32_t fs = 0, i;

	for (i = 0; i < OUT * IN; i++)
		w[i] = 1.0f;	/* INT8 code 127: planes 0..6 */
	CHECK(polar_quantize_weights(w, OUT, IN, POLAR_WFMT_INT8, 0, &q) == 0);
	memset(x, 1, sizeof(x));	/* UINT8 code 1: plane 0 */
	CHECK(polar_calib_adc_fs(&q, x, 2, POLAR_XFMT_UINT8, 128, 0, 100.0,
				 &fs) == 0);
	CHECK(fs == 64 * 256);
	/* 7 of the 64 plane pairs carry 64 ON cells, the others none. */
	CHECK(polar_calib_adc_fs(&q, x, 2, POLAR_XFMT_UINT8, 128, 0, 80.0,
				 &fs) == 0);
	CHECK(fs == 256);
	/* Row groups of 16: every ON conversion sums 16 cells. */
	CHECK(polar_calib_adc_fs(&q, x, 2, POLAR_XFMT_UINT8, 128, 16, 100.0,
				 &fs) == 0);
	CHECK(fs == 16 * 256);
	CHECK(polar_calib_adc_fs(&q, x, 2, POLAR_XFMT_UINT8, 128, 0, 0.0,
				 &fs) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "percentile") != NULL);
	polar_qweights_free(&q);
}

/*
 * Whole-cell reconstruction rounds every conversion to cells: a step below
 * one cell (FS < L) only rounds twice and clips earlier, so the range is
 * raised to L; codes keep the finer step, and the statistics' choice.
 */
static void test_adc_fs_recon(void)
{
	struct polar_caps caps = { .adc_bits = 5,
				   .recon = POLAR_CIM_RECON_CELLS };

	CHECK(polar_calib_adc_fs_recon(20 * 256, &caps) == 31 * 256);
	CHECK(polar_calib_adc_fs_recon(40 * 256, &caps) == 40 * 256);
	caps.recon_frac_bits = 8;
	CHECK(polar_calib_adc_fs_recon(20 * 256, &caps) == 20 * 256);
	caps.recon_frac_bits = 0;
	caps.recon = POLAR_CIM_RECON_CODES;
	CHECK(polar_calib_adc_fs_recon(20 * 256, &caps) == 20 * 256);
	caps.recon = POLAR_CIM_RECON_CELLS;
	caps.adc_bits = 8;
	CHECK(polar_calib_adc_fs_recon(128 * 256, &caps) == 255 * 256);
}

static void test_errors(void)
{
	float E[4 * 6] = { 0 }, A[6 * 8], B[4 * 8], s[6] = { 1, 1, 1, 1, 1, 1 };

	CHECK(polar_calib_svd(E, 4, 6, 0, A, B) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "rank 0") != NULL);
	CHECK(polar_calib_svd(E, 4, 6, 5, A, B) == -EINVAL);
	CHECK(polar_calib_svd(NULL, 4, 6, 2, A, B) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "NULL") != NULL);
	CHECK(polar_calib_act(E, 4, 6, NULL, 2, A, B) == -EINVAL);
	s[3] = -1;
	CHECK(polar_calib_act(E, 4, 6, s, 2, A, B) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "s[3]") != NULL);
	E[7] = NAN;
	CHECK(polar_calib_svd(E, 4, 6, 2, A, B) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "not finite") != NULL);
	E[7] = 0;
	CHECK(polar_calib_rrr(E, E, 4, 6, 6, 2, NULL, 0.0, NULL, NULL, 0, A,
			      B) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "lambda") != NULL);
	CHECK(polar_calib_rrr(E, E, 0, 6, 6, 2, NULL, 0.1, NULL, NULL, 0, A,
			      B) == -EINVAL);
	CHECK(polar_calib_rrr(E, E, 4, 6, 6, 2, NULL, 0.1, A, NULL, 2, A,
			      B) == -EINVAL);
	CHECK(polar_calib_act_scales(E, 0, 6, s) == -EINVAL);
}

int main(void)
{
	RUN(test_symeig);
	RUN(test_symeig_refuses_nan);
	RUN(test_svd_exact);
	RUN(test_act_weighting);
	RUN(test_rrr);
	RUN(test_rrr_metric);
	RUN(test_rrr_select);
	RUN(test_adc_fs);
	RUN(test_adc_fs_recon);
	RUN(test_errors);
	/* Last: they draw from frand(), and the others' data stay as they were. */
	RUN(test_rrr_ridge_solution);
	RUN(test_fisher_threads);
	RUN(test_gram_symmetric);
	return unit_summary();
}
