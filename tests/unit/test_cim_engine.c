// SPDX-License-Identifier: MIT
/*
 * Host unit tests for cim_engine: bit-exact against the naive reference
 * (cim_naive.h), exactness of the lossless configuration, noise
 * statistics, determinism, counters and argument validation.
 * One TAP line per test function (unit.h); exits non-zero on any failure.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cim_engine.h"
#include "cim_naive.h"
#include "unit.h"

/* test-side PRNG (xorshift64*) */
static uint64_t rs = 0x1234567887654321ull;
static uint64_t rnd(void)
{
	rs ^= rs >> 12;
	rs ^= rs << 25;
	rs ^= rs >> 27;
	return rs * 2685821657736338717ull;
}

static int rnd_range(int lo, int hi) /* inclusive */
{
	return lo + (int)(rnd() % (uint64_t)(hi - lo + 1));
}

static void fill_w(int8_t *w, size_t n, enum cim_fmt f)
{
	size_t i;

	for (i = 0; i < n; i++)
		w[i] = (int8_t)(f == CIM_FMT_INT8 ? rnd_range(-128, 127) :
				f == CIM_FMT_INT4 ? rnd_range(-8, 7) :
				rnd_range(0, 15));
}

static void fill_x(int8_t *x, size_t n, enum cim_fmt f, int sgn)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (f == CIM_FMT_INT8)
			x[i] = (int8_t)(uint8_t)rnd_range(0, 255);
		else
			x[i] = (int8_t)(sgn ? rnd_range(-8, 7) : rnd_range(0, 15));
	}
}

static int xval(int8_t v, enum cim_fmt f, int sgn)
{
	if (f == CIM_FMT_INT8 && !sgn)
		return (uint8_t)v;
	return v;
}

static void exact_dot(const int8_t *w, const int8_t *x, uint32_t in,
		      uint32_t out, uint32_t batch, enum cim_fmt wf,
		      enum cim_fmt xf, int sgn, const int8_t *cb, int64_t *y)
{
	uint32_t b, o, i;

	for (b = 0; b < batch; b++)
		for (o = 0; o < out; o++) {
			int64_t s = 0;

			for (i = 0; i < in; i++) {
				int wv = w[(size_t)o * in + i];

				if (wf == CIM_FMT_NF4)
					wv = cb[wv];
				s += (int64_t)wv * xval(x[(size_t)b * in + i], xf, sgn);
			}
			y[(size_t)b * out + o] = s;
		}
}

static const char *fname(enum cim_fmt f)
{
	return f == CIM_FMT_INT8 ? "INT8" : f == CIM_FMT_INT4 ? "INT4" : "NF4";
}

/* ------------------------------------------------------------------------ */

static void test_gauss(void)
{
	double s = 0, s2 = 0, s4 = 0;
	int i, N = 200000;

	for (i = 0; i < N; i++) {
		double z = cim_gauss_q17(cim_hash64(7, (uint64_t)i)) / 131072.0;

		s += z;
		s2 += z * z;
		s4 += z * z * z * z;
	}
	s /= N;
	s2 /= N;
	s4 /= N;
	CHECK(fabs(s) < 0.01, "gauss mean %f", s);
	CHECK(fabs(sqrt(s2) - 1.0) < 0.01, "gauss sd %f", sqrt(s2));
	/* Irwin-Hall(12) kurtosis is 2.9 (normal: 3) */
	CHECK(fabs(s4 / (s2 * s2) - 2.9) < 0.05, "gauss kurtosis %f",
	      s4 / (s2 * s2));
	CHECK(cim_hash64(1, 2) == cim_mix64(cim_mix64(1) ^ 2), "hash def");
}

/*
 * y(n) - n over n = 0..G active cells of one column, one plane pair, one
 * row group (weights 1, inputs n ones then zeros), noise off: the number
 * of counts a chip of @bits-bit ADC, group G and reconstruction @recon
 * does not return exactly at full scale @fs_q8 (0 = G cells).
 */
static int count_inexact(uint32_t bits, uint32_t G, uint32_t recon,
			 uint32_t fs_q8)
{
	struct cim_config cfg;
	struct cim_engine *e;
	struct cim_matmul_args a = { 0 };
	int8_t *w = malloc(G), *x = malloc((size_t)(G + 1) * G);
	int32_t *y = malloc(sizeof(int32_t) * (G + 1));
	uint32_t n, r;
	int bad = 0;

	cim_config_default(&cfg);
	cfg.rows = G;
	cfg.cols = 1;
	cfg.tiles = 1;
	cfg.adcs_per_tile = 0;
	cfg.rows_per_conversion = 0;
	cfg.adc_bits = bits;
	cfg.recon = recon;
	if (cim_engine_create(&cfg, &e))
		return -1;
	for (r = 0; r < G; r++)
		w[r] = 1;
	for (n = 0; n <= G; n++)
		for (r = 0; r < G; r++)
			x[(size_t)n * G + r] = r < n;
	a.in_dim = G;
	a.out_dim = 1;
	a.wfmt = CIM_FMT_INT4;
	a.xfmt = CIM_FMT_INT4;
	a.adc_fs_q8 = fs_q8;
	a.batch = G + 1;
	a.x = x;
	a.y = y;
	if (cim_engine_program(e, 0, G, 1, CIM_FMT_INT4, w) != 1 ||
	    cim_engine_matmul(e, &a))
		bad = -1;
	for (n = 0; n <= G && bad >= 0; n++)
		bad += y[n] != (int32_t)n;
	cim_engine_destroy(e);
	free(w);
	free(x);
	free(y);
	return bad;
}

/*
 * The exactness contracts of cim_engine.md at their edges. Whole-cell
 * reconstruction at FS = G <= L is exact except for b = 10..12 with
 * G > 1014, where the rounded ADC multiplier M_c moves a code (the G
 * listed fail; every G was enumerated with the documented formulas:
 * b = 10 fails at G = 1015, 1020, 1021 only); FS = k L is exact only
 * for k = 1. Code reconstruction at FS = L is exact for every b and
 * G <= L.
 */
static void test_exact_edges(void)
{
	static const struct {
		uint32_t bits, G, recon, fs_cells;
		int exact;
	} cs[] = {
		{ 10, 1014, CIM_RECON_CELLS, 0, 1 },
		{ 10, 1015, CIM_RECON_CELLS, 0, 0 },
		{ 10, 1020, CIM_RECON_CELLS, 0, 0 },
		{ 10, 1021, CIM_RECON_CELLS, 0, 0 },
		{ 10, 1022, CIM_RECON_CELLS, 0, 1 },
		{ 11, 2009, CIM_RECON_CELLS, 0, 0 },
		{ 12, 3899, CIM_RECON_CELLS, 0, 0 },
		{ 9, 511, CIM_RECON_CELLS, 0, 1 },
		{ 13, 4096, CIM_RECON_CELLS, 0, 1 },
		{ 5, 31, CIM_RECON_CELLS, 31, 1 },
		{ 5, 31, CIM_RECON_CELLS, 62, 0 },	/* FS = 2 L */
		{ 5, 31, CIM_RECON_CODES, 31, 1 },
		{ 5, 31, CIM_RECON_CODES, 62, 0 },
		{ 10, 1015, CIM_RECON_CODES, 1023, 1 },
		{ 10, 1023, CIM_RECON_CODES, 1023, 1 },
		{ 11, 2009, CIM_RECON_CODES, 2047, 1 },
		{ 12, 3899, CIM_RECON_CODES, 4095, 1 },
		{ 16, 4096, CIM_RECON_CODES, 65535, 1 },
		{ 8, 128, CIM_RECON_CODES, 255, 1 },
	};
	size_t k;

	for (k = 0; k < sizeof(cs) / sizeof(cs[0]); k++) {
		int bad = count_inexact(cs[k].bits, cs[k].G, cs[k].recon,
					cs[k].fs_cells * 256);

		CHECK(bad >= 0 && (bad == 0) == cs[k].exact,
		      "%s b=%u G=%u FS=%u: %d inexact counts, expected %s",
		      cim_recon_name(cs[k].recon), cs[k].bits, cs[k].G,
		      cs[k].fs_cells ? cs[k].fs_cells : cs[k].G, bad,
		      cs[k].exact ? "none" : "some");
	}
}

/*
 * Code reconstruction keeps what one ADC step resolves below a cell: one
 * cell whose static deviation D is a good fraction of a cell, read at a
 * step of 2/31 cell, gives y(x) ~ x (1 + D), a weight change linear in
 * the input. Whole-cell rounding turns 1 + D back into 1 and loses it.
 */
