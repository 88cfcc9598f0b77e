// SPDX-License-Identifier: MIT
/*
 * cim_naive.h - a deliberately naive reference of the cim_engine model,
 * written from the formulas in cim_engine.h / cim_engine.md, not from the
 * engine's code: one loop iteration per (row, plane pair) MAC bit, no bit
 * packing, no popcount, no lookup tables. It uses only the engine's
 * documented hash (cim_mix64 / cim_hash64), because the variability is
 * defined as that hash; the Gaussian, rounding, clamping, stuck rule, ADC
 * and reconstruction are reimplemented here.
 *
 * Static per-cell values are tabulated once per tile at programming time
 * (a naive chip would still read them from a table); everything else is
 * recomputed per MAC.
 *
 * Used by tests/unit/test_cim_engine.c and bench/bench_engine.c.
 */
#ifndef CIM_NAIVE_H
#define CIM_NAIVE_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cim_engine.h"

struct naive_chip {
	struct cim_config cfg;  /* resolved */
	int8_t cb[16];
	int16_t *w;             /* [tile][row][col] stored weight value */
	int8_t *dg;             /* [tile][row][col][plane] Q7 */
	int8_t *stuck;          /* same, -1 / 0 / 1 */
	uint8_t *ready;         /* static tables filled */
	uint8_t *fmt;
	uint32_t *rows_used, *cols_used;
	uint8_t *programmed;
};

/* floor(v / 2^s + 1/2) with plain division (no shifts of negatives) */
static int64_t naive_round_shift(int64_t v, unsigned s)
{
	int64_t d = (int64_t)1 << s;
	int64_t num = v + d / 2;
	int64_t q = num / d;

	if (num % d != 0 && num < 0)
		q -= 1;
	return q;
}

static int64_t naive_clamp(int64_t v, int64_t lo, int64_t hi)
{
	if (v < lo)
		return lo;
	if (v > hi)
		return hi;
	return v;
}

static int32_t naive_gauss(uint64_t key)
{
	int64_t sum = 0;
	int k, q;

	for (k = 0; k < 3; k++) {
		uint64_t w = cim_mix64(key + (uint64_t)(k + 1) *
				       0x9E3779B97F4A7C15ull);
		for (q = 0; q < 4; q++) {
			uint64_t u = (w / ((uint64_t)1 << (16 * q))) % 65536;

			sum += 2 * (int64_t)u + 1;
		}
	}
	return (int32_t)(sum - 786432);
}

static uint64_t naive_addr(uint64_t dom, uint64_t t, uint64_t r, uint64_t c,
			   uint64_t p)
{
	return dom * ((uint64_t)1 << 60) + t * ((uint64_t)1 << 40) +
	       r * ((uint64_t)1 << 24) + c * 256 + p;
}

