// SPDX-License-Identifier: MIT
/*
 * bench_engine - simulated MAC/s of cim_engine against the naive reference
 * (tests/unit/cim_naive.h) measured in the same run, 128x128 tiles, 5-bit
 * ADC, a 512x512 layer (16 tiles), INT4 and INT8, ideal and noisy chips.
 * The naive reference runs on the first few batch items of the same job
 * (it is far slower); its outputs are checked against the engine's.
 *
 * Last line: "engine speedup over naive: <min>x" (minimum over the cases;
 * the geometric mean is printed on the line before).
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cim_engine.h"
#include "cim_naive.h"

#define IN_DIM  512
#define OUT_DIM 512
#define BATCH   256

static double now(void)
{
	struct timespec ts;

	timespec_get(&ts, TIME_UTC);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static int rnd_range(int lo, int hi)
{
	rs ^= rs >> 12;
	rs ^= rs << 25;
	rs ^= rs >> 27;
	return lo + (int)((rs * 2685821657736338717ull >> 33) %
			  (uint64_t)(hi - lo + 1));
}

struct bcase {
	const char *name;
	enum cim_fmt fmt;  /* weights and inputs */
	int noisy;
};

static double run_case(const struct bcase *bc)
{
	struct cim_config cfg;
	struct cim_engine *e;
	struct naive_chip *nv;
	struct cim_matmul_args a = { 0 };
	struct cim_counters cnt;
	struct cim_energy en;
	size_t nw = (size_t)IN_DIM * OUT_DIM, q;
	int8_t *w = malloc(nw), *x = malloc((size_t)BATCH * IN_DIM);
	int32_t *y = malloc(sizeof(int32_t) * BATCH * OUT_DIM);
	int32_t *yr = malloc(sizeof(int32_t) * BATCH * OUT_DIM);
	double t0, te, tn, eng_rate, nv_rate;
	uint32_t reps = 0, nitems = 0, mism = 0;
	int lo = bc->fmt == CIM_FMT_INT4 ? -8 : -128;
	int hi = bc->fmt == CIM_FMT_INT4 ? 7 : 127;

	cim_config_default(&cfg);
	cfg.tiles = 16;
	cfg.seed = 1;
	if (bc->noisy) {
		cfg.sigma_static_q16 = 3277;     /* 5 % conductance spread */
		cfg.sigma_dynamic_q16 = 1311;    /* 2 % read noise per cell */
		cfg.stuck_rate_ppm = 100;
		cfg.adc_offset_sigma_q16 = 16384; /* 0.25 LSB */
		cfg.adc_gain_sigma_q16 = 655;    /* 1 % */
	}
	if (cim_engine_create(&cfg, &e) || !(nv = naive_create(&cfg))) {
		fprintf(stderr, "create failed\n");
		exit(2);
	}
	for (q = 0; q < nw; q++)
		w[q] = (int8_t)rnd_range(lo, hi);
	for (q = 0; q < (size_t)BATCH * IN_DIM; q++)
		x[q] = (int8_t)rnd_range(lo, hi);
	if (cim_engine_program(e, 0, IN_DIM, OUT_DIM, bc->fmt, w) != 16 ||
	    naive_program(nv, 0, IN_DIM, OUT_DIM, bc->fmt, w) != 16) {
		fprintf(stderr, "program failed\n");
		exit(2);
	}
	a.in_dim = IN_DIM;
	a.out_dim = OUT_DIM;
	a.wfmt = bc->fmt;
	a.xfmt = bc->fmt;
	a.x_signed = 1;
	a.adc_fs_q8 = 48 * 256;
	a.job_seed = 3;
	a.batch = BATCH;
	a.x = x;
	a.y = y;

	cim_engine_reset_counters(e);
	t0 = now();
	do {
		if (cim_engine_matmul(e, &a)) {
			fprintf(stderr, "matmul failed\n");
			exit(2);
		}
		reps++;
		te = now() - t0;
	} while (te < 0.5);
	eng_rate = (double)reps * BATCH * IN_DIM * OUT_DIM / te;
	cim_engine_counters(e, &cnt);

	/* naive: whole items until 0.5 s have passed (at least one) */
	t0 = now();
	do {
		struct cim_matmul_args b = a;

		b.batch = 1;
		b.item0 = nitems;
		b.x = x + (size_t)nitems * IN_DIM;
		b.y = yr + (size_t)nitems * OUT_DIM;
		naive_matmul(nv, &b);
		nitems++;
		tn = now() - t0;
	} while (tn < 0.5 && nitems < BATCH);
	nv_rate = (double)nitems * IN_DIM * OUT_DIM / tn;
	for (q = 0; q < (size_t)nitems * OUT_DIM; q++)
		mism += y[q] != yr[q];

	cim_energy_estimate(&cnt, cfg.adc_bits, NULL, &en);
	printf("%-12s engine %8.3f GMAC/s (%u x %d items)  naive %8.4f GMAC/s "
	       "(%u items)  speedup %7.1fx  check %s  compute %.1f TOPS/W\n",
	       bc->name, eng_rate * 1e-9, reps, BATCH, nv_rate * 1e-9, nitems,
	       eng_rate / nv_rate, mism ? "MISMATCH" : "ok", en.tops_per_w);
	cim_engine_destroy(e);
	naive_destroy(nv);
	free(w);
	free(x);
	free(y);
	free(yr);
	if (mism)
		exit(1);
	return eng_rate / nv_rate;
}

int main(void)
{
	static const struct bcase cases[] = {
		{ "INT4 ideal", CIM_FMT_INT4, 0 },
		{ "INT8 ideal", CIM_FMT_INT8, 0 },
		{ "INT4 noisy", CIM_FMT_INT4, 1 },
		{ "INT8 noisy", CIM_FMT_INT8, 1 },
	};
	double mn = 1e300, lg = 0;
	size_t k, n = sizeof(cases) / sizeof(cases[0]);

	printf("cim_engine bench: %dx%d layer, 128x128 tiles, 5-bit ADC, "
	       "batch %d, signed inputs\n", IN_DIM, OUT_DIM, BATCH);
	for (k = 0; k < n; k++) {
		double s = run_case(&cases[k]);

		lg += log(s);
		if (s < mn)
			mn = s;
	}
	printf("geometric mean speedup: %.1fx\n", exp(lg / (double)n));
	printf("engine speedup over naive: %.1fx (minimum over %zu cases)\n",
	       mn, n);
	return 0;
}
