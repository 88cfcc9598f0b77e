// SPDX-License-Identifier: MIT
/*
 * AVX-512 low-rank kernels. Only lowrank.c calls them, and only after
 * cim_cpu_features() said the CPU has AVX-512 F, VL, DQ and BW (and
 * AVX2, FMA): every function here carries that target attribute, the rest
 * of the library is built for the baseline ISA. Single-threaded, no
 * allocation.
 *
 * A's packed layout (<polar/lowrank.h>) has panels of 8 floats, rows of a
 * panel 8 floats apart, so 16 contiguous floats are two rows of one panel
 * (A[k][8p..8p+8), A[k+1][8p..8p+8)). z = A x works on such row pairs;
 * the lane halves of an accumulator belong to different rows and are
 * added once, at the end of a tile. An odd last row loads its pair with
 * the upper half masked off (never past the array). B's panels are 16
 * outputs wide, one vector a row, so y = B z needs no lane shuffles.
 *
 * Every row is summed in one order, fixed by in_dim and rank alone, so a
 * row's bits never depend on the batch size or on the row's place in the
 * call (<polar/lowrank.h>): the tiles below differ only in how many rows
 * they carry at once, never in the order of a row's additions.
 *
 * z = A x (polar_lowrank_az_avx512): in_dim is cut into blocks (a power
 * of two of floats whose slice of A, all rows, is at most AZ_SLICE floats:
 * 1024 at rank 8, 256 at 32). In a block an accumulator per (batch row,
 * row pair) collects A-pair x [x chunk, x chunk] (8 floats of x broadcast
 * to both halves) panel after panel; at rank 8 and below the first half
 * of the block's panels and the rest go to two accumulators, added at the
 * end, so that a lone batch row has 8 FMA chains. 4 pair accumulators are
 * then reduced to 8 sums with lane shuffles and adds, and the block's sums
 * added to z in block order. Tiles: 4 batch rows x 4 pairs (16
 * accumulators, 8 loads per 16 FMAs), fewer rows at the end of the batch,
 * 1 batch row x up to 8 pairs for a lone row (batch 1). For each block and
 * each group of 4 batch rows the tiles go over all rows of A: the 4 rows
 * of x (16 KiB at rank 8, 4 KiB at 32) and the slice of A both stay in L1
 * (48 KiB here; a 32 KiB L1 keeps x and most of A), and x streams through
 * once.
 *
 * y (+)= B z (polar_lowrank_bz_avx512): an accumulator per (batch row,
 * panel of 16 outputs) starts from y (or 0) and adds z[k] x B^T[k] for k
 * in order, one FMA of a broadcast z[k] and a row of the panel. Tiles:
 * up to 6 batch rows x 4 panels (24 accumulators, 4 B loads and 6
 * broadcasts per 24 FMAs), 1 row x 8 panels at batch 1, then single
 * panels and a masked tail panel; y is read and written once per tile.
 * The 16-wide panels replaced 8-wide ones, which this kernel read two
 * rows to a vector and reduced with 3 shuffles and adds per 16 outputs
 * and row (27 % of the FMA ports' work at rank 8). Old and new B z timed
 * alternately: 1.3-1.5x on small layers (64 x 64, 256 x 256) at batch
 * 16 and 256, 1.1-1.2x at batch 1 from out 777 up, even on the larger
 * layers at batch 16 and 256, rank 8, where y's read and write through
 * L2 (2 flops per byte of y at rank 8), not the FMA ports, set the pace.
 */
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "polar/lowrank.h"

#define POLAR_AVX512 \
	__attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma")))
#define POLAR_AVX512_INLINE                                              \
	__attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma"),     \
		       always_inline)) static inline

/* Floats of A per in-block at most (32 KiB): its slice of all rows. */
#define AZ_SLICE 8192

/* The most batch rows of a y tile. */
#define BZ_NB 6

void polar_lowrank_az_avx512(const float *Ap, uint32_t rank, size_t in_dim,
			     size_t batch, const float *x, float *z);
void polar_lowrank_bz_avx512(const float *Bp, uint32_t rank, size_t out_dim,
			     size_t batch, const float *z, float *y,
			     int accumulate);

/* The lower half (8 lanes) of a pair: an odd last row. */
#define LO8 ((__mmask16)0x00FF)

POLAR_AVX512_INLINE __mmask8 first_lanes(size_t n)
{
	return (__mmask8)((1u << n) - 1);
}

