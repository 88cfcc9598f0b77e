// SPDX-License-Identifier: MIT
/*
 * cim_engine - bit-plane compute-in-memory arithmetic (see cim_engine.h and
 * cim_engine.md for the model).
 *
 * Storage, per tile, column-major so one column's planes sit together:
 *   wpl  [tile][col][w_plane][word]        programmed bits after stuck cells
 *   dgpl [tile][col][w_plane][k][word]     bit k of the cell's int8 dg (Q7)
 * A word holds 64 consecutive rows; nw = ceil(R / 64) words per column.
 *
 * One conversion: a = x_plane_i & w_plane_j(col) & group_mask,
 *   n      = popcount(a)
 *   dgsum  = sum_k<7 2^k popcount(a & D_k) - 128 popcount(a & D_7)
 *   S_q8   = 256 n + 2 dgsum + noise_q8
 *   code   = clamp(round_shift(S_q8 * M_c + offset_q8 * 2^16, 24), 0, L)
 *   acc_c += coef_ij * recon[code]
 * with M_c = round(gain_c * L * 256 / fs_q8) computed once per call and
 * tile. Under CIM_RECON_CODES recon[k] = k and each output is scaled by
 * fs_q8 / (256 L) once (codes_to_cells); under CIM_RECON_CELLS
 * recon[k] = round(k * fs_q8 * 2^F / (256 L)), once per call.
 * When there is neither dg nor dynamic noise, S depends on n only and a
 * per-column table lut[n] = recon[code(256 n)] replaces the arithmetic.
 * Both paths evaluate the same function, so the result does not depend on
 * which one runs.
 */
#include "cim_engine.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

unsigned int cim_cpu_features(void)
{
	unsigned int f = 0;

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
	__builtin_cpu_init();
	if (__builtin_cpu_supports("popcnt"))
		f |= CIM_CPU_POPCNT;
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		f |= CIM_CPU_AVX2_FMA;
	if ((f & CIM_CPU_AVX2_FMA) && __builtin_cpu_supports("avx512f") &&
	    __builtin_cpu_supports("avx512vl") &&
	    __builtin_cpu_supports("avx512dq") &&
	    __builtin_cpu_supports("avx512bw"))
		f |= CIM_CPU_AVX512;
	if ((f & CIM_CPU_AVX512) && __builtin_cpu_supports("avx512vnni"))
		f |= CIM_CPU_AVX512_VNNI;
#endif
	return f;
}

#if defined(__GNUC__) && defined(__x86_64__) && !defined(CIM_NO_SIMD)
#define CIM_HAVE_AVX2 1
/*
 * GCC 12 with -ftrivial-auto-var-init (QEMU's flags) reports the
 * intrinsics' own deliberately undefined pass-through operands
 * (__m256d __Y = __Y) as maybe uninitialized.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

#define GOLDEN 0x9E3779B97F4A7C15ull

/* QLoRA NF4 (Dettmers et al. 2023, bitsandbytes) scaled by 127, rounded. */
const int8_t cim_nf4_default[16] = {
	-127, -88, -67, -50, -36, -23, -12, 0,
	10, 20, 31, 43, 56, 71, 92, 127,
};

struct tile_meta {
	uint8_t programmed;
	uint8_t fmt;
	uint8_t static_ready; /* dg planes and stuck masks computed */
	uint8_t cells_ready;  /* ucell[tile] holds the programmed bits, in
			       * the layout of this many rows per block */
	uint32_t rows_used;
	uint32_t cols_used;
};

struct cim_engine {
	struct cim_config cfg;
	uint32_t nw;            /* words per column */
	uint32_t ngroups;       /* row groups of a full tile */
	uint32_t L;             /* 2^b - 1 */
	int has_dg, has_stuck, has_dyn;
	uint32_t threads;       /* a MATMUL's batch is split over this many */
	size_t col_words;       /* words per column in wpl: 8 * nw */
	int8_t codebook[16];

	uint64_t *wpl;
	uint64_t *dgpl;         /* NULL when sigma_static == 0 */
	uint64_t *stuck0;       /* [tile][col][plane][word], NULL if no stuck */
	uint64_t *stuck1;
	int32_t *gain_q16;      /* [tile][col] */
	int32_t *offset_q8;
	struct tile_meta *meta;

	/* group g covers segments [gseg[g], gseg[g+1]) */
	uint32_t *gseg;
	uint32_t *seg_word;
	uint64_t *seg_mask;
	uint32_t *sig_n;        /* isqrt(sigma_dyn^2 * n), n = 0..G */

	/*
	 * The dot-product kernels' view of the cells, u = stored bit ?
	 * 128 + dg : 0 per cell (see "the dot-product kernels" below), per
	 * tile; built on a tile's first MATMUL after it was programmed.
	 */
	enum cim_kernel kernel;
	uint8_t **ucell;
	uint32_t ncb, rpad;     /* column blocks; rows rounded up to 4 */
	size_t u_plane;         /* bytes of one plane of one tile */

	struct cim_counters cnt;
};

/* ------------------------------------------------------------------------ */
/* pure helpers                                                             */

