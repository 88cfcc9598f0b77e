// SPDX-License-Identifier: MIT
/*
 * Host low-rank kernels against a naive triple loop in double: the
 * dispatched kernel, each vector kernel the CPU can run (AVX-512, AVX2+FMA)
 * and the portable one, odd sizes, ranks 1..64 (16 and 32 among them),
 * accumulate on and off, and the errors; and that each kernel computes a
 * row to the same bits whatever the batch around it.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "polar/lowrank.h"
#include "polar/polar.h"
#include "unit.h"

static uint64_t rs = 0x2545F4914F6CDD1Dull;

/* Uniform in [-1, 1). */
static float frand(void)
{
	rs ^= rs >> 12;
	rs ^= rs << 25;
	rs ^= rs >> 27;
	return (float)((double)((rs * 2685821657736338717ull) >> 40) /
		       (double)(1ull << 23)) - 1.0f;
}

static float *frand_alloc(size_t n)
{
	float *p = malloc((n ? n : 1) * sizeof(*p));
	size_t i;

	for (i = 0; p && i < n; i++)
		p[i] = frand();
	return p;
}

/*
 * Compares y = y0 (accumulate) + B (A x) with the naive double result.
 * Tolerance per element: 1e-5 * sqrt(in) * (|y0| + sum |B| |A| |x|), the
 * magnitude the float rounding errors scale with. Also checks z against
 * A x. Returns the number of bad elements.
 */
static int check_case(uint32_t rank, uint32_t in, uint32_t out,
		      uint32_t batch, int accumulate)
{
	size_t nA = (size_t)rank * in, nB = (size_t)rank * out;
	float *A = frand_alloc(nA), *B = frand_alloc(nB);
	float *Ap = malloc(polar_lowrank_packed_size(rank, in) * sizeof(float));
	float *Bp = malloc(polar_lowrank_packed_size(rank, out) * sizeof(float));
	float *x = frand_alloc((size_t)batch * in);
	float *y0 = frand_alloc((size_t)batch * out);
	float *y = malloc((size_t)batch * out * sizeof(float));
	float *z = malloc((size_t)batch * rank * sizeof(float));
	double *zr = malloc((size_t)rank * sizeof(double));
	double *zm = malloc((size_t)rank * sizeof(double));
	double tol = 1e-5 * sqrt((double)in);
	int bad = 0, err;
	uint32_t b, k, o, i;

	if (!A || !B || !Ap || !Bp || !x || !y0 || !y || !z || !zr || !zm) {
		CHECK(!"out of memory");
		bad = 1;
		goto out;
	}
	memcpy(y, y0, (size_t)batch * out * sizeof(float));
	CHECK(polar_lowrank_pack(A, B, rank, in, out, Ap, Bp) == 0);
	err = polar_lowrank_apply(Ap, Bp, rank, in, out, batch, x, z, y,
				  accumulate);
	CHECK(err == 0);
	for (b = 0; b < batch && !bad; b++) {
		const float *xb = x + (size_t)b * in;

		for (k = 0; k < rank; k++) {
			double s = 0, m = 0;

			for (i = 0; i < in; i++) {
				double p = (double)A[(size_t)k * in + i] * xb[i];

				s += p;
				m += fabs(p);
			}
			zr[k] = s;
			zm[k] = m;
			if (fabs(z[(size_t)b * rank + k] - s) > tol * m + 1e-30)
				bad++;
		}
		for (o = 0; o < out; o++) {
			double s = accumulate ? y0[(size_t)b * out + o] : 0;
			double m = fabs(s);

			for (k = 0; k < rank; k++) {
				double bk = B[(size_t)o * rank + k];

				s += bk * zr[k];
				m += fabs(bk) * zm[k];
			}
			if (fabs(y[(size_t)b * out + o] - s) > tol * m + 1e-30)
				bad++;
		}
	}
	if (bad)
		fprintf(stderr, "  %s rank %u in %u out %u batch %u acc %d: "
			"%d bad\n", polar_lowrank_kernel_name(), rank, in, out,
			batch, accumulate, bad);
out:
	free(A); free(B); free(Ap); free(Bp); free(x); free(y0); free(y); free(z);
	free(zr); free(zm);
	return bad;
}

