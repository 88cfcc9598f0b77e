// SPDX-License-Identifier: MIT
/*
 * Calibration of polarized layers (see <polar/calib.h>): rank-r factor
 * fitting (svd, act, reduced-rank regression), ADC full scale from
 * partial-sum statistics, and per-output loss sensitivity.
 */
#define _GNU_SOURCE
#include <emmintrin.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lapacke.h>

#include "polar/calib.h"
#include "polar/lowrank.h"
#include "polar_internal.h"

/* ---- Dense symmetric eigen-decomposition (LAPACK) ----------------------- */

/*
 * LAPACK's divide and conquer (dsyevd) rather than our cyclic Jacobi: on
 * the Gram matrices of the fits (n 32..256) it was 15 to 130 times faster
 * and left a residual |S v - l v| / l_max of 2e-16 where Jacobi left 1e-14
 * (lib/README.md, how it was measured).
 */
int polar_calib_symeig(double *S, uint32_t n, double *evals, double *evecs)
{
	uint32_t i, k;
	lapack_int info;

	POLAR_NONNULL("calib_symeig", S);
	POLAR_NONNULL("calib_symeig", evals);
	POLAR_NONNULL("calib_symeig", evecs);
	if (!n || n > 4096)
		return polar_fail(-EINVAL, "calib_symeig: n is %u, allowed "
				  "1..4096", n);
	/* A NaN or an infinity has no decomposition: say so, not garbage. */
	for (i = 0; i < (size_t)n * n; i++)
		if (!isfinite(S[i]))
			return polar_fail(-EDOM, "calib_symeig: entry (%u, %u) "
					  "is %g: a NaN or infinite matrix",
					  i / n, i % n, S[i]);
	/* Ascending eigenvalues, eigenvector k in column k of S. */
	info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)n, S,
			      (lapack_int)n, evals);
	if (info == LAPACK_WORK_MEMORY_ERROR)
		return polar_fail(-ENOMEM, "out of memory");
	if (info > 0)
		return polar_fail(-EDOM, "calib_symeig: no convergence (LAPACK "
				  "dsyevd: %d off-diagonal elements did not "
				  "converge to zero)", (int)info);
	if (info < 0)
		return polar_fail(-EINVAL, "calib_symeig: LAPACK dsyevd refused "
				  "argument %d", (int)-info);
	/* The library's order: descending. */
	for (k = 0; k < n / 2; k++) {
		double t = evals[k];

		evals[k] = evals[n - 1 - k];
		evals[n - 1 - k] = t;
	}
	for (i = 0; i < n; i++)
		for (k = 0; k < n; k++)
			evecs[(size_t)i * n + k] = S[(size_t)i * n + n - 1 - k];
	return 0;
}

/* ---- SVD-based fits --------------------------------------------------------- */

static int check_rank(const char *fn, uint32_t out, uint32_t in,
		      uint32_t rank)
{
	if (!out || !in)
		return polar_fail(-EINVAL, "%s: shape %ux%u", fn, out, in);
	if (!rank || rank > POLAR_LOWRANK_MAX_RANK || rank > out || rank > in)
		return polar_fail(-EINVAL, "%s: rank %u for a %ux%u layer "
				  "(allowed 1..min(%u, out, in))", fn, rank,
				  out, in, POLAR_LOWRANK_MAX_RANK);
	return 0;
}

/* Top-r left singular vectors of E diag(s) (s NULL: 1), out x rank into U. */
static int left_vectors(const float *E, uint32_t out, uint32_t in,
			const float *s, uint32_t rank, double *U)
{
	double *G = malloc(sizeof(double) * out * out);
	double *V = malloc(sizeof(double) * out * out);
	double *ev = malloc(sizeof(double) * out);
	uint32_t a, b, i, k;
	int ret;

	if (!G || !V || !ev) {
		ret = polar_fail(-ENOMEM, "out of memory");
		goto out;
	}
	for (a = 0; a < out; a++) {
		for (b = a; b < out; b++) {
			double acc = 0.0;

			for (i = 0; i < in; i++) {
				double w = s ? (double)s[i] * s[i] : 1.0;

				acc += (double)E[(size_t)a * in + i] *
				       E[(size_t)b * in + i] * w;
			}
			G[a * out + b] = G[b * out + a] = acc;
		}
	}
	ret = polar_calib_symeig(G, out, ev, V);
	if (!ret)
		for (a = 0; a < out; a++)
			for (k = 0; k < rank; k++)
				U[a * rank + k] = V[(size_t)a * out + k];
out:
	free(G);
	free(V);
	free(ev);
	return ret;
}

/* B = U, A = U^T E. */
static void factors_from_u(const float *E, uint32_t out, uint32_t in,
			   const double *U, uint32_t rank, float *A, float *B)
{
	uint32_t a, i, k;

	for (k = 0; k < rank; k++) {
		for (i = 0; i < in; i++) {
			double acc = 0.0;

			for (a = 0; a < out; a++)
				acc += U[a * rank + k] * E[(size_t)a * in + i];
			A[(size_t)k * in + i] = (float)acc;
		}
	}
	for (a = 0; a < out; a++)
		for (k = 0; k < rank; k++)
			B[a * rank + k] = (float)U[a * rank + k];
}

static int act_fit(const char *fn, const float *E, uint32_t out, uint32_t in,
		   const float *s, uint32_t rank, float *A, float *B)
{
	double *U;
	size_t i;
	int ret;

	polar_clear_error();
	POLAR_NONNULL(fn, E);
	POLAR_NONNULL(fn, A);
	POLAR_NONNULL(fn, B);
	ret = check_rank(fn, out, in, rank);
	if (ret)
		return ret;
	for (i = 0; i < (size_t)out * in; i++)
		if (!isfinite(E[i]))
			return polar_fail(-EINVAL, "%s: E[%zu][%zu] is not "
					  "finite", fn, i / in, i % in);
	if (s)
		for (i = 0; i < in; i++)
			if (!isfinite(s[i]) || s[i] < 0)
				return polar_fail(-EINVAL, "%s: scale s[%zu] = %g",
						  fn, i, s[i]);
	U = malloc(sizeof(double) * out * rank);
	if (!U)
		return polar_fail(-ENOMEM, "out of memory");
	ret = left_vectors(E, out, in, s, rank, U);
	if (!ret)
		factors_from_u(E, out, in, U, rank, A, B);
	free(U);
	return ret;
}

int polar_calib_svd(const float *E, uint32_t out, uint32_t in, uint32_t rank,
		    float *A, float *B)
{
	return act_fit("calib_svd", E, out, in, NULL, rank, A, B);
}