uint64_t cim_mix64(uint64_t x)
{
	uint64_t z = x + GOLDEN;

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

uint64_t cim_hash64(uint64_t seed, uint64_t addr)
{
	return cim_mix64(cim_mix64(seed) ^ addr);
}

/* hash with the seed already mixed */
static inline uint64_t hash_pre(uint64_t mixed_seed, uint64_t addr)
{
	return cim_mix64(mixed_seed ^ addr);
}

static inline int32_t chunks4(uint64_t w)
{
	return (int32_t)(2u * ((uint32_t)(w & 0xFFFF) +
			       (uint32_t)((w >> 16) & 0xFFFF) +
			       (uint32_t)((w >> 32) & 0xFFFF) +
			       (uint32_t)(w >> 48)) + 4u);
}

int32_t cim_gauss_q17(uint64_t key)
{
	int32_t s = chunks4(cim_mix64(key + GOLDEN)) +
		    chunks4(cim_mix64(key + 2 * GOLDEN)) +
		    chunks4(cim_mix64(key + 3 * GOLDEN));

	return s - 786432;
}

uint64_t cim_cell_addr(uint32_t domain, uint32_t tile, uint32_t row,
		       uint32_t col, uint32_t plane)
{
	return (uint64_t)(domain & 0xF) << 60 |
	       (uint64_t)(tile & 0xFFFFF) << 40 |
	       (uint64_t)(row & 0xFFFF) << 24 |
	       (uint64_t)(col & 0xFFFF) << 8 | (plane & 0xFF);
}

/* floor((v + 2^(s-1)) / 2^s); relies on arithmetic >> of negative values,
 * which GCC and Clang guarantee. */
static inline int64_t round_shift(int64_t v, unsigned s)
{
	return (v + ((int64_t)1 << (s - 1))) >> s;
}

static inline int32_t clamp32(int64_t v, int64_t lo, int64_t hi)
{
	return (int32_t)(v < lo ? lo : v > hi ? hi : v);
}

int32_t cim_cell_dg_q7(const struct cim_config *cfg, uint32_t tile,
		       uint32_t row, uint32_t col, uint32_t plane)
{
	int64_t z;

	if (!cfg || !cfg->sigma_static_q16)
		return 0;
	z = cim_gauss_q17(cim_hash64(cfg->seed, cim_cell_addr(CIM_DOM_DG,
			  tile, row, col, plane)));
	return clamp32(round_shift(z * cfg->sigma_static_q16, 26), -128, 127);
}

int cim_cell_stuck(const struct cim_config *cfg, uint32_t tile, uint32_t row,
		   uint32_t col, uint32_t plane)
{
	uint64_t h;

	if (!cfg || !cfg->stuck_rate_ppm)
		return -1;
	h = cim_hash64(cfg->seed, cim_cell_addr(CIM_DOM_STUCK, tile, row, col,
						 plane));
	if ((((h >> 32) * 1000000u) >> 32) < cfg->stuck_rate_ppm)
		return (int)(h & 1);
	return -1;
}

void cim_adc_static(const struct cim_config *cfg, uint32_t tile, uint32_t col,
		    int32_t *gain_q16, int32_t *offset_q8)
{
	int64_t z;

	if (gain_q16) {
		*gain_q16 = 65536;
		if (cfg && cfg->adc_gain_sigma_q16) {
			z = cim_gauss_q17(cim_hash64(cfg->seed,
				cim_cell_addr(CIM_DOM_GAIN, tile, 0, col, 0)));
			*gain_q16 = clamp32(65536 + round_shift(z *
					cfg->adc_gain_sigma_q16, 17), 0, 131072);
		}
	}
	if (offset_q8) {
		*offset_q8 = 0;
		if (cfg && cfg->adc_offset_sigma_q16) {
			z = cim_gauss_q17(cim_hash64(cfg->seed,
				cim_cell_addr(CIM_DOM_OFFSET, tile, 0, col, 0)));
			*offset_q8 = (int32_t)round_shift(z *
					cfg->adc_offset_sigma_q16, 25);
		}
	}
}

static uint64_t isqrt64(uint64_t v)
{
	uint64_t r = 0, bit = (uint64_t)1 << 62;

	while (bit > v)
		bit >>= 2;
	while (bit) {
		if (v >= r + bit) {
			v -= r + bit;
			r = (r >> 1) + bit;
		} else {
			r >>= 1;
		}
		bit >>= 2;
	}
	return r;
}

/* ------------------------------------------------------------------------ */
/* configuration                                                            */

void cim_config_default(struct cim_config *cfg)
{
	if (!cfg)
		return;
	memset(cfg, 0, sizeof(*cfg));
	cfg->rows = CIM_DEFAULT_ROWS;
	cfg->cols = CIM_DEFAULT_COLS;
	cfg->tiles = CIM_DEFAULT_TILES;
	cfg->adc_bits = CIM_DEFAULT_ADC_BITS;
	cfg->rows_per_conversion = CIM_DEFAULT_ROWS;
	cfg->adcs_per_tile = CIM_DEFAULT_COLS / 8;
}

const char *cim_recon_name(uint32_t recon)
{
	switch (recon) {
	case CIM_RECON_CODES:
		return "codes";
	case CIM_RECON_CELLS:
		return "cells";
	}
	return NULL;
}

int cim_recon_parse(const char *name)
{
	if (name && !strcmp(name, "codes"))
		return CIM_RECON_CODES;
	if (name && !strcmp(name, "cells"))
		return CIM_RECON_CELLS;
	return -EINVAL;
}

uint32_t cim_adc_fs_for_recon(const struct cim_config *cfg, uint32_t fs_q8)
{
	uint32_t bits = cfg && cfg->adc_bits ? cfg->adc_bits :
			CIM_DEFAULT_ADC_BITS, one_cell_step;

	if (!cfg || cfg->recon != CIM_RECON_CELLS || cfg->recon_frac_bits ||
	    bits > CIM_MAX_ADC_BITS)
		return fs_q8;
	one_cell_step = ((1u << bits) - 1) * 256u;
	return fs_q8 < one_cell_step ? one_cell_step : fs_q8;
}

int cim_config_resolve(const struct cim_config *in, struct cim_config *out)
{
	struct cim_config c;

	if (!in || !out)
		return -EINVAL;
	c = *in;
	if (!c.rows)
		c.rows = CIM_DEFAULT_ROWS;
	if (!c.cols)
		c.cols = CIM_DEFAULT_COLS;
	if (!c.tiles)
		c.tiles = CIM_DEFAULT_TILES;
	if (!c.adc_bits)
		c.adc_bits = CIM_DEFAULT_ADC_BITS;
	if (!c.rows_per_conversion)
		c.rows_per_conversion = c.rows;
	if (!c.adcs_per_tile)
		c.adcs_per_tile = c.cols >= 8 ? c.cols / 8 : 1;
	if (c.adc_bits_msb && !c.adc_msb_levels)
		c.adc_msb_levels = 1;
	if (c.rows > CIM_MAX_ROWS || c.cols > CIM_MAX_COLS ||
	    c.tiles > CIM_MAX_TILES || c.adc_bits > CIM_MAX_ADC_BITS ||
	    c.rows_per_conversion > c.rows || c.adcs_per_tile > c.cols ||
	    !cim_recon_name(c.recon) ||
	    c.recon_frac_bits > CIM_MAX_RECON_FRAC ||
	    (c.recon == CIM_RECON_CODES && c.recon_frac_bits) ||
	    c.digital_planes > CIM_MAX_PLANES ||
	    (c.adc_bits_msb && (c.adc_bits_msb <= c.adc_bits ||
				c.adc_bits_msb > CIM_MAX_ADC_BITS ||
				c.adc_bits + c.adc_bits_msb >
				CIM_MAX_ADC_BITS_SUM)) ||
	    (!c.adc_bits_msb && c.adc_msb_levels) ||
	    c.adc_msb_levels > CIM_MAX_MSB_LEVELS ||
	    c.sigma_static_q16 > CIM_MAX_SIGMA_Q16 ||
	    c.sigma_dynamic_q16 > CIM_MAX_SIGMA_Q16 ||
	    c.adc_offset_sigma_q16 > CIM_MAX_SIGMA_Q16 ||
	    c.adc_gain_sigma_q16 > CIM_MAX_GAIN_SIGMA_Q16 ||
	    c.stuck_rate_ppm > 1000000)
		return -EINVAL;
	*out = c;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* create / destroy                                                         */

static void *xcalloc(size_t n, size_t sz)
{
	if (sz && n > SIZE_MAX / sz)
		return NULL;
	return calloc(n ? n : 1, sz);
}

int cim_engine_create(const struct cim_config *cfg, struct cim_engine **out)
{
	struct cim_engine *e;
	struct cim_config c;
	size_t tw, ncol;
	uint32_t G, g, t, col, nseg = 0;
	int ret;

	if (!out)
		return -EINVAL;
	*out = NULL;
	ret = cim_config_resolve(cfg, &c);
	if (ret)
		return ret;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->cfg = c;
	e->threads = 1;
	e->nw = (c.rows + 63) / 64;
	G = c.rows_per_conversion;
	e->ngroups = (c.rows + G - 1) / G;
	e->L = (1u << c.adc_bits) - 1;
	e->has_dg = c.sigma_static_q16 != 0;
	e->has_stuck = c.stuck_rate_ppm != 0;
	e->has_dyn = c.sigma_dynamic_q16 != 0;
	e->col_words = (size_t)CIM_MAX_PLANES * e->nw;
	memcpy(e->codebook, cim_nf4_default, sizeof(e->codebook));

	ncol = (size_t)c.tiles * c.cols;
	if (ncol / c.cols != c.tiles || ncol > SIZE_MAX / e->col_words)
		goto nomem;
	tw = ncol * e->col_words;
	e->wpl = xcalloc(tw, sizeof(uint64_t));
	e->gain_q16 = xcalloc(ncol, sizeof(int32_t));
	e->offset_q8 = xcalloc(ncol, sizeof(int32_t));
	e->meta = xcalloc(c.tiles, sizeof(*e->meta));
	e->gseg = xcalloc(e->ngroups + 1, sizeof(uint32_t));
	/* a group touches at most ceil(G/64) + 1 words */
	e->seg_word = xcalloc((size_t)e->ngroups * (G / 64 + 2), sizeof(uint32_t));
	e->seg_mask = xcalloc((size_t)e->ngroups * (G / 64 + 2), sizeof(uint64_t));
	e->sig_n = xcalloc((size_t)G + 1, sizeof(uint32_t));
	if (!e->wpl || !e->gain_q16 || !e->offset_q8 || !e->meta || !e->gseg ||
	    !e->seg_word || !e->seg_mask || !e->sig_n)
		goto nomem;
	if (e->has_dg) {
		if (tw > SIZE_MAX / 8)
			goto nomem;
		e->dgpl = xcalloc(tw * 8, sizeof(uint64_t));
		if (!e->dgpl)
			goto nomem;
	}
	e->kernel = CIM_KERNEL_AUTO;
	e->ncb = (c.cols + 15) / 16;
	e->rpad = (c.rows + 3) / 4 * 4;
	e->u_plane = (size_t)e->ncb * e->rpad * 16;
	e->ucell = xcalloc(c.tiles, sizeof(*e->ucell));
	if (!e->ucell)
		goto nomem;
	if (e->has_stuck) {
		e->stuck0 = xcalloc(tw, sizeof(uint64_t));
		e->stuck1 = xcalloc(tw, sizeof(uint64_t));
		if (!e->stuck0 || !e->stuck1)
			goto nomem;
	}

	for (g = 0; g < e->ngroups; g++) {
		uint32_t r0 = g * G, r1 = r0 + G > c.rows ? c.rows : r0 + G;
		uint32_t w;

		e->gseg[g] = nseg;
		for (w = r0 / 64; w <= (r1 - 1) / 64; w++) {
			uint32_t lo = w * 64 > r0 ? 0 : r0 - w * 64;
			uint32_t hi = (w + 1) * 64 < r1 ? 64 : r1 - w * 64;
			uint64_t m = (hi == 64 ? ~0ull : ((1ull << hi) - 1)) &
				     ~((1ull << lo) - 1);

			e->seg_word[nseg] = w;
			e->seg_mask[nseg++] = m;
		}
	}
	e->gseg[e->ngroups] = nseg;
	for (g = 0; g <= G; g++)
		e->sig_n[g] = (uint32_t)isqrt64((uint64_t)c.sigma_dynamic_q16 *
						c.sigma_dynamic_q16 * g);
	for (t = 0; t < c.tiles; t++)
		for (col = 0; col < c.cols; col++)
			cim_adc_static(&e->cfg, t, col,
				       &e->gain_q16[(size_t)t * c.cols + col],
				       &e->offset_q8[(size_t)t * c.cols + col]);
	*out = e;
	return 0;
nomem:
	cim_engine_destroy(e);
	return -ENOMEM;
}

void cim_engine_destroy(struct cim_engine *e)
{
	if (!e)
		return;
	free(e->wpl);
	free(e->dgpl);
	free(e->stuck0);
	free(e->stuck1);
	free(e->gain_q16);
	free(e->offset_q8);
	free(e->meta);
	free(e->gseg);
	free(e->seg_word);
	free(e->seg_mask);
	free(e->sig_n);
	if (e->ucell) {
		uint32_t t;

		for (t = 0; t < e->cfg.tiles; t++)
			free(e->ucell[t]);
		free(e->ucell);
	}
	free(e);
}

const struct cim_config *cim_engine_config(const struct cim_engine *e)
{
	return e ? &e->cfg : NULL;
}

int cim_engine_set_codebook(struct cim_engine *e, const int8_t cb[16])
{
	if (!e || !cb)
		return -EINVAL;
	memcpy(e->codebook, cb, sizeof(e->codebook));
	return 0;
}

void cim_engine_counters(const struct cim_engine *e, struct cim_counters *c)
{
	if (e && c)
		*c = e->cnt;
}

void cim_engine_reset_counters(struct cim_engine *e)
{
	if (e)
		memset(&e->cnt, 0, sizeof(e->cnt));
}

/* ------------------------------------------------------------------------ */
/* programming                                                              */

static inline uint64_t *col_planes(const struct cim_engine *e, uint64_t *base,
				   uint32_t tile, uint32_t col)
{
	return base + ((size_t)tile * e->cfg.cols + col) * e->col_words;
}

/* dg planes and stuck masks of one tile: pure functions of the address,
 * computed once, on the tile's first programming. */
static void tile_static_init(struct cim_engine *e, uint32_t t)
{
	const struct cim_config *c = &e->cfg;
	uint64_t ms = cim_mix64(c->seed);
	uint32_t col, p, r, k;

	for (col = 0; col < c->cols; col++) {
		for (p = 0; p < CIM_MAX_PLANES; p++) {
			size_t off = ((size_t)t * c->cols + col) * e->col_words +
				     (size_t)p * e->nw;
			for (r = 0; r < c->rows; r++) {
				uint64_t bit = 1ull << (r & 63);
				size_t w = r >> 6;

				if (e->has_dg) {
					int64_t z = cim_gauss_q17(hash_pre(ms,
						cim_cell_addr(CIM_DOM_DG, t, r,
							      col, p)));
					uint8_t dg = (uint8_t)clamp32(
						round_shift(z * c->sigma_static_q16,
							    26), -128, 127);
					/* [col][plane][k][word]: off * 8 is
					 * (col base) * 8 + p * 8 * nw */
					uint64_t *d = e->dgpl + off * 8;

					for (k = 0; k < 8; k++)
						if (dg >> k & 1)
							d[(size_t)k * e->nw + w] |= bit;
				}
				if (e->has_stuck) {
					uint64_t h = hash_pre(ms, cim_cell_addr(
						CIM_DOM_STUCK, t, r, col, p));

					if ((((h >> 32) * 1000000u) >> 32) <
					    c->stuck_rate_ppm) {
						if (h & 1)
							e->stuck1[off + w] |= bit;
						else
							e->stuck0[off + w] |= bit;
					}
				}
			}
		}
	}
	e->meta[t].static_ready = 1;
}

/* 8 bytes (row r0..r0+7) -> plane byte: bit k = bit `plane` of byte k */
static inline uint8_t plane_byte(uint64_t chunk, unsigned plane)
{
	return (uint8_t)((((chunk >> plane) & 0x0101010101010101ull) *
			  0x0102040810204080ull) >> 56);
}

static inline uint64_t load8(const uint8_t *u)
{
	return (uint64_t)u[0] | (uint64_t)u[1] << 8 | (uint64_t)u[2] << 16 |
	       (uint64_t)u[3] << 24 | (uint64_t)u[4] << 32 |
	       (uint64_t)u[5] << 40 | (uint64_t)u[6] << 48 |
	       (uint64_t)u[7] << 56;
}

/* pack n (<= R) codes into np planes of nw words: out[p * nw + w] */
static void pack_planes(const uint8_t *codes, uint32_t n, uint32_t nw,
			unsigned np, uint64_t *out)
{
	uint8_t tmp[8];
	uint32_t r;
	unsigned p;

	memset(out, 0, sizeof(uint64_t) * nw * np);
	for (r = 0; r < n; r += 8) {
		uint64_t chunk;

		if (r + 8 <= n) {
			chunk = load8(codes + r);
		} else {
			memset(tmp, 0, sizeof(tmp));
			memcpy(tmp, codes + r, n - r);
			chunk = load8(tmp);
		}
		if (!chunk)
			continue;
		for (p = 0; p < np; p++)
			out[(size_t)p * nw + (r >> 6)] |=
				(uint64_t)plane_byte(chunk, p) << (r & 63);
	}
}

static int fmt_wplanes(enum cim_fmt f)
{
	return f == CIM_FMT_INT4 ? 4 : 8;
}

static int tiles_range(const struct cim_engine *e, uint32_t tile0,
		       uint32_t in_dim, uint32_t out_dim, uint32_t *rtiles,
		       uint32_t *ctiles)
{
	uint64_t rt = ((uint64_t)in_dim + e->cfg.rows - 1) / e->cfg.rows;
	uint64_t ct = ((uint64_t)out_dim + e->cfg.cols - 1) / e->cfg.cols;

	if ((uint64_t)tile0 + rt * ct > e->cfg.tiles)
		return -ERANGE;
	*rtiles = (uint32_t)rt;
	*ctiles = (uint32_t)ct;
	return 0;
}

int cim_engine_program(struct cim_engine *e, uint32_t tile0, uint32_t in_dim,
		       uint32_t out_dim, enum cim_fmt fmt, const int8_t *w)
{
	const struct cim_config *c;
	uint32_t rtiles, ctiles, rt, ct, o, r, np, R, C;
	uint8_t *codes;
	size_t i, nel;
	int ret;

	if (!e || !w || !in_dim || !out_dim ||
	    (fmt != CIM_FMT_INT8 && fmt != CIM_FMT_INT4 && fmt != CIM_FMT_NF4))
		return -EINVAL;
	c = &e->cfg;
	R = c->rows;
	C = c->cols;
	ret = tiles_range(e, tile0, in_dim, out_dim, &rtiles, &ctiles);
	if (ret)
		return ret;
	nel = (size_t)in_dim * out_dim;
	for (i = 0; i < nel; i++) {
		if (fmt == CIM_FMT_INT4 && (w[i] < -8 || w[i] > 7))
			return -EINVAL;
		if (fmt == CIM_FMT_NF4 && (w[i] < 0 || w[i] > 15))
			return -EINVAL;
	}
	codes = malloc(R);
	if (!codes)
		return -ENOMEM;
	np = (uint32_t)fmt_wplanes(fmt);
	for (ct = 0; ct < ctiles; ct++) {
		for (rt = 0; rt < rtiles; rt++) {
			uint32_t t = tile0 + ct * rtiles + rt;
			uint32_t rows = in_dim - rt * R > R ? R : in_dim - rt * R;
			uint32_t cols = out_dim - ct * C > C ? C : out_dim - ct * C;
			struct tile_meta *m = &e->meta[t];

			if ((e->has_dg || e->has_stuck) && !m->static_ready)
				tile_static_init(e, t);
			memset(col_planes(e, e->wpl, t, 0), 0,
			       sizeof(uint64_t) * C * e->col_words);
			for (o = 0; o < cols; o++) {
				const int8_t *src = w + (size_t)(ct * C + o) *
						    in_dim + (size_t)rt * R;
				uint64_t *dst = col_planes(e, e->wpl, t, o);

				for (r = 0; r < rows; r++) {
					int8_t v = src[r];

					if (fmt == CIM_FMT_NF4)
						v = e->codebook[(uint8_t)v];
					codes[r] = (uint8_t)v &
						   (np == 4 ? 0x0F : 0xFF);
				}
				pack_planes(codes, rows, e->nw, np, dst);
			}
			if (e->has_stuck) {
				/* every cell of the tile, so unused cells are
				 * stuck too: harmless, their inputs are 0 */
				uint64_t *d = col_planes(e, e->wpl, t, 0);
				const uint64_t *s0 = col_planes(e, e->stuck0, t, 0);
				const uint64_t *s1 = col_planes(e, e->stuck1, t, 0);
				size_t n = (size_t)C * e->col_words;

				for (i = 0; i < n; i++)
					d[i] = (d[i] & ~s0[i]) | s1[i];
			}
			m->programmed = 1;
			m->cells_ready = 0;
			m->fmt = (uint8_t)fmt;
			m->rows_used = rows;
			m->cols_used = cols;
		}
	}
	free(codes);
	e->cnt.bytes_weights += fmt == CIM_FMT_INT8 ? nel : (nel + 1) / 2;
	e->cnt.cells_programmed += nel * np;
	return (int)(rtiles * ctiles);
}

/* ------------------------------------------------------------------------ */
/* matmul                                                                   */

struct pair_info {
	uint32_t xi, wj;   /* plane indices */
	uint32_t addr;     /* x_plane << 4 | w_plane for the noise address */
	int64_t coef;      /* +-2^(i+j) */
};

struct job {
	const struct cim_engine *e;
	const struct pair_info *pairs;
	uint32_t npairs;
	uint32_t ngroups;      /* groups of this tile */
	uint32_t cols;         /* used columns */
	uint32_t tile;
	const uint64_t *wpl;   /* tile's planes, column 0 */
	const uint64_t *dgpl;
	const int32_t *lut;    /* [col][n], stride lut_stride, or NULL */
	uint32_t lut_stride;
	const int64_t *M;      /* per column */
	const int64_t *off24;  /* per column */
	const int64_t *recon;
	uint32_t L;            /* 2^b - 1 of this job's ADC */
	int dg, dyn;
};

#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#define POPCNT(x) __builtin_popcountll(x)
#else
#define ALWAYS_INLINE inline
static inline int POPCNT(uint64_t x)
{
	x = x - ((x >> 1) & 0x5555555555555555ull);
	x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
	x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Full;
	return (int)((x * 0x0101010101010101ull) >> 56);
}
#endif

/*
 * Single row group, NW (1 or 2) words per column, with dg and/or dynamic
 * noise: the default 128-row tile with noise on. Branch-free apart from
 * the noise draw, fully unrolled dg popcounts.
 */
static ALWAYS_INLINE void tile_item_noisy1(const struct job *j,
					   const uint64_t *xp, int64_t *acc,
					   uint64_t item_mkey, const uint32_t NW)
{
	const struct cim_engine *e = j->e;
	const int64_t L = j->L;
	const size_t cw = e->col_words;
	const int dg = j->dg, dyn = j->dyn;
	uint32_t c, p, q;

	for (c = 0; c < j->cols; c++) {
		const uint64_t *wc = j->wpl + c * cw;
		const uint64_t *dc = dg ? j->dgpl + c * cw * 8 : NULL;
		const int64_t M = j->M[c], off = j->off24[c];
		const uint64_t caddr = (uint64_t)j->tile << 40 | (uint64_t)c << 24;
		int64_t a = 0;

		for (p = 0; p < j->npairs; p++) {
			const struct pair_info *pi = &j->pairs[p];
			const uint64_t *xi = xp + (size_t)pi->xi * NW;
			const uint64_t *wj = wc + (size_t)pi->wj * NW;
			uint64_t act[2];
			int64_t S, code;
			int n = 0, dgs = 0;

			for (q = 0; q < NW; q++) {
				act[q] = xi[q] & wj[q];
				n += POPCNT(act[q]);
			}
			if (dg) {
				const uint64_t *d = dc + (size_t)pi->wj * 8 * NW;

				for (q = 0; q < NW; q++) {
					const uint64_t v = act[q];

					dgs += POPCNT(v & d[q]) +
					       2 * POPCNT(v & d[NW + q]) +
					       4 * POPCNT(v & d[2 * NW + q]) +
					       8 * POPCNT(v & d[3 * NW + q]) +
					       16 * POPCNT(v & d[4 * NW + q]) +
					       32 * POPCNT(v & d[5 * NW + q]) +
					       64 * POPCNT(v & d[6 * NW + q]) -
					       128 * POPCNT(v & d[7 * NW + q]);
				}
			}
			S = (int64_t)n * 256 + 2 * (int64_t)dgs;
			if (dyn && n) {
				int64_t z = cim_gauss_q17(hash_pre(item_mkey,
							  caddr | pi->addr));

				S += round_shift(z * e->sig_n[n], 25);
			}
			code = round_shift(S * M + off, 24);
			code = code < 0 ? 0 : code;
			code = code > L ? L : code;
			a += pi->coef * j->recon[code];
		}
		acc[c] += a;
	}
}

/*
 * One tile, one batch item: add every column's shift-and-add sum into
 * acc[col]. xp: the item's input planes for this tile's rows [i][word].
 */
static ALWAYS_INLINE void tile_item_body(const struct job *j,
					 const uint64_t *xp, int64_t *acc,
					 uint64_t item_mkey)
{
	const struct cim_engine *e = j->e;
	const uint32_t nw = e->nw, L = j->L;
	const uint32_t *gseg = e->gseg, *sw = e->seg_word;
	const uint64_t *sm = e->seg_mask;
	const size_t cw = e->col_words;
	uint32_t c, p, g, s;

	if (j->lut && j->ngroups == 1 && nw <= 2) {
		/* the common case: one group, <= 128 rows, no analog noise */
		for (c = 0; c < j->cols; c++) {
			const uint64_t *wc = j->wpl + c * cw;
			const int32_t *lc = j->lut + (size_t)c * j->lut_stride;
			int64_t a = 0;

			if (nw == 2) {
				for (p = 0; p < j->npairs; p++) {
					const uint64_t *xi = xp + j->pairs[p].xi * 2;
					const uint64_t *wj = wc + j->pairs[p].wj * 2;
					unsigned n = (unsigned)(POPCNT(xi[0] & wj[0]) +
							       POPCNT(xi[1] & wj[1]));

					a += j->pairs[p].coef * lc[n];
				}
			} else {
				for (p = 0; p < j->npairs; p++) {
					unsigned n = (unsigned)POPCNT(
						xp[j->pairs[p].xi] &
						wc[j->pairs[p].wj]);

					a += j->pairs[p].coef * lc[n];
				}
			}
			acc[c] += a;
		}
		return;
	}
	if (!j->lut && j->ngroups == 1 && nw <= 2) {
		if (nw == 2)
			tile_item_noisy1(j, xp, acc, item_mkey, 2);
		else
			tile_item_noisy1(j, xp, acc, item_mkey, 1);
		return;
	}

	for (c = 0; c < j->cols; c++) {
		const uint64_t *wc = j->wpl + c * cw;
		const uint64_t *dc = j->dg ? j->dgpl + c * cw * 8 : NULL;
		const int32_t *lc = j->lut ? j->lut + (size_t)c * j->lut_stride
					   : NULL;
		const int64_t M = j->M[c], off = j->off24[c];
		int64_t a = 0;

		for (p = 0; p < j->npairs; p++) {
			const struct pair_info *pi = &j->pairs[p];
			const uint64_t *xi = xp + (size_t)pi->xi * nw;
			const uint64_t *wj = wc + (size_t)pi->wj * nw;
			const uint64_t *dj = dc ? dc + (size_t)pi->wj * 8 * nw
						: NULL;

			for (g = 0; g < j->ngroups; g++) {
				int64_t S, code;
				int n = 0, dgs = 0;

				for (s = gseg[g]; s < gseg[g + 1]; s++) {
					uint32_t w = sw[s];
					uint64_t act = xi[w] & wj[w] & sm[s];

					if (!act)
						continue;
					n += POPCNT(act);
					if (dj) {
						const uint64_t *d = dj + w;

						dgs += POPCNT(act & d[0]) +
						       2 * POPCNT(act & d[nw]) +
						       4 * POPCNT(act & d[2 * nw]) +
						       8 * POPCNT(act & d[3 * nw]) +
						       16 * POPCNT(act & d[4 * nw]) +
						       32 * POPCNT(act & d[5 * nw]) +
						       64 * POPCNT(act & d[6 * nw]) -
						       128 * POPCNT(act & d[7 * nw]);
					}
				}
				if (lc) {
					a += pi->coef * lc[n];
					continue;
				}
				S = (int64_t)n * 256 + 2 * (int64_t)dgs;
				if (j->dyn && n) {
					uint64_t addr = (uint64_t)j->tile << 40 |
						(uint64_t)c << 24 |
						(uint64_t)g << 8 | pi->addr;
					int64_t z = cim_gauss_q17(hash_pre(
							item_mkey, addr));

					S += round_shift(z * e->sig_n[n], 25);
				}
				code = round_shift(S * M + off, 24);
				if (code < 0)
					code = 0;
				else if (code > L)
					code = L;
				a += pi->coef * j->recon[code];
			}
		}
		acc[c] += a;
	}
}

static void tile_item_generic(const struct job *j, const uint64_t *xp,
			      int64_t *acc, uint64_t k)
{
	tile_item_body(j, xp, acc, k);
}

/* -DCIM_NO_POPCNT_DISPATCH forces the portable kernel (used by tests) */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && \
    !defined(CIM_NO_POPCNT_DISPATCH)
#define CIM_HAVE_POPCNT_DISPATCH 1
__attribute__((target("popcnt")))
static void tile_item_popcnt(const struct job *j, const uint64_t *xp,
			     int64_t *acc, uint64_t k)
{
	tile_item_body(j, xp, acc, k);
}
#endif

typedef void (*tile_item_fn)(const struct job *, const uint64_t *, int64_t *,
			     uint64_t);

static tile_item_fn pick_kernel(void)
{
#ifdef CIM_HAVE_POPCNT_DISPATCH
	if (cim_cpu_features() & CIM_CPU_POPCNT)
		return tile_item_popcnt;
#endif
	return tile_item_generic;
}

/* ------------------------------------------------------------------------ */
/* the dot-product kernels (CIM_KERNEL_AVX2, CIM_KERNEL_AVX512)             */
/*
 * For a chip without read noise (static deviations, stuck cells and ADC
 * offsets and gains are fine), one conversion's analog sum is
 * S_q8 = 256 n + 2 sum(dg) over the active cells, i.e.
 * S_q8 = 2 T with T = sum_r xbit_r * u_r and u_r = wbit_r ? 128 + dg_r : 0,
 * an unsigned 8-bit value. T is an 8-bit dot product of the input plane
 * (0/1 bytes) with a column's u, which the CPU's byte dot-product
 * instructions compute for 16 columns at once: vpmaddubsw (AVX2) sums two
 * rows per 16-bit lane, vpdpbusd (AVX-512 VNNI) four rows per 32-bit lane.
 * A register block of 4 input planes x 2 (AVX2) or 4 (AVX-512) weight
 * planes of one 16-column block stays in registers while a row group's
 * rows pass. With 16-bit lanes a group is at most 128 rows, so
 * T <= 255 G < 2^15 cannot wrap.
 *
 * The ADC and the reconstruction then run in double precision, where they
 * are exact: code = floor((2 T M + off + 2^23) / 2^24) has an integer
 * numerator below 2^52, and the column sum of coef * recon[code] is kept
 * below 2^52 (both checked per call, else the portable kernel runs). So
 * these kernels compute the same integers as the portable one.
 *
 * Cells are laid out per tile as [w_plane][column block of 16][row block
 * of g rows][16 g bytes], g = 2 (AVX2) or 4 (AVX-512): byte g l + r % g
 * of row block r / g is the cell of row r, column 16 cb + l. Both layouts
 * take rpad * 16 bytes per plane and column block (rpad = rows rounded up
 * to 4). Inputs are 0/1 bytes [item][row tile][x_plane][rpad].
 */

static int cpu_has_avx2(void)
{
#ifdef CIM_HAVE_AVX2
	return !!(cim_cpu_features() & CIM_CPU_AVX2_FMA);
#else
	return 0;
#endif
}

static int cpu_has_avx512(void)
{
#ifdef CIM_HAVE_AVX2
	return !!(cim_cpu_features() & CIM_CPU_AVX512_VNNI);
#else
	return 0;
#endif
}

int cim_engine_set_kernel(struct cim_engine *e, enum cim_kernel k)
{
	if (!e || (k != CIM_KERNEL_AUTO && k != CIM_KERNEL_PORTABLE &&
		   k != CIM_KERNEL_AVX2 && k != CIM_KERNEL_AVX512))
		return -EINVAL;
	if ((k == CIM_KERNEL_AVX2 && !cpu_has_avx2()) ||
	    (k == CIM_KERNEL_AVX512 && !cpu_has_avx512()))
		return -EOPNOTSUPP;
	e->kernel = k;
	return 0;
}

/*
 * The kernel that runs this chip's MATMULs: the fastest one, up to the
 * selected one, that covers the chip and that the CPU has.
 */
static enum cim_kernel kernel_for(const struct cim_engine *e)
{
	uint32_t G = e->cfg.rows_per_conversion;
	enum cim_kernel k = e->kernel;

	if (k == CIM_KERNEL_PORTABLE || e->has_dyn)
		return CIM_KERNEL_PORTABLE;
	if ((k == CIM_KERNEL_AUTO || k == CIM_KERNEL_AVX512) && G % 4 == 0 &&
	    cpu_has_avx512())
		return CIM_KERNEL_AVX512;
	if (G % 2 == 0 && G <= 128 && cpu_has_avx2())
		return CIM_KERNEL_AVX2;
	return CIM_KERNEL_PORTABLE;
}

const char *cim_engine_kernel_name(const struct cim_engine *e)
{
	if (!e)
		return "portable";
	switch (kernel_for(e)) {
	case CIM_KERNEL_AVX512:
		return "avx512";
	case CIM_KERNEL_AVX2:
		return "avx2";
	default:
		return "portable";
	}
}

/* u of every cell of tile t in the layout of g-row blocks */
static int tile_cells_build(struct cim_engine *e, uint32_t t, uint32_t g)
{
	const uint32_t R = e->cfg.rows, C = e->cfg.cols, nw = e->nw;
	const uint32_t np = (uint32_t)fmt_wplanes((enum cim_fmt)e->meta[t].fmt);
	uint8_t *u = e->ucell[t];
	uint32_t col, p, r, k;

	if (!u) {
		u = aligned_alloc(64, e->u_plane * CIM_MAX_PLANES);
		if (!u)
			return -ENOMEM;
		e->ucell[t] = u;
	}
	memset(u, 0, e->u_plane * CIM_MAX_PLANES);
	for (col = 0; col < C; col++) {
		for (p = 0; p < np; p++) {
			const uint64_t *wb = col_planes(e, e->wpl, t, col) +
					     (size_t)p * nw;
			const uint64_t *db = !e->dgpl ? NULL : e->dgpl +
				((size_t)t * C + col) * e->col_words * 8 +
				(size_t)p * 8 * nw;
			uint8_t *dst = u + (size_t)p * e->u_plane +
				       (size_t)(col / 16) * e->rpad * 16 +
				       (size_t)g * (col % 16);

			for (r = 0; r < R; r++) {
				uint32_t w = r / 64, sh = r % 64;
				uint32_t dg = 0;

				if (!(wb[w] >> sh & 1))
					continue;
				for (k = 0; db && k < 8; k++)
					dg |= (uint32_t)(db[(size_t)k * nw + w] >>
							 sh & 1) << k;
				dst[(size_t)(r / g) * 16 * g + r % g] =
					(uint8_t)(128 + (int8_t)(uint8_t)dg);
			}
		}
	}
	e->meta[t].cells_ready = (uint8_t)g;
	return 0;
}

/*
 * What one (tile, item) pass of a dot-product kernel needs.
 */
struct dot_job {
	const uint8_t *u;      /* the tile's cells, plane 0 */
	size_t u_plane;
	uint32_t rpad;         /* rows of a column block, and of xb's planes */
	uint32_t rows_used;
	uint32_t G;
	uint32_t ncb;          /* column blocks holding used columns */
	uint32_t nx, nwp;      /* planes of the operands */
	const double *m2;      /* [16 ncb] 2 M_c / 2^24 */
	const double *o2;      /* [16 ncb] (off_c + 2^23) / 2^24 */
	const double *recon;   /* [L + 1] */
	double L;
	double coef[8][8];     /* +-2^(i+j), 0 = pair not scheduled */
	/* recon[0..31], zero beyond L (for L < 32) */
	double rtab[32] __attribute__((aligned(64)));
};

#ifdef CIM_HAVE_AVX2
#define AVX2_FN __attribute__((target("avx2,fma")))
#define AVX512_FN __attribute__((target("avx2,fma,avx512f,avx512bw," \
	"avx512dq,avx512vl,avx512vnni")))
