// SPDX-License-Identifier: MIT
/*
 * AVX2+FMA low-rank kernels. Only lowrank.c calls them, and only after
 * cim_cpu_features() said the CPU has AVX2 and FMA: every function
 * here carries target("avx2,fma"), the rest of the library is built for the
 * baseline ISA. Single-threaded, no allocation.
 *
 * z = A x (polar_lowrank_az_avx2): per batch row, rank dot products of
 * length in. Register tiles of NB batch rows x NR rows of A, one __m256
 * accumulator each: 3 x 4 (12 accumulators, 7 loads per 12 FMAs) while at
 * least 3 batch rows remain, 1 x 8 for a single row (batch 1 is a GEMV of
 * 8 rows: one pass over x, 9 loads per 8 FMAs), 2 x 4 for two. The in tail
 * (in % 8) uses masked loads. At the end of a tile the accumulators are
 * reduced with a tree of horizontal adds (4 or 8 sums per few
 * instructions) and stored.
 *
 * y (+)= B z (polar_lowrank_bz_avx2): per batch row, a sum of rank
 * broadcasts z[b][k] times 8 contiguous floats of Bt. Register tiles of NB
 * batch rows x NC output vectors: 3 x 4 (12 accumulators, 4 loads + 3
 * broadcasts per 12 FMAs), 1 x 8 for a single row, then single vectors and
 * a masked tail vector. y is read (accumulate) and written once per tile.
 *
 * A and B are packed (<polar/lowrank.h>): panels of rank x 8 floats for A,
 * rank x 16 for B (read here as two halves of 8), so a tile's reads of A
 * or B are a few contiguous streams and their zero padding makes the
 * last, partial panel safe to load whole; only x and y need masked loads
 * and stores at the tail.
 *
 * Long in_dim is cut into blocks of AZ_KBLOCK floats so that the slice of
 * A a tile reads (rank x AZ_KBLOCK) stays in L1 while the batch streams
 * past it; z is accumulated over the blocks.
 */
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define POLAR_AVX2 __attribute__((target("avx2,fma")))
#define POLAR_AVX2_INLINE \
	__attribute__((target("avx2,fma"), always_inline)) static inline

/* Floats of in_dim per pass over the batch (rank 8: 16 KiB of A). */
#define AZ_KBLOCK 512
_Static_assert(AZ_KBLOCK % 8 == 0, "in-blocks must be whole panels");

void polar_lowrank_az_avx2(const float *Ap, uint32_t rank, size_t in_dim,
			   size_t batch, const float *x, float *z);
void polar_lowrank_bz_avx2(const float *Bp, uint32_t rank, size_t out_dim,
			   size_t batch, const float *z, float *y,
			   int accumulate);

/* mask_tab + 8 - n: the first n lanes on. */
static const int32_t mask_tab[16] = {
	-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0,
};

POLAR_AVX2_INLINE __m256i lane_mask(size_t n)
{
	return _mm256_loadu_si256((const __m256i *)(mask_tab + 8 - n));
}

/* The four horizontal sums of a0..a3, in order. */
POLAR_AVX2_INLINE __m128 hsum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3)
{
	__m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1),
				  _mm256_hadd_ps(a2, a3));

	return _mm_add_ps(_mm256_castps256_ps128(h),
			  _mm256_extractf128_ps(h, 1));
}

/* The eight horizontal sums of a[0..7], in order. */
POLAR_AVX2_INLINE __m256 hsum8(const __m256 *a)
{
	__m256 h0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]),
				   _mm256_hadd_ps(a[2], a[3]));
	__m256 h1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]),
				   _mm256_hadd_ps(a[6], a[7]));

	return _mm256_add_ps(_mm256_permute2f128_ps(h0, h1, 0x20),
			     _mm256_permute2f128_ps(h0, h1, 0x31));
}

/*
 * One z tile: z[j][k] (+)= A[k][0..n) . x[j][0..n) for j < NB, k < NR.
 * A points at row k0 of the first panel (panels ps floats apart), x at the
 * first element of batch row 0 (rows ldx apart), z at z[0][k0] (rows ldz
 * apart). NB and NR are constants after inlining, so the loops unroll and
 * the accumulators live in registers.
 */