int polar_calib_act(const float *E, uint32_t out, uint32_t in, const float *s,
		    uint32_t rank, float *A, float *B)
{
	if (!s) {
		polar_clear_error();
		return polar_null_arg("calib_act", "s");
	}
	return act_fit("calib_act", E, out, in, s, rank, A, B);
}

int polar_calib_act_scales(const float *X, size_t n, uint32_t in, float *s)
{
	double *acc;
	size_t k;
	uint32_t i;

	polar_clear_error();
	POLAR_NONNULL("calib_act_scales", X);
	POLAR_NONNULL("calib_act_scales", s);
	if (!n || !in)
		return polar_fail(-EINVAL, "calib_act_scales: %s is 0 (empty "
				  "input)", !n ? "n" : "in");
	acc = calloc(in, sizeof(double));
	if (!acc)
		return polar_fail(-ENOMEM, "out of memory");
	for (k = 0; k < n; k++)
		for (i = 0; i < in; i++)
			acc[i] += (double)X[k * in + i] * X[k * in + i];
	for (i = 0; i < in; i++)
		s[i] = (float)sqrt(acc[i] / (double)n);
	free(acc);
	return 0;
}

/* ---- reduced-rank ridge regression ------------------------------------------ */

/* Online CPUs, 1..max. */
static unsigned int calib_threads(unsigned int max)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > (long)max ? max : (unsigned int)n;
}

#define GRAM_MAX_THREADS 16

struct gram_part {
	int ta, tb;
	size_t m, n, k, lda, ldb, ldc;
	const float *a, *b;
	float *c;
};

static void *gram_part_run(void *p)
{
	struct gram_part *g = p;

	polar_sgemm(g->ta, g->tb, g->m, g->n, g->k, g->a, g->lda, g->b, g->ldb,
		    0.0f, g->c, g->ldc);
	return NULL;
}

/*
 * C = op(A) op(B) (beta 0) for the grams of the fits, its columns split
 * over a thread per CPU. polar_sgemm() computes each element of C the
 * same way whatever columns it is given, so the result does not depend
 * on the split.
 */
static void gram_sgemm(int ta, int tb, size_t m, size_t n, size_t k,
		       const float *a, size_t lda, const float *b, size_t ldb,
		       float *c, size_t ldc)
{
	struct gram_part part[GRAM_MAX_THREADS];
	pthread_t th[GRAM_MAX_THREADS];
	unsigned int t, threads = calib_threads(GRAM_MAX_THREADS), started;
	size_t per, j0;

	/* Small products, or too few columns to share: one call. */
	if ((double)m * n * k < 1e7 || n < 32 * (size_t)threads)
		threads = 1;
	per = (n / threads + 15) / 16 * 16;
	for (t = 0, j0 = 0; t < threads && j0 < n; t++, j0 += per) {
		size_t w = n - j0 < per ? n - j0 : per;

		part[t] = (struct gram_part){ .ta = ta, .tb = tb, .m = m,
			.n = w, .k = k, .lda = lda, .ldb = ldb, .ldc = ldc,
			.a = a, .b = tb ? b + j0 * ldb : b + j0, .c = c + j0 };
	}
	threads = t;
	for (started = 1; started < threads; started++)
		if (pthread_create(&th[started], NULL, gram_part_run,
				   &part[started]))
			break;
	gram_part_run(&part[0]);
	for (t = started; t < threads; t++)
		gram_part_run(&part[t]);
	for (t = 1; t < started; t++)
		pthread_join(th[t], NULL);
}

#define GRAM_BLOCK 64	/* rows of a symmetric gram per polar_sgemm() */

struct gram_sym_job {
	int ta;
	size_t n, k, lda, ldc;
	const float *a;
	float *c;
	unsigned int t, threads;
};

/* Row blocks t, 2T - 1 - t, 2T + t, ...: the triangle's work evenly. */
static void *gram_sym_run(void *p)
{
	struct gram_sym_job *g = p;
	size_t nb = (g->n + GRAM_BLOCK - 1) / GRAM_BLOCK, b;

	for (b = 0; b < nb; b++) {
		size_t i0 = b * GRAM_BLOCK, rows;
		unsigned int owner = (unsigned int)(b % (2 * g->threads));

		if (owner >= g->threads)
			owner = 2 * g->threads - 1 - owner;
		if (owner != g->t)
			continue;
		rows = g->n - i0 < GRAM_BLOCK ? g->n - i0 : GRAM_BLOCK;
		/* rows [i0, i0 + rows) x columns [i0, n) */
		polar_sgemm(g->ta, !g->ta, rows, g->n - i0, g->k,
			    g->ta ? g->a + i0 : g->a + i0 * g->lda, g->lda,
			    g->ta ? g->a + i0 : g->a + i0 * g->lda, g->lda,
			    0.0f, g->c + i0 * g->ldc + i0, g->ldc);
	}
	return NULL;
}

/*
 * polar_gram_sym(): C = A^T A (ta) or A A^T, n x n, computed on and above
 * the diagonal and mirrored below. polar_sgemm() sums each element's k
 * products in the same order wherever the element lies, and x_i x_j is
 * x_j x_i, so the mirror is the bits that computing it would give: half
 * the work of gram_sgemm() for the same matrix.
 */
void polar_gram_sym(int ta, size_t n, size_t k, const float *a, size_t lda,
		    float *c, size_t ldc)
{
	struct gram_sym_job job[GRAM_MAX_THREADS];
	pthread_t th[GRAM_MAX_THREADS];
	unsigned int t, threads = calib_threads(GRAM_MAX_THREADS), started;
	size_t i, j;

	if ((double)n * n * k < 2e7 || n < 2 * GRAM_BLOCK)
		threads = 1;
	for (t = 0; t < threads; t++)
		job[t] = (struct gram_sym_job){ .ta = ta, .n = n, .k = k,
			.lda = lda, .ldc = ldc, .a = a, .c = c, .t = t,
			.threads = threads };
	for (started = 1; started < threads; started++)
		if (pthread_create(&th[started], NULL, gram_sym_run,
				   &job[started]))
			break;
	gram_sym_run(&job[0]);
	for (t = started; t < threads; t++)
		gram_sym_run(&job[t]);
	for (t = 1; t < started; t++)
		pthread_join(th[t], NULL);
	for (i = 1; i < n; i++)
		for (j = 0; j < i; j++)
			c[i * ldc + j] = c[j * ldc + i];
}