static void test_subcell_kept(void)
{
	struct cim_config cfg;
	struct cim_engine *e;
	struct cim_matmul_args a = { 0 };
	int8_t w = 1, x[16];
	int32_t y[16];
	double D = 0;
	int k, m, bad;

	cim_config_default(&cfg);
	cfg.rows = cfg.cols = cfg.tiles = 1;
	cfg.adcs_per_tile = 0;
	cfg.rows_per_conversion = 0;
	cfg.sigma_static_q16 = 13107;
	/* a chip whose only cell deviates by 0.2 to 0.45 of a cell */
	for (cfg.seed = 1; cfg.seed < 10000; cfg.seed++) {
		D = cim_cell_dg_q7(&cfg, 0, 0, 0, 0) / 128.0;
		if (D >= 0.2 && D <= 0.45)
			break;
	}
	CHECK(D >= 0.2 && D <= 0.45, "no seed with D in [0.2, 0.45]");
	for (k = 0; k < 16; k++)
		x[k] = (int8_t)k;
	a.in_dim = a.out_dim = 1;
	a.wfmt = CIM_FMT_INT4;
	a.xfmt = CIM_FMT_INT4;
	a.adc_fs_q8 = 2 * 256;
	a.batch = 16;
	a.x = x;
	a.y = y;
	for (m = 0; m < 2; m++) {
		cfg.recon = m ? CIM_RECON_CELLS : CIM_RECON_CODES;
		CHECK(cim_engine_create(&cfg, &e) == 0, "create");
		CHECK(cim_engine_program(e, 0, 1, 1, CIM_FMT_INT4, &w) == 1,
		      "prog");
		CHECK(cim_engine_matmul(e, &a) == 0, "matmul");
		bad = 0;
		for (k = 0; k < 16; k++)
			bad += m ? y[k] != k : fabs(y[k] - k * (1 + D)) > 1.0;
		CHECK(bad == 0, "%s: y(15) = %d for D = %.3f: %d off",
		      cim_recon_name(cfg.recon), y[15], D, bad);
		cim_engine_destroy(e);
	}
}

/*
 * noise off, lossless ADC: output == exact integer dot product. Whole
 * cells: FS = G <= L (G <= 1014). Codes: FS = L cells, G <= L.
 */
static void test_exact(void)
{
	static const struct {
		uint32_t in, out, G, bits, F, fs, codes;
	} cs[] = {
		{ 200, 70, 0, 8, 0, 0, 0 },     /* FS = 128 rows, L = 255 */
		{ 1, 1, 0, 8, 0, 0, 0 },
		{ 129, 129, 0, 8, 0, 0, 0 },
		{ 300, 260, 0, 9, 0, 0, 0 },
		{ 128, 128, 31, 5, 0, 0, 0 },   /* FS = 31 = L */
		{ 200, 70, 31, 5, 8, 0, 0 },    /* step exactly 1: F irrelevant */
		{ 257, 33, 64, 7, 0, 0, 0 },
		{ 100, 40, 0, 16, 0, 0, 0 },
		{ 100, 40, 0, 8, 0, 255 * 256, 0 }, /* FS = L, exact for any F */
		/* codes: FS = L cells, any G <= L */
		{ 200, 70, 31, 5, 0, 31 * 256, 1 },
		{ 300, 260, 0, 8, 0, 255 * 256, 1 },
		{ 257, 33, 64, 7, 0, 127 * 256, 1 },
		{ 100, 40, 0, 16, 0, 65535 * 256, 1 },
		{ 1, 1, 0, 9, 0, 511 * 256, 1 },
	};
	enum cim_fmt wfs[] = { CIM_FMT_INT8, CIM_FMT_INT4, CIM_FMT_NF4 };
	enum cim_fmt xfs[] = { CIM_FMT_INT8, CIM_FMT_INT4 };
	size_t k;
	int wi, xi, sgn;

	for (k = 0; k < sizeof(cs) / sizeof(cs[0]); k++) {
		struct cim_config cfg;
		struct cim_engine *e;
		uint32_t in = cs[k].in, out = cs[k].out, batch = 5;
		int8_t *w = malloc((size_t)in * out), *x = malloc((size_t)batch * in);
		int32_t *y = malloc(sizeof(int32_t) * batch * out);
		int64_t *ref = malloc(sizeof(int64_t) * batch * out);

		cim_config_default(&cfg);
		cfg.rows_per_conversion = cs[k].G;
		cfg.adc_bits = cs[k].bits;
		cfg.recon = cs[k].codes ? CIM_RECON_CODES : CIM_RECON_CELLS;
		cfg.recon_frac_bits = cs[k].F;
		cfg.tiles = 16;
		CHECK(cim_engine_create(&cfg, &e) == 0, "create");
		for (wi = 0; wi < 3; wi++)
		for (xi = 0; xi < 2; xi++)
		for (sgn = 0; sgn < 2; sgn++) {
			struct cim_matmul_args a = { 0 };
			size_t q, bad = 0;
			int ret;

			fill_w(w, (size_t)in * out, wfs[wi]);
			fill_x(x, (size_t)batch * in, xfs[xi], sgn);
			ret = cim_engine_program(e, 1, in, out, wfs[wi], w);
			CHECK(ret > 0, "program %d", ret);
			a.tile0 = 1;
			a.in_dim = in;
			a.out_dim = out;
			a.wfmt = wfs[wi];
			a.xfmt = xfs[xi];
			a.x_signed = sgn;
			a.adc_fs_q8 = cs[k].fs;
			a.batch = batch;
			a.x = x;
			a.y = y;
			ret = cim_engine_matmul(e, &a);
			CHECK(ret == 0, "matmul %d", ret);
			exact_dot(w, x, in, out, batch, wfs[wi], xfs[xi], sgn,
				  cim_nf4_default, ref);
			for (q = 0; q < (size_t)batch * out; q++)
				bad += y[q] != ref[q];
			CHECK(bad == 0, "%s case %zu %ux%u w=%s x=%s%s: %zu "
			      "wrong", cim_recon_name(cfg.recon), k, in, out, fname(wfs[wi]), fname(xfs[xi]),
			      sgn ? "s" : "u", bad);
		}
		cim_engine_destroy(e);
		free(w);
		free(x);
		free(y);
		free(ref);
	}
}

/* engine vs naive reference, bit for bit, noise on */
struct nv_case {
	uint32_t rows, cols, G, bits, F;
	uint32_t sst, sdyn, stuck, aoff, again;
	uint32_t in, out, batch;
	uint32_t fs;
};

static const uint32_t recons[] = { CIM_RECON_CODES, CIM_RECON_CELLS };

/* the chip design every case_config() applies (test_design_vs_naive) */
static struct {
	uint32_t digital_planes, adc_bits_msb, adc_msb_levels;
} design;

/* the chip of a case: its parameters, reconstruction (F applies to
 * whole cells only), a random seed */
static void case_config(const struct nv_case *c, uint32_t recon,
			uint32_t tiles, struct cim_config *cfg)
{
	cim_config_default(cfg);
	cfg->rows = c->rows;
	cfg->cols = c->cols;
	cfg->tiles = tiles;
	cfg->rows_per_conversion = c->G;
	cfg->adc_bits = c->bits;
	cfg->recon = recon;
	cfg->recon_frac_bits = recon == CIM_RECON_CELLS ? c->F : 0;
	cfg->sigma_static_q16 = c->sst;
	cfg->sigma_dynamic_q16 = c->sdyn;
	cfg->stuck_rate_ppm = c->stuck;
	cfg->adc_offset_sigma_q16 = c->aoff;
	cfg->adc_gain_sigma_q16 = c->again;
	cfg->adcs_per_tile = 0;
	cfg->digital_planes = design.digital_planes;
	cfg->adc_bits_msb = design.adc_bits_msb;
	cfg->adc_msb_levels = design.adc_msb_levels;
	cfg->seed = rnd();
}

/* the job of a case on tiles from tile0, random job seed and item0 */
static void case_args(const struct nv_case *c, uint32_t tile0,
		      enum cim_fmt wf, enum cim_fmt xf, int sgn,
		      const int8_t *x, const struct cim_plane_pair *sched,
		      uint32_t nsched, struct cim_matmul_args *a)
{
	memset(a, 0, sizeof(*a));
	a->tile0 = tile0;
	a->in_dim = c->in;
	a->out_dim = c->out;
	a->wfmt = wf;
	a->xfmt = xf;
	a->x_signed = sgn;
	a->adc_fs_q8 = c->fs;
	a->job_seed = rnd();
	a->batch = c->batch;
	a->item0 = (uint32_t)(rnd() % 1000);
	a->x = x;
	a->sched = sched;
	a->n_sched = nsched;
}

