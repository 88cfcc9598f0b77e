// SPDX-License-Identifier: MIT
/*
 * bench_lowrank - the host low-rank correction y += B (A x) at ranks 8, 16
 * and 32: polar_lowrank_apply() (accumulate) against single-thread
 * OpenBLAS doing the same two products on the same data, plus a roofline
 * per case measured in the same run.
 *
 * OpenBLAS: at batch 1 two cblas_sgemv calls (z = A x; y += B z, the add
 * done by beta = 1), at batch > 1 two cblas_sgemm calls (z = x A^T;
 * y += z B^T). B is offered in both layouts (out x r as calibration makes
 * it, and r x out) and the faster counts. Where OpenBLAS falls back to
 * its generic kernels on a CPU it does not know, the bench re-runs with
 * the core of this CPU's vector units (openblas_core.h); the header names
 * the core OpenBLAS runs.
 *
 * polar gets A and B packed by polar_lowrank_pack() (done once, outside
 * the timing, as calibration does).
 *
 * Roofline per case: min(peak, bw(level) * flops / bytes), with
 *   flops = 2 r b (in + out)
 *   bytes = 4 (|A| + |B| + |x| + 2 |y|)  (each read once, y also written)
 *   peak  = a register-resident FMA loop, 12 independent chains of the
 *           widest vectors the CPU has (AVX-512, else AVX2, else scalar),
 *           best of 101 short runs
 *   bw    = a read loop with the same vectors over a buffer sized for one
 *           level of the memory hierarchy (half of L1d, half of L2,
 *           4 x L2 within L3, 2 x L3 for DRAM; sizes from sysconf),
 *           best of 101 short groups of passes,
 * and the level the smallest one whose capacity holds the case's working
 * set ws (|Ap| + |Bp| + |x| + |z| + |y| floats): the timed loops call the
 * kernel again and again on the same buffers, so that is where the data
 * lives. Of the bytes, a share cap(level above) / ws may still be served
 * by the level above, the rest comes from the level itself:
 *   bw = 1 / (f / bw(above) + (1 - f) / bw(level)),  f = cap(above) / ws
 * (L1: f = 0). Read bandwidth, the most the faster level could serve and
 * an unpadded byte count make it a ceiling no correct measurement can
 * pass; a case above it means the roofline is wrong and the bench exits 1.
 *
 * Timing: per case polar, OpenBLAS (B) and OpenBLAS (B^T) alternate REPS
 * times, each measurement about TARGET_S of this thread's CPU time after a
 * warm-up, and all cases are run in PASSES passes (seconds apart), so
 * each contender has NSAMPLES samples; the median counts. CPU time, short
 * measurements (0.5 ms, less than a scheduler time slice) spread over the
 * run: on a shared machine the median is the kernel's speed, not its
 * share of the CPU. Noise: a case is a win (or
 * loss) only when polar's interquartile range of GFLOP/s lies wholly above
 * (below) OpenBLAS's; else a tie. The spread printed is the interquartile
 * range over the median.
 *
 * The peak and the L1..L3 bandwidths are sampled again before every case
 * and at the end, and the best value seen anywhere in the run sets the
 * rooflines, so the lines are printed at the end.
 *
 * Output: two header lines (kernels, measured peak and bandwidths), one
 * line per case
 *   shape=<out>x<in> rank=<r> batch=<b> polar_gflops=<x>
 *   openblas_gflops=<y> roofline_gflops=<z> of_roofline=<x/z>
 *   bound=<L1|L2|L3|DRAM|peak> polar_spread=<%> openblas_spread=<%>
 *   vs_openblas=<win|tie|loss>
 * and a summary line
 *   summary: cases=<n> median_of_roofline=<f> min_of_roofline=<f>
 *   above_roofline=<k> wins=<w> ties=<t> losses=<l>
 *   median_spread=<polar %>/<openblas %>
 * Exit status 1 if polar and OpenBLAS disagree or a case is above its
 * roofline.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "openblas_core.h"

#include "polar/lowrank.h"
#include "polar/polar.h"

#define PASSES 3
#define REPS 21
#define NSAMPLES (PASSES * REPS)
#define TARGET_S 0.0005
#define MEASURE_TRIES 101

/*
 * The kernels and OpenBLAS are timed in this thread's CPU time, so that
 * the time the scheduler gives other tasks on this shared machine is not
 * charged to whoever was running; what is left (other tasks' effect on
 * caches, a busy sibling core) hits both alike and shows in the spread.
 * The roofline's FMA and read loops are timed on the wall clock, best of
 * many runs: a run cut by the scheduler only reads slower and is dropped,
 * while in this VM the CPU-time clock now and then advances less than the
 * wall clock for a run that did execute (steal time is taken off in
 * lumps; a best-of-101 read 190.6 GFLOP/s against 178.8 on the wall
 * clock), and a ceiling must not rest on such a reading.
 */