/*
 * In-place Cholesky of the n x n SPD matrix (lower triangle used and
 * returned), by LAPACK's dpotrf. Non-zero when the matrix is not positive
 * definite (or holds a NaN).
 */
static int cholesky(double *L, uint32_t n)
{
	return LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)n, L,
			      (lapack_int)n) != 0;
}

/* Solves L L^T Y = Y in place for m right-hand sides (Y n x m row-major). */
static void chol_solve(const double *L, uint32_t n, double *Y, uint32_t m)
{
	uint32_t i, k, c;

	for (i = 0; i < n; i++) {
		for (k = 0; k < i; k++) {
			double l = L[(size_t)i * n + k];

			for (c = 0; c < m; c++)
				Y[(size_t)i * m + c] -= l * Y[(size_t)k * m + c];
		}
		for (c = 0; c < m; c++)
			Y[(size_t)i * m + c] /= L[(size_t)i * n + i];
	}
	for (i = n; i-- > 0;) {
		for (k = i + 1; k < n; k++) {
			double l = L[(size_t)k * n + i];

			for (c = 0; c < m; c++)
				Y[(size_t)i * m + c] -= l * Y[(size_t)k * m + c];
		}
		for (c = 0; c < m; c++)
			Y[(size_t)i * m + c] /= L[(size_t)i * n + i];
	}
}

/*
 * Symmetric square root and inverse square root of the SPD out x out
 * matrix W (row-major, not changed) into S and Si.
 */
static int spd_sqrt(const double *W, uint32_t out, double *S, double *Si)
{
	double *T = malloc(sizeof(double) * out * out);
	double *V = malloc(sizeof(double) * out * out);
	double *ev = malloc(sizeof(double) * out);
	uint32_t a, b, k;
	int ret;

	if (!T || !V || !ev) {
		ret = polar_fail(-ENOMEM, "out of memory");
		goto out;
	}
	for (a = 0; a < out; a++)
		for (b = 0; b < out; b++)
			T[a * out + b] = 0.5 * (W[a * out + b] + W[b * out + a]);
	ret = polar_calib_symeig(T, out, ev, V);
	if (ret)
		goto out;
	if (!(ev[out - 1] > 0) || !isfinite(ev[0])) {
		ret = polar_fail(-EINVAL, "calib_rrr: the output metric is not "
				 "positive definite (eigenvalue %g)", ev[out - 1]);
		goto out;
	}
	for (a = 0; a < out; a++)
		for (b = 0; b < out; b++) {
			double sq = 0.0, isq = 0.0;

			for (k = 0; k < out; k++) {
				double p = V[(size_t)a * out + k] *
					   V[(size_t)b * out + k];

				sq += p * sqrt(ev[k]);
				isq += p / sqrt(ev[k]);
			}
			S[a * out + b] = sq;
			Si[a * out + b] = isq;
		}
out:
	free(T);
	free(V);
	free(ev);
	return ret;
}

static int rrr(const float *X, const float *R, size_t n, uint32_t in,
	       uint32_t out, uint32_t rank, const double *metric,
	       double lambda_rel, const float *A0, const float *B0,
	       uint32_t rank0, float *A, float *B, const float *gram_xx,
	       const float *gram_xr);

static int check_metric(const double *metric, uint32_t out)
{
	size_t r;

	for (r = 0; metric && r < (size_t)out * out; r++)
		if (!isfinite(metric[r]))
			return polar_fail(-EINVAL, "calib_rrr: metric[%zu][%zu] "
					  "is not finite", r / out, r % out);
	return 0;
}

int polar_calib_rrr(const float *X, const float *R, size_t n, uint32_t in,
		    uint32_t out, uint32_t rank, const float *out_weight,
		    double lambda_rel, const float *A0, const float *B0,
		    uint32_t rank0, float *A, float *B)
{
	double *metric = NULL;
	uint32_t a;
	int ret;

	polar_clear_error();
	if (out_weight) {
		for (a = 0; a < out; a++)
			if (!(out_weight[a] > 0) || !isfinite(out_weight[a]))
				return polar_fail(-EINVAL, "calib_rrr: output "
						  "weight %u is %g (must be > 0)",
						  a, out_weight[a]);
		metric = calloc((size_t)out * out, sizeof(double));
		if (!metric)
			return polar_fail(-ENOMEM, "out of memory");
		for (a = 0; a < out; a++)
			metric[(size_t)a * out + a] = out_weight[a];
	}
	ret = rrr(X, R, n, in, out, rank, metric, lambda_rel, A0, B0, rank0,
		  A, B, NULL, NULL);
	free(metric);
	return ret;
}

int polar_calib_rrr_metric(const float *X, const float *R, size_t n,
			   uint32_t in, uint32_t out, uint32_t rank,
			   const double *metric, double lambda_rel,
			   const float *A0, const float *B0, uint32_t rank0,
			   float *A, float *B)
{
	int ret;

	polar_clear_error();
	ret = check_metric(metric, out);
	if (ret)
		return ret;
	return rrr(X, R, n, in, out, rank, metric, lambda_rel, A0, B0, rank0,
		   A, B, NULL, NULL);
}

/*
 * The ridge solution M = (X^T X + l I)^-1 (X^T R + l M0) (in x out) when
 * there are fewer rows than inputs (fc1: 1568 inputs, 512 calibration
 * images), through the n x n system instead of the in x in one:
 * (X^T X + l I)^-1 X^T = X^T (X X^T + l I)^-1, so
 * M = M0 + X^T (X X^T + l I)^-1 (R - X M0): a Cholesky of n rows instead
 * of in, (in/n)^3 times less work. gram is X X^T (float, n x n); lambda
 * absolute. M is written.
 */
