// SPDX-License-Identifier: MIT
/*
 * Host low-rank kernels (z = A x, y (+)= B z): argument checks, the
 * portable C11 kernels and the run-time choice of kernel. The AVX2+FMA
 * kernels live in lowrank_avx2.c, the AVX-512 ones in lowrank_avx512.c.
 * Layouts are described in <polar/lowrank.h>.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "polar/lowrank.h"
#include "polar_internal.h"
#include "cim_engine.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define LOWRANK_HAVE_AVX2 1
/* Defined in lowrank_avx2.c; same arguments as the portable kernels. */
void polar_lowrank_az_avx2(const float *Ap, uint32_t rank, size_t in_dim,
			   size_t batch, const float *x, float *z);
void polar_lowrank_bz_avx2(const float *Bp, uint32_t rank, size_t out_dim,
			   size_t batch, const float *z, float *y,
			   int accumulate);
/* Defined in lowrank_avx512.c; the same again. */
void polar_lowrank_az_avx512(const float *Ap, uint32_t rank, size_t in_dim,
			     size_t batch, const float *x, float *z);
void polar_lowrank_bz_avx512(const float *Bp, uint32_t rank, size_t out_dim,
			     size_t batch, const float *z, float *y,
			     int accumulate);
#else
#define LOWRANK_HAVE_AVX2 0
#endif

enum lowrank_kernel {
	LOWRANK_UNRESOLVED = 0,
	LOWRANK_PORTABLE = 1,
	LOWRANK_AVX2 = 2,
	LOWRANK_AVX512 = 3,
};

static const char *const lowrank_names[] = {
	[LOWRANK_PORTABLE] = "portable",
	[LOWRANK_AVX2] = "avx2-fma",
	[LOWRANK_AVX512] = "avx512",
};

/* The run-time choice, made once; the override (a kernel or 0). */
static atomic_int lowrank_choice = LOWRANK_UNRESOLVED;
static atomic_int lowrank_forced;

/* The best kernel this CPU runs. */
static int lowrank_cpu_best(void)
{
#if LOWRANK_HAVE_AVX2
	unsigned int f = cim_cpu_features();

	if (!(f & CIM_CPU_AVX2_FMA))
		return LOWRANK_PORTABLE;
	if (f & CIM_CPU_AVX512)
		return LOWRANK_AVX512;
	return LOWRANK_AVX2;
#else
	return LOWRANK_PORTABLE;
#endif
}

/* LOWRANK_* for a kernel name, 0 if there is none of that name. */
static int lowrank_by_name(const char *name)
{
	int k;

	for (k = LOWRANK_PORTABLE; k <= LOWRANK_AVX512; k++)
		if (!strcmp(name, lowrank_names[k]))
			return k;
	return 0;
}

static int lowrank_kernel(void)
{
	int k, e;
	const char *env;

	k = atomic_load_explicit(&lowrank_forced, memory_order_relaxed);
	if (k != LOWRANK_UNRESOLVED)
		return k;
	k = atomic_load_explicit(&lowrank_choice, memory_order_relaxed);
	if (k != LOWRANK_UNRESOLVED)
		return k;
	k = lowrank_cpu_best();
	/* A named kernel caps the choice; it never goes past the CPU. */
	env = getenv("POLAR_LOWRANK");
	e = env ? lowrank_by_name(env) : 0;
	if (e && e < k)
		k = e;
	/* Every thread computes the same answer: a plain store is enough. */
	atomic_store_explicit(&lowrank_choice, k, memory_order_relaxed);
	return k;
}

const char *polar_lowrank_kernel_name(void)
{
	return lowrank_names[lowrank_kernel()];
}

int polar_lowrank_force_kernel(const char *name)
{
	int k;

	if (!name) {
		atomic_store_explicit(&lowrank_forced, LOWRANK_UNRESOLVED,
				      memory_order_relaxed);
		return 0;
	}
	k = lowrank_by_name(name);
	if (!k)
		return polar_fail(-EINVAL, "lowrank: name '%s' is no kernel "
				  "(portable, avx2-fma, avx512)", name);
	if (k > lowrank_cpu_best())
		return polar_fail(-ENOTSUP, "lowrank: this CPU cannot run the "
				  "%s kernel", name);
	atomic_store_explicit(&lowrank_forced, k, memory_order_relaxed);
	return 0;
}