#define INLINE_ALWAYS inline __attribute__((always_inline))
/*
 * Without pressure-aware scheduling before register allocation, GCC 12
 * spills the weight vectors of the inner loops to the stack although
 * registers are free (the loops run 1.3x slower).
 */
#define SCHED_FN __attribute__((optimize("-fschedule-insns", \
					 "-fsched-pressure")))

/* ADC + reconstruction of 16 columns' sums T (16-bit), coef times the
 * value added to ad[4] */
static INLINE_ALWAYS AVX2_FN void dot_adc16(const struct dot_job *j, __m256i T,
					    const double *m2, const double *o2,
					    __m256d coef, __m256d ad[4])
{
	const __m256d zero = _mm256_setzero_pd(), L = _mm256_set1_pd(j->L);
	__m256i lo = _mm256_cvtepi16_epi32(_mm256_castsi256_si128(T));
	__m256i hi = _mm256_cvtepi16_epi32(_mm256_extracti128_si256(T, 1));
	__m128i q[4];
	int k;

	q[0] = _mm256_castsi256_si128(lo);
	q[1] = _mm256_extracti128_si256(lo, 1);
	q[2] = _mm256_castsi256_si128(hi);
	q[3] = _mm256_extracti128_si256(hi, 1);
#pragma GCC unroll 4
	for (k = 0; k < 4; k++) {
		__m256d v = _mm256_fmadd_pd(_mm256_cvtepi32_pd(q[k]),
					    _mm256_load_pd(m2 + 4 * k),
					    _mm256_load_pd(o2 + 4 * k));
		__m128i code;

		v = _mm256_min_pd(_mm256_max_pd(_mm256_floor_pd(v), zero), L);
		code = _mm256_cvttpd_epi32(v);
		v = _mm256_i32gather_pd(j->recon, code, 8);
		ad[k] = _mm256_fmadd_pd(v, coef, ad[k]);
	}
}