static int ridge_dual(const float *X, const float *R, size_t n, uint32_t in,
		      uint32_t out, const float *gram, double lambda,
		      const float *A0, const float *B0, uint32_t rank0,
		      double *M)
{
	double *L = malloc(sizeof(double) * n * n);
	double *Y = malloc(sizeof(double) * n * out);
	double z[POLAR_LOWRANK_MAX_RANK];
	size_t k, j;
	uint32_t i, a, q;
	int ret = 0;

	if (!L || !Y) {
		ret = polar_fail(-ENOMEM, "out of memory");
		goto out;
	}
	for (k = 0; k < n; k++)
		for (j = 0; j <= k; j++)
			L[k * n + j] = 0.5 * ((double)gram[k * n + j] +
					      gram[j * n + k]) +
				       (k == j ? lambda : 0.0);
	/* M0 = (B0 A0)^T, and Y = R - X M0 = R - (X A0^T) B0^T */
	for (i = 0; i < in; i++)
		for (a = 0; a < out; a++) {
			double m0 = 0.0;

			if (A0)
				for (q = 0; q < rank0; q++)
					m0 += (double)B0[a * rank0 + q] *
					      A0[(size_t)q * in + i];
			M[(size_t)i * out + a] = m0;
		}
	for (k = 0; k < n; k++) {
		const float *x = X + k * in;

		for (q = 0; A0 && q < rank0; q++) {
			z[q] = 0.0;
			for (i = 0; i < in; i++)
				z[q] += (double)A0[(size_t)q * in + i] * x[i];
		}
		for (a = 0; a < out; a++) {
			double v = R[k * out + a];

			for (q = 0; A0 && q < rank0; q++)
				v -= (double)B0[a * rank0 + q] * z[q];
			Y[k * out + a] = v;
		}
	}
	if (cholesky(L, (uint32_t)n)) {
		ret = polar_fail(-EINVAL, "calib_rrr: X X^T + lambda I is not "
				 "positive definite (lambda %g)", lambda);
		goto out;
	}
	chol_solve(L, (uint32_t)n, Y, out);
	/*
	 * M += X^T Y, two outputs at a time in SSE2's packed doubles: each
	 * lane adds the products in the scalar loop's order (the same bits)
	 * with half the instructions: 0.54-0.84x the time natively. Under
	 * TCG each lane is still a softfloat call: no gain measured there.
	 */
	for (k = 0; k < n; k++) {
		const float *x = X + k * in;
		const double *y = Y + k * out;

		for (i = 0; i < in; i++) {
			double xi = x[i];
			double *m = M + (size_t)i * out;
			__m128d xv = _mm_set1_pd(xi);

			for (a = 0; a + 2 <= out; a += 2)
				_mm_storeu_pd(m + a, _mm_add_pd(_mm_loadu_pd(m + a),
					_mm_mul_pd(xv, _mm_loadu_pd(y + a))));
			for (; a < out; a++)
				m[a] += xi * y[a];
		}
	}
out:
	free(L);
	free(Y);
	return ret;
}

/*
 * gram_xx, gram_xr: X^T X and X^T R when the caller has them (the same
 * rows fitted with several ridges), NULL to compute them here; with fewer
 * rows than inputs (n < in) gram_xx is X X^T instead and gram_xr unused
 * (ridge_dual()).
 */
static int rrr(const float *X, const float *R, size_t n, uint32_t in,
	       uint32_t out, uint32_t rank, const double *metric,
	       double lambda_rel, const float *A0, const float *B0,
	       uint32_t rank0, float *A, float *B, const float *gram_xx,
	       const float *gram_xr)
{
	float *xtx_buf = NULL, *xtr_buf = NULL, *Mf = NULL, *F = NULL,
	      *ftf = NULL;
	const float *xtx = gram_xx, *xtr = gram_xr;
	double *L = NULL, *M = NULL, *G = NULL, *V = NULL, *ev = NULL;
	double lambda, tr = 0.0, *Ws = NULL, *Wsi = NULL;
	uint32_t i, a, b, k;
	size_t r;
	int dual = n < in, ret;

	POLAR_NONNULL("calib_rrr", X);
	POLAR_NONNULL("calib_rrr", R);
	POLAR_NONNULL("calib_rrr", A);
	POLAR_NONNULL("calib_rrr", B);
	ret = check_rank("calib_rrr", out, in, rank);
	if (ret)
		return ret;
	if (!n)
		return polar_fail(-EINVAL, "calib_rrr: n is 0 (no calibration "
				  "rows)");
	if (!(lambda_rel > 0) || !isfinite(lambda_rel))
		return polar_fail(-EINVAL, "calib_rrr: lambda %g, must be > 0",
				  lambda_rel);
	if ((A0 || B0) && (!A0 || !B0 || !rank0 ||
			   rank0 > POLAR_LOWRANK_MAX_RANK))
		return polar_fail(-EINVAL, "calib_rrr: initial factors need A0, "
				  "B0 and rank0 1..%d", POLAR_LOWRANK_MAX_RANK);
	for (r = 0; r < n * in; r++)
		if (!isfinite(X[r]))
			return polar_fail(-EINVAL, "calib_rrr: X[%zu][%zu] is not "
					  "finite", r / in, r % in);
	for (r = 0; r < n * out; r++)
		if (!isfinite(R[r]))
			return polar_fail(-EINVAL, "calib_rrr: R[%zu][%zu] is not "
					  "finite", r / out, r % out);

	if (!gram_xx) {
		xtx = xtx_buf = malloc(sizeof(float) * (dual ? n * n :
							(size_t)in * in));
		xtr = xtr_buf = dual ? NULL : malloc(sizeof(float) * in * out);
	}
	Mf = malloc(sizeof(float) * in * out);
	F = malloc(sizeof(float) * n * out);
	ftf = malloc(sizeof(float) * out * out);
	L = dual ? NULL : malloc(sizeof(double) * in * in);
	M = malloc(sizeof(double) * in * out);
	G = malloc(sizeof(double) * out * out);
	V = malloc(sizeof(double) * out * out);
	ev = malloc(sizeof(double) * out);
	Ws = calloc((size_t)out * out, sizeof(double));
	Wsi = calloc((size_t)out * out, sizeof(double));
	if (!xtx || (!dual && (!xtr || !L)) || !Mf || !F || !ftf || !M ||
	    !G || !V || !ev || !Ws || !Wsi) {
		ret = polar_fail(-ENOMEM, "out of memory");
		goto out;
	}
	if (metric) {
		ret = spd_sqrt(metric, out, Ws, Wsi);
		if (ret)
			goto out;
	} else {
		for (a = 0; a < out; a++)
			Ws[a * out + a] = Wsi[a * out + a] = 1.0;
	}
	if (!gram_xx && dual)
		polar_gram_sym(0, n, in, X, in, xtx_buf, n);
	else if (!gram_xx) {
		polar_gram_sym(1, in, n, X, in, xtx_buf, in);
		gram_sgemm(1, 0, in, out, n, X, in, R, out, xtr_buf, out);
	}
	/* trace(X^T X) = trace(X X^T) */
	for (r = 0; r < (dual ? n : in); r++)
		tr += xtx[r * (dual ? n : in) + r];
	lambda = lambda_rel * (tr > 0 ? tr / in : 1.0);
	if (dual) {
		ret = ridge_dual(X, R, n, in, out, xtx, lambda, A0, B0, rank0, M);
		if (ret)
			goto out;
		goto solved;
	}
	for (i = 0; i < in; i++)
		for (k = 0; k <= i; k++)
			L[(size_t)i * in + k] = 0.5 * ((double)xtx[(size_t)i * in + k] +
						       xtx[(size_t)k * in + i]) +
						(i == k ? lambda : 0.0);
	for (i = 0; i < in; i++)
		for (a = 0; a < out; a++) {
			double m0 = 0.0;

			if (A0)
				for (k = 0; k < rank0; k++)
					m0 += (double)B0[a * rank0 + k] *
					      A0[(size_t)k * in + i];
			M[(size_t)i * out + a] = xtr[(size_t)i * out + a] +
						 lambda * m0;
		}
	if (cholesky(L, in)) {
		ret = polar_fail(-EINVAL, "calib_rrr: X^T X + lambda I is not "
				 "positive definite (lambda %g)", lambda);
		goto out;
	}
	chol_solve(L, in, M, out);
solved:
	for (r = 0; r < (size_t)in * out; r++)
		Mf[r] = (float)M[r];
	/* F = X M, G = W^1/2 F^T F W^1/2 */
	polar_sgemm(0, 0, n, out, in, X, in, Mf, out, 0.0f, F, out);
	polar_sgemm(1, 0, out, out, n, F, out, F, out, 0.0f, ftf, out);
	for (a = 0; a < out; a++)
		for (b = 0; b < out; b++) {
			double acc = 0.0;

			for (k = 0; k < out; k++)
				acc += 0.5 * ((double)ftf[a * out + k] +
					      ftf[k * out + a]) *
				       Ws[(size_t)k * out + b];
			V[(size_t)a * out + b] = acc;
		}
	for (a = 0; a < out; a++)
		for (b = 0; b < out; b++) {
			double acc = 0.0;

			for (k = 0; k < out; k++)
				acc += Ws[(size_t)a * out + k] *
				       V[(size_t)k * out + b];
			G[(size_t)a * out + b] = acc;
		}
	for (a = 0; a < out; a++)
		for (b = 0; b < a; b++)
			G[(size_t)a * out + b] = G[(size_t)b * out + a] =
				0.5 * (G[(size_t)a * out + b] +
				       G[(size_t)b * out + a]);
	ret = polar_calib_symeig(G, out, ev, V);
	if (ret)
		goto out;
	/* B = W^-1/2 V_r, A = V_r^T W^1/2 M^T */
	for (a = 0; a < out; a++)
		for (k = 0; k < rank; k++) {
			double acc = 0.0;

			for (b = 0; b < out; b++)
				acc += Wsi[(size_t)a * out + b] *
				       V[(size_t)b * out + k];
			B[a * rank + k] = (float)acc;
		}
	for (a = 0; a < out; a++)
		for (k = 0; k < rank; k++) {
			double acc = 0.0;

			for (b = 0; b < out; b++)
				acc += V[(size_t)b * out + k] *
				       Ws[(size_t)b * out + a];
			G[(size_t)a * out + k] = acc;	/* (W^1/2 V_r)[a][k] */
		}
	for (k = 0; k < rank; k++)
		for (i = 0; i < in; i++) {
			double acc = 0.0;

			for (a = 0; a < out; a++)
				acc += G[(size_t)a * out + k] *
				       M[(size_t)i * out + a];
			A[(size_t)k * in + i] = (float)acc;
		}
out:
	free(xtx_buf);
	free(xtr_buf);
	free(Mf);
	free(F);
	free(ftf);
	free(L);
	free(M);
	free(G);
	free(V);
	free(ev);
	free(Ws);
	free(Wsi);
	return ret;
}

