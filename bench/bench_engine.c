// SPDX-License-Identifier: MIT
/*
 * bench_engine - how close cim_engine comes to what this machine can do.
 *
 * Per case (chip ideal or noisy, NF4 x UINT4 or INT4 x INT4, three layer
 * shapes: 512x512 and the CNN's conv2 and fc1, batch 256), measured in
 * one run, medians of several timed runs after a warm-up:
 *   - the engine's MAC/s with its default kernel and every CPU
 *     (engine_gmacs), and with one thread (engine_1t_gmacs);
 *   - the portable kernel, which is what every chip ran before the
 *     dot-product kernel (portable_gmacs);
 *   - single-thread OpenBLAS sgemm on the same shape (sgemm_gmacs), the
 *     cost of just computing the layer in float.
 * Outputs are checked: the default kernel against the portable one on the
 * whole batch, and both against the naive per-MAC reference
 * (tests/unit/cim_naive.h) on the first items.
 * Then, for the noisy NF4 case, the popcount roofline: a tight loop doing
 * only the AND + popcount work of that case's conversions (a 128-row group
 * of an 8-plane weight column, 8 deviation bit-planes) on the same number
 * of threads as the engine, with no ADC and no accumulation beyond the
 * counts, with scalar popcnt and, where the CPU has it, AVX-512
 * VPOPCNTDQ; the faster is the roofline. Its MAC/s is the ceiling of a
 * bit-plane simulator that counts cells; the engine may pass it by not
 * counting cells at all.
 *
 * "noisy" is the default chip of polar eval and make run: sigma-static 0.2
 * (13107 Q16), no read noise, 5-bit ADC, 128x128 tiles.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "cim_engine.h"
#include "cim_naive.h"
#include "openblas_core.h"

#define BATCH   256
#define RUNS    7        /* timed runs per measurement; median */
#define RUN_S   0.05     /* a run repeats its call for at least this long */
#define NAIVE_ITEMS 2

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
	rs ^= rs >> 12;
	rs ^= rs << 25;
	rs ^= rs >> 27;
	return rs * 2685821657736338717ull;
}

static int rnd_range(int lo, int hi)
{
	return lo + (int)((rnd() >> 33) % (uint64_t)(hi - lo + 1));
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median over RUNS of calls/s of fn(arg), after one warm-up call. */
static double median_rate(int (*fn)(void *), void *arg)
{
	double r[RUNS];
	int k;

	if (fn(arg))
		return -1;
	for (k = 0; k < RUNS; k++) {
		double t0 = now(), t;
		unsigned n = 0;

		do {
			if (fn(arg))
				return -1;
			n++;
			t = now() - t0;
		} while (t < RUN_S);
		r[k] = n / t;
	}
	qsort(r, RUNS, sizeof(r[0]), cmp_double);
	return r[RUNS / 2];
}

struct shape {
	const char *name;
	uint32_t in, out;
};

struct bcase {
	int noisy;
	enum cim_fmt wfmt, xfmt;
	int x_signed;
	const struct shape *sh;
};

static const char *fmt_name(enum cim_fmt f, int is_x, int sgn)
{
	if (f == CIM_FMT_NF4)
		return "nf4";
	if (f == CIM_FMT_INT8)
		return is_x && !sgn ? "uint8" : "int8";
	return is_x && !sgn ? "uint4" : "int4";
}

static void chip_config(struct cim_config *cfg, int noisy, uint32_t tiles)
{
	cim_config_default(cfg);
	cfg->tiles = tiles;
	cfg->seed = 7;
	if (noisy)
		cfg->sigma_static_q16 = 13107;
}

struct engine_call {
	struct cim_engine *e;
	struct cim_matmul_args a;
};

static int engine_call(void *p)
{
	struct engine_call *c = p;

	return cim_engine_matmul(c->e, &c->a);
}

struct sgemm_call {
	const float *x, *w;
	float *y;
	uint32_t in, out;
};

static int sgemm_call(void *p)
{
	struct sgemm_call *c = p;

	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, BATCH, (int)c->out,
		    (int)c->in, 1.0f, c->x, (int)c->in, c->w, (int)c->in, 0.0f,
		    c->y, (int)c->out);
	return 0;
}

static unsigned n_threads;

/* ---- the popcount roofline --------------------------------------------
 * One tile's 128 columns with an 8-plane weight and 8 deviation
 * bit-planes, 2 words (128 rows) per plane; per item, 4 input planes. Per
 * conversion: n from 2 AND + popcount, the deviation sum from 16, weighted
 * as the portable kernel weighs them. Two versions, and the faster one is
 * the roofline: scalar popcnt, and AVX-512 VPOPCNTDQ (8 columns' words per
 * instruction, columns innermost) where the CPU has it. */