/* Row pair m at p (16 floats), the upper half masked when it is odd. */
POLAR_AVX512_INLINE __m512 load_pair(const float *p, int odd)
{
	return odd ? _mm512_maskz_loadu_ps(LO8, p) : _mm512_loadu_ps(p);
}

/* 8 floats of x in both halves. */
POLAR_AVX512_INLINE __m512 bcast8(const float *p)
{
	return _mm512_castpd_ps(_mm512_broadcast_f64x4(
		_mm256_castps_pd(_mm256_loadu_ps(p))));
}

POLAR_AVX512_INLINE __m512 bcast8_masked(const float *p, __mmask8 m)
{
	return _mm512_castpd_ps(_mm512_broadcast_f64x4(
		_mm256_castps_pd(_mm256_maskz_loadu_ps(m, p))));
}

/*
 * The 8 row sums of 4 pair accumulators, in row order, in 12 instructions
 * (128-bit blocks: a_m = [row 2m lo, row 2m hi, row 2m+1 lo, row 2m+1 hi]).
 */
POLAR_AVX512_INLINE __m256 hsum_pairs4(__m512 a0, __m512 a1, __m512 a2,
				       __m512 a3)
{
	/* Blocks: 4 partial sums of rows 0..3 and of rows 4..7. */
	__m512 s01 = _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, 0x88),
				   _mm512_shuffle_f32x4(a0, a1, 0xDD));
	__m512 s23 = _mm512_add_ps(_mm512_shuffle_f32x4(a2, a3, 0x88),
				   _mm512_shuffle_f32x4(a2, a3, 0xDD));
	/* Block b: [s01 b.0+b.2, s23 b.0+b.2, s01 b.1+b.3, s23 b.1+b.3]. */
	__m512 w = _mm512_add_ps(_mm512_unpacklo_ps(s01, s23),
				 _mm512_unpackhi_ps(s01, s23));
	const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13,
					      0, 0, 0, 0, 0, 0, 0, 0);

	/* Block b, lane 0: row b; lane 1: row 4 + b. */
	w = _mm512_add_ps(w, _mm512_permute_ps(w, 0x4E));
	return _mm512_castps512_ps256(_mm512_permutexvar_ps(idx, w));
}

/*
 * acc[j][m] += A pair m of the panel at aq x 8 floats of x row j at xq
 * (rows ldx apart), the x lanes past `xm` zero (A's padding is zero).
 */
POLAR_AVX512_INLINE void az_panel(__m512 acc[4][8], const float *aq,
				  const float *xq, size_t ldx, int NB, int NP,
				  int ODD, int MASKED, __mmask8 xm)
{
	__m512 xv[4];
	int j, m;

#pragma GCC unroll 4
	for (j = 0; j < NB; j++)
		xv[j] = MASKED ? bcast8_masked(xq + j * ldx, xm) :
				 bcast8(xq + j * ldx);
#pragma GCC unroll 8
	for (m = 0; m < NP; m++) {
		__m512 a = load_pair(aq + 16 * m, ODD && m == NP - 1);

#pragma GCC unroll 4
		for (j = 0; j < NB; j++)
			acc[j][m] = _mm512_fmadd_ps(a, xv[j], acc[j][m]);
	}
}

/* z[j][k0 ..) = (or +=) the row sums of acc[j][0..NP), rows in all. */
POLAR_AVX512_INLINE void az_store(__m512 acc[4][8], float *z, size_t ldz,
				  int NB, int NP, int rows, int add)
{
	int j, g;

#pragma GCC unroll 4
	for (j = 0; j < NB; j++)
#pragma GCC unroll 2
		for (g = 0; g < (NP + 3) / 4; g++) {
			__m512 zero = _mm512_setzero_ps();
			float *zj = z + j * ldz + 8 * g;
			int nr = rows - 8 * g < 8 ? rows - 8 * g : 8;
			__mmask8 zm = first_lanes((size_t)nr);
			__m256 s = hsum_pairs4(
				acc[j][4 * g],
				4 * g + 1 < NP ? acc[j][4 * g + 1] : zero,
				4 * g + 2 < NP ? acc[j][4 * g + 2] : zero,
				4 * g + 3 < NP ? acc[j][4 * g + 3] : zero);

			if (add)
				s = _mm256_add_ps(s,
						  _mm256_maskz_loadu_ps(zm, zj));
			_mm256_mask_storeu_ps(zj, zm, s);
		}
}