static const uint32_t ins[] = { 1, 3, 17, 1000 };
static const uint32_t outs[] = { 1, 5, 129 };
static const uint32_t batches[] = { 1, 2, 7, 256 };
static const uint32_t ranks[] = { 1, 3, 8, 13, 16, 32, 64 };

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void sweep(void)
{
	size_t r, i, o, b;
	int acc, bad = 0;

	for (r = 0; r < N(ranks); r++)
		for (i = 0; i < N(ins); i++)
			for (o = 0; o < N(outs); o++)
				for (b = 0; b < N(batches); b++)
					for (acc = 0; acc <= 1; acc++)
						bad += check_case(ranks[r],
								  ins[i],
								  outs[o],
								  batches[b],
								  acc) != 0;
	/* Around the in-dimension block (512) and the register tiles. */
	bad += check_case(8, 511, 8, 3, 0) != 0;
	bad += check_case(8, 513, 33, 4, 1) != 0;
	bad += check_case(8, 1031, 64, 5, 1) != 0;
	bad += check_case(4, 2048, 257, 6, 0) != 0;
	bad += check_case(5, 8, 24, 1, 1) != 0;
	/* Ranks 16 and 32 at shapes that are not multiples of 8 or 64, and
	 * odd ranks around the 16-row and 8-row groups of the tiles. */
	bad += check_case(16, 100, 300, 16, 1) != 0;
	bad += check_case(32, 1555, 777, 5, 0) != 0;
	bad += check_case(32, 300, 1000, 17, 1) != 0;
	bad += check_case(16, 1000, 100, 1, 0) != 0;
	bad += check_case(32, 777, 1555, 1, 1) != 0;
	bad += check_case(15, 515, 23, 1, 0) != 0;
	bad += check_case(17, 515, 23, 7, 1) != 0;
	bad += check_case(33, 64, 9, 13, 1) != 0;
	bad += check_case(9, 1031, 77, 11, 1) != 0;
	CHECK(bad == 0);
}

static void test_dispatched(void)
{
	static const char *const vec[] = { "avx512", "avx2-fma" };
	const char *name;
	size_t v;

	polar_lowrank_force_kernel(NULL);
	name = polar_lowrank_kernel_name();
	printf("# dispatched kernel: %s\n", name);
	CHECK(!strcmp(name, "avx512") || !strcmp(name, "avx2-fma") ||
	      !strcmp(name, "portable"));
#if defined(__x86_64__) && defined(__GNUC__)
	{
		const char *env = getenv("POLAR_LOWRANK");

		__builtin_cpu_init();
		if (!env && __builtin_cpu_supports("avx512f") &&
		    __builtin_cpu_supports("avx512vl") &&
		    __builtin_cpu_supports("avx512dq") &&
		    __builtin_cpu_supports("avx2") &&
		    __builtin_cpu_supports("fma"))
			CHECK_STR(name, "avx512");
		else if (!env && __builtin_cpu_supports("avx2") &&
			 __builtin_cpu_supports("fma"))
			CHECK_STR(name, "avx2-fma");
	}
#endif
	sweep();
	/* Every vector kernel this CPU runs, not only the best one. */
	for (v = 0; v < N(vec); v++) {
		int err = polar_lowrank_force_kernel(vec[v]);

		if (err) {
			CHECK(err == -ENOTSUP);
			printf("# %s: not on this CPU\n", vec[v]);
			continue;
		}
		CHECK_STR(polar_lowrank_kernel_name(), vec[v]);
		printf("# forced kernel: %s\n", vec[v]);
		sweep();
	}
	polar_lowrank_force_kernel(NULL);
}

static void test_portable(void)
{
	polar_lowrank_force_portable(1);
	CHECK_STR(polar_lowrank_kernel_name(), "portable");
	sweep();
	polar_lowrank_force_portable(0);
}