static int run_vs_naive(const struct nv_case *c, uint32_t recon,
			enum cim_fmt wf,
			enum cim_fmt xf, int sgn,
			const struct cim_plane_pair *sched, uint32_t nsched)
{
	struct cim_config cfg;
	struct cim_engine *e;
	struct naive_chip *nv;
	int8_t *w = malloc((size_t)c->in * c->out);
	int8_t *x = malloc((size_t)c->batch * c->in);
	int32_t *y = malloc(sizeof(int32_t) * c->batch * c->out);
	int32_t *yr = malloc(sizeof(int32_t) * c->batch * c->out);
	struct cim_matmul_args a = { 0 };
	size_t q, bad = 0;
	int r1, r2, ret = 0;

	case_config(c, recon, 12, &cfg);
	if (cim_engine_create(&cfg, &e))
		return -1;
	nv = naive_create(&cfg);
	fill_w(w, (size_t)c->in * c->out, wf);
	fill_x(x, (size_t)c->batch * c->in, xf, sgn);
	r1 = cim_engine_program(e, 2, c->in, c->out, wf, w);
	r2 = naive_program(nv, 2, c->in, c->out, wf, w);
	case_args(c, 2, wf, xf, sgn, x, sched, nsched, &a);
	a.y = y;
	r1 = r1 < 0 ? r1 : cim_engine_matmul(e, &a);
	a.y = yr;
	r2 = r2 < 0 ? r2 : naive_matmul(nv, &a);
	if (r1 || r2) {
		printf("  errors %d %d\n", r1, r2);
		ret = -1;
	} else {
		for (q = 0; q < (size_t)c->batch * c->out; q++) {
			if (y[q] != yr[q] && bad++ < 3)
				printf("  [%zu] engine %d naive %d\n", q, y[q], yr[q]);
		}
		ret = (int)bad;
	}
	cim_engine_destroy(e);
	naive_destroy(nv);
	free(w);
	free(x);
	free(y);
	free(yr);
	return ret;
}

static void test_vs_naive(void)
{
	static const struct nv_case cs[] = {
		/* rows cols G bits F  sst   sdyn  stuck aoff  again  in out batch fs */
		{ 128, 128, 0, 5, 0, 3277, 0, 0, 0, 0, 200, 70, 3, 0 },
		{ 128, 128, 0, 5, 0, 0, 0, 0, 0, 0, 129, 129, 40, 40 * 256 },
		{ 128, 128, 0, 5, 0, 0, 0, 0, 0, 0, 129, 129, 1, 40 * 256 },
		{ 128, 128, 0, 3, 0, 6554, 3277, 1000, 19661, 1311, 200, 70, 2, 20 * 256 },
		{ 128, 128, 64, 4, 2, 6554, 6554, 5000, 32768, 2621, 129, 129, 2, 0 },
		{ 128, 128, 31, 6, 4, 3277, 13107, 500, 9830, 655, 300, 20, 2, 17 * 256 + 77 },
		{ 128, 128, 100, 7, 0, 13107, 3277, 0, 0, 0, 1, 1, 4, 0 },
		{ 128, 128, 0, 8, 8, 6554, 6554, 2000, 65536, 3277, 128, 128, 2, 48 * 256 },
		{ 64, 32, 17, 5, 1, 6554, 6554, 20000, 65536, 6554, 150, 50, 3, 9 * 256 },
		{ 200, 48, 0, 6, 0, 3277, 3277, 1000, 16384, 1311, 333, 49, 2, 60 * 256 },
		{ 40, 24, 0, 5, 0, 0, 0, 0, 16384, 1311, 100, 50, 30, 0 },   /* LUT */
		{ 192, 16, 0, 5, 3, 0, 0, 3000, 40000, 4000, 192, 16, 30, 70 * 256 }, /* LUT, 3 words */
		{ 128, 128, 0, 5, 0, 0, 0, 0, 0, 0, 128, 128, 30, 256 }, /* min FS */
		/* static deviations without read noise: the dot-product
		 * kernel where the CPU has it */
		{ 128, 128, 0, 5, 0, 13107, 0, 1000, 16384, 1311, 300, 70, 3, 20 * 256 },
		{ 64, 32, 16, 6, 4, 6554, 0, 20000, 65536, 6554, 150, 50, 3, 9 * 256 },
		{ 200, 48, 100, 5, 8, 3277, 0, 0, 0, 0, 333, 49, 2, 60 * 256 },
		{ 130, 17, 0, 4, 0, 26214, 0, 0, 0, 0, 131, 18, 2, 0 },
		{ 33, 40, 2, 8, 2, 65536, 0, 500, 32768, 3277, 70, 41, 3, 3 * 256 },
	};
	enum cim_fmt wfs[] = { CIM_FMT_INT8, CIM_FMT_INT4, CIM_FMT_NF4 };
	enum cim_fmt xfs[] = { CIM_FMT_INT8, CIM_FMT_INT4 };
	size_t k, m;
	int wi, xi, sgn, bad;

	for (m = 0; m < 2; m++)
	for (k = 0; k < sizeof(cs) / sizeof(cs[0]); k++)
		for (wi = 0; wi < 3; wi++)
			for (xi = 0; xi < 2; xi++)
				for (sgn = 0; sgn < 2; sgn++) {
					bad = run_vs_naive(&cs[k], recons[m],
							   wfs[wi], xfs[xi],
							   sgn, NULL, 0);
					CHECK(bad == 0, "%s case %zu w=%s x=%s%s: %d mismatches",
					      cim_recon_name(recons[m]), k,
					      fname(wfs[wi]), fname(xfs[xi]),
					      sgn ? "s" : "u", bad);
				}
	/* ADC bits 3..8 sweep, several FS */
	for (m = 0; m < 2; m++)
	for (k = 3; k <= 8; k++) {
		uint32_t fss[] = { 0, 16 * 256, 33 * 256 + 100, 128 * 256 };
		size_t f;

		for (f = 0; f < 4; f++) {
			struct nv_case c = { 128, 128, 0, (uint32_t)k, 0, 3277,
					     3277, 1000, 16384, 1311, 150, 40, 2,
					     fss[f] };

			bad = run_vs_naive(&c, recons[m], CIM_FMT_INT4,
					   CIM_FMT_INT8, 1, NULL, 0);
			CHECK(bad == 0, "%s bits %zu fs %u: %d",
			      cim_recon_name(recons[m]), k, fss[f], bad);
		}
	}
	/* plane schedules */
	{
		struct cim_plane_pair s1[] = { { 7, 7 }, { 6, 7 }, { 7, 6 }, { 0, 0 } };
		struct cim_plane_pair s2[] = { { 3, 1 }, { 2, 3 } };
		struct nv_case c = { 128, 128, 0, 5, 0, 3277, 3277, 1000,
				     16384, 1311, 200, 70, 2, 0 };

		bad = run_vs_naive(&c, CIM_RECON_CODES, CIM_FMT_INT8, CIM_FMT_INT8, 1, s1, 4);
		CHECK(bad == 0, "schedule 1: %d", bad);
		bad = run_vs_naive(&c, CIM_RECON_CELLS, CIM_FMT_INT4, CIM_FMT_INT4, 0, s2, 2);
		CHECK(bad == 0, "schedule 2: %d", bad);
		c.sst = c.sdyn = 0;
		c.batch = 40;
		bad = run_vs_naive(&c, CIM_RECON_CELLS, CIM_FMT_INT4, CIM_FMT_INT4, 1, s2, 2);
		CHECK(bad == 0, "schedule LUT: %d", bad);
	}
}

/* dynamic noise: y = 128 + noise, sigma = sigma_dyn * sqrt(128) */
/*
 * Digital weight planes and MSB conversions at more ADC bits, against the
 * naive reference: each design over noisy and noise-free chips (the
 * latter run the dot-product kernels where the CPU has them), every
 * format, both reconstructions, and a plane schedule.
 */