/*
 * One z tile: z[j][k] (+)= A[k][0..n) . x[j][0..n) for j < NB and the
 * 2 NP - ODD rows k of the tile. A points at the tile's first row in the
 * first panel (panels ps floats apart), x at batch row 0 (rows ldx
 * apart), z at z[0][k0] (rows ldz apart). NB, NP, ODD are constants after
 * inlining.
 *
 * The order of the sums is the same in every tile, so a row's bits do not
 * depend on NB, NP or the batch: the panels summed one after the other
 * into an accumulator from zero, the masked tail panel last; or, with
 * `halves` (set by rank alone), the first (nq + 1) / 2 whole panels and
 * the rest (with the tail) in two such accumulators, then added. The pair
 * is reduced by hsum_pairs4 and the result stored or added to z. Tiles
 * with room for both halves' accumulators run them side by side (8 FMA
 * chains for a lone row at 4 pairs), larger ones one after the other, the
 * first half's sums waiting on the stack.
 */
POLAR_AVX512_INLINE void az_tile(const float *A, size_t ps, const float *x,
				 size_t ldx, size_t n, float *z, size_t ldz,
				 int NB, int NP, int ODD, int halves, int add)
{
	__m512 acc[2][4][8];
	size_t q, nq = n / 8, h = halves ? (nq + 1) / 2 : nq;
	int u, j, m;

#pragma GCC unroll 2
	for (u = 0; u < 2; u++)
#pragma GCC unroll 4
		for (j = 0; j < NB; j++)
#pragma GCC unroll 8
			for (m = 0; m < NP; m++)
				acc[u][j][m] = _mm512_setzero_ps();

	if (2 * NB * NP <= 16) {
		/* Side by side while the second half lasts (h or h - 1
		 * panels), then the first half's last panel, if any. */
		for (q = 0; q + h < nq; q++) {
			az_panel(acc[0], A + q * ps, x + q * 8, ldx, NB, NP,
				 ODD, 0, 0);
			az_panel(acc[1], A + (h + q) * ps, x + (h + q) * 8,
				 ldx, NB, NP, ODD, 0, 0);
		}
		for (; q < h; q++)
			az_panel(acc[0], A + q * ps, x + q * 8, ldx, NB, NP,
				 ODD, 0, 0);
	} else {
		for (q = 0; q < h; q++)
			az_panel(acc[0], A + q * ps, x + q * 8, ldx, NB, NP,
				 ODD, 0, 0);
		if (halves) {
			float first[4][8][16] __attribute__((aligned(64)));

#pragma GCC unroll 4
			for (j = 0; j < NB; j++)
#pragma GCC unroll 8
				for (m = 0; m < NP; m++)
					_mm512_store_ps(first[j][m],
							acc[0][j][m]);
			for (; q < nq; q++)
				az_panel(acc[1], A + q * ps, x + q * 8, ldx,
					 NB, NP, ODD, 0, 0);
#pragma GCC unroll 4
			for (j = 0; j < NB; j++)
#pragma GCC unroll 8
				for (m = 0; m < NP; m++)
					acc[0][j][m] = _mm512_load_ps(
						first[j][m]);
		}
	}
	if (nq * 8 < n && halves)
		az_panel(acc[1], A + nq * ps, x + nq * 8, ldx, NB, NP, ODD, 1,
			 first_lanes(n - nq * 8));
	else if (nq * 8 < n)
		az_panel(acc[0], A + nq * ps, x + nq * 8, ldx, NB, NP, ODD, 1,
			 first_lanes(n - nq * 8));
	if (halves)
#pragma GCC unroll 4
		for (j = 0; j < NB; j++)
#pragma GCC unroll 8
			for (m = 0; m < NP; m++)
				acc[0][j][m] = _mm512_add_ps(acc[0][j][m],
							     acc[1][j][m]);
	az_store(acc[0], z, ldz, NB, NP, 2 * NP - ODD, add);
}

#define AZ_TILE_ARGS const float *A, size_t ps, const float *x, size_t ldx, \
	size_t n, float *z, size_t ldz, uint32_t nr, int halves, int add

/* Instantiates az_tile for nr rows with NB constant. */
#define AZ_CASE(nb, nrows)                                                \
	case nrows:                                                       \
		az_tile(A, ps, x, ldx, n, z, ldz, nb, ((nrows) + 1) / 2,    \
			(nrows) & 1, halves, add);                        \
		break