/* floor(sqrt(v)) by bisection */
static uint64_t naive_isqrt(uint64_t v)
{
	uint64_t lo = 0, hi = 1ull << 32;

	while (hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (mid * mid <= v)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

static void naive_destroy(struct naive_chip *n)
{
	if (!n)
		return;
	free(n->w);
	free(n->dg);
	free(n->stuck);
	free(n->ready);
	free(n->fmt);
	free(n->rows_used);
	free(n->cols_used);
	free(n->programmed);
	free(n);
}

static struct naive_chip *naive_create(const struct cim_config *cfg)
{
	struct naive_chip *n = calloc(1, sizeof(*n));
	size_t cells;

	if (!n || cim_config_resolve(cfg, &n->cfg)) {
		free(n);
		return NULL;
	}
	memcpy(n->cb, cim_nf4_default, 16);
	cells = (size_t)n->cfg.tiles * n->cfg.rows * n->cfg.cols;
	n->w = calloc(cells, sizeof(int16_t));
	n->dg = calloc(cells * 8, 1);
	n->stuck = calloc(cells * 8, 1);
	n->ready = calloc(n->cfg.tiles, 1);
	n->fmt = calloc(n->cfg.tiles, 1);
	n->rows_used = calloc(n->cfg.tiles, sizeof(uint32_t));
	n->cols_used = calloc(n->cfg.tiles, sizeof(uint32_t));
	n->programmed = calloc(n->cfg.tiles, 1);
	if (!n->w || !n->dg || !n->stuck || !n->ready || !n->fmt ||
	    !n->rows_used || !n->cols_used || !n->programmed) {
		naive_destroy(n);
		return NULL;
	}
	return n;
}

static size_t naive_cell(const struct naive_chip *n, uint32_t t, uint32_t r,
			 uint32_t c)
{
	return ((size_t)t * n->cfg.rows + r) * n->cfg.cols + c;
}

static void naive_static(struct naive_chip *n, uint32_t t)
{
	const struct cim_config *c = &n->cfg;
	uint32_t r, col, p;

	for (r = 0; r < c->rows; r++)
		for (col = 0; col < c->cols; col++)
			for (p = 0; p < 8; p++) {
				size_t i = naive_cell(n, t, r, col) * 8 + p;
				int8_t dg = 0, st = -1;

				if (c->sigma_static_q16) {
					int64_t z = naive_gauss(cim_hash64(c->seed,
						naive_addr(CIM_DOM_DG, t, r, col, p)));
					dg = (int8_t)naive_clamp(naive_round_shift(
						z * c->sigma_static_q16, 26), -128, 127);
				}
				if (c->stuck_rate_ppm) {
					uint64_t h = cim_hash64(c->seed,
						naive_addr(CIM_DOM_STUCK, t, r, col, p));
					uint64_t u = (h >> 32) * 1000000u /
						     ((uint64_t)1 << 32);

					if (u < c->stuck_rate_ppm)
						st = (int8_t)(h % 2);
				}
				n->dg[i] = dg;
				n->stuck[i] = st;
			}
	n->ready[t] = 1;
}

static void naive_adc_static(const struct naive_chip *n, uint32_t t,
			     uint32_t col, int64_t *gain, int64_t *off)
{
	const struct cim_config *c = &n->cfg;

	*gain = 65536;
	*off = 0;
	if (c->adc_gain_sigma_q16) {
		int64_t z = naive_gauss(cim_hash64(c->seed,
				naive_addr(CIM_DOM_GAIN, t, 0, col, 0)));
		*gain = naive_clamp(65536 + naive_round_shift(z *
				c->adc_gain_sigma_q16, 17), 0, 131072);
	}
	if (c->adc_offset_sigma_q16) {
		int64_t z = naive_gauss(cim_hash64(c->seed,
				naive_addr(CIM_DOM_OFFSET, t, 0, col, 0)));
		*off = naive_round_shift(z * c->adc_offset_sigma_q16, 25);
	}
}

static int naive_program(struct naive_chip *n, uint32_t tile0, uint32_t in_dim,
			 uint32_t out_dim, enum cim_fmt fmt, const int8_t *w)
{
	uint32_t R = n->cfg.rows, C = n->cfg.cols;
	uint32_t rtiles = (in_dim + R - 1) / R, ctiles = (out_dim + C - 1) / C;
	uint32_t o, i;

	if ((uint64_t)tile0 + (uint64_t)rtiles * ctiles > n->cfg.tiles)
		return -ERANGE;
	for (o = 0; o < rtiles * ctiles; o++) {
		uint32_t t = tile0 + o, rt = o % rtiles, ct = o / rtiles;

		if (!n->ready[t])
			naive_static(n, t);
		memset(n->w + naive_cell(n, t, 0, 0), 0,
		       sizeof(int16_t) * R * C);
		n->fmt[t] = (uint8_t)fmt;
		n->rows_used[t] = in_dim - rt * R < R ? in_dim - rt * R : R;
		n->cols_used[t] = out_dim - ct * C < C ? out_dim - ct * C : C;
		n->programmed[t] = 1;
	}
	for (o = 0; o < out_dim; o++)
		for (i = 0; i < in_dim; i++) {
			uint32_t t = tile0 + (o / C) * rtiles + i / R;
			int v = w[(size_t)o * in_dim + i];

			if (fmt == CIM_FMT_NF4)
				v = n->cb[v];
			n->w[naive_cell(n, t, i % R, o % C)] = (int16_t)v;
		}
	return (int)(rtiles * ctiles);
}

/* the weight bit j of the cell, after stuck cells */
static int naive_wbit(const struct naive_chip *n, uint32_t t, uint32_t r,
		      uint32_t c, uint32_t j, int nplanes)
{
	int v = n->w[naive_cell(n, t, r, c)];
	int st = n->stuck[naive_cell(n, t, r, c) * 8 + j];
	unsigned u = (unsigned)(v + 256) % (1u << nplanes); /* two's compl. */

	if (st >= 0)
		return st;
	return (int)((u >> j) & 1);
}

/* round(total * fs / (256 L)), half up, in 128-bit arithmetic */
static int64_t naive_codes_to_cells(int64_t total, uint32_t fs, uint64_t L)
{
	__int128 num = (__int128)total * 2 * fs + (__int128)L * 256;
	__int128 den = (__int128)L * 512, q = num / den;

	if (num % den != 0 && num < 0)
		q -= 1;		/* floor, not truncation */
	if (q > INT64_MAX / 2)
		return INT64_MAX / 2;
	if (q < INT64_MIN / 2)
		return INT64_MIN / 2;
	return (int64_t)q;
}

static int naive_matmul(struct naive_chip *n, const struct cim_matmul_args *a)
{
	const struct cim_config *c = &n->cfg;
	uint32_t R = c->rows, C = c->cols, G = c->rows_per_conversion;
	uint32_t L = (1u << c->adc_bits) - 1, F = c->recon_frac_bits;
	/* the MSB conversions' ADC, and the step of a code sum: FS / L_e */
	uint32_t Lm = c->adc_bits_msb ? (1u << c->adc_bits_msb) - 1 : L;
	uint64_t Le = c->adc_bits_msb ? (uint64_t)L * Lm : L;
	uint32_t fs = a->adc_fs_q8 ? a->adc_fs_q8 : G * 256;
	uint32_t rtiles = (a->in_dim + R - 1) / R;
	int nx = a->xfmt == CIM_FMT_INT8 ? 8 : 4;
	int nw = a->wfmt == CIM_FMT_INT4 ? 4 : 8;
	int D = (int)c->digital_planes < nw ? (int)c->digital_planes : nw;
	int smax = (nx - 1) + (nw - 1 - D);
	uint32_t b, o, rt, g, r;
	int i, j;

	for (b = 0; b < a->batch; b++) {
		uint64_t item_key = cim_hash64(a->job_seed,
				(uint64_t)CIM_DOM_JOB * ((uint64_t)1 << 60) +
				(uint64_t)a->item0 + b);

		for (o = 0; o < a->out_dim; o++) {
			int64_t total = 0, total_digital = 0;

			for (rt = 0; rt < rtiles; rt++) {
				uint32_t t = a->tile0 + (o / C) * rtiles + rt;
				uint32_t col = o % C;
				uint32_t rows = n->rows_used[t];
				int64_t gain, off, M, Mm;

				if (!n->programmed[t] || n->fmt[t] != a->wfmt)
					return -EINVAL;
				naive_adc_static(n, t, col, &gain, &off);
				M = (2 * gain * L * 256 + fs) / (2 * (int64_t)fs);
				Mm = (2 * gain * Lm * 256 + fs) / (2 * (int64_t)fs);
				for (i = nx - 1; i >= 0; i--)
				for (j = nw - 1; j >= 0; j--) {
					int64_t coef = (int64_t)1 << (i + j);
					int used = 1;
					int digital = j >= nw - D;
					int msb = !digital && c->adc_bits_msb &&
						  i + j > smax - (int)c->adc_msb_levels;
					int64_t Lp = msb ? Lm : L, Mp = msb ? Mm : M;

					if (a->sched) {
						uint32_t k;

						used = 0;
						for (k = 0; k < a->n_sched; k++)
							if (a->sched[k].x_plane == i &&
							    a->sched[k].w_plane == j)
								used = 1;
					}
					if (!used)
						continue;
					if (a->x_signed && i == nx - 1)
						coef = -coef;
					if (j == nw - 1)
						coef = -coef;
					for (g = 0; g * G < rows; g++) {
						int64_t cnt = 0, dgs = 0, S, code, val;

						for (r = g * G; r < (g + 1) * G && r < rows; r++) {
							int xv = a->x[(size_t)b * a->in_dim + rt * R + r];
							unsigned xu = (unsigned)(xv + 256) % (1u << nx);
							int xb = (int)((xu >> i) & 1);
							int wb = naive_wbit(n, t, r, col, (uint32_t)j, nw);

							if (xb && wb) {
								cnt += 1;
								dgs += n->dg[naive_cell(n, t, r, col) * 8 + (uint32_t)j];
							}
						}
						if (digital) {
							/* an exact count, no ADC */
							total_digital += coef * cnt;
							continue;
						}
						S = cnt * 256 + 2 * dgs;
						if (c->sigma_dynamic_q16 && cnt) {
							uint64_t addr = (uint64_t)t * ((uint64_t)1 << 40) +
								(uint64_t)col * ((uint64_t)1 << 24) +
								(uint64_t)g * 256 + (uint64_t)i * 16 + (uint64_t)j;
							int64_t z = naive_gauss(cim_hash64(item_key, addr));
							int64_t sig = (int64_t)naive_isqrt(
								(uint64_t)c->sigma_dynamic_q16 *
								c->sigma_dynamic_q16 * (uint64_t)cnt);

							S += naive_round_shift(z * sig, 25);
						}
						code = naive_clamp(naive_round_shift(S * Mp + off * 65536, 24),
								   0, Lp);
						/* codes: the code in steps of FS / L_e;
						 * cells: value = code * FS / L, Q(F),
						 * rounded */
						if (c->recon == CIM_RECON_CODES)
							val = code * (int64_t)(Le / (uint64_t)Lp);
						else
							val = (code * fs * ((int64_t)2 << F) +
							       Lp * 256) / (Lp * 512);
						total += coef * val;
					}
				}
			}
			if (c->recon == CIM_RECON_CODES)
				total = naive_codes_to_cells(total, fs, Le);
			else
				total = F ? naive_round_shift(total, F) : total;
			total += total_digital;
			a->y[(size_t)b * a->out_dim + o] =
				(int32_t)naive_clamp(total, INT32_MIN, INT32_MAX);
		}
	}
	return 0;
}

#endif /* CIM_NAIVE_H */