static void test_design_vs_naive(void)
{
	static const struct {
		uint32_t D, bm, k;
	} ds[] = {
		{ 1, 0, 0 }, { 3, 0, 0 }, { 8, 0, 0 }, { 0, 8, 0 },
		{ 0, 7, 3 }, { 1, 8, 2 }, { 2, 10, 15 },
	};
	static const struct nv_case cs[] = {
		/* rows cols G bits F  sst   sdyn  stuck aoff  again  in out batch fs */
		{ 128, 128, 0, 5, 0, 13107, 0, 1000, 16384, 1311, 300, 70, 3, 20 * 256 },
		{ 128, 128, 0, 3, 0, 6554, 3277, 1000, 19661, 1311, 200, 70, 2, 20 * 256 },
		{ 64, 32, 17, 5, 1, 6554, 6554, 20000, 65536, 6554, 150, 50, 3, 9 * 256 },
		{ 40, 24, 0, 5, 0, 0, 0, 0, 16384, 1311, 100, 50, 30, 0 },   /* LUT */
		{ 33, 40, 2, 6, 2, 65536, 0, 500, 32768, 3277, 70, 41, 3, 3 * 256 },
	};
	/* the formats of the CNN, of INT8 layers and of signed INT4 */
	static const struct {
		enum cim_fmt w, x;
		int sgn;
	} fs[] = {
		{ CIM_FMT_NF4, CIM_FMT_INT4, 0 },
		{ CIM_FMT_INT8, CIM_FMT_INT8, 1 },
		{ CIM_FMT_INT4, CIM_FMT_INT4, 1 },
	};
	struct cim_plane_pair sched[] = { { 7, 7 }, { 6, 7 }, { 7, 6 }, { 0, 0 },
					  { 3, 5 } };
	size_t d, k, m, f;
	int bad;

	for (d = 0; d < sizeof(ds) / sizeof(ds[0]); d++) {
		design.digital_planes = ds[d].D;
		design.adc_bits_msb = ds[d].bm;
		design.adc_msb_levels = ds[d].k;
		for (m = 0; m < 2; m++)
		for (k = 0; k < sizeof(cs) / sizeof(cs[0]); k++)
			for (f = 0; f < sizeof(fs) / sizeof(fs[0]); f++) {
				bad = run_vs_naive(&cs[k], recons[m], fs[f].w,
						   fs[f].x, fs[f].sgn, NULL, 0);
				CHECK(bad == 0, "D=%u bm=%u k=%u %s case %zu w=%s x=%s%s: %d mismatches",
				      ds[d].D, ds[d].bm, ds[d].k,
				      cim_recon_name(recons[m]), k,
				      fname(fs[f].w), fname(fs[f].x),
				      fs[f].sgn ? "s" : "u", bad);
			}
		bad = run_vs_naive(&cs[0], CIM_RECON_CODES, CIM_FMT_NF4,
				   CIM_FMT_INT8, 0, sched, 5);
		CHECK(bad == 0, "D=%u bm=%u schedule: %d", ds[d].D, ds[d].bm,
		      bad);
	}
	memset(&design, 0, sizeof(design));
}

/*
 * With no variability a digital plane is exact whatever the ADC; MSB
 * conversions at bm bits are exact at FS = L cells when bm is a multiple
 * of b (2^b - 1 divides 2^bm - 1, so each code is n L_m / L exactly).
 * And a digital sign plane really removes the sign plane's static error:
 * with deviations on and FS = L, the result differs from the all-analog
 * chip, and a chip whose only analog cells are exact (D = all planes)
 * gives the dot product.
 */
static void test_design_exact(void)
{
	static const struct {
		uint32_t G, bits, D, bm, k, fs;
	} cs[] = {
		{ 31, 5, 1, 0, 0, 31 * 256 },
		{ 15, 4, 0, 8, 1, 15 * 256 },
		{ 15, 4, 0, 8, 4, 15 * 256 },
		{ 31, 5, 2, 10, 2, 31 * 256 },
		{ 0, 2, 8, 0, 0, 0 },   /* every plane digital: ADC irrelevant */
	};
	enum cim_fmt wfs[] = { CIM_FMT_INT8, CIM_FMT_INT4, CIM_FMT_NF4 };
	enum cim_fmt xfs[] = { CIM_FMT_INT8, CIM_FMT_INT4 };
	uint32_t in = 200, out = 70, batch = 4;
	int8_t *w = malloc((size_t)in * out), *x = malloc((size_t)batch * in);
	int32_t *y = malloc(sizeof(int32_t) * batch * out);
	int64_t *ref = malloc(sizeof(int64_t) * batch * out);
	size_t k, q;
	int wi, xi, sgn;

	for (k = 0; k < sizeof(cs) / sizeof(cs[0]); k++)
		for (wi = 0; wi < 3; wi++)
		for (xi = 0; xi < 2; xi++)
		for (sgn = 0; sgn < 2; sgn++) {
			struct cim_config cfg;
			struct cim_engine *e;
			struct cim_matmul_args a = { 0 };
			size_t bad = 0;

			cim_config_default(&cfg);
			cfg.rows_per_conversion = cs[k].G;
			cfg.adc_bits = cs[k].bits;
			cfg.digital_planes = cs[k].D;
			cfg.adc_bits_msb = cs[k].bm;
			cfg.adc_msb_levels = cs[k].k;
			cfg.tiles = 8;
			CHECK(cim_engine_create(&cfg, &e) == 0, "create");
			fill_w(w, (size_t)in * out, wfs[wi]);
			fill_x(x, (size_t)batch * in, xfs[xi], sgn);
			CHECK(cim_engine_program(e, 0, in, out, wfs[wi], w) > 0,
			      "program");
			a.in_dim = in;
			a.out_dim = out;
			a.wfmt = wfs[wi];
			a.xfmt = xfs[xi];
			a.x_signed = sgn;
			a.adc_fs_q8 = cs[k].fs;
			a.batch = batch;
			a.x = x;
			a.y = y;
			CHECK(cim_engine_matmul(e, &a) == 0, "matmul");
			exact_dot(w, x, in, out, batch, wfs[wi], xfs[xi], sgn,
				  cim_nf4_default, ref);
			for (q = 0; q < (size_t)batch * out; q++)
				bad += y[q] != ref[q];
			CHECK(bad == 0, "design %zu w=%s x=%s%s: %zu wrong", k,
			      fname(wfs[wi]), fname(xfs[xi]), sgn ? "s" : "u",
			      bad);
			cim_engine_destroy(e);
		}
	/* deviations on, every weight plane digital: still exact */
	{
		struct cim_config cfg;
		struct cim_engine *e;
		struct cim_matmul_args a = { 0 };
		size_t bad = 0;

		cim_config_default(&cfg);
		cfg.sigma_static_q16 = 13107;
		cfg.adc_offset_sigma_q16 = 32768;
		cfg.sigma_dynamic_q16 = 6554;
		cfg.digital_planes = 8;
		cfg.seed = 7;
		CHECK(cim_engine_create(&cfg, &e) == 0, "create");
		fill_w(w, (size_t)in * out, CIM_FMT_NF4);
		fill_x(x, (size_t)batch * in, CIM_FMT_INT4, 0);
		CHECK(cim_engine_program(e, 0, in, out, CIM_FMT_NF4, w) > 0,
		      "program");
		a.in_dim = in;
		a.out_dim = out;
		a.wfmt = CIM_FMT_NF4;
		a.xfmt = CIM_FMT_INT4;
		a.batch = batch;
		a.x = x;
		a.y = y;
		CHECK(cim_engine_matmul(e, &a) == 0, "matmul");
		exact_dot(w, x, in, out, batch, CIM_FMT_NF4, CIM_FMT_INT4, 0,
			  cim_nf4_default, ref);
		for (q = 0; q < (size_t)batch * out; q++)
			bad += y[q] != ref[q];
		CHECK(bad == 0, "all planes digital under variability: %zu "
		      "wrong", bad);
		cim_engine_destroy(e);
	}
	free(w);
	free(x);
	free(y);
	free(ref);
}

static void test_dynamic_noise(void)
{
	struct cim_config cfg;
	struct cim_engine *e;
	enum { B = 4000 };
	int8_t w[128], *x = malloc(B * 128);
	int32_t *y = malloc(sizeof(int32_t) * B);
	struct cim_matmul_args a = { 0 };
	double s = 0, s2 = 0, sd, want;
	int i;

	cim_config_default(&cfg);
	cfg.adc_bits = 16;
	cfg.recon = CIM_RECON_CELLS;
	cfg.recon_frac_bits = 8;
	cfg.sigma_dynamic_q16 = 32768; /* 0.5 per cell */
	cfg.tiles = 1;
	CHECK(cim_engine_create(&cfg, &e) == 0, "create");
	memset(w, 1, sizeof(w));
	memset(x, 1, B * 128);
	CHECK(cim_engine_program(e, 0, 128, 1, CIM_FMT_INT4, w) == 1, "prog");
	a.in_dim = 128;
	a.out_dim = 1;
	a.wfmt = CIM_FMT_INT4;
	a.xfmt = CIM_FMT_INT4;
	a.adc_fs_q8 = 256 * 256;
	a.job_seed = 99;
	a.batch = B;
	a.x = x;
	a.y = y;
	CHECK(cim_engine_matmul(e, &a) == 0, "matmul");
	for (i = 0; i < B; i++) {
		s += y[i] - 128;
		s2 += (double)(y[i] - 128) * (y[i] - 128);
	}
	s /= B;
	sd = sqrt(s2 / B - s * s);
	/* + ADC step^2/12 and output rounding 1/12 */
	want = sqrt(0.25 * 128 + 1.0 / 12);
	CHECK(fabs(s) < 4 * want / sqrt(B), "noise mean %f", s);
	CHECK(fabs(sd / want - 1) < 0.06, "noise sd %f want %f", sd, want);
	cim_engine_destroy(e);
	free(x);
	free(y);
}