/*
 * AVX2: input planes [i0, i0 + 4) x weight planes [j0, j0 + 2) of
 * column block cb, every row group's sums converted and added to sum[16].
 */
static INLINE_ALWAYS AVX2_FN void
dot_block2(const struct dot_job *j, const uint8_t *xb, uint32_t cb,
	   uint32_t i0, uint32_t j0, double *sum)
{
	const int JB = 2;
	const uint32_t nrp = (j->rows_used + 1) / 2, grp = j->G / 2;
	const uint8_t *ub[2];
	uint32_t rp0, rp, ii;
	int jb, k;

	for (jb = 0; jb < JB; jb++)
		ub[jb] = j->u + (size_t)(j0 + jb) * j->u_plane +
			 (size_t)cb * j->rpad * 16;
	for (rp0 = 0; rp0 < nrp; rp0 += grp) {
		uint32_t rp1 = rp0 + grp < nrp ? rp0 + grp : nrp;
		const uint8_t *x0 = xb + (size_t)i0 * j->rpad;
		const size_t xs = j->rpad;
		__m256i acc[4][2];
		/* named accumulators: GCC 12 keeps an array of them in memory */
		__m256i a00 = _mm256_setzero_si256(), a01 = a00, a10 = a00;
		__m256i a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
		__m256d ad[4];

		for (rp = rp0; rp < rp1; rp++) {
			__m256i u0 = _mm256_load_si256((const __m256i *)
						       (ub[0] + (size_t)rp * 32));
			__m256i u1 = _mm256_load_si256((const __m256i *)
						       (ub[1] + (size_t)rp * 32));
			uint16_t xp;
			__m256i xv;

#define DOT_ROW2(ii, r0, r1)                                               \
	do {                                                               \
		memcpy(&xp, x0 + (ii) * xs + 2 * (size_t)rp, sizeof(xp));  \
		xv = _mm256_set1_epi16((short)xp);                         \
		r0 = _mm256_add_epi16(r0, _mm256_maddubs_epi16(u0, xv));   \
		r1 = _mm256_add_epi16(r1, _mm256_maddubs_epi16(u1, xv));   \
	} while (0)
			DOT_ROW2(0, a00, a01);
			DOT_ROW2(1, a10, a11);
			DOT_ROW2(2, a20, a21);
			DOT_ROW2(3, a30, a31);
#undef DOT_ROW2
		}
		acc[0][0] = a00; acc[0][1] = a01; acc[1][0] = a10; acc[1][1] = a11;
		acc[2][0] = a20; acc[2][1] = a21; acc[3][0] = a30; acc[3][1] = a31;
		for (k = 0; k < 4; k++)
			ad[k] = _mm256_load_pd(sum + 4 * k);
		for (ii = 0; ii < 4; ii++)
			for (jb = 0; jb < JB; jb++) {
				double cf = j->coef[i0 + ii][j0 + jb];

				if (cf != 0.0)
					dot_adc16(j, acc[ii][jb], j->m2 + 16 * cb,
						  j->o2 + 16 * cb,
						  _mm256_set1_pd(cf), ad);
			}
		for (k = 0; k < 4; k++)
			_mm256_store_pd(sum + 4 * k, ad[k]);
	}
}