#define AZ_TILE_N(nb)                                                     \
	POLAR_AVX512 static void az_tile_##nb(AZ_TILE_ARGS)               \
	{                                                                 \
		switch (nr) {                                             \
		AZ_CASE(nb, 1); AZ_CASE(nb, 2); AZ_CASE(nb, 3);           \
		AZ_CASE(nb, 4); AZ_CASE(nb, 5); AZ_CASE(nb, 6);           \
		AZ_CASE(nb, 7); AZ_CASE(nb, 8);                           \
		}                                                         \
	}

/* One batch row, up to 16 rows of A: 16 FMA chains. */
POLAR_AVX512 static void az_tile_1(AZ_TILE_ARGS)
{
	switch (nr) {
	AZ_CASE(1, 1); AZ_CASE(1, 2); AZ_CASE(1, 3); AZ_CASE(1, 4);
	AZ_CASE(1, 5); AZ_CASE(1, 6); AZ_CASE(1, 7); AZ_CASE(1, 8);
	AZ_CASE(1, 9); AZ_CASE(1, 10); AZ_CASE(1, 11); AZ_CASE(1, 12);
	AZ_CASE(1, 13); AZ_CASE(1, 14); AZ_CASE(1, 15); AZ_CASE(1, 16);
	}
}

AZ_TILE_N(2)
AZ_TILE_N(3)
AZ_TILE_N(4)

/*
 * Floats of in_dim per in-block: a power of two, so that the block's
 * slice of A (all rows) is at most AZ_SLICE floats; 128 at least.
 */
POLAR_AVX512_INLINE size_t az_block(uint32_t rank)
{
	return (size_t)(2 * AZ_SLICE) >> (32 - __builtin_clz(2 * rank - 1));
}

POLAR_AVX512 void polar_lowrank_az_avx512(const float *Ap, uint32_t rank,
					  size_t in_dim, size_t batch,
					  const float *x, float *z)
{
	size_t ps = (size_t)8 * rank, kblk = az_block(rank), i0, b, kb;
	uint32_t k, nr, kstep;
	/*
	 * With 4 row pairs or fewer a lone batch row needs the two halves
	 * for 8 FMA chains; with more it has them anyway, and one chain per
	 * accumulator costs the 4-row tiles nothing (the halves cost them
	 * 16 stores, loads and adds per block, 3% at rank 32).
	 */
	int halves = rank <= 8;

	/*
	 * Per in-block, each group of 4 batch rows runs the tiles of every
	 * row group while its x rows sit in L1 next to the block's slice
	 * of A; a lone row (batch 1, or the last of a batch) takes up to
	 * 16 rows of A at once. z sums the blocks in order.
	 */
	for (i0 = 0; i0 < in_dim; i0 += kblk) {
		size_t n = in_dim - i0 < kblk ? in_dim - i0 : kblk;
		const float *A0 = Ap + i0 / 8 * ps;
		int add = i0 > 0;

		for (b = 0; b < batch; b += kb) {
			const float *xb = x + b * in_dim + i0;

			kb = batch - b < 4 ? batch - b : 4;
			kstep = kb == 1 ? 16 : 8;
			for (k = 0; k < rank; k += kstep) {
				float *zb = z + b * rank + k;

				nr = rank - k < kstep ? rank - k : kstep;
				if (kb == 4)
					az_tile_4(A0 + k * 8, ps, xb, in_dim,
						  n, zb, rank, nr, halves, add);
				else if (kb == 3)
					az_tile_3(A0 + k * 8, ps, xb, in_dim,
						  n, zb, rank, nr, halves, add);
				else if (kb == 2)
					az_tile_2(A0 + k * 8, ps, xb, in_dim,
						  n, zb, rank, nr, halves, add);
				else
					az_tile_1(A0 + k * 8, ps, xb, in_dim,
						  n, zb, rank, nr, halves, add);
			}
		}
	}
}

/*
 * One y tile: y[j][c*16 .. c*16+16) (+)= sum_k z[j][k] B^T[k][c*16 ..)
 * for j < NB, c < NV, k in order from 0. B points at the tile's first
 * panel (panels ps floats apart, row k of a panel at k * 16), z at batch
 * row 0's z, y at its first output (rows ldy apart). With MASKED (NV 1)
 * only the outputs in ym are read and written (B's padding is zero).
 */