POLAR_AVX2_INLINE void az_tile(const float *A, size_t ps, const float *x,
			       size_t ldx, size_t n, float *z, uint32_t ldz,
			       int NB, int NR, int add)
{
	__m256 acc[3][8];
	size_t q, nq = n / 8;
	int j, k;

#pragma GCC unroll 3
	for (j = 0; j < NB; j++)
#pragma GCC unroll 8
		for (k = 0; k < NR; k++)
			acc[j][k] = _mm256_setzero_ps();

	for (q = 0; q < nq; q++) {
		const float *aq = A + q * ps;
		__m256 xv[3];

#pragma GCC unroll 3
		for (j = 0; j < NB; j++)
			xv[j] = _mm256_loadu_ps(x + j * ldx + q * 8);
#pragma GCC unroll 8
		for (k = 0; k < NR; k++) {
			__m256 a = _mm256_loadu_ps(aq + k * 8);

#pragma GCC unroll 3
			for (j = 0; j < NB; j++)
				acc[j][k] = _mm256_fmadd_ps(a, xv[j],
							    acc[j][k]);
		}
	}
	if (nq * 8 < n) {
		/* A's last panel is zero-padded: only x needs the mask. */
		const float *aq = A + nq * ps;
		__m256i m = lane_mask(n - nq * 8);
		__m256 xv[3];

#pragma GCC unroll 3
		for (j = 0; j < NB; j++)
			xv[j] = _mm256_maskload_ps(x + j * ldx + nq * 8, m);
#pragma GCC unroll 8
		for (k = 0; k < NR; k++) {
			__m256 a = _mm256_loadu_ps(aq + k * 8);

#pragma GCC unroll 3
			for (j = 0; j < NB; j++)
				acc[j][k] = _mm256_fmadd_ps(a, xv[j],
							    acc[j][k]);
		}
	}

#pragma GCC unroll 3
	for (j = 0; j < NB; j++) {
		float *zj = z + (size_t)j * ldz;

		if (NR == 8) {
			__m256 s = hsum8(acc[j]);

			if (add)
				s = _mm256_add_ps(s, _mm256_loadu_ps(zj));
			_mm256_storeu_ps(zj, s);
			continue;
		}
#pragma GCC unroll 2
		for (k = 0; k < NR; k += 4) {
			__m256 zero = _mm256_setzero_ps();
			__m128 s = hsum4(acc[j][k],
					 k + 1 < NR ? acc[j][k + 1] : zero,
					 k + 2 < NR ? acc[j][k + 2] : zero,
					 k + 3 < NR ? acc[j][k + 3] : zero);

			if (NR - k >= 4) {
				if (add)
					s = _mm_add_ps(s, _mm_loadu_ps(zj + k));
				_mm_storeu_ps(zj + k, s);
			} else {
				float t[4];
				int l;

				_mm_storeu_ps(t, s);
				for (l = 0; l < NR - k; l++)
					zj[k + l] = add ? zj[k + l] + t[l]
							: t[l];
			}
		}
	}
}

/* Instantiates az_tile for a run-time nr with NB and NR constant. */
#define AZ_CASE(nb, nr) \
	case nr: \
		az_tile(A, ps, x, ldx, n, z, ldz, nb, nr, add); \
		break

#define AZ_TILE_ARGS const float *A, size_t ps, const float *x, size_t ldx, \
	size_t n, float *z, uint32_t ldz, int nr, int add

POLAR_AVX2 static void az_tile_1(AZ_TILE_ARGS)
{
	switch (nr) {
	AZ_CASE(1, 1); AZ_CASE(1, 2); AZ_CASE(1, 3); AZ_CASE(1, 4);
	AZ_CASE(1, 5); AZ_CASE(1, 6); AZ_CASE(1, 7); AZ_CASE(1, 8);
	}
}

POLAR_AVX2 static void az_tile_2(AZ_TILE_ARGS)
{
	switch (nr) {
	AZ_CASE(2, 1); AZ_CASE(2, 2); AZ_CASE(2, 3); AZ_CASE(2, 4);
	}
}

POLAR_AVX2 static void az_tile_3(AZ_TILE_ARGS)
{
	switch (nr) {
	AZ_CASE(3, 1); AZ_CASE(3, 2); AZ_CASE(3, 3); AZ_CASE(3, 4);
	}
}

POLAR_AVX2 void polar_lowrank_az_avx2(const float *Ap, uint32_t rank,
				      size_t in_dim, size_t batch,
				      const float *x, float *z)
{
	size_t ps = (size_t)8 * rank, i0, b;
	uint32_t k;

	for (i0 = 0; i0 < in_dim; i0 += AZ_KBLOCK) {
		size_t n = in_dim - i0 < AZ_KBLOCK ? in_dim - i0 : AZ_KBLOCK;
		const float *A0 = Ap + i0 / 8 * ps;
		int add = i0 > 0;

		for (b = 0; b < batch;) {
			size_t nb = batch - b >= 3 ? 3 : batch - b;
			const float *xb = x + b * in_dim + i0;
			float *zb = z + b * rank;

			if (nb == 1) {
				for (k = 0; k < rank; k += 8)
					az_tile_1(A0 + k * 8, ps, xb, in_dim,
						  n, zb + k, rank,
						  rank - k < 8 ? rank - k : 8,
						  add);
			} else {
				for (k = 0; k < rank; k += 4) {
					int nr = rank - k < 4 ? rank - k : 4;

					if (nb == 3)
						az_tile_3(A0 + k * 8, ps, xb,
							  in_dim, n, zb + k,
							  rank, nr, add);
					else
						az_tile_2(A0 + k * 8, ps, xb,
							  in_dim, n, zb + k,
							  rank, nr, add);
				}
			}
			b += nb;
		}
	}
}