#define ROOF_COLS 128

struct roof_arg {
	const uint64_t *wpl, *dg, *x;
	uint32_t items;
	int vec;
	uint64_t sink;
	pthread_t tid;
};

/* layout [j][q][col] and [j][k][q][col] */
#define RW(j, q, c) (((size_t)(j) * 2 + (q)) * ROOF_COLS + (c))
#define RD(j, k, q, c) ((((size_t)(j) * 8 + (k)) * 2 + (q)) * ROOF_COLS + (c))

__attribute__((target("popcnt")))
static void roof_scalar(struct roof_arg *r)
{
	uint64_t sink = 0;
	uint32_t b, c, i, j, q, k;

	for (b = 0; b < r->items; b++) {
		const uint64_t *xb = r->x + (size_t)b * 8;

		for (c = 0; c < ROOF_COLS; c++) {
			int64_t a = 0;

			for (i = 0; i < 4; i++)
				for (j = 0; j < 8; j++) {
					int64_t n = 0, d = 0;

					for (q = 0; q < 2; q++) {
						uint64_t v = xb[i * 2 + q] &
							     r->wpl[RW(j, q, c)];

						n += __builtin_popcountll(v);
						for (k = 0; k < 8; k++)
							d += (int64_t)__builtin_popcountll(
								v & r->dg[RD(j, k, q, c)])
								<< k;
					}
					a += n * 256 + d;
				}
			sink += (uint64_t)a;
		}
	}
	r->sink = sink;
}

#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("avx512f,avx512vpopcntdq")))
static void roof_vector(struct roof_arg *r)
{
	__m512i sink = _mm512_setzero_si512();
	uint32_t b, c, i, j, q, k;

	for (b = 0; b < r->items; b++) {
		const uint64_t *xb = r->x + (size_t)b * 8;

		for (c = 0; c < ROOF_COLS; c += 8) {
			__m512i a = _mm512_setzero_si512();

			for (i = 0; i < 4; i++)
				for (j = 0; j < 8; j++) {
					__m512i n = _mm512_setzero_si512();
					__m512i d = _mm512_setzero_si512();

					for (q = 0; q < 2; q++) {
						__m512i v = _mm512_and_si512(
							_mm512_set1_epi64((long long)
								xb[i * 2 + q]),
							_mm512_loadu_si512(r->wpl +
								RW(j, q, c)));

						n = _mm512_add_epi64(n,
							_mm512_popcnt_epi64(v));
						for (k = 0; k < 8; k++)
							d = _mm512_add_epi64(d,
								_mm512_slli_epi64(
								_mm512_popcnt_epi64(
								_mm512_and_si512(v,
								_mm512_loadu_si512(
								r->dg + RD(j, k, q, c)))),
								k));
					}
					a = _mm512_add_epi64(a, _mm512_add_epi64(
						_mm512_slli_epi64(n, 8), d));
				}
			sink = _mm512_add_epi64(sink, a);
		}
	}
	r->sink = (uint64_t)_mm512_reduce_add_epi64(sink);
}

static int roof_has_vector(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f") &&
	       __builtin_cpu_supports("avx512vpopcntdq");
}
#else
static void roof_vector(struct roof_arg *r)
{
	roof_scalar(r);
}

static int roof_has_vector(void)
{
	return 0;
}
#endif

static void *roof_run(void *p)
{
	struct roof_arg *r = p;

	if (r->vec)
		roof_vector(r);
	else
		roof_scalar(r);
	return NULL;
}

struct roof_call {
	struct roof_arg arg[CIM_MAX_THREADS];
};

static int roof_call(void *p)
{
	struct roof_call *rc = p;
	unsigned t;

	for (t = 1; t < n_threads; t++)
		if (pthread_create(&rc->arg[t].tid, NULL, roof_run, &rc->arg[t]))
			return -1;
	roof_run(&rc->arg[0]);
	for (t = 1; t < n_threads; t++)
		pthread_join(rc->arg[t].tid, NULL);
	return 0;
}

/* MAC/s the roofline loop reaches on the NF4 x UINT4 conversions: each
 * conversion of a 128-row group stands for 128 / 32 logical MACs. */