/*
 * Row independence: a row's bits depend only on that row, A, B and the
 * kernel, never on the batch size or where the row sits in the call (the
 * layer runs its host path chunk by chunk, applications call with any
 * batch). Per kernel this CPU runs, shape and rank, every row of x is
 * computed alone, then in consecutive calls of 1..9, 37 and 300 rows and
 * in calls of uneven sizes; z, y (accumulating) and y from bz alone on the
 * same z must equal the lone row's bits. in_dim 77 and 300 lie below the
 * kernels' in-blocks at rank 8 (512 and 1024 floats), 1031 and 2600 above
 * every one; none is a multiple of 16.
 */
enum { RI_ROWS = 300 };

/*
 * Rows [0, RI_ROWS) in calls of the sizes in sz[] (cycled): z and y from
 * polar_lowrank_apply(), yb from polar_lowrank_bz() alone on zb (z when
 * NULL), so that B z is checked on the same z whatever A x gave. 0 or -1.
 */
static int rows_in_calls(const float *Ap, const float *Bp, uint32_t rank,
			 uint32_t in, uint32_t out, const float *x,
			 const float *y0, const uint32_t *sz, size_t nsz,
			 const float *zb, float *z, float *y, float *yb)
{
	uint32_t b = 0, n;
	size_t c = 0;

	memcpy(y, y0, sizeof(float) * RI_ROWS * out);
	for (; b < RI_ROWS; b += n, c++) {
		n = sz[c % nsz] < RI_ROWS - b ? sz[c % nsz] : RI_ROWS - b;
		if (polar_lowrank_apply(Ap, Bp, rank, in, out, n,
					x + (size_t)b * in,
					z + (size_t)b * rank,
					y + (size_t)b * out, 1) ||
		    polar_lowrank_bz(Bp, rank, out, n,
				     (zb ? zb : z) + (size_t)b * rank,
				     yb + (size_t)b * out, 0))
			return -1;
	}
	return 0;
}

/*
 * Rows whose z, y or bz-only y differ in any bit from the lone rows'
 * (z1, y1, yb1); prints the three counts when there are any.
 */
static int rows_differing(uint32_t rank, uint32_t in, uint32_t out,
			  const float *z1, const float *y1, const float *yb1,
			  const float *z, const float *y, const float *yb,
			  const char *calls)
{
	int dz = 0, dy = 0, dyb = 0, bad = 0;
	uint32_t b;

	for (b = 0; b < RI_ROWS; b++) {
		int ez = memcmp(z1 + (size_t)b * rank, z + (size_t)b * rank,
				sizeof(float) * rank) != 0;
		int ey = memcmp(y1 + (size_t)b * out, y + (size_t)b * out,
				sizeof(float) * out) != 0;
		int eyb = memcmp(yb1 + (size_t)b * out, yb + (size_t)b * out,
				 sizeof(float) * out) != 0;

		dz += ez;
		dy += ey;
		dyb += eyb;
		bad += ez || ey || eyb;
	}
	if (bad)
		fprintf(stderr, "  %s rank %u in %u out %u, calls of %s: rows "
			"differing from the row alone: z %d, y %d, bz alone "
			"%d (of %d)\n", polar_lowrank_kernel_name(), rank, in,
			out, calls, dz, dy, dyb, RI_ROWS);
	return bad;
}