/*
 * Metric-weighted squared residual of the rank-r fit (A, B) on n rows:
 * sum over rows of e W e^T, e = R - X A^T B^T (W NULL: identity).
 */
static double rrr_residual(const float *X, const float *R, size_t n,
			   uint32_t in, uint32_t out, uint32_t rank,
			   const double *metric, const float *A, const float *B)
{
	double total = 0.0, z[POLAR_LOWRANK_MAX_RANK], *e;
	size_t k;
	uint32_t i, a, b, q;

	e = malloc(sizeof(double) * out);
	if (!e)
		return NAN;
	for (k = 0; k < n; k++) {
		const float *x = X + k * in;

		for (q = 0; q < rank; q++) {
			z[q] = 0.0;
			for (i = 0; i < in; i++)
				z[q] += (double)A[(size_t)q * in + i] * x[i];
		}
		for (a = 0; a < out; a++) {
			e[a] = R[k * out + a];
			for (q = 0; q < rank; q++)
				e[a] -= (double)B[(size_t)a * rank + q] * z[q];
		}
		for (a = 0; a < out; a++) {
			if (!metric) {
				total += e[a] * e[a];
				continue;
			}
			for (b = 0; b < out; b++)
				total += e[a] * metric[(size_t)a * out + b] * e[b];
		}
	}
	free(e);
	return total;
}

#define SELECT_MAX_LAMBDAS 64	/* candidates fitted on threads at once */

/* The candidate ridges' fits, spread over threads (rrr_select_run()). */
struct rrr_select_job {
	const float *Xf, *Rf, *Xh, *Rh, *xtx, *xtr, *A0, *B0;
	size_t nf, nh;
	uint32_t in, out, rank, rank0;
	const double *metric, *lambdas;
	unsigned int nlambdas, t, threads;
	double *res;		/* per candidate: held-out residual */
	int *ret;		/* per candidate: rrr()'s result */
};

/* Candidates t, t + threads, ...: each fit on its own, in its own buffers. */
static void *rrr_select_run(void *p)
{
	const struct rrr_select_job *g = p;
	float *A = malloc(sizeof(float) * g->rank * g->in);
	float *B = malloc(sizeof(float) * g->out * g->rank);
	unsigned int j;

	for (j = g->t; j < g->nlambdas; j += g->threads) {
		g->ret[j] = A && B ? rrr(g->Xf, g->Rf, g->nf, g->in, g->out,
					 g->rank, g->metric, g->lambdas[j],
					 g->A0, g->B0, g->rank0, A, B, g->xtx,
					 g->xtr) : -ENOMEM;
		if (!g->ret[j]) {
			g->res[j] = rrr_residual(g->Xh, g->Rh, g->nh, g->in,
						 g->out, g->rank, g->metric, A,
						 B);
			if (isnan(g->res[j]))
				g->ret[j] = -ENOMEM;
		}
	}
	free(A);
	free(B);
	return NULL;
}