/* static spread: per-cell dg and per-column sums */
static void test_static_spread(void)
{
	struct cim_config cfg;
	struct cim_engine *e;
	int8_t *w = malloc(128 * 128 * 8);
	int8_t x[128];
	int32_t y[128 * 8];
	struct cim_matmul_args a = { 0 };
	double s = 0, s2 = 0, sd, want;
	uint32_t r, c, n = 0, stuck = 0, tot = 0;

	cim_config_default(&cfg);
	cfg.sigma_static_q16 = 6554; /* 0.1 */
	cfg.seed = 42;
	for (r = 0; r < 128; r++)
		for (c = 0; c < 64; c++) {
			double d = cim_cell_dg_q7(&cfg, 3, r, c, 2) / 128.0;

			s += d;
			s2 += d * d;
			n++;
		}
	s /= n;
	sd = sqrt(s2 / n - s * s);
	CHECK(fabs(s) < 0.003, "dg mean %f", s);
	CHECK(fabs(sd / 0.1 - 1) < 0.04, "dg sd %f", sd);

	cfg.stuck_rate_ppm = 20000;
	for (r = 0; r < 128; r++)
		for (c = 0; c < 128; c++) {
			int st = cim_cell_stuck(&cfg, 0, r, c, 0);

			tot++;
			stuck += st >= 0;
		}
	CHECK(fabs(stuck / (double)tot - 0.02) < 0.004, "stuck rate %f",
	      stuck / (double)tot);
	cfg.stuck_rate_ppm = 0;

	/* column sums of 128 ON cells: spread sigma * sqrt(128) cells */
	cfg.adc_bits = 16;
	cfg.recon = CIM_RECON_CELLS;
	cfg.recon_frac_bits = 8;
	cfg.tiles = 8;
	CHECK(cim_engine_create(&cfg, &e) == 0, "create");
	memset(w, 1, 128 * 128 * 8);
	memset(x, 1, sizeof(x));
	CHECK(cim_engine_program(e, 0, 128, 1024, CIM_FMT_INT4, w) == 8, "prog");
	a.in_dim = 128;
	a.out_dim = 1024;
	a.wfmt = CIM_FMT_INT4;
	a.xfmt = CIM_FMT_INT4;
	a.adc_fs_q8 = 256 * 256;
	a.batch = 1;
	a.x = x;
	a.y = y;
	CHECK(cim_engine_matmul(e, &a) == 0, "matmul");
	s = s2 = 0;
	for (c = 0; c < 1024; c++) {
		s += y[c] - 128;
		s2 += (double)(y[c] - 128) * (y[c] - 128);
	}
	s /= 1024;
	sd = sqrt(s2 / 1024 - s * s);
	want = 0.1 * sqrt(128.0);
	CHECK(fabs(s) < 4 * want / 32, "column mean %f", s);
	CHECK(fabs(sd / want - 1) < 0.12, "column sd %f want %f", sd, want);
	cim_engine_destroy(e);
	free(w);
}

static int run_det(uint64_t chip_seed, uint64_t job_seed, int32_t *y)
{
	struct cim_config cfg;
	struct cim_engine *e;
	int8_t w[150 * 60], x[3 * 150];
	struct cim_matmul_args a = { 0 };
	uint64_t save = rs;
	int ret;

	rs = 777;
	fill_w(w, sizeof(w), CIM_FMT_INT8);
	fill_x(x, sizeof(x), CIM_FMT_INT8, 1);
	rs = save;
	cim_config_default(&cfg);
	cfg.tiles = 4;
	cfg.sigma_static_q16 = 3277;
	cfg.sigma_dynamic_q16 = 3277;
	cfg.stuck_rate_ppm = 1000;
	cfg.adc_offset_sigma_q16 = 16384;
	cfg.adc_gain_sigma_q16 = 1311;
	cfg.seed = chip_seed;
	if (cim_engine_create(&cfg, &e))
		return -1;
	cim_engine_program(e, 0, 150, 60, CIM_FMT_INT8, w);
	a.in_dim = 150;
	a.out_dim = 60;
	a.wfmt = CIM_FMT_INT8;
	a.xfmt = CIM_FMT_INT8;
	a.x_signed = 1;
	a.adc_fs_q8 = 48 * 256;
	a.job_seed = job_seed;
	a.batch = 3;
	a.x = x;
	a.y = y;
	ret = cim_engine_matmul(e, &a);
	cim_engine_destroy(e);
	return ret;
}

static void test_determinism(void)
{
	int32_t y1[180], y2[180], y3[180], y4[180];

	CHECK(run_det(5, 9, y1) == 0 && run_det(5, 9, y2) == 0, "runs");
	CHECK(memcmp(y1, y2, sizeof(y1)) == 0, "same seeds differ");
	CHECK(run_det(6, 9, y3) == 0, "run");
	CHECK(memcmp(y1, y3, sizeof(y1)) != 0, "chip seed ignored");
	CHECK(run_det(5, 10, y4) == 0, "run");
	CHECK(memcmp(y1, y4, sizeof(y1)) != 0, "job seed ignored");
}

/*
 * A batch split over helper threads gives the same outputs and counters,
 * noise on, for every weight format, and bad thread counts are refused.
 */
static void test_threads(void)
{
	static const enum cim_fmt wfs[] = { CIM_FMT_INT8, CIM_FMT_INT4,
					    CIM_FMT_NF4 };
	enum { IN = 300, OUT = 150, BATCH = 67 };
	static int8_t w[IN * OUT], x[BATCH * IN];
	static int32_t y1[BATCH * OUT], y2[BATCH * OUT];
	struct cim_counters c1, c2;
	struct cim_config cfg;
	struct cim_engine *e;
	unsigned int f, t;

	cim_config_default(&cfg);
	cfg.sigma_static_q16 = 6554;
	cfg.sigma_dynamic_q16 = 3277;
	cfg.stuck_rate_ppm = 1000;
	CHECK(cim_engine_create(&cfg, &e) == 0, "create");
	CHECK(cim_engine_set_threads(e, 0) == -EINVAL, "0 threads");
	CHECK(cim_engine_set_threads(e, CIM_MAX_THREADS + 1) == -EINVAL,
	      "too many threads");
	fill_x(x, sizeof(x), CIM_FMT_INT4, 0);
	for (f = 0; f < sizeof(wfs) / sizeof(wfs[0]); f++) {
		struct cim_matmul_args a = { 0 };

		fill_w(w, sizeof(w), wfs[f]);
		CHECK(cim_engine_program(e, 0, IN, OUT, wfs[f], w) > 0, "prog");
		a.in_dim = IN;
		a.out_dim = OUT;
		a.wfmt = wfs[f];
		a.xfmt = CIM_FMT_INT4;
		a.job_seed = 99 + f;
		a.batch = BATCH;
		a.x = x;
		a.y = y1;
		CHECK(cim_engine_set_threads(e, 1) == 0, "1 thread");
		cim_engine_reset_counters(e);
		CHECK(cim_engine_matmul(e, &a) == 0, "1 thread run");
		cim_engine_counters(e, &c1);
		for (t = 2; t <= 5; t += 3) {
			memset(y2, 0, sizeof(y2));
			a.y = y2;
			CHECK(cim_engine_set_threads(e, t) == 0, "threads");
			cim_engine_reset_counters(e);
			CHECK(cim_engine_matmul(e, &a) == 0, "threaded run");
			cim_engine_counters(e, &c2);
			CHECK(memcmp(y1, y2, sizeof(y1)) == 0,
			      "threaded result differs");
			CHECK(memcmp(&c1, &c2, sizeof(c1)) == 0,
			      "threaded counters differ");
		}
	}
	cim_engine_destroy(e);
}

/* a job split into chunks with item0 gives the same result */
static void test_chunking(void)
{
	struct cim_config cfg;
	struct cim_engine *e;
	int8_t w[150 * 40], x[7 * 150];
	int32_t y1[7 * 40], y2[7 * 40];
	struct cim_matmul_args a = { 0 }, b;

	fill_w(w, sizeof(w), CIM_FMT_INT4);
	fill_x(x, sizeof(x), CIM_FMT_INT8, 1);
	cim_config_default(&cfg);
	cfg.sigma_static_q16 = 3277;
	cfg.sigma_dynamic_q16 = 6554;
	CHECK(cim_engine_create(&cfg, &e) == 0, "create");
	CHECK(cim_engine_program(e, 0, 150, 40, CIM_FMT_INT4, w) == 2, "prog");
	a.in_dim = 150;
	a.out_dim = 40;
	a.wfmt = CIM_FMT_INT4;
	a.xfmt = CIM_FMT_INT8;
	a.x_signed = 1;
	a.job_seed = 1234;
	a.batch = 7;
	a.x = x;
	a.y = y1;
	CHECK(cim_engine_matmul(e, &a) == 0, "whole");
	b = a;
	b.batch = 3;
	b.y = y2;
	CHECK(cim_engine_matmul(e, &b) == 0, "chunk 0");
	b.item0 = 3;
	b.batch = 4;
	b.x = x + 3 * 150;
	b.y = y2 + 3 * 40;
	CHECK(cim_engine_matmul(e, &b) == 0, "chunk 1");
	CHECK(memcmp(y1, y2, sizeof(y1)) == 0, "chunked result differs");
	b.item0 = 0;
	b.x = x + 3 * 150;
	CHECK(cim_engine_matmul(e, &b) == 0, "chunk 1 as item 0");
	CHECK(memcmp(y1 + 3 * 40, y2 + 3 * 40, 4 * 40 * sizeof(int32_t)) != 0,
	      "item0 ignored");
	b.item0 = UINT32_MAX - 2;
	CHECK(cim_engine_matmul(e, &b) == -EINVAL, "item0 overflow");
	cim_engine_destroy(e);
}