static int check_rows_independent(uint32_t rank, uint32_t in, uint32_t out)
{
	static const uint32_t one[] = { 1 };
	static const uint32_t calls[] = { 2, 3, 4, 5, 6, 7, 8, 9, 37, 300 };
	static const uint32_t uneven[] = { 3, 1, 6, 2, 9, 37, 5, 4, 1, 7 };
	size_t nz = (size_t)RI_ROWS * rank, ny = (size_t)RI_ROWS * out;
	float *A = frand_alloc((size_t)rank * in);
	float *B = frand_alloc((size_t)rank * out);
	float *Ap = malloc(polar_lowrank_packed_size(rank, in) * sizeof(float));
	float *Bp = malloc(polar_lowrank_packed_size(rank, out) * sizeof(float));
	float *x = frand_alloc((size_t)RI_ROWS * in), *y0 = frand_alloc(ny);
	float *z1 = malloc(nz * 4), *y1 = malloc(ny * 4), *yb1 = malloc(ny * 4);
	float *z = malloc(nz * 4), *y = malloc(ny * 4), *yb = malloc(ny * 4);
	char what[16];
	size_t c;
	int bad = 0;

	if (!A || !B || !Ap || !Bp || !x || !y0 || !z1 || !y1 || !yb1 || !z ||
	    !y || !yb) {
		CHECK(!"out of memory");
		bad = 1;
		goto out;
	}
	CHECK(polar_lowrank_pack(A, B, rank, in, out, Ap, Bp) == 0);
	if (rows_in_calls(Ap, Bp, rank, in, out, x, y0, one, 1, NULL, z1, y1,
			  yb1)) {
		CHECK(!"a lone row failed");
		bad = 1;
		goto out;
	}
	for (c = 0; c <= N(calls); c++) {
		const uint32_t *sz = c < N(calls) ? &calls[c] : uneven;
		size_t nsz = c < N(calls) ? 1 : N(uneven);

		if (rows_in_calls(Ap, Bp, rank, in, out, x, y0, sz, nsz, z1, z,
				  y, yb)) {
			CHECK(!"a call failed");
			bad++;
			break;
		}
		if (c < N(calls))
			snprintf(what, sizeof(what), "%u", calls[c]);
		else
			snprintf(what, sizeof(what), "uneven sizes");
		bad += rows_differing(rank, in, out, z1, y1, yb1, z, y, yb,
				      what);
	}
out:
	free(A); free(B); free(Ap); free(Bp); free(x); free(y0);
	free(z1); free(y1); free(yb1); free(z); free(y); free(yb);
	return bad;
}

static void test_rows_independent(void)
{
	static const char *const kernels[] = { "avx512", "avx2-fma",
					       "portable" };
	static const uint32_t shapes[][2] = {	/* in, out */
		{ 77, 13 }, { 300, 129 }, { 1031, 517 }, { 2600, 40 },
	};
	static const uint32_t rk[] = { 5, 8, 16, 32, 33 };
	size_t kn, s, r;
	int bad = 0;

	for (kn = 0; kn < N(kernels); kn++) {
		int err = polar_lowrank_force_kernel(kernels[kn]);

		if (err) {
			CHECK(err == -ENOTSUP);
			printf("# %s: not on this CPU\n", kernels[kn]);
			continue;
		}
		for (s = 0; s < N(shapes); s++)
			for (r = 0; r < N(rk); r++)
				bad += check_rows_independent(rk[r],
							      shapes[s][0],
							      shapes[s][1]);
	}
	polar_lowrank_force_kernel(NULL);
	CHECK(bad == 0);
}

/* The two paths agree with each other, not only with the reference. */
static void test_paths_agree(void)
{
	enum { R = 8, IN = 300, OUT = 77, BATCH = 19 };
	float *A = frand_alloc(R * IN), *B = frand_alloc(R * OUT);
	float *Ap = malloc(polar_lowrank_packed_size(R, IN) * 4);
	float *Bp = malloc(polar_lowrank_packed_size(R, OUT) * 4);
	float *x = frand_alloc(BATCH * IN), *z = malloc(BATCH * R * 4);
	float *y1 = malloc(BATCH * OUT * 4), *y2 = malloc(BATCH * OUT * 4);
	int i, bad = 0;

	if (!A || !B || !Ap || !Bp || !x || !z || !y1 || !y2) {
		CHECK(!"out of memory");
		goto out;
	}
	CHECK(polar_lowrank_pack(A, B, R, IN, OUT, Ap, Bp) == 0);
	polar_lowrank_force_portable(1);
	CHECK(polar_lowrank_apply(Ap, Bp, R, IN, OUT, BATCH, x, z, y1, 0) ==
	      0);
	polar_lowrank_force_portable(0);
	CHECK(polar_lowrank_apply(Ap, Bp, R, IN, OUT, BATCH, x, z, y2, 0) ==
	      0);
	for (i = 0; i < BATCH * OUT; i++)
		if (fabsf(y1[i] - y2[i]) > 1e-4f * (1.0f + fabsf(y1[i])))
			bad++;
	CHECK(bad == 0);
out:
	free(A); free(B); free(Ap); free(Bp); free(x); free(z);
	free(y1); free(y2);
}