int polar_calib_rrr_select(const float *X, const float *R, size_t n,
			   uint32_t in, uint32_t out, uint32_t rank,
			   const double *metric, const uint8_t *held_out,
			   const double *lambdas, unsigned int nlambdas,
			   const float *A0, const float *B0, uint32_t rank0,
			   float *A, float *B, double *chosen)
{
	float *Xf = NULL, *Rf = NULL, *Xh = NULL, *Rh = NULL, *At = NULL,
	      *Bt = NULL, *xtx = NULL, *xtr = NULL;
	size_t k, nf = 0, nh = 0;
	double best = INFINITY, best_lambda = 0.0, res[SELECT_MAX_LAMBDAS];
	struct rrr_select_job job[SELECT_MAX_LAMBDAS];
	pthread_t th[SELECT_MAX_LAMBDAS];
	int cand_ret[SELECT_MAX_LAMBDAS];
	unsigned int j, t, threads, started;
	int ret;

	polar_clear_error();
	POLAR_NONNULL("calib_rrr_select", X);
	POLAR_NONNULL("calib_rrr_select", R);
	POLAR_NONNULL("calib_rrr_select", A);
	POLAR_NONNULL("calib_rrr_select", B);
	POLAR_NONNULL("calib_rrr_select", held_out);
	POLAR_NONNULL("calib_rrr_select", lambdas);
	POLAR_NONNULL("calib_rrr_select", chosen);
	ret = check_rank("calib_rrr_select", out, in, rank);
	if (ret)
		return ret;
	if (!nlambdas || nlambdas > SELECT_MAX_LAMBDAS)
		return polar_fail(-EINVAL, "calib_rrr_select: nlambdas is %u "
				  "(1..%d candidate lambdas)", nlambdas,
				  SELECT_MAX_LAMBDAS);
	ret = check_metric(metric, out);
	if (ret)
		return ret;
	for (k = 0; k < n; k++)
		nh += held_out[k] != 0;
	nf = n - nh;
	if (!nf || !nh)
		return polar_fail(-EINVAL, "calib_rrr_select: %zu of %zu rows "
				  "held out; both parts need rows", nh, n);
	Xf = malloc(sizeof(float) * nf * in);
	Rf = malloc(sizeof(float) * nf * out);
	Xh = malloc(sizeof(float) * nh * in);
	Rh = malloc(sizeof(float) * nh * out);
	At = malloc(sizeof(float) * rank * in);
	Bt = malloc(sizeof(float) * out * rank);
	xtx = malloc(sizeof(float) * (nf < in ? nf * nf : (size_t)in * in));
	xtr = malloc(sizeof(float) * in * out);
	if (!Xf || !Rf || !Xh || !Rh || !At || !Bt || !xtx || !xtr) {
		ret = polar_fail(-ENOMEM, "out of memory");
		goto out;
	}
	nf = nh = 0;
	for (k = 0; k < n; k++) {
		int h = held_out[k] != 0;

		memcpy((h ? Xh + nh * in : Xf + nf * in), X + k * in,
		       sizeof(float) * in);
		memcpy((h ? Rh + nh * out : Rf + nf * out), R + k * out,
		       sizeof(float) * out);
		if (h)
			nh++;
		else
			nf++;
	}
	/* The fitted rows are the same for every candidate: one gram. */
	if (nf < in) {
		polar_gram_sym(0, nf, in, Xf, in, xtx, nf);
	} else {
		polar_gram_sym(1, in, nf, Xf, in, xtx, in);
		gram_sgemm(1, 0, in, out, nf, Xf, in, Rf, out, xtr, out);
	}
	/*
	 * The candidates are independent fits of the same rows: on a thread
	 * per CPU, each computed as on one thread; the choice then walks them
	 * in order, so it does not depend on the threads.
	 */
	threads = calib_threads(nlambdas);
	for (t = 0; t < threads; t++)
		job[t] = (struct rrr_select_job){ .Xf = Xf, .Rf = Rf, .Xh = Xh,
			.Rh = Rh, .xtx = xtx, .xtr = xtr, .A0 = A0, .B0 = B0,
			.nf = nf, .nh = nh, .in = in, .out = out, .rank = rank,
			.rank0 = rank0, .metric = metric, .lambdas = lambdas,
			.nlambdas = nlambdas, .t = t, .threads = threads,
			.res = res, .ret = cand_ret };
	for (started = 1; started < threads; started++)
		if (pthread_create(&th[started], NULL, rrr_select_run,
				   &job[started]))
			break;
	rrr_select_run(&job[0]);
	for (t = started; t < threads; t++)
		rrr_select_run(&job[t]);
	for (t = 1; t < started; t++)
		pthread_join(th[t], NULL);
	for (j = 0; j < nlambdas; j++) {
		if (cand_ret[j]) {
			/* Again here, for the message in this thread. */
			ret = cand_ret[j] == -ENOMEM ?
			      polar_fail(-ENOMEM, "out of memory") :
			      rrr(Xf, Rf, nf, in, out, rank, metric, lambdas[j],
				  A0, B0, rank0, At, Bt, xtx, xtr);
			if (!ret)
				ret = polar_fail(-EIO, "calib_rrr_select: "
						 "lambda %g failed", lambdas[j]);
			goto out;
		}
		if (res[j] < best) {
			best = res[j];
			best_lambda = lambdas[j];
		}
	}
	*chosen = best_lambda;
	ret = polar_calib_rrr_metric(X, R, n, in, out, rank, metric, best_lambda,
				     A0, B0, rank0, A, B);
out:
	free(Xf);
	free(Rf);
	free(Xh);
	free(Rh);
	free(At);
	free(Bt);
	free(xtx);
	free(xtr);
	return ret;
}

/* ---- ADC full scale ------------------------------------------------------------ */

static int x_planes(enum polar_xfmt f, int *is_signed)
{
	switch (f) {
	case POLAR_XFMT_INT8: *is_signed = 1; return 8;
	case POLAR_XFMT_UINT8: *is_signed = 0; return 8;
	case POLAR_XFMT_INT4: *is_signed = 1; return 4;
	case POLAR_XFMT_UINT4: *is_signed = 0; return 4;
	}
	return 0;
}