static void test_codebook(void)
{
	struct cim_config cfg;
	struct cim_engine *e;
	int8_t cb[16], w[64 * 10], x[2 * 64];
	int32_t y[20];
	int64_t ref[20];
	struct cim_matmul_args a = { 0 };
	int i, bad = 0;

	for (i = 0; i < 16; i++)
		cb[i] = (int8_t)(i * 17 - 128);
	cim_config_default(&cfg);
	cfg.adc_bits = 8;
	CHECK(cim_engine_create(&cfg, &e) == 0, "create");
	CHECK(cim_engine_set_codebook(e, cb) == 0, "set cb");
	CHECK(cim_engine_set_codebook(e, NULL) == -EINVAL, "null cb");
	fill_w(w, sizeof(w), CIM_FMT_NF4);
	fill_x(x, sizeof(x), CIM_FMT_INT8, 1);
	CHECK(cim_engine_program(e, 0, 64, 10, CIM_FMT_NF4, w) == 1, "prog");
	a.in_dim = 64;
	a.out_dim = 10;
	a.wfmt = CIM_FMT_NF4;
	a.xfmt = CIM_FMT_INT8;
	a.x_signed = 1;
	a.adc_fs_q8 = 255 * 256;	/* FS = L: exact */
	a.batch = 2;
	a.x = x;
	a.y = y;
	CHECK(cim_engine_matmul(e, &a) == 0, "matmul");
	exact_dot(w, x, 64, 10, 2, CIM_FMT_NF4, CIM_FMT_INT8, 1, cb, ref);
	for (i = 0; i < 20; i++)
		bad += y[i] != ref[i];
	CHECK(bad == 0, "custom codebook: %d wrong", bad);
	cim_engine_destroy(e);
}

static void test_counters(void)
{
	struct cim_config cfg;
	struct cim_engine *e;
	struct cim_counters c;
	struct cim_energy en;
	int8_t w[200 * 70] = { 0 }, x[3 * 200] = { 0 };
	int32_t y[3 * 70];
	struct cim_matmul_args a = { 0 };

	cim_config_default(&cfg);
	cfg.rows_per_conversion = 64;
	CHECK(cim_engine_create(&cfg, &e) == 0, "create");
	CHECK(cim_engine_program(e, 0, 200, 70, CIM_FMT_INT4, w) == 2, "prog");
	a.in_dim = 200;
	a.out_dim = 70;
	a.wfmt = CIM_FMT_INT4;
	a.xfmt = CIM_FMT_INT8;
	a.x_signed = 1;
	a.batch = 3;
	a.x = x;
	a.y = y;
	CHECK(cim_engine_matmul(e, &a) == 0, "matmul");
	cim_engine_counters(e, &c);
	/* tile 0: 128 rows -> 2 groups; tile 1: 72 rows -> 2 groups */
	CHECK(c.array_activations == 3ull * 32 * (2 + 2), "act %" PRIu64,
	      c.array_activations);
	CHECK(c.adc_conversions == 3ull * 32 * 4 * 70, "conv %" PRIu64,
	      c.adc_conversions);
	CHECK(c.cell_reads == 3ull * 32 * 200 * 70, "cells %" PRIu64,
	      c.cell_reads);
	CHECK(c.shift_adds == c.adc_conversions + 3ull * 70, "sa %" PRIu64,
	      c.shift_adds);
	CHECK(c.macs == 3ull * 200 * 70, "macs");
	CHECK(c.bytes_weights == 7000 && c.bytes_in == 600 &&
	      c.bytes_out == 3 * 70 * 4, "bytes %" PRIu64 " %" PRIu64,
	      c.bytes_weights, c.bytes_in);
	/* 16 ADCs, 70 cols -> 5 conversion cycles per activation */
	CHECK(c.tile_cycles == 2ull * 3 * 32 * 2 * 6, "tcyc %" PRIu64,
	      c.tile_cycles);
	CHECK(c.cycles == 3ull * 32 * 2 * 6, "cyc %" PRIu64, c.cycles);
	CHECK(c.jobs == 1, "jobs");
	/* codes: one multiply by the ADC step per output, 3.1 pJ each */
	CHECK(c.output_scales == 3ull * 70, "scales %" PRIu64, c.output_scales);
	cim_energy_estimate(&c, 5, NULL, &en);
	CHECK(en.total > 0 && en.tops_per_w > 0 && en.compute <= en.total,
	      "energy");
	CHECK(fabs(en.digital - (c.shift_adds * 0.1e-12 +
				 c.output_scales * 3.1e-12)) < 1e-18,
	      "digital energy %g", en.digital);
	cim_engine_reset_counters(e);
	cim_engine_counters(e, &c);
	CHECK(c.macs == 0 && c.jobs == 0 && c.output_scales == 0, "reset");
	cim_engine_destroy(e);
	/* whole cells: no output multiply */
	cfg.recon = CIM_RECON_CELLS;
	CHECK(cim_engine_create(&cfg, &e) == 0, "create");
	CHECK(cim_engine_program(e, 0, 200, 70, CIM_FMT_INT4, w) == 2, "prog");
	CHECK(cim_engine_matmul(e, &a) == 0, "matmul");
	cim_engine_counters(e, &c);
	CHECK(c.output_scales == 0 && c.shift_adds == c.adc_conversions +
	      3ull * 70, "cells scales %" PRIu64, c.output_scales);
	cim_engine_destroy(e);

	/*
	 * A digital sign plane and 8-bit MSB conversions: INT4 weights x
	 * INT8 inputs, 32 pairs; the sign plane's 8 pairs are digital, and
	 * of the 24 analog ones (s_max = 7 + 2) the top 2 levels, i + j = 9
	 * and 8, are the pairs (7,2), (6,2), (7,1): 3 at 8 bits.
	 */
	cfg.recon = CIM_RECON_CODES;
	cfg.digital_planes = 1;
	cfg.adc_bits_msb = 8;
	cfg.adc_msb_levels = 2;
	CHECK(cim_engine_create(&cfg, &e) == 0, "create");
	CHECK(cim_engine_program(e, 0, 200, 70, CIM_FMT_INT4, w) == 2, "prog");
	CHECK(cim_engine_matmul(e, &a) == 0, "matmul");
	cim_engine_counters(e, &c);
	CHECK(c.adc_conversions == 3ull * 24 * 4 * 70, "design conv %" PRIu64,
	      c.adc_conversions);
	CHECK(c.adc_conversions_msb == 3ull * 3 * 4 * 70, "msb conv %" PRIu64,
	      c.adc_conversions_msb);
	CHECK(c.digital_reads == 3ull * 8 * 4 * 70, "digital %" PRIu64,
	      c.digital_reads);
	CHECK(c.digital_read_rows == 3ull * 8 * 200 * 70, "digital rows %"
	      PRIu64, c.digital_read_rows);
	CHECK(c.shift_adds == c.adc_conversions + c.digital_reads + 3ull * 70,
	      "design sa %" PRIu64, c.shift_adds);
	CHECK(c.cell_reads == 3ull * 32 * 200 * 70, "design cells");
	cim_energy_estimate_chip(&c, cim_engine_config(e), NULL, &en);
	/* ADC: 2^(b - 8) x 1.5625 pJ; popcount: 7.5 fJ per row */
	CHECK(fabs(en.adc - ((c.adc_conversions - c.adc_conversions_msb) *
			     1.5625e-12 / 8 + c.adc_conversions_msb *
			     1.5625e-12)) < 1e-18, "design adc energy %g",
	      en.adc);
	CHECK(fabs(en.digital - (c.shift_adds * 0.1e-12 +
				 c.digital_read_rows * 7.5e-15 +
				 c.output_scales * 3.1e-12)) < 1e-18,
	      "design digital energy %g", en.digital);
	cim_engine_destroy(e);
}