static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double wall_now(void)
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

/* --- peak and bandwidth ---------------------------------------------- */

enum vec_isa { ISA_SCALAR, ISA_AVX2, ISA_AVX512 };
static const char *const isa_name[] = { "scalar", "avx2", "avx512" };

static enum vec_isa vec_isa(void)
{
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f"))
		return ISA_AVX512;
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return ISA_AVX2;
#endif
	return ISA_SCALAR;
}

/* Keeps a computed value alive without printing it. */
static volatile float sink;

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <immintrin.h>

#define FMA_CHAINS 12

/* FMA_CHAINS independent chains: more than latency x ports. */
__attribute__((target("avx512f"))) static double fma_flops_avx512(long it)
{
	__m512 acc[FMA_CHAINS], m = _mm512_set1_ps(0.999999f),
				a = _mm512_set1_ps(1e-7f);
	double t;
	long i;
	int j;

	for (j = 0; j < FMA_CHAINS; j++)
		acc[j] = _mm512_set1_ps((float)j);
	t = wall_now();
	for (i = 0; i < it; i++) {
#pragma GCC unroll 12
		for (j = 0; j < FMA_CHAINS; j++)
			acc[j] = _mm512_fmadd_ps(acc[j], m, a);
	}
	t = wall_now() - t;
	for (j = 1; j < FMA_CHAINS; j++)
		acc[0] = _mm512_add_ps(acc[0], acc[j]);
	sink = _mm512_reduce_add_ps(acc[0]);
	return FMA_CHAINS * 32.0 * it / t;
}

__attribute__((target("avx2,fma"))) static double fma_flops_avx2(long it)
{
	__m256 acc[FMA_CHAINS], m = _mm256_set1_ps(0.999999f),
				a = _mm256_set1_ps(1e-7f);
	float out[8];
	double t;
	long i;
	int j;

	for (j = 0; j < FMA_CHAINS; j++)
		acc[j] = _mm256_set1_ps((float)j);
	t = wall_now();
	for (i = 0; i < it; i++) {
#pragma GCC unroll 12
		for (j = 0; j < FMA_CHAINS; j++)
			acc[j] = _mm256_fmadd_ps(acc[j], m, a);
	}
	t = wall_now() - t;
	for (j = 1; j < FMA_CHAINS; j++)
		acc[0] = _mm256_add_ps(acc[0], acc[j]);
	_mm256_storeu_ps(out, acc[0]);
	sink = out[0];
	return FMA_CHAINS * 16.0 * it / t;
}

/* Sums n floats (n a multiple of 128) `passes` times, 8 loads a step. */
__attribute__((target("avx512f"))) static void read_avx512(const float *p,
							   size_t n,
							   long passes)
{
	__m512 s[8];
	size_t i;
	long k;
	int j;

	for (j = 0; j < 8; j++)
		s[j] = _mm512_setzero_ps();
	for (k = 0; k < passes; k++)
		for (i = 0; i < n; i += 128)
#pragma GCC unroll 8
			for (j = 0; j < 8; j++)
				s[j] = _mm512_add_ps(
					s[j], _mm512_load_ps(p + i + 16 * j));
	for (j = 1; j < 8; j++)
		s[0] = _mm512_add_ps(s[0], s[j]);
	sink = _mm512_reduce_add_ps(s[0]);
}