/* AVX2: one item through one tile, acc[col] += the column's sum */
static AVX2_FN SCHED_FN void dot_tile_item2(const struct dot_job *j, const uint8_t *xb,
				   int64_t *acc, uint32_t cols)
{
	double sum[16] __attribute__((aligned(32)));
	uint32_t cb, i0, j0, l;

	for (cb = 0; cb < j->ncb; cb++) {
		memset(sum, 0, sizeof(sum));
		/* x planes come in 4 or 8, weight planes in 4 or 8 */
		for (i0 = 0; i0 < j->nx; i0 += 4)
			for (j0 = 0; j0 < j->nwp; j0 += 2)
				dot_block2(j, xb, cb, i0, j0, sum);
		for (l = 0; l < 16 && cb * 16 + l < cols; l++)
			acc[cb * 16 + l] += (int64_t)sum[l];
	}
}

/* ADC + reconstruction of 16 columns' sums T (32-bit), into ad[2] */
static INLINE_ALWAYS AVX512_FN void
dot_adc16_512(const struct dot_job *j, __m512i T, const double *m2,
	      const double *o2, __m512d coef, __m512d ad[2])
{
	const __m512i zero = _mm512_setzero_si512();
	const __m512i L = _mm512_set1_epi64((long long)j->L);
	int k;

#pragma GCC unroll 2
	for (k = 0; k < 2; k++) {
		__m256i t = k ? _mm512_extracti64x4_epi64(T, 1) :
				_mm512_castsi512_si256(T);
		__m512d v = _mm512_fmadd_pd(_mm512_cvtepi32_pd(t),
					    _mm512_load_pd(m2 + 8 * k),
					    _mm512_load_pd(o2 + 8 * k));
		/* floor, exact: v is a multiple of 2^-24 below 2^28 */
		__m512i code = _mm512_cvt_roundpd_epi64(v, _MM_FROUND_TO_NEG_INF |
							_MM_FROUND_NO_EXC);

		code = _mm512_min_epi64(_mm512_max_epi64(code, zero), L);
		if (j->L < 32) {
			/* recon[0..31] in four registers: no gather */
			__m512d lo = _mm512_permutex2var_pd(
				_mm512_load_pd(j->rtab), code,
				_mm512_load_pd(j->rtab + 8));
			__m512d hi = _mm512_permutex2var_pd(
				_mm512_load_pd(j->rtab + 16), code,
				_mm512_load_pd(j->rtab + 24));

			v = _mm512_mask_blend_pd(_mm512_test_epi64_mask(code,
					_mm512_set1_epi64(16)), lo, hi);
		} else {
			v = _mm512_i64gather_pd(code, j->recon, 8);
		}
		ad[k] = _mm512_fmadd_pd(v, coef, ad[k]);
	}
}

/*
 * AVX-512 VNNI: input planes [i0, i0 + 4) x weight planes [j0, j0 + 4) of
 * column block cb, every row group's sums converted and added to sum[16].
 */
static INLINE_ALWAYS AVX512_FN void
dot_block4(const struct dot_job *j, const uint8_t *xb, uint32_t cb,
	   uint32_t i0, uint32_t j0, double *sum)
{
	const uint32_t nrq = (j->rows_used + 3) / 4, grp = j->G / 4;
	const uint8_t *ub[4];
	uint32_t rq0, rq, ii, jb;
	int k;

	for (jb = 0; jb < 4; jb++)
		ub[jb] = j->u + (size_t)(j0 + jb) * j->u_plane +
			 (size_t)cb * j->rpad * 16;
	for (rq0 = 0; rq0 < nrq; rq0 += grp) {
		uint32_t rq1 = rq0 + grp < nrq ? rq0 + grp : nrq;
		const uint8_t *x0 = xb + (size_t)i0 * j->rpad;
		const size_t xs = j->rpad;
		__m512i acc[4][4];
		/* named accumulators: GCC 12 keeps an array of them in memory */
		__m512i a00 = _mm512_setzero_si512(), a01 = a00, a02 = a00;
		__m512i a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00;
		__m512i a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00;
		__m512i a31 = a00, a32 = a00, a33 = a00;
		__m512d ad[2];

		for (rq = rq0; rq < rq1; rq++) {
			const size_t o = (size_t)rq * 64;
			__m512i u0 = _mm512_load_si512(ub[0] + o);
			__m512i u1 = _mm512_load_si512(ub[1] + o);
			__m512i u2 = _mm512_load_si512(ub[2] + o);
			__m512i u3 = _mm512_load_si512(ub[3] + o);
			uint32_t xq;
			__m512i xv;

#define DOT_ROW(ii, r0, r1, r2, r3)                                        \
	do {                                                               \
		memcpy(&xq, x0 + (ii) * xs + 4 * (size_t)rq, sizeof(xq));  \
		xv = _mm512_set1_epi32((int)xq);                           \
		r0 = _mm512_dpbusd_epi32(r0, u0, xv);                      \
		r1 = _mm512_dpbusd_epi32(r1, u1, xv);                      \
		r2 = _mm512_dpbusd_epi32(r2, u2, xv);                      \
		r3 = _mm512_dpbusd_epi32(r3, u3, xv);                      \
	} while (0)
			DOT_ROW(0, a00, a01, a02, a03);
			DOT_ROW(1, a10, a11, a12, a13);
			DOT_ROW(2, a20, a21, a22, a23);
			DOT_ROW(3, a30, a31, a32, a33);
#undef DOT_ROW
		}
		acc[0][0] = a00; acc[0][1] = a01; acc[0][2] = a02; acc[0][3] = a03;
		acc[1][0] = a10; acc[1][1] = a11; acc[1][2] = a12; acc[1][3] = a13;
		acc[2][0] = a20; acc[2][1] = a21; acc[2][2] = a22; acc[2][3] = a23;
		acc[3][0] = a30; acc[3][1] = a31; acc[3][2] = a32; acc[3][3] = a33;
		for (k = 0; k < 2; k++)
			ad[k] = _mm512_load_pd(sum + 8 * k);
		for (ii = 0; ii < 4; ii++)
			for (jb = 0; jb < 4; jb++) {
				double cf = j->coef[i0 + ii][j0 + jb];

				if (cf != 0.0)
					dot_adc16_512(j, acc[ii][jb],
						      j->m2 + 16 * cb,
						      j->o2 + 16 * cb,
						      _mm512_set1_pd(cf), ad);
			}
		for (k = 0; k < 2; k++)
			_mm512_store_pd(sum + 8 * k, ad[k]);
	}
}

