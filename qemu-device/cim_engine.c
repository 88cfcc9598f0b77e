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
 * tile, recon[k] = round(k * fs_q8 * 2^F / (256 L)) once per call.
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
	if (c.rows > CIM_MAX_ROWS || c.cols > CIM_MAX_COLS ||
	    c.tiles > CIM_MAX_TILES || c.adc_bits > CIM_MAX_ADC_BITS ||
	    c.rows_per_conversion > c.rows || c.adcs_per_tile > c.cols ||
	    c.recon_frac_bits > CIM_MAX_RECON_FRAC ||
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
	const int64_t L = e->L;
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
	const uint32_t nw = e->nw, L = e->L;
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
	__builtin_cpu_init();
	if (__builtin_cpu_supports("popcnt"))
		return tile_item_popcnt;
#endif
	return tile_item_generic;
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
	tile_item_fn kern;
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
	const uint32_t L = e->L, fs_q8 = a->adc_fs_q8 ? a->adc_fs_q8 : G * 256;
	int64_t *M = xcalloc(C, sizeof(int64_t));
	int64_t *off = xcalloc(C, sizeof(int64_t));
	int32_t *lut = NULL;
	uint32_t ct, rt, b;
	int ret = 0;

	if (!M || !off) {
		ret = -ENOMEM;
		goto out;
	}
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

int cim_engine_matmul(struct cim_engine *e, const struct cim_matmul_args *a)
{
	const struct cim_config *c;
	struct pair_info pairs[64];
	uint32_t npairs = 0, nx, nwp, rtiles, ctiles, rt, ct, b, i, k;
	uint32_t R, G, L, fs_q8, F;
	uint64_t used[64] = { 0 };
	size_t xstride, nx_all;
	uint64_t *xpl = NULL;
	int64_t *acc = NULL, *recon = NULL;
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
	xpl = xcalloc(nx_all, sizeof(uint64_t));
	acc = xcalloc((size_t)a->batch * a->out_dim, sizeof(int64_t));
	recon = xcalloc((size_t)L + 1, sizeof(int64_t));
	codes = xcalloc(R, 1);
	if (!xpl || !acc || !recon || !codes) {
		ret = -ENOMEM;
		goto out;
	}

	/* transpose inputs into planes, once per item and row tile */
	for (b = 0; b < a->batch; b++)
		for (rt = 0; rt < rtiles; rt++) {
			uint32_t rows = a->in_dim - rt * R > R ? R :
					a->in_dim - rt * R;
			const int8_t *src = a->x + (size_t)b * a->in_dim +
					    (size_t)rt * R;

			for (k = 0; k < rows; k++)
				codes[k] = (uint8_t)src[k] & (nx == 4 ? 0x0F : 0xFF);
			pack_planes(codes, rows, e->nw, nx,
				    xpl + (size_t)b * xstride +
				    (size_t)rt * nx * e->nw);
		}

	/* digital reconstruction: recon[k] = round(k fs 2^F / (256 L)) */
	for (k = 0; k <= L; k++)
		recon[k] = (int64_t)(((uint64_t)k * fs_q8 * (2u << F) +
				      (uint64_t)L * 256) / ((uint64_t)L * 512));

	sh.e = e;
	sh.a = a;
	sh.pairs = pairs;
	sh.npairs = npairs;
	sh.rtiles = rtiles;
	sh.ctiles = ctiles;
	sh.nx = nx;
	sh.xpl = xpl;
	sh.xstride = xstride;
	sh.acc = acc;
	sh.recon = recon;
	sh.kern = pick_kernel();
	ret = run_items_parallel(&sh);
	if (ret)
		goto out;

	/* counters: pure functions of the shape, not of who computed what */
	for (ct = 0; ct < ctiles; ct++) {
		for (rt = 0; rt < rtiles; rt++) {
			const struct tile_meta *m =
				&e->meta[a->tile0 + ct * rtiles + rt];
			uint64_t convs_per_item = (uint64_t)npairs *
				((m->rows_used + G - 1) / G);
			uint64_t tc;

			d.array_activations += a->batch * convs_per_item;
			d.cell_reads += (uint64_t)a->batch * npairs *
					m->rows_used * m->cols_used;
			d.adc_conversions += a->batch * convs_per_item *
					     m->cols_used;
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
			int64_t v = F ? round_shift(acc[q], F) : acc[q];

			a->y[q] = clamp32(v, INT32_MIN, INT32_MAX);
		}

	d.shift_adds = d.adc_conversions +
		       (uint64_t)a->batch * (rtiles - 1) * a->out_dim;
	d.macs = (uint64_t)a->batch * a->in_dim * a->out_dim;
	d.bytes_in = nx == 8 ? (uint64_t)a->batch * a->in_dim :
		     ((uint64_t)a->batch * a->in_dim + 1) / 2;
	d.bytes_out = (uint64_t)a->batch * a->out_dim * 4;
	e->cnt.array_activations += d.array_activations;
	e->cnt.cell_reads += d.cell_reads;
	e->cnt.adc_conversions += d.adc_conversions;
	e->cnt.shift_adds += d.shift_adds;
	e->cnt.macs += d.macs;
	e->cnt.bytes_in += d.bytes_in;
	e->cnt.bytes_out += d.bytes_out;
	e->cnt.tile_cycles += d.tile_cycles;
	e->cnt.cycles += max_tile_cycles;
	e->cnt.jobs++;
	ret = 0;
out:
	free(xpl);
	free(acc);
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
	/* Horowitz 2014: 64-bit read from an 8 KB SRAM 10 pJ -> 1.25 pJ/B. */
	p->e_io_byte = 10e-12 / 8.0;
	/* Horowitz 2014: DRAM 1.3-2.6 nJ per 64-bit access; low end,
	 * 1.3 nJ / 8 B = 162.5 pJ/B. */
	p->e_weight_byte = 1.3e-9 / 8.0;
	p->e_cell_write = 0.0;
}

void cim_energy_estimate(const struct cim_counters *c, uint32_t adc_bits,
			 const struct cim_energy_params *p,
			 struct cim_energy *out)
{
	struct cim_energy_params def;
	double scale = 1.0;
	int k;

	if (!c || !out)
		return;
	if (!p) {
		cim_energy_params_default(&def);
		p = &def;
	}
	if (!adc_bits)
		adc_bits = CIM_DEFAULT_ADC_BITS;
	for (k = 0; k < (int)adc_bits - (int)p->e_adc_ref_bits; k++)
		scale *= 2.0;
	for (k = 0; k < (int)p->e_adc_ref_bits - (int)adc_bits; k++)
		scale *= 0.5;
	out->array = (double)c->cell_reads * p->e_cell_read;
	out->adc = (double)c->adc_conversions * p->e_adc_conv * scale;
	out->digital = (double)c->shift_adds * p->e_shift_add;
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