int polar_calib_adc_fs(const struct polar_qweights *q, const int8_t *xcodes,
		       size_t n, enum polar_xfmt xfmt, uint32_t rows,
		       uint32_t rows_per_conv, double percentile,
		       uint32_t *fs_q8)
{
	uint32_t G, nw_planes, nx_planes, words, in, out, block, nb, b, ngroups;
	uint64_t *wm = NULL, *xm = NULL, *hist = NULL, total = 0, want, acc;
	int xs, ret = 0;
	size_t k;
	uint32_t o, i, g, pi, pj, cnt;

	polar_clear_error();
	POLAR_NONNULL("calib_adc_fs", q);
	POLAR_NONNULL("calib_adc_fs", xcodes);
	POLAR_NONNULL("calib_adc_fs", fs_q8);
	POLAR_NONNULL("calib_adc_fs", q->codes);
	if (!n)
		return polar_fail(-EINVAL, "calib_adc_fs: n is 0 (no "
				  "calibration inputs)");
	if (!rows)
		return polar_fail(-EINVAL, "calib_adc_fs: rows is 0");
	if (!(percentile > 0 && percentile <= 100))
		return polar_fail(-EINVAL, "calib_adc_fs: percentile %g outside "
				  "(0, 100]", percentile);
	nx_planes = (uint32_t)x_planes(xfmt, &xs);
	if (!nx_planes)
		return polar_fail(-EINVAL, "calib_adc_fs: unknown input format %d",
				  (int)xfmt);
	switch (q->fmt) {
	case POLAR_WFMT_INT8: case POLAR_WFMT_NF4: nw_planes = 8; break;
	case POLAR_WFMT_INT4: nw_planes = 4; break;
	default:
		return polar_fail(-EINVAL, "calib_adc_fs: unknown weight format %d",
				  (int)q->fmt);
	}
	G = rows_per_conv && rows_per_conv < rows ? rows_per_conv : rows;
	in = q->in_dim;
	out = q->out_dim;
	block = q->fmt == POLAR_WFMT_NF4 ? q->block : in;
	if (!block)
		return polar_fail(-EINVAL, "calib_adc_fs: NF4 block 0");
	nb = (in + block - 1) / block;
	/*
	 * Row groups: within each part (NF4 block, or the whole input), tiles
	 * of `rows` rows, each cut into groups of G rows. Assign every input i
	 * a global group index and a bit position within it.
	 */
	words = (G + 63) / 64;
	ngroups = 0;
	for (b = 0; b < nb; b++) {
		uint32_t w = in - b * block < block ? in - b * block : block;
		uint32_t t, nt = (w + rows - 1) / rows;

		for (t = 0; t < nt; t++) {
			uint32_t tw = w - t * rows < rows ? w - t * rows : rows;

			ngroups += (tw + G - 1) / G;
		}
	}
	wm = calloc((size_t)out * nw_planes * ngroups * words, sizeof(uint64_t));
	xm = calloc((size_t)nx_planes * ngroups * words, sizeof(uint64_t));
	hist = calloc(G + 1, sizeof(uint64_t));
	if (!wm || !xm || !hist) {
		ret = polar_fail(-ENOMEM, "out of memory");
		goto out;
	}
	{
		uint32_t *gi = malloc(sizeof(uint32_t) * in * 2);

		if (!gi) {
			ret = polar_fail(-ENOMEM, "out of memory");
			goto out;
		}
		g = 0;
		for (b = 0; b < nb; b++) {
			uint32_t w = in - b * block < block ? in - b * block : block;
			uint32_t j;

			for (j = 0; j < w; j++) {
				uint32_t t = j / rows, rr = j % rows;
				/* groups before this tile within the block */
				uint32_t gb = 0, tt;

				for (tt = 0; tt < t; tt++)
					gb += (rows + G - 1) / G;
				gi[2 * (b * block + j)] = g + gb + rr / G;
				gi[2 * (b * block + j) + 1] = rr % G;
			}
			{
				uint32_t t, nt = (w + rows - 1) / rows;

				for (t = 0; t < nt; t++) {
					uint32_t tw = w - t * rows < rows ?
						      w - t * rows : rows;

					g += (tw + G - 1) / G;
				}
			}
		}
		/* Weight bit masks: the stored 2's complement value's planes. */
		for (o = 0; o < out; o++)
			for (i = 0; i < in; i++) {
				int v = q->codes[(size_t)o * in + i];
				uint32_t bits;

				if (q->fmt == POLAR_WFMT_NF4)
					v = q->codebook[v & 15];
				bits = (uint32_t)v & ((1u << nw_planes) - 1);
				for (pj = 0; pj < nw_planes; pj++)
					if (bits >> pj & 1)
						wm[(((size_t)o * nw_planes + pj) *
						    ngroups + gi[2 * i]) * words +
						   gi[2 * i + 1] / 64] |=
							1ull << (gi[2 * i + 1] % 64);
			}
		for (k = 0; k < n; k++) {
			memset(xm, 0, sizeof(uint64_t) * nx_planes * ngroups *
			       words);
			for (i = 0; i < in; i++) {
				int v = xs ? xcodes[k * in + i] :
					     ((const uint8_t *)xcodes)[k * in + i];
				uint32_t bits = (uint32_t)v &
						((1u << nx_planes) - 1);

				for (pi = 0; pi < nx_planes; pi++)
					if (bits >> pi & 1)
						xm[((size_t)pi * ngroups + gi[2 * i]) *
						   words + gi[2 * i + 1] / 64] |=
							1ull << (gi[2 * i + 1] % 64);
			}
			for (o = 0; o < out; o++)
				for (pj = 0; pj < nw_planes; pj++)
					for (pi = 0; pi < nx_planes; pi++)
						for (g = 0; g < ngroups; g++) {
							const uint64_t *a = wm +
								(((size_t)o * nw_planes + pj) *
								 ngroups + g) * words;
							const uint64_t *c = xm +
								((size_t)pi * ngroups + g) *
								words;
							uint32_t w;

							cnt = 0;
							for (w = 0; w < words; w++)
								cnt += (uint32_t)
								__builtin_popcountll(a[w] &
										     c[w]);
							hist[cnt]++;
							total++;
						}
		}
		free(gi);
	}
	want = (uint64_t)ceil(percentile / 100.0 * (double)total);
	if (!want)
		want = 1;
	acc = 0;
	for (cnt = 0; cnt <= G; cnt++) {
		acc += hist[cnt];
		if (acc >= want)
			break;
	}
	if (cnt < 1)
		cnt = 1;
	if (cnt > G)
		cnt = G;
	*fs_q8 = cnt * 256u;
out:
	free(wm);
	free(xm);
	free(hist);
	return ret;
}