static void test_validation(void)
{
	struct cim_config cfg;
	struct cim_engine *e = NULL;
	int8_t w[300 * 10] = { 0 }, x[300] = { 0 };
	int32_t y[10];
	struct cim_matmul_args a = { 0 }, b;
	struct cim_plane_pair dup[] = { { 1, 1 }, { 1, 1 } };
	struct cim_plane_pair oob[] = { { 8, 0 } };

	cim_config_default(&cfg);
	cfg.adc_bits = 17;
	CHECK(cim_engine_create(&cfg, &e) == -EINVAL && !e, "adc bits");
	cfg.adc_bits = 5;
	cfg.rows_per_conversion = 129;
	CHECK(cim_engine_create(&cfg, &e) == -EINVAL, "G > R");
	cfg.rows_per_conversion = 0;
	cfg.rows = 5000;
	CHECK(cim_engine_create(&cfg, &e) == -EINVAL, "rows");
	cfg.rows = 128;
	cfg.stuck_rate_ppm = 1000001;
	CHECK(cim_engine_create(&cfg, &e) == -EINVAL, "ppm");
	cfg.stuck_rate_ppm = 0;
	cfg.recon = CIM_RECON_CELLS;
	cfg.recon_frac_bits = 9;
	CHECK(cim_engine_create(&cfg, &e) == -EINVAL, "F");
	cfg.recon = CIM_RECON_CODES;
	cfg.recon_frac_bits = 1;
	CHECK(cim_engine_create(&cfg, &e) == -EINVAL, "F under codes");
	cfg.recon_frac_bits = 0;
	cfg.recon = 2;
	CHECK(cim_engine_create(&cfg, &e) == -EINVAL, "recon");
	cfg.recon = CIM_RECON_CODES;
	cfg.digital_planes = 9;
	CHECK(cim_engine_create(&cfg, &e) == -EINVAL, "digital planes");
	cfg.digital_planes = 8;
	cfg.adc_bits_msb = 5;
	CHECK(cim_engine_create(&cfg, &e) == -EINVAL, "msb bits = bits");
	cfg.adc_bits_msb = 17;
	CHECK(cim_engine_create(&cfg, &e) == -EINVAL, "msb bits");
	cfg.adc_bits = 13;
	cfg.adc_bits_msb = 16;
	CHECK(cim_engine_create(&cfg, &e) == -EINVAL, "bits + msb bits");
	cfg.adc_bits = 5;
	cfg.adc_bits_msb = 8;
	cfg.adc_msb_levels = 16;
	CHECK(cim_engine_create(&cfg, &e) == -EINVAL, "msb levels");
	cfg.adc_bits_msb = 0;
	cfg.adc_msb_levels = 1;
	CHECK(cim_engine_create(&cfg, &e) == -EINVAL, "levels without bits");
	cfg.adc_msb_levels = 0;
	cfg.digital_planes = 0;
	CHECK(cim_recon_parse("codes") == CIM_RECON_CODES &&
	      cim_recon_parse("cells") == CIM_RECON_CELLS &&
	      cim_recon_parse("exact") == -EINVAL &&
	      cim_recon_parse(NULL) == -EINVAL &&
	      !strcmp(cim_recon_name(CIM_RECON_CELLS), "cells") &&
	      cim_recon_name(2) == NULL, "recon names");
	CHECK(cim_engine_create(NULL, &e) == -EINVAL, "null cfg");
	CHECK(cim_engine_create(&cfg, NULL) == -EINVAL, "null out");
	cfg.tiles = 4;
	CHECK(cim_engine_create(&cfg, &e) == 0, "create");

	CHECK(cim_engine_program(NULL, 0, 10, 10, CIM_FMT_INT8, w) == -EINVAL, "p null e");
	CHECK(cim_engine_program(e, 0, 10, 10, CIM_FMT_INT8, NULL) == -EINVAL, "p null w");
	CHECK(cim_engine_program(e, 0, 0, 10, CIM_FMT_INT8, w) == -EINVAL, "p zero dim");
	CHECK(cim_engine_program(e, 0, 10, 10, (enum cim_fmt)7, w) == -EINVAL, "p fmt");
	CHECK(cim_engine_program(e, 3, 300, 10, CIM_FMT_INT8, w) == -ERANGE, "p range");
	CHECK(cim_engine_program(e, 4, 1, 1, CIM_FMT_INT8, w) == -ERANGE, "p tile0");
	CHECK(cim_engine_program(e, 0xFFFFFFFFu, 1, 1, CIM_FMT_INT8, w) == -ERANGE, "p wrap");
	w[5] = 8;
	CHECK(cim_engine_program(e, 0, 10, 10, CIM_FMT_INT4, w) == -EINVAL, "p int4 code");
	w[5] = 16;
	CHECK(cim_engine_program(e, 0, 10, 10, CIM_FMT_NF4, w) == -EINVAL, "p nf4 code");
	w[5] = 0;
	CHECK(cim_engine_program(e, 0, 300, 10, CIM_FMT_INT4, w) == 3, "p ok");

	a.in_dim = 300;
	a.out_dim = 10;
	a.wfmt = CIM_FMT_INT4;
	a.xfmt = CIM_FMT_INT8;
	a.batch = 1;
	a.x = x;
	a.y = y;
	CHECK(cim_engine_matmul(e, &a) == 0, "m ok");
	CHECK(cim_engine_matmul(NULL, &a) == -EINVAL, "m null e");
	CHECK(cim_engine_matmul(e, NULL) == -EINVAL, "m null a");
	b = a; b.x = NULL;
	CHECK(cim_engine_matmul(e, &b) == -EINVAL, "m null x");
	b = a; b.y = NULL;
	CHECK(cim_engine_matmul(e, &b) == -EINVAL, "m null y");
	b = a; b.batch = 0;
	CHECK(cim_engine_matmul(e, &b) == -EINVAL, "m batch");
	b = a; b.wfmt = CIM_FMT_INT8;
	CHECK(cim_engine_matmul(e, &b) == -EINVAL, "m wrong wfmt");
	b = a; b.xfmt = CIM_FMT_NF4;
	CHECK(cim_engine_matmul(e, &b) == -EINVAL, "m xfmt nf4");
	b = a; b.in_dim = 200;
	CHECK(cim_engine_matmul(e, &b) == -EINVAL, "m shape");
	b = a; b.tile0 = 1;
	CHECK(cim_engine_matmul(e, &b) == -EINVAL, "m shifted");
	b = a; b.tile0 = 2;
	CHECK(cim_engine_matmul(e, &b) == -ERANGE, "m range");
	b = a; b.adc_fs_q8 = 255;
	CHECK(cim_engine_matmul(e, &b) == -EINVAL, "m fs small");
	b = a; b.adc_fs_q8 = CIM_MAX_FS_Q8 + 1;
	CHECK(cim_engine_matmul(e, &b) == -EINVAL, "m fs big");
	b = a; b.x_signed = 2;
	CHECK(cim_engine_matmul(e, &b) == -EINVAL, "m signed flag");
	b = a; b.sched = dup; b.n_sched = 2;
	CHECK(cim_engine_matmul(e, &b) == -EINVAL, "m dup sched");
	b = a; b.sched = oob; b.n_sched = 1;
	CHECK(cim_engine_matmul(e, &b) == -EINVAL, "m sched plane");
	b = a; b.sched = oob; b.n_sched = 0;
	CHECK(cim_engine_matmul(e, &b) == -EINVAL, "m sched empty");
	b = a; b.n_sched = 3;
	CHECK(cim_engine_matmul(e, &b) == -EINVAL, "m n_sched w/o sched");
	b = a; b.xfmt = CIM_FMT_INT4; x[7] = 9; b.x_signed = 1;
	CHECK(cim_engine_matmul(e, &b) == -EINVAL, "m int4 signed range");
	b.x_signed = 0; x[7] = -1;
	CHECK(cim_engine_matmul(e, &b) == -EINVAL, "m int4 unsigned range");
	x[7] = 0;
	{
		struct cim_counters c;

		cim_engine_counters(e, &c);
		CHECK(c.jobs == 1, "failed jobs counted: %" PRIu64, c.jobs);
	}
	/* unprogrammed tile */
	b = a; b.tile0 = 3; b.in_dim = 5; b.out_dim = 5;
	CHECK(cim_engine_matmul(e, &b) == -EINVAL, "m unprogrammed");
	cim_engine_destroy(e);
	cim_engine_destroy(NULL);
}

/*
 * The dot-product kernel against the portable one, bit for bit, on chips
 * it covers (no read noise) and on the shapes around
 * its edges: partial row pairs, column blocks and row groups, every
 * operand format, schedules, ADC offsets and gains, stuck cells, fine
 * ADCs, and a full scale that forces the exactness fallback.
 */