static double popcount_roofline(int vec)
{
	const uint32_t items = BATCH / n_threads;
	uint64_t *wpl = malloc(sizeof(uint64_t) * ROOF_COLS * 16);
	uint64_t *dg = malloc(sizeof(uint64_t) * ROOF_COLS * 128);
	uint64_t *x = malloc(sizeof(uint64_t) * BATCH * 8);
	struct roof_call rc;
	double calls;
	size_t q;
	unsigned t;

	for (q = 0; q < (size_t)ROOF_COLS * 16; q++)
		wpl[q] = rnd();
	for (q = 0; q < (size_t)ROOF_COLS * 128; q++)
		dg[q] = rnd();
	for (q = 0; q < (size_t)BATCH * 8; q++)
		x[q] = rnd();
	for (t = 0; t < n_threads; t++) {
		rc.arg[t].wpl = wpl;
		rc.arg[t].dg = dg;
		rc.arg[t].x = x + (size_t)t * items * 8;
		rc.arg[t].items = items;
		rc.arg[t].vec = vec;
	}
	calls = median_rate(roof_call, &rc);
	free(wpl);
	free(dg);
	free(x);
	/* per call: n_threads * items * cols * 32 conversions, 4 MACs each */
	return calls * n_threads * items * ROOF_COLS * 32.0 * 4.0;
}

/* ------------------------------------------------------------------------ */