void polar_lowrank_force_portable(int force)
{
	atomic_store_explicit(&lowrank_forced,
			      force ? LOWRANK_PORTABLE : LOWRANK_UNRESOLVED,
			      memory_order_relaxed);
}

/* --- portable kernels ------------------------------------------------ */

/*
 * z[b][k] = A[k] . x[b], A packed (panels of rank x 8). Eight partial sums
 * per dot product (the same reassociation as the vector kernel), written
 * so that the compiler's SLP vectorizer can use the target's vectors.
 */
static void az_portable(const float *restrict Ap, uint32_t rank, size_t in,
			size_t batch, const float *restrict x,
			float *restrict z)
{
	size_t b, p, np = in / 8, panel = (size_t)8 * rank;
	uint32_t k, l;

	for (b = 0; b < batch; b++) {
		const float *xb = x + b * in;

		for (k = 0; k < rank; k++) {
			const float *a = Ap + (size_t)k * 8;
			float s[8] = { 0 };

			for (p = 0; p < np; p++) {
				const float *ap = a + p * panel;
				const float *xp = xb + p * 8;

				s[0] += ap[0] * xp[0];
				s[1] += ap[1] * xp[1];
				s[2] += ap[2] * xp[2];
				s[3] += ap[3] * xp[3];
				s[4] += ap[4] * xp[4];
				s[5] += ap[5] * xp[5];
				s[6] += ap[6] * xp[6];
				s[7] += ap[7] * xp[7];
			}
			for (l = 0; l < in - np * 8; l++)
				s[l] += a[np * panel + l] * xb[np * 8 + l];
			z[b * rank + k] = ((s[0] + s[4]) + (s[1] + s[5])) +
					  ((s[2] + s[6]) + (s[3] + s[7]));
		}
	}
}

/*
 * y[b][8h .. 8h+8) (+)= sum_k z[b][k] B^T[k][8h .. 8h+8), B packed: the
 * half h % 2 of its panel h / 2 (panels of rank x 16, rows 16 apart).
 */
static void bz_portable(const float *restrict Bp, uint32_t rank, size_t out,
			size_t batch, const float *restrict z,
			float *restrict y, int accumulate)
{
	size_t b, h, nh = (out + 7) / 8, panel = (size_t)16 * rank;
	uint32_t k, l, n;

	for (b = 0; b < batch; b++) {
		float *yb = y + b * out;
		const float *zb = z + b * rank;

		for (h = 0; h < nh; h++) {
			const float *bp = Bp + h / 2 * panel + h % 2 * 8;
			float t[8] = { 0 };

			n = out - h * 8 < 8 ? (uint32_t)(out - h * 8) : 8;
			if (accumulate)
				for (l = 0; l < n; l++)
					t[l] = yb[h * 8 + l];
			for (k = 0; k < rank; k++) {
				const float *bk = bp + (size_t)k * 16;
				float zk = zb[k];

				t[0] += zk * bk[0];
				t[1] += zk * bk[1];
				t[2] += zk * bk[2];
				t[3] += zk * bk[3];
				t[4] += zk * bk[4];
				t[5] += zk * bk[5];
				t[6] += zk * bk[6];
				t[7] += zk * bk[7];
			}
			for (l = 0; l < n; l++)
				yb[h * 8 + l] = t[l];
		}
	}
}

/* --- public entry points --------------------------------------------- */

static int lowrank_check_rank(uint32_t rank)
{
	if (rank < 1 || rank > POLAR_LOWRANK_MAX_RANK)
		return polar_fail(-EINVAL, "lowrank: rank %u out of range 1..%u",
				  rank, POLAR_LOWRANK_MAX_RANK);
	return 0;
}

int polar_lowrank_az(const float *Ap, uint32_t rank, uint32_t in_dim,
		     uint32_t batch, const float *x, float *z)
{
	int err = lowrank_check_rank(rank);

	if (err)
		return err;
	if (!Ap || !x || !z)
		return polar_fail(-EINVAL, "lowrank: %s is NULL",
				  !Ap ? "Ap" : !x ? "x" : "z");
	if (!in_dim || !batch)
		return polar_fail(-EINVAL, "lowrank: %s is 0",
				  !in_dim ? "in_dim" : "batch");
#if LOWRANK_HAVE_AVX2
	switch (lowrank_kernel()) {
	case LOWRANK_AVX512:
		polar_lowrank_az_avx512(Ap, rank, in_dim, batch, x, z);
		return 0;
	case LOWRANK_AVX2:
		polar_lowrank_az_avx2(Ap, rank, in_dim, batch, x, z);
		return 0;
	}
#endif
	az_portable(Ap, rank, in_dim, batch, x, z);
	return 0;
}