/* AVX-512 VNNI: one item through one tile, acc[col] += the column's sum */
static AVX512_FN SCHED_FN void dot_tile_item4(const struct dot_job *j,
				     const uint8_t *xb, int64_t *acc,
				     uint32_t cols)
{
	double sum[16] __attribute__((aligned(64)));
	uint32_t cb, i0, j0, l;

	for (cb = 0; cb < j->ncb; cb++) {
		memset(sum, 0, sizeof(sum));
		for (i0 = 0; i0 < j->nx; i0 += 4)
			for (j0 = 0; j0 < j->nwp; j0 += 4)
				dot_block4(j, xb, cb, i0, j0, sum);
		for (l = 0; l < 16 && cb * 16 + l < cols; l++)
			acc[cb * 16 + l] += (int64_t)sum[l];
	}
}
#endif /* CIM_HAVE_AVX2 */

/*
 * round(acc * fs_q8 / (256 L)) = floor((2 acc fs_q8 + 256 L) / (512 L)),
 * the code sum of one output in cell currents. acc = q d + r with
 * d = 512 L keeps every product inside 64 bits; a quotient that could not
 * fit an INT32 output saturates.
 */
static int64_t codes_to_cells(int64_t acc, uint32_t fs_q8, uint64_t L)
{
	const int64_t d = (int64_t)L * 512;
	int64_t q = acc / d, r = acc % d;

	if (r < 0) {
		r += d;
		q--;
	}
	if (q > INT32_MAX)
		return INT64_MAX;
	if (q < INT32_MIN)
		return INT64_MIN;
	return 2 * q * fs_q8 + (2 * r * fs_q8 + (int64_t)L * 256) / d;
}

/* ADC transfer of one column for an analog sum S (Q8), noise-free path. */
static inline int64_t adc_code(int64_t S, int64_t M, int64_t off, uint32_t L)
{
	int64_t code = round_shift(S * M + off, 24);

	return code < 0 ? 0 : code > L ? L : code;
}

static int check_tiles(const struct cim_engine *e,
		       const struct cim_matmul_args *a, uint32_t rtiles,
		       uint32_t ctiles)
{
	uint32_t R = e->cfg.rows, C = e->cfg.cols, rt, ct;

	for (ct = 0; ct < ctiles; ct++)
		for (rt = 0; rt < rtiles; rt++) {
			const struct tile_meta *m =
				&e->meta[a->tile0 + ct * rtiles + rt];
			uint32_t rows = a->in_dim - rt * R > R ? R :
					a->in_dim - rt * R;
			uint32_t cols = a->out_dim - ct * C > C ? C :
					a->out_dim - ct * C;

			if (!m->programmed || m->fmt != (uint8_t)a->wfmt ||
			    m->rows_used != rows || m->cols_used != cols)
				return -EINVAL;
		}
	return 0;
}

/* Below this many plane-pair cell reads, starting threads costs more. */
#define CIM_PARALLEL_MIN_WORK (1ull << 22)

int cim_engine_set_threads(struct cim_engine *e, unsigned int threads)
{
	if (!e || !threads || threads > CIM_MAX_THREADS)
		return -EINVAL;
	e->threads = threads;
	return 0;
}

/* What the items of one MATMUL share; each worker takes a batch range. */
struct mm_shared {
	const struct cim_engine *e;
	const struct cim_matmul_args *a;
	const struct pair_info *pairs;
	uint32_t npairs, rtiles, ctiles, nx;
	const uint64_t *xpl;
	size_t xstride;
	int64_t *acc;
	const int64_t *recon;
	uint32_t L;            /* 2^b - 1 of the ADC of these pairs */
	tile_item_fn kern;
	/* the dot-product kernel that runs (CIM_KERNEL_AVX2 or _AVX512), or
	 * 0; its inputs xb [item][row tile][x_plane][rpad] */
	enum cim_kernel dot;
	const uint8_t *xb;
	const double *recon_d;
	double coef[8][8];
};

/*
 * Items [b0, b1) through every tile of the MATMUL. Each item only writes
 * its own accumulators, and the arithmetic is integer, so the result does
 * not depend on how the batch is split.
 */
static int run_items(const struct mm_shared *sh, uint32_t b0, uint32_t b1)
{
	const struct cim_engine *e = sh->e;
	const struct cim_matmul_args *a = sh->a;
	const uint32_t C = e->cfg.cols, G = e->cfg.rows_per_conversion;
	const uint32_t L = sh->L, fs_q8 = a->adc_fs_q8 ? a->adc_fs_q8 : G * 256;
	int64_t *M = xcalloc(C, sizeof(int64_t));
	int64_t *off = xcalloc(C, sizeof(int64_t));
	int32_t *lut = NULL;
	double *m2 = NULL;
	uint32_t ct, rt, b;
	int ret = 0;

	if (!M || !off) {
		ret = -ENOMEM;
		goto out;
	}
#ifdef CIM_HAVE_AVX2
	if (sh->dot) {
		/* m2 and o2, 16 lanes per column block, padding lanes 0 */
		m2 = aligned_alloc(64, sizeof(double) * 32 * e->ncb);
		if (!m2) {
			ret = -ENOMEM;
			goto out;
		}
	}
#endif
	for (ct = 0; ct < sh->ctiles; ct++) {
		for (rt = 0; rt < sh->rtiles; rt++) {
			uint32_t t = a->tile0 + ct * sh->rtiles + rt;
			const struct tile_meta *m = &e->meta[t];
			uint32_t ng = (m->rows_used + G - 1) / G;
			uint64_t convs_per_item = (uint64_t)sh->npairs * ng;
			struct job j;
			uint32_t col;

			for (col = 0; col < m->cols_used; col++) {
				size_t ci = (size_t)t * C + col;

				M[col] = (int64_t)(((uint64_t)e->gain_q16[ci] *
						    L * 512 + fs_q8) /
						   (2 * (uint64_t)fs_q8));
				off[col] = (int64_t)e->offset_q8[ci] * 65536;
			}
#ifdef CIM_HAVE_AVX2
			if (sh->dot) {
				struct dot_job dj;
				double *o2 = m2 + 16 * e->ncb;

				memset(m2, 0, sizeof(double) * 32 * e->ncb);
				for (col = 0; col < m->cols_used; col++) {
					m2[col] = (double)(2 * M[col]) / 16777216.0;
					o2[col] = (double)(off[col] + (1 << 23)) /
						  16777216.0;
				}
				dj.u = e->ucell[t];
				dj.u_plane = e->u_plane;
				dj.rpad = e->rpad;
				dj.rows_used = m->rows_used;
				dj.G = G;
				dj.ncb = (m->cols_used + 15) / 16;
				dj.nx = sh->nx;
				dj.nwp = (uint32_t)fmt_wplanes(a->wfmt);
				dj.m2 = m2;
				dj.o2 = o2;
				dj.recon = sh->recon_d;
				dj.L = (double)L;
				memcpy(dj.coef, sh->coef, sizeof(dj.coef));
				memset(dj.rtab, 0, sizeof(dj.rtab));
				if (L < 32)
					memcpy(dj.rtab, sh->recon_d,
					       sizeof(double) * (L + 1));
				for (b = b0; b < b1; b++) {
					const uint8_t *xb = sh->xb +
						((size_t)b * sh->rtiles + rt) *
						sh->nx * e->rpad;
					int64_t *ab = sh->acc +
						(size_t)b * a->out_dim +
						(size_t)ct * C;

					if (sh->dot == CIM_KERNEL_AVX512)
						dot_tile_item4(&dj, xb, ab,
							       m->cols_used);
					else
						dot_tile_item2(&dj, xb, ab,
							       m->cols_used);
				}
				continue;
			}
#endif
			memset(&j, 0, sizeof(j));
			j.e = e;
			j.pairs = sh->pairs;
			j.npairs = sh->npairs;
			j.ngroups = ng;
			j.cols = m->cols_used;
			j.tile = t;
			j.wpl = col_planes(e, e->wpl, t, 0);
			j.dg = e->has_dg;
			j.dgpl = e->has_dg ? e->dgpl + ((size_t)t * C) *
				 e->col_words * 8 : NULL;
			j.dyn = e->has_dyn;
			j.M = M;
			j.off24 = off;
			j.recon = sh->recon;
			j.L = L;
			/* memoise code(256 n) when S depends on n only and
			 * the table is cheaper than the conversions */
			if (!j.dg && !j.dyn &&
			    (uint64_t)(b1 - b0) * convs_per_item > (uint64_t)G + 1) {
				uint32_t n;

				if (!lut) {
					lut = xcalloc((size_t)C * (G + 1),
						      sizeof(int32_t));
					if (!lut) {
						ret = -ENOMEM;
						goto out;
					}
				}
				for (col = 0; col < m->cols_used; col++)
					for (n = 0; n <= G; n++)
						lut[(size_t)col * (G + 1) + n] =
							(int32_t)sh->recon[adc_code(
							(int64_t)n * 256,
							M[col], off[col], L)];
				j.lut = lut;
				j.lut_stride = G + 1;
			}
			for (b = b0; b < b1; b++) {
				uint64_t mk = 0;

				if (j.dyn)
					mk = cim_mix64(cim_hash64(a->job_seed,
						(uint64_t)CIM_DOM_JOB << 60 |
						((uint64_t)a->item0 + b)));
				sh->kern(&j, sh->xpl + (size_t)b * sh->xstride +
					     (size_t)rt * sh->nx * e->nw,
					 sh->acc + (size_t)b * a->out_dim +
					     (size_t)ct * C, mk);
			}
		}
	}
out:
	free(M);
	free(off);
	free(lut);
	free(m2);
	return ret;
}

struct mm_worker {
	const struct mm_shared *sh;
	uint32_t b0, b1;
	int ret;
	pthread_t tid;
};

static void *mm_worker_main(void *p)
{
	struct mm_worker *w = p;

	w->ret = run_items(w->sh, w->b0, w->b1);
	return NULL;
}

/*
 * Splits the batch over e->threads threads (the caller's among them) when
 * there is enough work to pay for starting them; falls back to fewer
 * threads when one cannot be started.
 */
static int run_items_parallel(const struct mm_shared *sh)
{
	const struct cim_matmul_args *a = sh->a;
	struct mm_worker w[CIM_MAX_THREADS];
	uint64_t work = (uint64_t)a->batch * sh->npairs * a->in_dim *
			a->out_dim;
	uint32_t T = sh->e->threads, t, started = 0;
	int ret;

	if (T > a->batch)
		T = a->batch;
	if (T <= 1 || work < CIM_PARALLEL_MIN_WORK)
		return run_items(sh, 0, a->batch);
	for (t = 0; t < T; t++) {
		w[t].sh = sh;
		w[t].b0 = (uint32_t)((uint64_t)a->batch * t / T);
		w[t].b1 = (uint32_t)((uint64_t)a->batch * (t + 1) / T);
		w[t].ret = 0;
	}
	for (t = 1; t < T; t++) {
		if (pthread_create(&w[t].tid, NULL, mm_worker_main, &w[t]))
			break;
		started++;
	}
	/* the caller takes its own share and any share left unstarted */
	ret = run_items(sh, w[0].b0, w[0].b1);
	for (t = started + 1; t < T && !ret; t++)
		ret = run_items(sh, w[t].b0, w[t].b1);
	for (t = 1; t <= started; t++) {
		pthread_join(w[t].tid, NULL);
		if (!ret)
			ret = w[t].ret;
	}
	return ret;
}