__attribute__((target("avx2"))) static void read_avx2(const float *p,
						      size_t n, long passes)
{
	__m256 s[8];
	float out[8];
	size_t i;
	long k;
	int j;

	for (j = 0; j < 8; j++)
		s[j] = _mm256_setzero_ps();
	for (k = 0; k < passes; k++)
		for (i = 0; i < n; i += 128)
#pragma GCC unroll 16
			for (j = 0; j < 16; j++)
				s[j % 8] = _mm256_add_ps(
					s[j % 8], _mm256_load_ps(p + i + 8 * j));
	for (j = 1; j < 8; j++)
		s[0] = _mm256_add_ps(s[0], s[j]);
	_mm256_storeu_ps(out, s[0]);
	sink = out[0];
}
#endif

static double fma_flops_scalar(long it)
{
	float acc[8], m = 0.999999f, a = 1e-7f;
	double t;
	long i;
	int j;

	for (j = 0; j < 8; j++)
		acc[j] = (float)j;
	t = wall_now();
	for (i = 0; i < it; i++)
		for (j = 0; j < 8; j++)
			acc[j] = acc[j] * m + a;
	t = wall_now() - t;
	sink = acc[0] + acc[7];
	return 8.0 * 2.0 * it / t;
}

static void read_scalar(const float *p, size_t n, long passes)
{
	float s[8] = { 0 };
	size_t i;
	long k;
	int j;

	for (k = 0; k < passes; k++)
		for (i = 0; i < n; i += 8)
			for (j = 0; j < 8; j++)
				s[j] += p[i + j];
	sink = s[0] + s[7];
}

/*
 * Best of `tries` runs of the FMA loop, in GFLOP/s. Each run is short
 * (well under 1 ms at peak) so that some run on a shared machine while no
 * other task holds the core.
 */
static double peak_gflops(enum vec_isa isa, int tries)
{
	double best = 0, g;
	int r;

	for (r = 0; r < tries; r++) {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
		if (isa == ISA_AVX512)
			g = fma_flops_avx512(100000);
		else if (isa == ISA_AVX2)
			g = fma_flops_avx2(100000);
		else
#endif
			g = fma_flops_scalar(500000);
		if (g > best)
			best = g;
	}
	return best * 1e-9;
}

static void read_passes(enum vec_isa isa, const float *p, size_t n,
			long passes)
{
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
	if (isa == ISA_AVX512)
		read_avx512(p, n, passes);
	else if (isa == ISA_AVX2)
		read_avx2(p, n, passes);
	else
#endif
		read_scalar(p, n, passes);
}

/*
 * Read bandwidth in GB/s over n floats at p: passes over them, each timed
 * group of passes about 0.5 ms (one pass at least), best of `tries` groups
 * (at most 5 for buffers whose pass alone takes longer).
 */
static double read_gbps(enum vec_isa isa, const float *p, size_t n,
			int tries)
{
	double best = 0, t;
	long passes = 1;
	int r;

	read_passes(isa, p, n, 1);	/* fault in, warm up */
	t = wall_now();
	read_passes(isa, p, n, 1);
	t = wall_now() - t;
	if (t < 5e-4)
		passes = (long)(5e-4 / (t > 1e-9 ? t : 1e-9)) + 1;
	for (r = 0; r < (t < 5e-3 || tries < 5 ? tries : 5); r++) {
		t = wall_now();
		read_passes(isa, p, n, passes);
		t = wall_now() - t;
		if (4.0 * n * passes / t > best)
			best = 4.0 * n * passes / t;
	}
	return best * 1e-9;
}

enum { LVL_L1, LVL_L2, LVL_L3, LVL_DRAM, NLEVELS };
static const char *const level_name[] = { "L1", "L2", "L3", "DRAM" };