static int dot_vs_portable(const struct nv_case *c, uint32_t recon,
			   enum cim_kernel kern,
			   enum cim_fmt wf, enum cim_fmt xf, int sgn,
			   const struct cim_plane_pair *sched, uint32_t nsched,
			   int *used_dot)
{
	struct cim_config cfg;
	struct cim_engine *e;
	int8_t *w = malloc((size_t)c->in * c->out);
	int8_t *x = malloc((size_t)c->batch * c->in);
	int32_t *y = malloc(sizeof(int32_t) * c->batch * c->out);
	int32_t *yp = malloc(sizeof(int32_t) * c->batch * c->out);
	struct cim_matmul_args a = { 0 };
	size_t q, bad = 0;
	int r1, r2;

	case_config(c, recon, 40, &cfg);
	if (cim_engine_create(&cfg, &e))
		return -1;
	fill_w(w, (size_t)c->in * c->out, wf);
	fill_x(x, (size_t)c->batch * c->in, xf, sgn);
	case_args(c, 1, wf, xf, sgn, x, sched, nsched, &a);
	r1 = cim_engine_program(e, 1, c->in, c->out, wf, w);
	r1 = r1 < 0 ? r1 : cim_engine_set_kernel(e, kern);
	*used_dot = strcmp(cim_engine_kernel_name(e), "portable") != 0;
	a.y = y;
	r1 = r1 < 0 ? r1 : cim_engine_matmul(e, &a);
	r2 = cim_engine_set_kernel(e, CIM_KERNEL_PORTABLE);
	a.y = yp;
	r2 = r2 ? r2 : cim_engine_matmul(e, &a);
	if (r1 || r2) {
		printf("  errors %d %d\n", r1, r2);
		bad = 1;
	} else {
		for (q = 0; q < (size_t)c->batch * c->out; q++)
			if (y[q] != yp[q] && bad++ < 3)
				printf("  [%zu] dot %d portable %d\n", q, y[q],
				       yp[q]);
	}
	cim_engine_destroy(e);
	free(w);
	free(x);
	free(y);
	free(yp);
	return (int)bad;
}

static void test_dot_kernel(void)
{
	static const struct nv_case cs[] = {
		/* rows cols G bits F sst sdyn stuck aoff again in out batch fs */
		{ 128, 128, 0, 5, 0, 13107, 0, 0, 0, 0, 512, 300, 9, 20 * 256 },
		{ 128, 128, 0, 5, 0, 13107, 0, 0, 0, 0, 400, 32, 33, 0 },
		{ 128, 128, 0, 5, 8, 13107, 0, 2000, 32768, 3277, 257, 129, 5, 17 * 256 + 31 },
		{ 128, 128, 32, 6, 3, 6554, 0, 0, 16384, 1311, 200, 70, 4, 11 * 256 },
		{ 128, 128, 2, 3, 0, 65536, 0, 0, 0, 0, 129, 16, 3, 256 },
		{ 128, 64, 64, 8, 5, 131072, 0, 50000, 65536, 6554, 300, 65, 4, 40 * 256 },
		{ 256, 128, 128, 5, 0, 13107, 0, 0, 0, 0, 600, 100, 3, 0 },
		{ 127, 15, 0, 5, 1, 13107, 0, 0, 0, 0, 254, 31, 5, 0 },
		{ 1, 1, 0, 5, 0, 13107, 0, 0, 0, 0, 3, 2, 4, 0 },
		{ 96, 48, 24, 12, 0, 13107, 0, 100, 9830, 655, 191, 97, 3, 96 * 256 },
		/* no static deviations: the ideal chip, and stuck cells
		 * with ADC offsets and gains */
		{ 128, 128, 0, 5, 0, 0, 0, 0, 0, 0, 512, 300, 9, 20 * 256 },
		{ 40, 24, 0, 5, 0, 0, 0, 3000, 40000, 4000, 100, 50, 30, 0 },
		/* 16-bit ADC, largest FS and F: the largest values */
		{ 128, 128, 0, 16, 8, 13107, 0, 0, 0, 0, 256, 20, 2, 65535u * 256u },
		/* groups above 128 rows: AVX-512 only */
		{ 256, 32, 256, 7, 2, 13107, 0, 0, 0, 0, 300, 40, 3, 100 * 256 },
		/* 16-bit ADC at the smallest FS over 1024 rows: ADC products
		 * beyond the range where double is exact, so the portable
		 * kernel runs */
		{ 1024, 16, 0, 16, 0, 13107, 0, 0, 0, 0, 1100, 20, 2, 256 },
	};
	enum cim_fmt wfs[] = { CIM_FMT_INT8, CIM_FMT_INT4, CIM_FMT_NF4 };
	enum cim_fmt xfs[] = { CIM_FMT_INT8, CIM_FMT_INT4 };
	struct cim_plane_pair s1[] = { { 7, 7 }, { 6, 7 }, { 7, 6 }, { 0, 0 } };
	struct cim_plane_pair s2[] = { { 3, 1 }, { 2, 3 }, { 0, 0 } };
	static const struct {
		enum cim_kernel k;
		const char *name;
	} kerns[] = {
		{ CIM_KERNEL_AVX2, "avx2" }, { CIM_KERNEL_AVX512, "avx512" },
	};
	int wi, xi, sgn, bad, dot, has;
	struct cim_config cfg;
	struct cim_engine *e;
	size_t k, q, m;

	cim_config_default(&cfg);
	cfg.sigma_static_q16 = 13107;
	CHECK(cim_engine_create(&cfg, &e) == 0, "create");
	CHECK(cim_engine_set_kernel(e, (enum cim_kernel)7) == -EINVAL,
	      "unknown kernel");
	CHECK(cim_engine_set_kernel(e, CIM_KERNEL_PORTABLE) == 0 &&
	      !strcmp(cim_engine_kernel_name(e), "portable"), "portable");
	cim_engine_destroy(e);
	cfg.sigma_dynamic_q16 = 655;
	CHECK(cim_engine_create(&cfg, &e) == 0, "create");
	CHECK(!strcmp(cim_engine_kernel_name(e), "portable"),
	      "read noise takes the portable kernel");
	cim_engine_destroy(e);

	for (q = 0; q < sizeof(kerns) / sizeof(kerns[0]); q++) {
		int dots = 0;

		cfg.sigma_dynamic_q16 = 0;
		CHECK(cim_engine_create(&cfg, &e) == 0, "create");
		has = cim_engine_set_kernel(e, kerns[q].k) == 0;
		CHECK(!has || !strcmp(cim_engine_kernel_name(e), kerns[q].name),
		      "%s selected, %s runs", kerns[q].name,
		      cim_engine_kernel_name(e));
		cim_engine_destroy(e);
		if (!has) {
			printf("note: this CPU has no %s kernel; not tested\n",
			       kerns[q].name);
			continue;
		}
		for (m = 0; m < 2; m++)
		for (k = 0; k < sizeof(cs) / sizeof(cs[0]); k++)
			for (wi = 0; wi < 3; wi++)
				for (xi = 0; xi < 2; xi++)
					for (sgn = 0; sgn < 2; sgn++) {
						bad = dot_vs_portable(&cs[k],
							recons[m],
							kerns[q].k, wfs[wi],
							xfs[xi], sgn, NULL, 0,
							&dot);
						dots += dot;
						CHECK(bad == 0, "%s %s case %zu w=%s "
						      "x=%s%s: %d mismatches",
						      kerns[q].name,
						      cim_recon_name(recons[m]), k,
						      fname(wfs[wi]),
						      fname(xfs[xi]),
						      sgn ? "s" : "u", bad);
					}
		bad = dot_vs_portable(&cs[0], CIM_RECON_CODES, kerns[q].k, CIM_FMT_INT8,
				      CIM_FMT_INT8, 1, s1, 4, &dot);
		CHECK(bad == 0, "%s schedule 1: %d", kerns[q].name, bad);
		bad = dot_vs_portable(&cs[3], CIM_RECON_CELLS, kerns[q].k, CIM_FMT_NF4,
				      CIM_FMT_INT4, 0, s2, 3, &dot);
		CHECK(bad == 0, "%s schedule 2: %d", kerns[q].name, bad);
		/* the cases above really ran the kernel (all but the ones
		 * it does not cover: the fallback case, odd G for AVX-512) */
		CHECK(dots >= 2 * 132, "%s ran on %d of 360 cases",
		      kerns[q].name, dots);
	}
}

int main(void)
{
	RUN(test_gauss);
	RUN(test_exact);
	RUN(test_exact_edges);
	RUN(test_subcell_kept);
	RUN(test_vs_naive);
	RUN(test_design_vs_naive);
	RUN(test_design_exact);
	RUN(test_dot_kernel);
	RUN(test_threads);
	RUN(test_dynamic_noise);
	RUN(test_static_spread);
	RUN(test_determinism);
	RUN(test_chunking);
	RUN(test_codebook);
	RUN(test_counters);
	RUN(test_validation);
	return unit_summary();
}