/* The packed layout itself, and az / bz used on their own. */
static void test_pack_split(void)
{
	/* rank 2, in 3, out 3 */
	const float A[2 * 3] = { 1, 2, 3, 4, 5, 6 };
	const float B[3 * 2] = { 1, 0, 0, 1, 1, 1 };
	const float x[3] = { 1, 1, 1 };
	float Ap[32], Bp[32], z[2], y[3] = { 100, 100, 100 };
	const float Ap_want[32] = { 1, 2, 3, 0, 0, 0, 0, 0,
				    4, 5, 6, 0, 0, 0, 0, 0 };
	const float Bp_want[32] = { 1, 0, 1, 0, 0, 0, 0, 0,
				    0, 0, 0, 0, 0, 0, 0, 0,
				    0, 1, 1, 0, 0, 0, 0, 0,
				    0, 0, 0, 0, 0, 0, 0, 0 };
	float big[2 * 20], bigp[2 * 32];
	int i;

	CHECK(polar_lowrank_packed_size(2, 3) == 32);
	CHECK(polar_lowrank_packed_size(8, 4096) == 8 * 4096);
	CHECK(polar_lowrank_packed_size(3, 17) == 3 * 32);
	CHECK(polar_lowrank_packed_size(0, 5) == 0);
	memset(Ap, 0xff, sizeof(Ap));
	memset(Bp, 0xff, sizeof(Bp));
	CHECK(polar_lowrank_pack(A, B, 2, 3, 3, Ap, Bp) == 0);
	CHECK(!memcmp(Ap, Ap_want, sizeof(Ap)));
	CHECK(!memcmp(Bp, Bp_want, sizeof(Bp)));
	/* Three panels: A[k][i] lands at (i / 8) * 16 + k * 8 + i % 8. */
	for (i = 0; i < 40; i++)
		big[i] = (float)i;
	memset(bigp, 0xff, sizeof(bigp));
	CHECK(polar_lowrank_pack(big, NULL, 2, 20, 0, bigp, NULL) == 0);
	CHECK(bigp[0] == 0 && bigp[8] == 20 && bigp[16] == 8);
	CHECK(bigp[24] == 28 && bigp[32] == 16 && bigp[35] == 19);
	CHECK(bigp[36] == 0 && bigp[40] == 36 && bigp[43] == 39);
	CHECK(bigp[44] == 0 && bigp[47] == 0 && bigp[63] == 0);
	/* Two panels of 16: B[o][k] at (o / 16) * 32 + k * 16 + o % 16. */
	memset(bigp, 0xff, sizeof(bigp));
	CHECK(polar_lowrank_pack(NULL, big, 2, 0, 20, NULL, bigp) == 0);
	CHECK(bigp[0] == 0 && bigp[1] == 2 && bigp[15] == 30);
	CHECK(bigp[16] == 1 && bigp[31] == 31 && bigp[32] == 32);
	CHECK(bigp[35] == 38 && bigp[36] == 0 && bigp[48] == 33);
	CHECK(bigp[51] == 39 && bigp[52] == 0 && bigp[63] == 0);

	CHECK(polar_lowrank_az(Ap, 2, 3, 1, x, z) == 0);
	CHECK(z[0] == 6 && z[1] == 15);
	CHECK(polar_lowrank_bz(Bp, 2, 3, 1, z, y, 1) == 0);
	CHECK(y[0] == 106 && y[1] == 115 && y[2] == 121);
	CHECK(polar_lowrank_bz(Bp, 2, 3, 1, z, y, 0) == 0);
	CHECK(y[0] == 6 && y[1] == 15 && y[2] == 21);
}