struct machine {
	enum vec_isa isa;
	double peak;			/* GFLOP/s */
	size_t cap[NLEVELS];		/* bytes a level holds (DRAM: max) */
	size_t buf[NLEVELS];		/* bytes its bandwidth was read from */
	double bw[NLEVELS];		/* GB/s */
	float *data[LVL_DRAM];		/* the L1..L3 buffers, kept */
};

static size_t cache_size(int name, size_t fallback)
{
	long v = sysconf(name);

	return v > 0 ? (size_t)v : fallback;
}

static size_t floats_of(size_t bytes)
{
	return bytes / sizeof(float) / 128 * 128;
}

/* Peak and L1..L3 bandwidth again, `tries` each; keeps the best seen. */
static void sample_machine(struct machine *m, int tries)
{
	double v = peak_gflops(m->isa, tries);
	int l;

	if (v > m->peak)
		m->peak = v;
	for (l = 0; l < LVL_DRAM; l++) {
		v = read_gbps(m->isa, m->data[l], floats_of(m->buf[l]), tries);
		if (v > m->bw[l])
			m->bw[l] = v;
	}
}

static void measure_machine(struct machine *m)
{
	float *dram;
	int l;

	memset(m, 0, sizeof(*m));
	m->isa = vec_isa();
	m->cap[LVL_L1] = cache_size(_SC_LEVEL1_DCACHE_SIZE, 32u << 10);
	m->cap[LVL_L2] = cache_size(_SC_LEVEL2_CACHE_SIZE, 1u << 20);
	m->cap[LVL_L3] = cache_size(_SC_LEVEL3_CACHE_SIZE, 32u << 20);
	if (m->cap[LVL_L2] < 2 * m->cap[LVL_L1])
		m->cap[LVL_L2] = 2 * m->cap[LVL_L1];
	if (m->cap[LVL_L3] < 2 * m->cap[LVL_L2])
		m->cap[LVL_L3] = 2 * m->cap[LVL_L2];
	m->cap[LVL_DRAM] = SIZE_MAX;
	m->buf[LVL_L1] = m->cap[LVL_L1] / 2;
	m->buf[LVL_L2] = m->cap[LVL_L2] / 2;
	m->buf[LVL_L3] = 4 * m->cap[LVL_L2] < m->cap[LVL_L3] / 2 ?
			 4 * m->cap[LVL_L2] : m->cap[LVL_L3] / 2;
	m->buf[LVL_DRAM] = 2 * m->cap[LVL_L3];
	for (l = 0; l < LVL_DRAM; l++)
		m->data[l] = falloc(floats_of(m->buf[l]), 1);
	dram = falloc(floats_of(m->buf[LVL_DRAM]), 1);
	m->bw[LVL_DRAM] = read_gbps(m->isa, dram, floats_of(m->buf[LVL_DRAM]),
				    5);
	free(dram);
	sample_machine(m, MEASURE_TRIES);
}

/* --- cases ----------------------------------------------------------- */

struct lr_case {
	uint32_t in, out, rank, batch;
	float *A, *B, *Bt, *Ap, *Bp, *x, *z, *y;
};

static void run_polar(struct lr_case *c)
{
	if (polar_lowrank_apply(c->Ap, c->Bp, c->rank, c->in, c->out,
				c->batch, c->x, c->z, c->y, 1)) {
		fprintf(stderr, "bench_lowrank: %s\n", polar_errmsg());
		exit(2);
	}
}