int polar_lowrank_bz(const float *Bp, uint32_t rank, uint32_t out_dim,
		     uint32_t batch, const float *z, float *y, int accumulate)
{
	int err = lowrank_check_rank(rank);

	if (err)
		return err;
	if (!Bp || !z || !y)
		return polar_fail(-EINVAL, "lowrank: %s is NULL",
				  !Bp ? "Bp" : !z ? "z" : "y");
	if (!out_dim || !batch)
		return polar_fail(-EINVAL, "lowrank: %s is 0",
				  !out_dim ? "out_dim" : "batch");
#if LOWRANK_HAVE_AVX2
	switch (lowrank_kernel()) {
	case LOWRANK_AVX512:
		polar_lowrank_bz_avx512(Bp, rank, out_dim, batch, z, y,
					accumulate);
		return 0;
	case LOWRANK_AVX2:
		polar_lowrank_bz_avx2(Bp, rank, out_dim, batch, z, y,
				      accumulate);
		return 0;
	}
#endif
	bz_portable(Bp, rank, out_dim, batch, z, y, accumulate);
	return 0;
}

int polar_lowrank_apply(const float *Ap, const float *Bp, uint32_t rank,
			uint32_t in_dim, uint32_t out_dim, uint32_t batch,
			const float *x, float *z_scratch, float *y,
			int accumulate)
{
	int err = lowrank_check_rank(rank);

	/* Check everything before writing anything. */
	if (err)
		return err;
	if (!out_dim)
		return polar_fail(-EINVAL, "lowrank: out_dim is 0");
	if (!Bp || !y || !z_scratch)
		return polar_fail(-EINVAL, "lowrank: %s is NULL",
				  !Bp ? "Bp" : !y ? "y" : "z_scratch");
	err = polar_lowrank_az(Ap, rank, in_dim, batch, x, z_scratch);
	if (err)
		return err;
	return polar_lowrank_bz(Bp, rank, out_dim, batch, z_scratch, y,
				accumulate);
}

size_t polar_lowrank_packed_size(uint32_t rank, uint32_t dim)
{
	return (size_t)rank * (((size_t)dim + 15) / 16 * 16);
}

/*
 * Panels of w columns along dim:
 * P[(j / w) * w * rank + k * w + j % w] = M(k, j), zeros up to the end of
 * polar_lowrank_packed_size().
 */
static void lowrank_pack_one(const float *M, size_t row_stride,
			     size_t col_stride, uint32_t rank, uint32_t dim,
			     uint32_t w, float *P)
{
	size_t j, panel = (size_t)w * rank;
	uint32_t k;

	memset(P, 0, polar_lowrank_packed_size(rank, dim) * sizeof(*P));
	for (j = 0; j < dim; j++)
		for (k = 0; k < rank; k++)
			P[j / w * panel + (size_t)k * w + j % w] =
				M[k * row_stride + j * col_stride];
}

int polar_lowrank_pack(const float *A, const float *B, uint32_t rank,
		       uint32_t in_dim, uint32_t out_dim, float *Ap,
		       float *Bp)
{
	int err = lowrank_check_rank(rank);

	if (err)
		return err;
	if (!A != !Ap || !B != !Bp || (!A && !B))
		return polar_fail(-EINVAL, "lowrank: pack needs A with Ap "
				  "and/or B with Bp");
	if ((A && !in_dim) || (B && !out_dim))
		return polar_fail(-EINVAL, "lowrank: %s is 0",
				  A && !in_dim ? "in_dim" : "out_dim");
	if (A)	/* A(k, i) = A[k * in_dim + i] */
		lowrank_pack_one(A, in_dim, 1, rank, in_dim, 8, Ap);
	if (B)	/* B^T(k, o) = B[o * rank + k] */
		lowrank_pack_one(B, 1, rank, rank, out_dim, 16, Bp);
	return 0;
}