static int run_case(const struct bcase *bc, double *engine_out)
{
	const struct shape *sh = bc->sh;
	uint32_t rt = (sh->in + 127) / 128, ct = (sh->out + 127) / 128;
	size_t nw = (size_t)sh->in * sh->out, q;
	int8_t *w = malloc(nw), *x = malloc((size_t)BATCH * sh->in);
	int32_t *y = malloc(sizeof(int32_t) * BATCH * sh->out);
	int32_t *yp = malloc(sizeof(int32_t) * BATCH * sh->out);
	int32_t *yr = malloc(sizeof(int32_t) * NAIVE_ITEMS * sh->out);
	float *xf = malloc(sizeof(float) * BATCH * sh->in);
	float *wf = malloc(sizeof(float) * nw);
	float *yf = malloc(sizeof(float) * BATCH * sh->out);
	struct cim_config cfg;
	struct naive_chip *nv;
	struct engine_call ec = { 0 };
	struct sgemm_call sc = { xf, wf, yf, sh->in, sh->out };
	double macs = (double)BATCH * sh->in * sh->out;
	double eng, eng1, port, sg;
	size_t bad_port = 0, bad_naive = 0, bad_sgemm = 0;
	char name[96];
	int wlo = bc->wfmt == CIM_FMT_NF4 ? 0 : -8;
	int whi = bc->wfmt == CIM_FMT_NF4 ? 15 : 7;

	chip_config(&cfg, bc->noisy, rt * ct);
	if (cim_engine_create(&cfg, &ec.e) || !(nv = naive_create(&cfg))) {
		fprintf(stderr, "bench_engine: create failed\n");
		return -1;
	}
	for (q = 0; q < nw; q++) {
		w[q] = (int8_t)rnd_range(wlo, whi);
		wf[q] = (float)w[q];
	}
	for (q = 0; q < (size_t)BATCH * sh->in; q++) {
		x[q] = (int8_t)(bc->x_signed ? rnd_range(-8, 7) :
				rnd_range(0, 15));
		xf[q] = (float)x[q];
	}
	if (cim_engine_program(ec.e, 0, sh->in, sh->out, bc->wfmt, w) < 0 ||
	    naive_program(nv, 0, sh->in, sh->out, bc->wfmt, w) < 0) {
		fprintf(stderr, "bench_engine: program failed\n");
		return -1;
	}
	ec.a.in_dim = sh->in;
	ec.a.out_dim = sh->out;
	ec.a.wfmt = bc->wfmt;
	ec.a.xfmt = bc->xfmt;
	ec.a.x_signed = bc->x_signed;
	ec.a.adc_fs_q8 = 20 * 256;
	ec.a.job_seed = 3;
	ec.a.batch = BATCH;
	ec.a.x = x;

	/* outputs first: default kernel, portable kernel, naive */
	ec.a.y = y;
	if (cim_engine_matmul(ec.e, &ec.a))
		return -1;
	cim_engine_set_kernel(ec.e, CIM_KERNEL_PORTABLE);
	ec.a.y = yp;
	if (cim_engine_matmul(ec.e, &ec.a))
		return -1;
	for (q = 0; q < (size_t)BATCH * sh->out; q++)
		bad_port += y[q] != yp[q];
	{
		struct cim_matmul_args b = ec.a;

		b.batch = NAIVE_ITEMS;
		b.y = yr;
		if (naive_matmul(nv, &b))
			return -1;
		for (q = 0; q < (size_t)NAIVE_ITEMS * sh->out; q++)
			bad_naive += y[q] != yr[q];
	}

	cim_engine_set_threads(ec.e, n_threads);
	port = median_rate(engine_call, &ec) * macs;
	cim_engine_set_kernel(ec.e, CIM_KERNEL_AUTO);
	eng = median_rate(engine_call, &ec) * macs;
	cim_engine_set_threads(ec.e, 1);
	eng1 = median_rate(engine_call, &ec) * macs;
	sg = median_rate(sgemm_call, &sc) * macs;
	/* small integers: every float product and sum is exact */
	for (q = 0; q < (size_t)BATCH * sh->out; q++) {
		size_t b = q / sh->out, o = q % sh->out, i;
		int64_t ref = 0;

		for (i = 0; i < sh->in; i++)
			ref += (int64_t)x[b * sh->in + i] * w[o * sh->in + i];
		bad_sgemm += yf[q] != (float)ref;
	}

	snprintf(name, sizeof(name), "%s-%s-%s-%s", bc->noisy ? "noisy" : "ideal",
		 fmt_name(bc->wfmt, 0, 0), fmt_name(bc->xfmt, 1, bc->x_signed),
		 sh->name);
	printf("case=%s engine_gmacs=%.3f sgemm_gmacs=%.2f ratio=%.4f "
	       "kernel=%s threads=%u engine_1t_gmacs=%.3f portable_gmacs=%.3f "
	       "speedup_over_portable=%.1f check=%s\n",
	       name, eng * 1e-9, sg * 1e-9, eng / sg, cim_engine_kernel_name(ec.e),
	       n_threads, eng1 * 1e-9, port * 1e-9, eng / port,
	       bad_port || bad_naive || bad_sgemm ? "MISMATCH" : "ok");
	fflush(stdout);
	*engine_out = eng;
	cim_engine_destroy(ec.e);
	naive_destroy(nv);
	free(w);
	free(x);
	free(y);
	free(yp);
	free(yr);
	free(xf);
	free(wf);
	free(yf);
	return bad_port || bad_naive || bad_sgemm ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct shape shapes[] = {
		{ "512x512", 512, 512 },
		{ "conv2_32x400", 400, 32 },
		{ "fc1_128x1568", 1568, 128 },
	};
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	double eng, eng_nf4_noisy[3], worst_ratio = 1e300, roof;
	int noisy, fmt, s, bad = 0;

	(void)argc;
	bench_openblas_best_core(argv);
	n_threads = cpus < 1 ? 1 : cpus > CIM_MAX_THREADS ? CIM_MAX_THREADS :
		    (unsigned)cpus;
	openblas_set_num_threads(1);
	printf("cim_engine bench: batch %d, 128x128 tiles, 5-bit ADC, FS 20 "
	       "cells; engine on %u threads, sgemm on 1 (OpenBLAS, %s kernels)\n",
	       BATCH, n_threads, openblas_get_corename());
	for (noisy = 0; noisy < 2; noisy++)
		for (fmt = 0; fmt < 2; fmt++)
			for (s = 0; s < 3; s++) {
				struct bcase bc = {
					noisy, fmt ? CIM_FMT_INT4 : CIM_FMT_NF4,
					CIM_FMT_INT4, fmt, &shapes[s],
				};
				int r = run_case(&bc, &eng);

				if (r < 0)
					return 2;
				bad |= r;
				if (noisy && !fmt) {
					eng_nf4_noisy[s] = eng;
				}
			}
	roof = popcount_roofline(0);
	printf("popcount_scalar_gmacs=%.3f\n", roof * 1e-9);
	if (roof_has_vector()) {
		double v = popcount_roofline(1);

		printf("popcount_avx512_gmacs=%.3f\n", v * 1e-9);
		if (v > roof)
			roof = v;
	}
	printf("popcount_gmacs=%.3f (noisy nf4 x uint4 conversions, %u "
	       "threads, the faster of the above)\n", roof * 1e-9, n_threads);
	for (s = 0; s < 3; s++)
		if (eng_nf4_noisy[s] / roof < worst_ratio)
			worst_ratio = eng_nf4_noisy[s] / roof;
	printf("engine vs popcount roofline: %.2f (lowest of the noisy nf4 "
	       "shapes)\n", worst_ratio);
	if (bad)
		printf("bench_engine: OUTPUT MISMATCH (see check= above)\n");
	return bad;
}