/* The same two products with OpenBLAS; bt selects the B layout. */
static void run_blas(struct lr_case *c, int bt)
{
	int b = (int)c->batch, in = (int)c->in, out = (int)c->out;
	int r = (int)c->rank;

	if (b == 1) {
		cblas_sgemv(CblasRowMajor, CblasNoTrans, r, in, 1.0f, c->A,
			    in, c->x, 1, 0.0f, c->z, 1);
		if (bt)
			cblas_sgemv(CblasRowMajor, CblasTrans, r, out, 1.0f,
				    c->Bt, out, c->z, 1, 1.0f, c->y, 1);
		else
			cblas_sgemv(CblasRowMajor, CblasNoTrans, out, r, 1.0f,
				    c->B, r, c->z, 1, 1.0f, c->y, 1);
		return;
	}
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b, r, in,
		    1.0f, c->x, in, c->A, in, 0.0f, c->z, r);
	if (bt)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b, out,
			    r, 1.0f, c->z, r, c->Bt, out, 1.0f, c->y, out);
	else
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b, out,
			    r, 1.0f, c->z, r, c->B, r, 1.0f, c->y, out);
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
	return (long)((double)n * TARGET_S / t) + 1;
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

/* Fills y with a fixed pattern so polar and OpenBLAS start alike. */
static void reset_y(float *y, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		y[i] = (float)(i % 7) * 0.25f - 0.75f;
}

struct case_result {
	uint32_t out, in, rank, batch;
	double tp[NSAMPLES], tb1[NSAMPLES], tb2[NSAMPLES];	/* s/call */
	double flops, bytes;
	size_t ws;		/* working set, bytes */
	double polar, blas, roof, of_roof, spread_p, spread_b;
	int level;		/* NLEVELS: bound by peak */
	int verdict;		/* 1 win, 0 tie, -1 loss */
};

/* roof, level and of_roof of a measured case on machine m. */
static void roofline(const struct machine *m, struct case_result *res)
{
	int l;

	for (l = 0; l < LVL_DRAM && res->ws > m->cap[l]; l++)
		;
	/* The bytes the level above cannot hold come from level l, the
	 * rest at best from the level above. */
	if (l == LVL_L1) {
		res->roof = m->bw[l] * res->flops / res->bytes;
	} else {
		double slow = 1.0 - (double)m->cap[l - 1] / (double)res->ws;

		res->roof = res->flops /
			    (res->bytes * ((1.0 - slow) / m->bw[l - 1] +
					   slow / m->bw[l]));
	}
	res->level = l;
	if (res->roof > m->peak) {
		res->roof = m->peak;
		res->level = NLEVELS;
	}
	res->of_roof = res->polar / res->roof;
}

/* Rates (GFLOP/s) from NSAMPLES sorted times: median and quartiles. */
static void rates(const double *t, double flops, double *med, double *lo,
		  double *hi)
{
	*med = flops / t[NSAMPLES / 2] * 1e-9;
	*lo = flops / t[(3 * NSAMPLES) / 4] * 1e-9;	/* slow quartile */
	*hi = flops / t[NSAMPLES / 4] * 1e-9;		/* fast quartile */
}

/*
 * One pass over a case: REPS samples of each contender into res, from
 * sample pass * REPS on; pass 0 also checks the results and fills in the
 * case. Returns 1 if polar and OpenBLAS disagree.
 */
