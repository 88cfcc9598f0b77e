// SPDX-License-Identifier: MIT
/*
 * bench_lowrank - the host low-rank correction y = B (A x) at rank 8:
 * polar_lowrank_apply() against OpenBLAS cblas_sgemm doing the same two
 * products (z = x A^T: [batch x in] [in x r]; y = z B^T: [batch x r]
 * [r x out]) on the same data, single-threaded, plus a roofline measured
 * in the same run.
 *
 * Roofline: roofline_gflops = min(peak, bandwidth * flops / bytes), with
 * bytes = 4 * (|A| + |B| + |x| + |y|) (each moved once), bandwidth a
 * STREAM triad over 256 MiB (three float arrays, 12 bytes per element,
 * best of 5) and peak an in-register FMA loop on one core. It is the
 * ceiling for data that comes from DRAM; the timed loops run on the same
 * buffers again and again, so the smaller shapes live in cache and may go
 * past it.
 *
 * polar gets A and B packed by polar_lowrank_pack() (done once, outside
 * the timing, as calibration does); OpenBLAS gets them as they are.
 *
 * Each number is the median of 7 measurements of about 50 ms each, polar
 * and OpenBLAS measured alternately. OpenBLAS is timed with B in both
 * layouts (row-major out x r and transposed) and the faster counts.
 *
 * Output: a header, one line per case
 *   shape=<out>x<in> batch=<b> polar_gflops=<x> openblas_gflops=<y>
 *   roofline_gflops=<z>
 * and "lowrank kernel <name>: faster than or equal to openblas in k/n
 * cases". Exit status 1 if the results disagree.
 */
#define _POSIX_C_SOURCE 200112L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "polar/lowrank.h"
#include "polar/polar.h"

#define RANK 8
#define REPS 7
#define TARGET_S 0.05

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static float frand(void)
{
	rs ^= rs >> 12;
	rs ^= rs << 25;
	rs ^= rs >> 27;
	return (float)((double)((rs * 2685821657736338717ull) >> 40) /
		       (double)(1ull << 23)) - 1.0f;
}

static float *falloc(size_t n, int fill)
{
	float *p = aligned_alloc(64, ((n * sizeof(float)) + 63) / 64 * 64);
	size_t i;

	if (!p) {
		fprintf(stderr, "bench_lowrank: out of memory\n");
		exit(2);
	}
	for (i = 0; i < n; i++)
		p[i] = fill ? frand() : 0.0f;
	return p;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* --- roofline -------------------------------------------------------- */

/* STREAM triad a = b + s c over three float arrays, 256 MiB in all. */
static double triad_gbps(void)
{
	size_t n = (256u << 20) / 3 / sizeof(float), i;
	float *a = falloc(n, 0), *b = falloc(n, 0), *c = falloc(n, 0);
	double best = 0, t;
	int r;

	for (i = 0; i < n; i++) {
		b[i] = 1.0f;
		c[i] = 2.0f;
	}
	for (r = 0; r < 5; r++) {
		float s = 0.5f + (float)r;

		t = now();
		for (i = 0; i < n; i++)
			a[i] = b[i] + s * c[i];
		t = now() - t;
		if (3.0 * sizeof(float) * n / t > best)
			best = 3.0 * sizeof(float) * n / t;
	}
	if (a[n / 2] < 0)	/* keep the stores */
		printf("#\n");
	free(a);
	free(b);
	free(c);
	return best * 1e-9;
}

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <immintrin.h>

/* 10 independent 8-wide FMA chains: enough to hide the FMA latency. */
__attribute__((target("avx2,fma"))) static double fma_gflops_avx2(long iters)
{
	__m256 acc[10], m = _mm256_set1_ps(0.999999f),
			a = _mm256_set1_ps(1e-7f);
	float out[8];
	double t;
	long i;
	int j;

	for (j = 0; j < 10; j++)
		acc[j] = _mm256_set1_ps((float)j);
	t = now();
	for (i = 0; i < iters; i++) {
#pragma GCC unroll 10
		for (j = 0; j < 10; j++)
			acc[j] = _mm256_fmadd_ps(acc[j], m, a);
	}
	t = now() - t;
	for (j = 1; j < 10; j++)
		acc[0] = _mm256_add_ps(acc[0], acc[j]);
	_mm256_storeu_ps(out, acc[0]);
	if (out[0] < -1)
		printf("#\n");
	return 10.0 * 16.0 * iters / t * 1e-9;
}
#endif

/* Scalar multiply-adds, 8 chains, for CPUs without AVX2/FMA. */
static double fma_gflops_scalar(long iters)
{
	float acc[8], m = 0.999999f, a = 1e-7f;
	double t;
	long i;
	int j;

	for (j = 0; j < 8; j++)
		acc[j] = (float)j;
	t = now();
	for (i = 0; i < iters; i++)
		for (j = 0; j < 8; j++)
			acc[j] = acc[j] * m + a;
	t = now() - t;
	if (acc[0] + acc[7] < -1)
		printf("#\n");
	return 8.0 * 2.0 * iters / t * 1e-9;
}

static double peak_gflops(void)
{
	double best = 0, g;
	int r;

	for (r = 0; r < 5; r++) {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
		__builtin_cpu_init();
		if (__builtin_cpu_supports("avx2") &&
		    __builtin_cpu_supports("fma"))
			g = fma_gflops_avx2(20000000);
		else
#endif
			g = fma_gflops_scalar(20000000);
		if (g > best)
			best = g;
	}
	return best;
}

/* --- cases ----------------------------------------------------------- */

struct lr_case {
	uint32_t in, out, batch;
	float *A, *B, *Bt, *Ap, *Bp, *x, *z, *y;
};

static void run_polar(struct lr_case *c)
{
	if (polar_lowrank_apply(c->Ap, c->Bp, RANK, c->in, c->out, c->batch,
				c->x, c->z, c->y, 0)) {
		fprintf(stderr, "bench_lowrank: %s\n", polar_errmsg());
		exit(2);
	}
}

/* The same two products with sgemm; bt selects the B layout. */
static void run_blas(struct lr_case *c, int bt)
{
	int b = (int)c->batch, in = (int)c->in, out = (int)c->out;

	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b, RANK, in,
		    1.0f, c->x, in, c->A, in, 0.0f, c->z, RANK);
	if (bt)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b, out,
			    RANK, 1.0f, c->z, RANK, c->Bt, out, 0.0f, c->y,
			    out);
	else
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b, out,
			    RANK, 1.0f, c->z, RANK, c->B, RANK, 0.0f, c->y,
			    out);
}