/*
 * Sets sh->dot and what the dot-product kernel needs when one covers this
 * MATMUL: the tiles' cells in its layout, the inputs as 0/1 bytes and the
 * reconstruction table in double. Leaves sh->dot 0 (the portable kernel
 * runs) when an intermediate could leave the range where double is exact.
 */
static int dot_prepare(struct cim_engine *e, const struct cim_matmul_args *a,
		       struct mm_shared *sh, const struct pair_info *pairs,
		       uint32_t npairs, uint8_t **xb_out, double **recon_out)
{
	const uint32_t R = e->cfg.rows, G = e->cfg.rows_per_conversion;
	const uint32_t L = sh->L, nx = sh->nx, rpad = e->rpad;
	const uint32_t fs = a->adc_fs_q8 ? a->adc_fs_q8 : G * 256;
	uint32_t rows = a->in_dim < R ? a->in_dim : R, k, t, b, rt, i, r, g;
	enum cim_kernel kern = kernel_for(e);
	double maxcoef = 0, mmax;
	uint8_t *xb;
	double *rd;
	int ret;

	if (kern == CIM_KERNEL_PORTABLE)
		return 0;
	memset(sh->coef, 0, sizeof(sh->coef));
	for (k = 0; k < npairs; k++) {
		int64_t c = pairs[k].coef < 0 ? -pairs[k].coef : pairs[k].coef;

		sh->coef[pairs[k].xi][pairs[k].wj] = (double)pairs[k].coef;
		if ((double)c > maxcoef)
			maxcoef = (double)c;
	}
	/* M for the largest gain (2.0); the ADC numerator 2 T M + off +
	 * 2^23, |off| < 2^40, and the column sum must stay below 2^52 */
	mmax = ((double)131072 * L * 512 + fs) / (2.0 * fs) + 1;
	if (255.0 * G * 2 * mmax + 1099511627776.0 >= 4503599627370496.0 ||
	    (double)npairs * ((rows + G - 1) / G) * maxcoef *
	    (double)sh->recon[L] >= 4503599627370496.0)
		return 0;
	g = kern == CIM_KERNEL_AVX512 ? 4 : 2;
	for (t = 0; t < sh->rtiles * sh->ctiles; t++)
		if (e->meta[a->tile0 + t].cells_ready != g) {
			ret = tile_cells_build(e, a->tile0 + t, g);
			if (ret)
				return ret;
		}
	xb = xcalloc((size_t)a->batch * sh->rtiles * nx * rpad, 1);
	rd = xcalloc((size_t)L + 1, sizeof(*rd));
	if (!xb || !rd) {
		free(xb);
		free(rd);
		return -ENOMEM;
	}
	for (k = 0; k <= L; k++)
		rd[k] = (double)sh->recon[k];
	for (b = 0; b < a->batch; b++)
		for (rt = 0; rt < sh->rtiles; rt++) {
			uint32_t n = a->in_dim - rt * R > R ? R : a->in_dim - rt * R;
			const uint8_t *src = (const uint8_t *)a->x +
				(size_t)b * a->in_dim + (size_t)rt * R;
			uint8_t *dst = xb + ((size_t)b * sh->rtiles + rt) *
				       nx * rpad;

			/* 8 rows at a time: bit i of 8 codes as 8 bytes */
			for (r = 0; r + 8 <= n; r += 8) {
				uint64_t v;

				memcpy(&v, src + r, sizeof(v));
				for (i = 0; i < nx; i++) {
					uint64_t bits = v >> i & 0x0101010101010101ull;

					memcpy(dst + (size_t)i * rpad + r, &bits,
					       sizeof(bits));
				}
			}
			for (; r < n; r++)
				for (i = 0; i < nx; i++)
					dst[(size_t)i * rpad + r] = src[r] >> i & 1;
		}
	sh->dot = kern;
	sh->xb = xb;
	sh->recon_d = rd;
	*xb_out = xb;
	*recon_out = rd;
	return 0;
}

/*
 * The digital pairs of a MATMUL: per item and output, the exact sum of
 * coef * popcount(x plane & stored weight plane) over all rows, into
 * accd. Row groups do not change an exact count, so one popcount per
 * pair covers the whole tile.
 */
static int digital_reads(const struct cim_engine *e,
			 const struct cim_matmul_args *a,
			 const struct pair_info *pairs, uint32_t npairs,
			 uint32_t nx, uint32_t rtiles, uint32_t ctiles,
			 int64_t *accd)
{
	const uint32_t R = e->cfg.rows, C = e->cfg.cols, nw = e->nw;
	uint64_t *xp = xcalloc((size_t)nx * nw, sizeof(uint64_t));
	uint8_t *codes = xcalloc(R, 1);
	uint32_t b, rt, ct, col, p, k, w;

	if (!xp || !codes) {
		free(xp);
		free(codes);
		return -ENOMEM;
	}
	for (b = 0; b < a->batch; b++)
		for (rt = 0; rt < rtiles; rt++) {
			uint32_t rows = a->in_dim - rt * R > R ? R :
					a->in_dim - rt * R;
			const int8_t *src = a->x + (size_t)b * a->in_dim +
					    (size_t)rt * R;

			for (k = 0; k < rows; k++)
				codes[k] = (uint8_t)src[k] & (nx == 4 ? 0x0F : 0xFF);
			pack_planes(codes, rows, nw, nx, xp);
			for (ct = 0; ct < ctiles; ct++) {
				uint32_t t = a->tile0 + ct * rtiles + rt;
				int64_t *ab = accd + (size_t)b * a->out_dim +
					      (size_t)ct * C;

				for (col = 0; col < e->meta[t].cols_used; col++) {
					const uint64_t *wc = col_planes(e, e->wpl,
									t, col);

					for (p = 0; p < npairs; p++) {
						const uint64_t *xi = xp + pairs[p].xi * nw;
						const uint64_t *wj = wc + pairs[p].wj * nw;
						int64_t n = 0;

						for (w = 0; w < nw; w++)
							n += POPCNT(xi[w] & wj[w]);
						ab[col] += pairs[p].coef * n;
					}
				}
			}
		}
	free(xp);
	free(codes);
	return 0;
}