static void test_errors(void)
{
	/* Room for rank 64 on one row: polar_lowrank_packed_size(64, 1). */
	static float A[16 * 64], Bp[16 * 64];
	float x[1] = { 0 }, z[65];
	float y[1] = { 7 };

	CHECK(polar_lowrank_apply(A, Bp, 0, 1, 1, 1, x, z, y, 0) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "rank 0") != NULL);
	CHECK(polar_lowrank_apply(A, Bp, 65, 1, 1, 1, x, z, y, 0) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "rank 65") != NULL);
	CHECK(polar_lowrank_apply(NULL, Bp, 8, 1, 1, 1, x, z, y, 0) ==
	      -EINVAL);
	CHECK(polar_lowrank_apply(A, NULL, 8, 1, 1, 1, x, z, y, 0) == -EINVAL);
	CHECK(polar_lowrank_apply(A, Bp, 8, 1, 1, 1, NULL, z, y, 0) ==
	      -EINVAL);
	CHECK(polar_lowrank_apply(A, Bp, 8, 1, 1, 1, x, NULL, y, 0) ==
	      -EINVAL);
	CHECK(polar_lowrank_apply(A, Bp, 8, 1, 1, 1, x, z, NULL, 0) ==
	      -EINVAL);
	CHECK(strstr(polar_errmsg(), "NULL") != NULL);
	CHECK(polar_lowrank_apply(A, Bp, 8, 0, 1, 1, x, z, y, 0) == -EINVAL);
	CHECK(polar_lowrank_apply(A, Bp, 8, 1, 0, 1, x, z, y, 0) == -EINVAL);
	CHECK(polar_lowrank_apply(A, Bp, 8, 1, 1, 0, x, z, y, 0) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "is 0") != NULL);
	CHECK(y[0] == 7);	/* nothing written on error */
	CHECK(polar_lowrank_az(A, 65, 1, 1, x, z) == -EINVAL);
	CHECK(polar_lowrank_az(A, 8, 1, 1, x, NULL) == -EINVAL);
	CHECK(polar_lowrank_bz(Bp, 0, 1, 1, z, y, 0) == -EINVAL);
	CHECK(polar_lowrank_bz(NULL, 8, 1, 1, z, y, 0) == -EINVAL);
	CHECK(polar_lowrank_bz(Bp, 8, 0, 1, z, y, 0) == -EINVAL);
	CHECK(polar_lowrank_pack(A, NULL, 0, 1, 1, Bp, NULL) == -EINVAL);
	CHECK(polar_lowrank_pack(NULL, NULL, 8, 1, 1, NULL, NULL) == -EINVAL);
	CHECK(polar_lowrank_pack(A, NULL, 8, 1, 1, NULL, NULL) == -EINVAL);
	CHECK(polar_lowrank_pack(NULL, A, 8, 1, 0, NULL, Bp) == -EINVAL);
	CHECK(y[0] == 7);
	CHECK(polar_lowrank_force_kernel("avx1024") == -EINVAL);
	CHECK(strstr(polar_errmsg(), "avx1024") != NULL);
	/* The bounds themselves are valid (padded: 16 x rank floats). */
	CHECK(polar_lowrank_packed_size(64, 1) <= sizeof(Bp) / sizeof(Bp[0]));
	CHECK(polar_lowrank_apply(A, Bp, 1, 1, 1, 1, x, z, y, 0) == 0);
	CHECK(polar_lowrank_apply(A, Bp, 64, 1, 1, 1, x, z, y, 0) == 0);
}

int main(void)
{
	RUN(test_errors);
	RUN(test_pack_split);
	RUN(test_dispatched);
	RUN(test_portable);
	RUN(test_paths_agree);
	RUN(test_rows_independent);
	return unit_summary();
}