uint32_t polar_calib_adc_fs_recon(uint32_t fs_q8,
				  const struct polar_caps *caps)
{
	struct cim_config cfg = { 0 };

	if (!caps) {
		polar_null_arg(__func__, "caps");
		return 0;
	}
	cfg.adc_bits = caps->adc_bits;
	cfg.recon = caps->recon;
	cfg.recon_frac_bits = caps->recon_frac_bits;
	return cim_adc_fs_for_recon(&cfg, fs_q8);
}

/* ---- loss sensitivity ------------------------------------------------------------ */

/*
 * The per-sample output gradients (each layer's bias gradient) of samples
 * t, t + T, t + 2T, ... on thread t of T; the grams are then summed in
 * sample order on one thread, so the threads change nothing but speed.
 */
#define FISHER_MAX_THREADS 16

struct fisher_job {
	const struct polar_model *m;
	size_t n, stride;		/* samples; floats of g per sample */
	const float *x;
	const uint8_t *labels;
	float *g;			/* n x stride */
	unsigned int t, threads;
	int ret;
	char err[256];
};

static void *fisher_thread(void *p)
{
	struct fisher_job *j = p;
	const struct polar_model *m = j->m;
	size_t in = (size_t)m->in_c * m->in_h * m->in_w, s, off;
	float *grad = malloc(sizeof(float) * m->nparams);
	unsigned int l;

	j->ret = grad ? 0 : polar_fail(-ENOMEM, "out of memory");
	for (s = j->t; s < j->n && !j->ret; s += j->threads) {
		memset(grad, 0, sizeof(float) * m->nparams);
		j->ret = polar_model_bias_grad(m, 1, j->x + s * in,
					       j->labels + s, grad);
		for (l = 0, off = 0; !j->ret && l < m->nlayers; l++) {
			memcpy(j->g + s * j->stride + off,
			       grad + m->layers[l].bias_off,
			       sizeof(float) * m->layers[l].rows);
			off += m->layers[l].rows;
		}
	}
	if (j->ret)
		snprintf(j->err, sizeof(j->err), "%s", polar_errmsg());
	free(grad);
	return NULL;
}

int polar_calib_output_fisher_full(const struct polar_model *m, size_t n,
				   const float *x, const uint8_t *labels,
				   double *gram[POLAR_MODEL_MAX_LAYERS])
{
	struct fisher_job job[FISHER_MAX_THREADS];
	pthread_t th[FISHER_MAX_THREADS];
	size_t s, stride = 0, off;
	unsigned int l, t, threads = calib_threads(FISHER_MAX_THREADS), started;
	float *g = NULL;
	int ret = 0;
	uint32_t a, b;

	polar_clear_error();
	POLAR_NONNULL("calib_output_fisher", m);
	POLAR_NONNULL("calib_output_fisher", x);
	POLAR_NONNULL("calib_output_fisher", labels);
	POLAR_NONNULL("calib_output_fisher", gram);
	if (!n)
		return polar_fail(-EINVAL, "calib_output_fisher: n is 0 (no "
				  "samples)");
	for (l = 0; l < POLAR_MODEL_MAX_LAYERS; l++)
		gram[l] = NULL;
	for (l = 0; l < m->nlayers; l++)
		stride += m->layers[l].rows;
	g = malloc(sizeof(float) * n * (stride ? stride : 1));
	if (!g)
		return polar_fail(-ENOMEM, "out of memory");
	for (l = 0; l < m->nlayers; l++)
		if (m->layers[l].rows) {
			gram[l] = calloc((size_t)m->layers[l].rows *
					 m->layers[l].rows, sizeof(double));
			if (!gram[l]) {
				ret = polar_fail(-ENOMEM, "out of memory");
				goto out;
			}
		}
	if (threads > n)
		threads = (unsigned int)n;
	for (t = 0; t < threads; t++)
		job[t] = (struct fisher_job){ .m = m, .n = n, .stride = stride,
			.x = x, .labels = labels, .g = g, .t = t,
			.threads = threads };
	for (started = 1; started < threads; started++)
		if (pthread_create(&th[started], NULL, fisher_thread,
				   &job[started]))
			break;
	/* Thread 0's samples, and those of threads that did not start, here. */
	fisher_thread(&job[0]);
	for (t = started; t < threads; t++)
		fisher_thread(&job[t]);
	for (t = 1; t < started; t++)
		pthread_join(th[t], NULL);
	for (t = 0; t < threads && !ret; t++)
		if (job[t].ret)
			ret = polar_fail(job[t].ret, "%s", job[t].err);
	for (s = 0; s < n && !ret; s++) {
		for (l = 0, off = 0; l < m->nlayers; l++) {
			const float *gs = g + s * stride + off;
			uint32_t rows = m->layers[l].rows;

			off += rows;
			if (!gram[l])
				continue;
			for (a = 0; a < rows; a++)
				for (b = 0; b < rows; b++)
					gram[l][(size_t)a * rows + b] +=
						(double)gs[a] * gs[b];
		}
	}
	for (l = 0; !ret && l < m->nlayers; l++)
		if (gram[l])
			for (a = 0; a < m->layers[l].rows * m->layers[l].rows; a++)
				gram[l][a] /= (double)n;
out:
	if (ret)
		for (l = 0; l < POLAR_MODEL_MAX_LAYERS; l++) {
			free(gram[l]);
			gram[l] = NULL;
		}
	free(g);
	return ret;
}

int polar_calib_output_fisher(const struct polar_model *m, size_t n,
			      const float *x, const uint8_t *labels,
			      float *fisher[POLAR_MODEL_MAX_LAYERS])
{
	double *gram[POLAR_MODEL_MAX_LAYERS];
	unsigned int l;
	uint32_t o;
	int ret;

	polar_clear_error();
	POLAR_NONNULL("calib_output_fisher", fisher);
	for (l = 0; l < POLAR_MODEL_MAX_LAYERS; l++)
		fisher[l] = NULL;
	ret = polar_calib_output_fisher_full(m, n, x, labels, gram);
	if (ret)
		return ret;
	for (l = 0; l < POLAR_MODEL_MAX_LAYERS; l++) {
		uint32_t rows;

		if (!gram[l])
			continue;
		rows = m->layers[l].rows;
		fisher[l] = ret ? NULL : malloc(sizeof(float) * rows);
		if (!ret && !fisher[l])
			ret = polar_fail(-ENOMEM, "out of memory");
		for (o = 0; !ret && o < rows; o++)
			fisher[l][o] = (float)gram[l][(size_t)o * rows + o];
		free(gram[l]);
	}
	if (ret)
		for (l = 0; l < POLAR_MODEL_MAX_LAYERS; l++) {
			free(fisher[l]);
			fisher[l] = NULL;
		}
	return ret;
}