int cim_engine_matmul(struct cim_engine *e, const struct cim_matmul_args *a)
{
	const struct cim_config *c;
	struct pair_info pairs[64], cls_pairs[3][64];
	uint32_t npairs = 0, nx, nwp, rtiles, ctiles, rt, ct, b, i, k;
	uint32_t R, G, L, Lm, fs_q8, F, D, smax, ncls[3] = { 0 }, cls;
	uint64_t Le;
	uint64_t used[64] = { 0 };
	size_t xstride, nx_all;
	uint64_t *xpl = NULL;
	uint8_t *xb = NULL;
	double *recon_d = NULL;
	int64_t *acc = NULL, *accd = NULL, *recon = NULL;
	uint8_t *codes = NULL;
	struct mm_shared sh;
	struct cim_counters d = { 0 };
	uint64_t max_tile_cycles = 0;
	int ret;

	if (!e || !a || !a->x || !a->y || !a->batch || !a->in_dim ||
	    !a->out_dim || a->batch > UINT32_MAX - a->item0)
		return -EINVAL;
	c = &e->cfg;
	R = c->rows;
	G = c->rows_per_conversion;
	L = e->L;
	Lm = c->adc_bits_msb ? (1u << c->adc_bits_msb) - 1 : L;
	Le = c->adc_bits_msb ? (uint64_t)L * Lm : L;
	F = c->recon_frac_bits;
	if (a->wfmt != CIM_FMT_INT8 && a->wfmt != CIM_FMT_INT4 &&
	    a->wfmt != CIM_FMT_NF4)
		return -EINVAL;
	if (a->xfmt != CIM_FMT_INT8 && a->xfmt != CIM_FMT_INT4)
		return -EINVAL;
	if (a->x_signed != 0 && a->x_signed != 1)
		return -EINVAL;
	fs_q8 = a->adc_fs_q8 ? a->adc_fs_q8 : G * 256;
	if (fs_q8 < 256 || fs_q8 > CIM_MAX_FS_Q8)
		return -EINVAL;
	ret = tiles_range(e, a->tile0, a->in_dim, a->out_dim, &rtiles, &ctiles);
	if (ret)
		return ret;
	ret = check_tiles(e, a, rtiles, ctiles);
	if (ret)
		return ret;
	if (a->batch > SIZE_MAX / a->in_dim / a->out_dim / 8)
		return -EINVAL;

	nx = a->xfmt == CIM_FMT_INT8 ? 8 : 4;
	nwp = (uint32_t)fmt_wplanes(a->wfmt);
	if (a->sched) {
		if (!a->n_sched || a->n_sched > nx * nwp)
			return -EINVAL;
		for (k = 0; k < a->n_sched; k++) {
			uint32_t xi = a->sched[k].x_plane, wj = a->sched[k].w_plane;

			if (xi >= nx || wj >= nwp || used[xi * 8 + wj])
				return -EINVAL;
			used[xi * 8 + wj] = 1;
			pairs[npairs].xi = xi;
			pairs[npairs++].wj = wj;
		}
	} else {
		if (a->n_sched)
			return -EINVAL;
		for (i = nx; i-- > 0;)
			for (k = nwp; k-- > 0;) {
				pairs[npairs].xi = i;
				pairs[npairs++].wj = k;
			}
	}
	for (k = 0; k < npairs; k++) {
		int neg = (a->x_signed && pairs[k].xi == nx - 1) ^
			  (pairs[k].wj == nwp - 1);

		pairs[k].coef = (int64_t)1 << (pairs[k].xi + pairs[k].wj);
		if (neg)
			pairs[k].coef = -pairs[k].coef;
		pairs[k].addr = pairs[k].xi << 4 | pairs[k].wj;
	}
	/* the chip design: digital planes, then MSB conversions, then the rest */
	D = c->digital_planes < nwp ? c->digital_planes : nwp;
	smax = (nx - 1) + (nwp - 1 - D);
	for (k = 0; k < npairs; k++) {
		if (pairs[k].wj >= nwp - D)
			cls = 2;
		else if (c->adc_bits_msb &&
			 pairs[k].xi + pairs[k].wj + c->adc_msb_levels > smax)
			cls = 1;
		else
			cls = 0;
		cls_pairs[cls][ncls[cls]++] = pairs[k];
	}

	/* validate inputs before any side effect */
	if (a->xfmt == CIM_FMT_INT4) {
		size_t n = (size_t)a->batch * a->in_dim, q;

		for (q = 0; q < n; q++) {
			int v = a->x[q];

			if (a->x_signed ? (v < -8 || v > 7) : (v < 0 || v > 15))
				return -EINVAL;
		}
	}

	/* allocate everything */
	xstride = (size_t)rtiles * nx * e->nw;   /* words per item */
	nx_all = (size_t)a->batch * xstride;
	acc = xcalloc((size_t)a->batch * a->out_dim, sizeof(int64_t));
	accd = xcalloc((size_t)a->batch * a->out_dim, sizeof(int64_t));
	recon = xcalloc((size_t)Lm + 1, sizeof(int64_t));
	codes = xcalloc(R, 1);
	if (!acc || !accd || !recon || !codes) {
		ret = -ENOMEM;
		goto out;
	}

	/*
	 * The analog pairs, one pass per ADC resolution. The digital
	 * reconstruction is the code itself, or round(k fs 2^F / (256 L)).
	 * With MSB conversions, codes are weighed by the other ADC's L so
	 * that both passes add steps of FS / (L L_m).
	 */
	for (cls = 0; cls < 2; cls++) {
		const uint32_t Lp = cls ? Lm : L;

		if (!ncls[cls])
			continue;
		for (k = 0; k <= Lp; k++)
			recon[k] = c->recon == CIM_RECON_CODES ?
				   (int64_t)k * (int64_t)(Le / Lp) :
				   (int64_t)(((uint64_t)k * fs_q8 * (2u << F) +
					      (uint64_t)Lp * 256) /
					     ((uint64_t)Lp * 512));

		memset(&sh, 0, sizeof(sh));
		sh.e = e;
		sh.a = a;
		sh.pairs = cls_pairs[cls];
		sh.npairs = ncls[cls];
		sh.rtiles = rtiles;
		sh.ctiles = ctiles;
		sh.nx = nx;
		sh.xstride = xstride;
		sh.acc = acc;
		sh.recon = recon;
		sh.L = Lp;
		sh.kern = pick_kernel();
		sh.dot = CIM_KERNEL_AUTO; /* 0: the portable kernel */
		ret = dot_prepare(e, a, &sh, sh.pairs, sh.npairs, &xb,
				  &recon_d);
		if (ret)
			goto out;

		/* the portable kernel's input planes, once per item and row tile */
		if (!sh.dot && !xpl) {
			xpl = xcalloc(nx_all, sizeof(uint64_t));
			if (!xpl) {
				ret = -ENOMEM;
				goto out;
			}
			for (b = 0; b < a->batch; b++)
				for (rt = 0; rt < rtiles; rt++) {
					uint32_t rows = a->in_dim - rt * R > R ? R :
							a->in_dim - rt * R;
					const int8_t *src = a->x +
						(size_t)b * a->in_dim +
						(size_t)rt * R;

					for (k = 0; k < rows; k++)
						codes[k] = (uint8_t)src[k] &
							   (nx == 4 ? 0x0F : 0xFF);
					pack_planes(codes, rows, e->nw, nx,
						    xpl + (size_t)b * xstride +
						    (size_t)rt * nx * e->nw);
				}
		}
		sh.xpl = xpl;
		ret = run_items_parallel(&sh);
		free(xb);
		free(recon_d);
		xb = NULL;
		recon_d = NULL;
		if (ret)
			goto out;
	}
	if (ncls[2]) {
		ret = digital_reads(e, a, cls_pairs[2], ncls[2], nx, rtiles,
				    ctiles, accd);
		if (ret)
			goto out;
	}

	/* counters: pure functions of the shape, not of who computed what */
	for (ct = 0; ct < ctiles; ct++) {
		for (rt = 0; rt < rtiles; rt++) {
			const struct tile_meta *m =
				&e->meta[a->tile0 + ct * rtiles + rt];
			uint64_t ng = (m->rows_used + G - 1) / G;
			uint64_t convs_per_item = (uint64_t)npairs * ng;
			uint64_t tc;

			d.array_activations += a->batch * convs_per_item;
			d.cell_reads += (uint64_t)a->batch * npairs *
					m->rows_used * m->cols_used;
			d.adc_conversions += a->batch * (ncls[0] + ncls[1]) *
					     ng * m->cols_used;
			d.adc_conversions_msb += a->batch * ncls[1] * ng *
						 m->cols_used;
			d.digital_reads += a->batch * ncls[2] * ng *
					   m->cols_used;
			d.digital_read_rows += (uint64_t)a->batch * ncls[2] *
					       m->rows_used * m->cols_used;
			tc = a->batch * convs_per_item *
			     (1 + (m->cols_used + c->adcs_per_tile - 1) /
			      c->adcs_per_tile);
			d.tile_cycles += tc;
			if (tc > max_tile_cycles)
				max_tile_cycles = tc;
		}
	}

	for (b = 0; b < a->batch; b++)
		for (k = 0; k < a->out_dim; k++) {
			size_t q = (size_t)b * a->out_dim + k;
			int64_t v = c->recon == CIM_RECON_CODES ?
				    codes_to_cells(acc[q], fs_q8, Le) :
				    F ? round_shift(acc[q], F) : acc[q];

			/* codes_to_cells saturates far outside INT32 */
			if (v != INT64_MAX && v != INT64_MIN)
				v += accd[q];
			a->y[q] = clamp32(v, INT32_MIN, INT32_MAX);
		}

	d.shift_adds = d.adc_conversions + d.digital_reads +
		       (uint64_t)a->batch * (rtiles - 1) * a->out_dim;
	if (c->recon == CIM_RECON_CODES)
		d.output_scales = (uint64_t)a->batch * a->out_dim;
	d.macs = (uint64_t)a->batch * a->in_dim * a->out_dim;
	d.bytes_in = nx == 8 ? (uint64_t)a->batch * a->in_dim :
		     ((uint64_t)a->batch * a->in_dim + 1) / 2;
	d.bytes_out = (uint64_t)a->batch * a->out_dim * 4;
	e->cnt.array_activations += d.array_activations;
	e->cnt.cell_reads += d.cell_reads;
	e->cnt.adc_conversions += d.adc_conversions;
	e->cnt.adc_conversions_msb += d.adc_conversions_msb;
	e->cnt.digital_reads += d.digital_reads;
	e->cnt.digital_read_rows += d.digital_read_rows;
	e->cnt.shift_adds += d.shift_adds;
	e->cnt.output_scales += d.output_scales;
	e->cnt.macs += d.macs;
	e->cnt.bytes_in += d.bytes_in;
	e->cnt.bytes_out += d.bytes_out;
	e->cnt.tile_cycles += d.tile_cycles;
	e->cnt.cycles += max_tile_cycles;
	e->cnt.jobs++;
	ret = 0;
out:
	free(xpl);
	free(xb);
	free(recon_d);
	free(acc);
	free(accd);
	free(recon);
	free(codes);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* energy (reporting only)                                                  */

void cim_energy_params_default(struct cim_energy_params *p)
{
	if (!p)
		return;
	/* ISAAC (Shafiee et al., ISCA 2016), Table: one 128x128 crossbar
	 * 0.3 mW (2.4 mW / 8 arrays) over a 100 ns read cycle = 30 pJ per
	 * full-array read, i.e. 30 pJ / 16384 cells = 1.83 fJ per cell. */
	p->e_cell_read = 30e-12 / 16384.0;
	/* ISAAC: 8-bit 1.28 GS/s SAR ADC (Kull et al., ISSCC 2013) at
	 * 2 mW each (16 mW / 8) = 1.5625 pJ per conversion at 8 bits. */
	p->e_adc_conv = 2e-3 / 1.28e9;
	p->e_adc_ref_bits = 8.0;
	/* Horowitz, ISSCC 2014 "Computing's energy problem", 45 nm:
	 * 32-bit integer add 0.1 pJ. */
	p->e_shift_add = 0.1e-12;
	/* Horowitz 2014, 45 nm: 8-bit integer add 0.03 pJ, 3.75 fJ per
	 * adder bit. A popcount tree over G one-bit inputs adds G/2 1-bit,
	 * G/4 2-bit, ... numbers: sum_k k G / 2^k ~ 2 G adder bits, so
	 * 2 x 3.75 fJ per row read digitally. */
	p->e_popcount_row = 2.0 * 0.03e-12 / 8.0;
	/* Horowitz 2014, 45 nm: 32-bit integer multiply 3.1 pJ. */
	p->e_output_scale = 3.1e-12;
	/* Horowitz 2014: 64-bit read from an 8 KB SRAM 10 pJ -> 1.25 pJ/B. */
	p->e_io_byte = 10e-12 / 8.0;
	/* Horowitz 2014: DRAM 1.3-2.6 nJ per 64-bit access; low end,
	 * 1.3 nJ / 8 B = 162.5 pJ/B. */
	p->e_weight_byte = 1.3e-9 / 8.0;
	p->e_cell_write = 0.0;
}

/* 2^(bits - ref): constant Walden figure of merit (Murmann's ADC survey) */
static double adc_bits_scale(uint32_t bits, double ref_bits)
{
	double scale = 1.0;
	int k;

	for (k = 0; k < (int)bits - (int)ref_bits; k++)
		scale *= 2.0;
	for (k = 0; k < (int)ref_bits - (int)bits; k++)
		scale *= 0.5;
	return scale;
}

void cim_energy_estimate_chip(const struct cim_counters *c,
			      const struct cim_config *cfg,
			      const struct cim_energy_params *p,
			      struct cim_energy *out)
{
	struct cim_energy_params def;
	uint32_t bits, bits_msb;

	if (!c || !cfg || !out)
		return;
	if (!p) {
		cim_energy_params_default(&def);
		p = &def;
	}
	bits = cfg->adc_bits ? cfg->adc_bits : CIM_DEFAULT_ADC_BITS;
	bits_msb = cfg->adc_bits_msb ? cfg->adc_bits_msb : bits;
	out->array = (double)c->cell_reads * p->e_cell_read;
	out->adc = (double)(c->adc_conversions - c->adc_conversions_msb) *
		   p->e_adc_conv * adc_bits_scale(bits, p->e_adc_ref_bits) +
		   (double)c->adc_conversions_msb * p->e_adc_conv *
		   adc_bits_scale(bits_msb, p->e_adc_ref_bits);
	out->digital = (double)c->shift_adds * p->e_shift_add +
		       (double)c->digital_read_rows * p->e_popcount_row +
		       (double)c->output_scales * p->e_output_scale;
	out->io = (double)(c->bytes_in + c->bytes_out) * p->e_io_byte;
	out->weights = (double)c->bytes_weights * p->e_weight_byte +
		       (double)c->cells_programmed * p->e_cell_write;
	out->compute = out->array + out->adc + out->digital;
	out->total = out->compute + out->io + out->weights;
	out->tops_per_w = out->compute > 0 ?
		2.0 * (double)c->macs / out->compute / 1e12 : 0.0;
	out->tops_per_w_all = out->total > 0 ?
		2.0 * (double)c->macs / out->total / 1e12 : 0.0;
}

void cim_energy_estimate(const struct cim_counters *c, uint32_t adc_bits,
			 const struct cim_energy_params *p,
			 struct cim_energy *out)
{
	struct cim_config cfg;

	cim_config_default(&cfg);
	if (adc_bits)
		cfg.adc_bits = adc_bits;
	cim_energy_estimate_chip(c, &cfg, p, out);
}