POLAR_AVX512_INLINE void bz_tile(const float *B, size_t ps, uint32_t rank,
				 const float *z, float *y, size_t ldy,
				 int NB, int NV, int accumulate, int MASKED,
				 __mmask16 ym)
{
	__m512 acc[BZ_NB][8];
	const float *zr[BZ_NB];
	uint32_t k;
	int j, c;

#pragma GCC unroll 8
	for (j = 0; j < NB; j++)
		zr[j] = z + (size_t)j * rank;

#pragma GCC unroll 8
	for (j = 0; j < NB; j++)
#pragma GCC unroll 8
		for (c = 0; c < NV; c++) {
			const float *yp = y + j * ldy + c * 16;

			if (!accumulate)
				acc[j][c] = _mm512_setzero_ps();
			else if (MASKED)
				acc[j][c] = _mm512_maskz_loadu_ps(ym, yp);
			else
				acc[j][c] = _mm512_loadu_ps(yp);
		}
	for (k = 0; k < rank; k++) {
		__m512 bv[8];

#pragma GCC unroll 8
		for (c = 0; c < NV; c++)
			bv[c] = _mm512_loadu_ps(B + c * ps + 16 * k);
#pragma GCC unroll 8
		for (j = 0; j < NB; j++) {
			__m512 zv = _mm512_set1_ps(zr[j][k]);

#pragma GCC unroll 8
			for (c = 0; c < NV; c++)
				acc[j][c] = _mm512_fmadd_ps(bv[c], zv,
							    acc[j][c]);
		}
	}
#pragma GCC unroll 8
	for (j = 0; j < NB; j++)
#pragma GCC unroll 8
		for (c = 0; c < NV; c++) {
			float *yp = y + j * ldy + c * 16;

			if (MASKED)
				_mm512_mask_storeu_ps(yp, ym, acc[j][c]);
			else
				_mm512_storeu_ps(yp, acc[j][c]);
		}
}

/* y rows [0, NB) over all of out_dim, in tiles of NVMAX panels. */
POLAR_AVX512_INLINE void bz_rows(const float *Bp, uint32_t rank, size_t out,
				 const float *z, float *y, int NB, int NVMAX,
				 int accumulate)
{
	size_t ps = (size_t)16 * rank, o = 0;

	for (; o + 16 * (size_t)NVMAX <= out; o += 16 * (size_t)NVMAX)
		bz_tile(Bp + o / 16 * ps, ps, rank, z, y + o, out, NB, NVMAX,
			accumulate, 0, 0xFFFF);
	for (; o + 16 <= out; o += 16)
		bz_tile(Bp + o / 16 * ps, ps, rank, z, y + o, out, NB, 1,
			accumulate, 0, 0xFFFF);
	if (o < out)
		bz_tile(Bp + o / 16 * ps, ps, rank, z, y + o, out, NB, 1,
			accumulate, 1, (__mmask16)((1u << (out - o)) - 1));
}

#define BZ_ROWS_FN(nb, nvmax)                                             \
	POLAR_AVX512 static void bz_rows_##nb(const float *Bp,            \
					      uint32_t rank, size_t out,  \
					      const float *z, float *y,   \
					      int accumulate)             \
	{                                                                 \
		if (accumulate)                                           \
			bz_rows(Bp, rank, out, z, y, nb, nvmax, 1);       \
		else                                                      \
			bz_rows(Bp, rank, out, z, y, nb, nvmax, 0);       \
	}

BZ_ROWS_FN(1, 8)
BZ_ROWS_FN(2, 4)
BZ_ROWS_FN(3, 4)
BZ_ROWS_FN(4, 4)
BZ_ROWS_FN(5, 4)
BZ_ROWS_FN(6, 4)

POLAR_AVX512 void polar_lowrank_bz_avx512(const float *Bp, uint32_t rank,
					  size_t out_dim, size_t batch,
					  const float *z, float *y,
					  int accumulate)
{
	size_t b, nb;

	for (b = 0; b < batch; b += nb) {
		const float *zb = z + b * rank;
		float *yb = y + b * out_dim;

		nb = batch - b < BZ_NB ? batch - b : BZ_NB;
		switch (nb) {
		case 6: bz_rows_6(Bp, rank, out_dim, zb, yb, accumulate); break;
		case 5: bz_rows_5(Bp, rank, out_dim, zb, yb, accumulate); break;
		case 4: bz_rows_4(Bp, rank, out_dim, zb, yb, accumulate); break;
		case 3: bz_rows_3(Bp, rank, out_dim, zb, yb, accumulate); break;
		case 2: bz_rows_2(Bp, rank, out_dim, zb, yb, accumulate); break;
		default:
			bz_rows_1(Bp, rank, out_dim, zb, yb, accumulate);
		}
	}
}

#endif /* x86 && GNUC */