static int run_case(struct lr_case *c, struct case_result *res, int pass)
{
	size_t ny = (size_t)c->batch * c->out;
	double e;
	float *yp;
	long np, nb1, nb2;
	uint32_t o, k;
	int r, bad = 0;

	c->A = falloc((size_t)c->rank * c->in, 1);
	c->B = falloc((size_t)c->rank * c->out, 1);
	c->Bt = falloc((size_t)c->rank * c->out, 0);
	c->Ap = falloc(polar_lowrank_packed_size(c->rank, c->in), 0);
	c->Bp = falloc(polar_lowrank_packed_size(c->rank, c->out), 0);
	c->x = falloc((size_t)c->batch * c->in, 1);
	c->z = falloc((size_t)c->batch * c->rank, 0);
	c->y = falloc(ny, 0);
	yp = falloc(ny, 0);
	for (o = 0; o < c->out; o++)
		for (k = 0; k < c->rank; k++)
			c->Bt[(size_t)k * c->out + o] =
				c->B[(size_t)o * c->rank + k];
	polar_lowrank_pack(c->A, c->B, c->rank, c->in, c->out, c->Ap, c->Bp);

	res->out = c->out;
	res->in = c->in;
	res->rank = c->rank;
	res->batch = c->batch;
	res->flops = 2.0 * c->rank * c->batch * ((double)c->in + c->out);
	res->bytes = 4.0 * ((double)c->rank * (c->in + c->out) +
			    (double)c->batch * (c->in + 2.0 * c->out));
	res->ws = sizeof(float) *
		  (polar_lowrank_packed_size(c->rank, c->in) +
		   polar_lowrank_packed_size(c->rank, c->out) +
		   (size_t)c->batch * (c->in + c->rank + c->out));

	reset_y(c->y, ny);
	run_polar(c);
	memcpy(yp, c->y, ny * sizeof(float));
	reset_y(c->y, ny);
	run_blas(c, 1);
	e = max_err(yp, c->y, ny, c->in);
	reset_y(c->y, ny);
	run_blas(c, 0);
	if (max_err(yp, c->y, ny, c->in) > e)
		e = max_err(yp, c->y, ny, c->in);
	if (pass == 0 && e > 1.0) {
		fprintf(stderr, "bench_lowrank: %ux%u rank %u batch %u: polar "
			"and openblas disagree (%.2f x tolerance)\n", c->out,
			c->in, c->rank, c->batch, e);
		bad = 1;
	}

	np = calls_for(c, 0);
	nb1 = calls_for(c, 1);
	nb2 = calls_for(c, 2);
	for (r = pass * REPS; r < (pass + 1) * REPS; r++) {
		res->tp[r] = time_calls(c, 0, np);
		res->tb1[r] = time_calls(c, 1, nb1);
		res->tb2[r] = time_calls(c, 2, nb2);
	}

	free(c->A); free(c->B); free(c->Bt); free(c->Ap); free(c->Bp);
	free(c->x); free(c->z); free(c->y); free(yp);
	return bad;
}

/* Medians, spreads and the verdict from all passes' samples. */
static void finish_case(struct case_result *res)
{
	double *tb, pm, plo, phi, bm, blo, bhi;

	qsort(res->tp, NSAMPLES, sizeof(double), cmp_double);
	qsort(res->tb1, NSAMPLES, sizeof(double), cmp_double);
	qsort(res->tb2, NSAMPLES, sizeof(double), cmp_double);
	tb = res->tb1[NSAMPLES / 2] < res->tb2[NSAMPLES / 2] ? res->tb1 :
							       res->tb2;
	rates(res->tp, res->flops, &pm, &plo, &phi);
	rates(tb, res->flops, &bm, &blo, &bhi);
	res->polar = pm;
	res->blas = bm;
	res->spread_p = (phi - plo) / pm;
	res->spread_b = (bhi - blo) / bm;
	res->verdict = plo > bhi ? 1 : phi < blo ? -1 : 0;
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof(double), cmp_double);
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