/* 0 polar, 1 OpenBLAS with Bt, 2 OpenBLAS with B. */
static void run_one(struct lr_case *c, int who)
{
	if (who == 0)
		run_polar(c);
	else
		run_blas(c, who == 1);
}

/* Seconds per call, timed over n calls. */
static double time_calls(struct lr_case *c, int who, long n)
{
	double t = now();
	long i;

	for (i = 0; i < n; i++)
		run_one(c, who);
	return (now() - t) / (double)n;
}

static long calls_for(struct lr_case *c, int who)
{
	long n = 1;
	double t;

	run_one(c, who);	/* warm up */
	for (;;) {
		t = time_calls(c, who, n) * (double)n;
		if (t >= TARGET_S / 4 || n > (1l << 30))
			break;
		n *= 2;
	}
	n = (long)((double)n * TARGET_S / t) + 1;
	return n;
}

/* Largest |a - b| relative to 1e-5 * sqrt(in) * (1 + |b|). */
static double max_err(const float *a, const float *b, size_t n, uint32_t in)
{
	double worst = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		double e = fabs((double)a[i] - b[i]) /
			   (1e-5 * sqrt((double)in) * (1.0 + fabs(b[i])));

		if (e > worst)
			worst = e;
	}
	return worst;
}

int main(void)
{
	static const uint32_t shapes[][2] = {	/* out, in */
		{ 64, 64 }, { 256, 256 }, { 1024, 1024 }, { 4096, 4096 },
		{ 512, 2048 }, { 2048, 512 },
	};
	static const uint32_t batches[] = { 1, 16, 256 };
	const char *env = getenv("OPENBLAS_NUM_THREADS");
	int threads = env && atoi(env) > 0 ? atoi(env) : 1;
	double bw, peak, t0 = now();
	unsigned int s, bi, wins = 0, ncases = 0, bad = 0;

	openblas_set_num_threads(threads);
	bw = triad_gbps();
	peak = peak_gflops();
	printf("# bench_lowrank: rank %d, fp32, y = B (A x) batch-major; "
	       "polar kernel %s, single thread; OpenBLAS %s (%s), %d "
	       "thread%s (openblas_set_num_threads; env "
	       "OPENBLAS_NUM_THREADS overrides), best of B / B^T layouts\n",
	       RANK, polar_lowrank_kernel_name(), openblas_get_config(),
	       openblas_get_corename(), threads, threads == 1 ? "" : "s");
	printf("# roofline: triad bandwidth %.2f GB/s (256 MiB), peak %.2f "
	       "GFLOP/s (1-core FMA loop); bytes = 4 (|A|+|B|+|x|+|y|); "
	       "median of %d x ~%.0f ms\n", bw, peak, REPS, TARGET_S * 1e3);
	fflush(stdout);

	for (s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
		for (bi = 0; bi < sizeof(batches) / sizeof(batches[0]); bi++) {
			struct lr_case c = {
				.out = shapes[s][0], .in = shapes[s][1],
				.batch = batches[bi],
			};
			size_t ny = (size_t)c.batch * c.out;
			double tp[REPS], tb1[REPS], tb2[REPS], flops, bytes;
			double gp, gb, roof, e;
			float *yp;
			long np, nb1, nb2;
			uint32_t o, k;
			int r;

			c.A = falloc((size_t)RANK * c.in, 1);
			c.B = falloc((size_t)RANK * c.out, 1);
			c.Bt = falloc((size_t)RANK * c.out, 0);
			c.Ap = falloc(polar_lowrank_packed_size(RANK, c.in),
				      0);
			c.Bp = falloc(polar_lowrank_packed_size(RANK, c.out),
				      0);
			c.x = falloc((size_t)c.batch * c.in, 1);
			c.z = falloc((size_t)c.batch * RANK, 0);
			c.y = falloc(ny, 0);
			yp = falloc(ny, 0);
			for (o = 0; o < c.out; o++)
				for (k = 0; k < RANK; k++)
					c.Bt[(size_t)k * c.out + o] =
						c.B[(size_t)o * RANK + k];
			polar_lowrank_pack(c.A, c.B, RANK, c.in, c.out, c.Ap,
					   c.Bp);

			run_polar(&c);
			memcpy(yp, c.y, ny * sizeof(float));
			run_blas(&c, 1);
			e = max_err(yp, c.y, ny, c.in);
			run_blas(&c, 0);
			if (max_err(yp, c.y, ny, c.in) > e)
				e = max_err(yp, c.y, ny, c.in);
			if (e > 1.0) {
				fprintf(stderr, "bench_lowrank: %ux%u batch "
					"%u: polar and openblas disagree "
					"(%.2f x tolerance)\n", c.out, c.in,
					c.batch, e);
				bad++;
			}

			np = calls_for(&c, 0);
			nb1 = calls_for(&c, 1);
			nb2 = calls_for(&c, 2);
			for (r = 0; r < REPS; r++) {
				tp[r] = time_calls(&c, 0, np);
				tb1[r] = time_calls(&c, 1, nb1);
				tb2[r] = time_calls(&c, 2, nb2);
			}
			qsort(tp, REPS, sizeof(double), cmp_double);
			qsort(tb1, REPS, sizeof(double), cmp_double);
			qsort(tb2, REPS, sizeof(double), cmp_double);

			flops = 2.0 * RANK * c.batch * ((double)c.in + c.out);
			bytes = 4.0 * ((double)RANK * (c.in + c.out) +
				       (double)c.batch * (c.in + c.out));
			gp = flops / tp[REPS / 2] * 1e-9;
			gb = flops / (tb1[REPS / 2] < tb2[REPS / 2] ?
				      tb1[REPS / 2] : tb2[REPS / 2]) * 1e-9;
			roof = bw * flops / bytes;
			if (roof > peak)
				roof = peak;
			printf("shape=%ux%u batch=%u polar_gflops=%.2f "
			       "openblas_gflops=%.2f roofline_gflops=%.2f\n",
			       c.out, c.in, c.batch, gp, gb, roof);
			fflush(stdout);
			ncases++;
			wins += gp >= gb;

			free(c.A); free(c.B); free(c.Bt); free(c.Ap);
			free(c.Bp); free(c.x);
			free(c.z); free(c.y); free(yp);
		}
	}
	printf("# %.1f s in all%s\n", now() - t0,
	       bad ? "; RESULTS DISAGREE" : "");
	printf("lowrank kernel %s: faster than or equal to openblas in "
	       "%u/%u cases\n", polar_lowrank_kernel_name(), wins, ncases);
	return bad ? 1 : 0;
}