/*
 * One y tile: y[j][(h0+c)*8 .. +8) (+)= sum_k z[j][k] B^T[k][(h0+c)*8 ..)
 * for j < NB, c < NC. B's packed panels are 16 outputs wide (ps floats
 * apart, row k of a panel at k * 16); the tile reads half-panels h0 ..
 * h0 + NC, 8 outputs each, half h of panel h / 2 at offset 8 (h % 2).
 * With MASKED (NC 1) only the first `tail` lanes of y are read and
 * written (B's padding is zero).
 */
POLAR_AVX2_INLINE void bz_tile(const float *Bp, size_t ps, size_t h0,
			       uint32_t rank, const float *z, float *y,
			       size_t ldy, int NB, int NC, int accumulate,
			       int MASKED, size_t tail)
{
	__m256 acc[3][8];
	__m256i m = MASKED ? lane_mask(tail) : _mm256_setzero_si256();
	const float *bh[8];
	uint32_t k;
	int j, c;

#pragma GCC unroll 8
	for (c = 0; c < NC; c++)
		bh[c] = Bp + (h0 + c) / 2 * ps + (h0 + c) % 2 * 8;
#pragma GCC unroll 3
	for (j = 0; j < NB; j++)
#pragma GCC unroll 8
		for (c = 0; c < NC; c++) {
			const float *yp = y + j * ldy + c * 8;

			if (!accumulate)
				acc[j][c] = _mm256_setzero_ps();
			else if (MASKED)
				acc[j][c] = _mm256_maskload_ps(yp, m);
			else
				acc[j][c] = _mm256_loadu_ps(yp);
		}
	for (k = 0; k < rank; k++) {
		__m256 zb[3];

#pragma GCC unroll 3
		for (j = 0; j < NB; j++)
			zb[j] = _mm256_broadcast_ss(z + j * rank + k);
#pragma GCC unroll 8
		for (c = 0; c < NC; c++) {
			__m256 bv = _mm256_loadu_ps(bh[c] + k * 16);

#pragma GCC unroll 3
			for (j = 0; j < NB; j++)
				acc[j][c] = _mm256_fmadd_ps(zb[j], bv,
							    acc[j][c]);
		}
	}
#pragma GCC unroll 3
	for (j = 0; j < NB; j++)
#pragma GCC unroll 8
		for (c = 0; c < NC; c++) {
			float *yp = y + j * ldy + c * 8;

			if (MASKED)
				_mm256_maskstore_ps(yp, m, acc[j][c]);
			else
				_mm256_storeu_ps(yp, acc[j][c]);
		}
}

/* y rows [0, NB) over all of out_dim, in tiles of NCMAX half-panels. */
POLAR_AVX2_INLINE void bz_rows(const float *Bp, uint32_t rank, size_t out,
			       const float *z, float *y, int NB, int NCMAX,
			       int accumulate)
{
	size_t ps = (size_t)16 * rank, o = 0;

	for (; o + 8 * (size_t)NCMAX <= out; o += 8 * (size_t)NCMAX)
		bz_tile(Bp, ps, o / 8, rank, z, y + o, out, NB, NCMAX,
			accumulate, 0, 8);
	for (; o + 8 <= out; o += 8)
		bz_tile(Bp, ps, o / 8, rank, z, y + o, out, NB, 1,
			accumulate, 0, 8);
	if (o < out)
		bz_tile(Bp, ps, o / 8, rank, z, y + o, out, NB, 1,
			accumulate, 1, out - o);
}

POLAR_AVX2 static void bz_rows_1(const float *Bp, uint32_t rank, size_t out,
				 const float *z, float *y, int accumulate)
{
	if (accumulate)
		bz_rows(Bp, rank, out, z, y, 1, 8, 1);
	else
		bz_rows(Bp, rank, out, z, y, 1, 8, 0);
}

POLAR_AVX2 static void bz_rows_2(const float *Bp, uint32_t rank, size_t out,
				 const float *z, float *y, int accumulate)
{
	if (accumulate)
		bz_rows(Bp, rank, out, z, y, 2, 4, 1);
	else
		bz_rows(Bp, rank, out, z, y, 2, 4, 0);
}

POLAR_AVX2 static void bz_rows_3(const float *Bp, uint32_t rank, size_t out,
				 const float *z, float *y, int accumulate)
{
	if (accumulate)
		bz_rows(Bp, rank, out, z, y, 3, 4, 1);
	else
		bz_rows(Bp, rank, out, z, y, 3, 4, 0);
}

POLAR_AVX2 void polar_lowrank_bz_avx2(const float *Bp, uint32_t rank,
				      size_t out_dim, size_t batch,
				      const float *z, float *y,
				      int accumulate)
{
	size_t b = 0;

	for (; b + 3 <= batch; b += 3)
		bz_rows_3(Bp, rank, out_dim, z + b * rank, y + b * out_dim,
			  accumulate);
	if (batch - b == 2)
		bz_rows_2(Bp, rank, out_dim, z + b * rank, y + b * out_dim,
			  accumulate);
	else if (batch - b == 1)
		bz_rows_1(Bp, rank, out_dim, z + b * rank, y + b * out_dim,
			  accumulate);
}

#endif /* x86 && GNUC */