int main(int argc, char **argv)
{
	static const uint32_t shapes[][2] = {	/* out, in */
		{ 64, 64 }, { 100, 100 }, { 256, 256 }, { 300, 1000 },
		{ 1000, 300 }, { 1024, 1024 }, { 777, 1555 }, { 512, 2048 },
		{ 2048, 512 }, { 4096, 4096 },
	};
	static const uint32_t ranks[] = { 8, 16, 32 };
	static const uint32_t batches[] = { 1, 16, 256 };
	enum { NCASES = N(shapes) * N(ranks) * N(batches) };
	static struct case_result res[NCASES];
	static double of_roof[NCASES], sp[NCASES], sb[NCASES];
	const char *env = getenv("OPENBLAS_NUM_THREADS");
	const char *ct = getenv("OPENBLAS_CORETYPE");
	int threads = env && atoi(env) > 0 ? atoi(env) : 1;
	unsigned int s, ri, bi, i, n, bad = 0, above = 0;
	unsigned int wins = 0, ties = 0, losses = 0;
	double t0 = wall_now(), worst = 1e9;
	struct machine m;
	int l, pass;

	(void)argc;
	bench_openblas_best_core(argv);
	openblas_set_num_threads(threads);
	printf("# bench_lowrank: y += B (A x), fp32, batch-major; polar "
	       "kernel %s, 1 thread; OpenBLAS %s, core %s (OPENBLAS_CORETYPE "
	       "%s), %d thread%s, sgemv at batch 1, sgemm above, best of "
	       "B / B^T layouts; median of %d x ~%.1f ms of thread CPU "
	       "time in %d passes; %d cases, printed at the end\n",
	       polar_lowrank_kernel_name(), openblas_get_config(),
	       openblas_get_corename(), ct ? ct : "unset", threads,
	       threads == 1 ? "" : "s", NSAMPLES, TARGET_S * 1e3, PASSES,
	       NCASES);
	fflush(stdout);
	measure_machine(&m);

	/* Each case in PASSES passes some seconds apart, so a burst of
	 * load from other tasks reaches only part of its samples. */
	for (pass = 0; pass < PASSES; pass++) {
		n = 0;
		for (s = 0; s < N(shapes); s++)
			for (ri = 0; ri < N(ranks); ri++)
				for (bi = 0; bi < N(batches); bi++) {
					struct lr_case c = {
						.out = shapes[s][0],
						.in = shapes[s][1],
						.rank = ranks[ri],
						.batch = batches[bi],
					};

					/* The ceiling is the best the machine
					 * shows at any time of the run. */
					sample_machine(&m, 5);
					bad += run_case(&c, &res[n++], pass);
				}
	}
	sample_machine(&m, MEASURE_TRIES);
	for (i = 0; i < n; i++)
		finish_case(&res[i]);

	printf("# roofline: peak %.1f GFLOP/s (%s FMA loop); read bandwidth "
	       "(%s loads)", m.peak, isa_name[m.isa], isa_name[m.isa]);
	for (l = 0; l < NLEVELS; l++)
		printf(" %s %.1f GB/s (%zu KiB)", level_name[l], m.bw[l],
		       m.buf[l] >> 10);
	printf("; best seen during the run\n");
	for (i = 0; i < n; i++) {
		struct case_result *r = &res[i];

		roofline(&m, r);
		printf("shape=%ux%u rank=%u batch=%u polar_gflops=%.2f "
		       "openblas_gflops=%.2f roofline_gflops=%.2f "
		       "of_roofline=%.3f bound=%s polar_spread=%.1f%% "
		       "openblas_spread=%.1f%% vs_openblas=%s\n", r->out, r->in,
		       r->rank, r->batch, r->polar, r->blas, r->roof,
		       r->of_roof, r->level == NLEVELS ? "peak" :
		       level_name[r->level], 100 * r->spread_p,
		       100 * r->spread_b, r->verdict > 0 ? "win" :
		       r->verdict < 0 ? "loss" : "tie");
		of_roof[i] = r->of_roof;
		sp[i] = 100 * r->spread_p;
		sb[i] = 100 * r->spread_b;
		if (r->of_roof < worst)
			worst = r->of_roof;
		above += r->of_roof > 1.0;
		wins += r->verdict > 0;
		ties += r->verdict == 0;
		losses += r->verdict < 0;
	}
	printf("# %.1f s in all%s%s\n", wall_now() - t0,
	       bad ? "; RESULTS DISAGREE" : "",
	       above ? "; A CASE IS ABOVE ITS ROOFLINE" : "");
	printf("summary: cases=%u median_of_roofline=%.3f "
	       "min_of_roofline=%.3f above_roofline=%u wins=%u ties=%u "
	       "losses=%u median_spread=%.1f%%/%.1f%%\n", n,
	       median(of_roof, n), worst, above, wins, ties, losses,
	       median(sp, n), median(sb, n));
	for (l = 0; l < LVL_DRAM; l++)
		free(m.data[l]);
	return bad || above ? 1 : 0;
}
