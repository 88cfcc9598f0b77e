/* SPDX-License-Identifier: MIT */
/*
 * Host low-rank kernels: the rank-r correction e = B (A x) that the CPU
 * computes while the device computes the quantized product of a polarized
 * layer, y = deq(Q(W) q(x)) + B (A x) + b.
 *
 * Shapes and layouts (fp32, row-major, batch-major activations):
 *
 *   A   rank x in_dim      A[k * in_dim + i]      as calibration makes it
 *   B   out_dim x rank     B[o * rank + k]        as calibration makes it
 *   x   batch x in_dim     x[b * in_dim + i]
 *   z   batch x rank       z[b * rank + k]        z = A x, per batch row
 *   y   batch x out_dim    y[b * out_dim + o]     y (+)= B z, per batch row
 *
 * The kernels read A and B in a packed form that polar_lowrank_pack()
 * makes once, at calibration time. Both are cut into panels of columns of
 * the long dimension (in_dim for A, 8 wide; out_dim for B, 16 wide), each
 * panel a contiguous rank x width block, the last one padded with zeros:
 *
 *   Ap[(i / 8) * 8 * rank + k * 8 + i % 8] = A[k][i]
 *   Bp[(o / 16) * 16 * rank + k * 16 + o % 16] = B[o][k]
 *
 * (polar_lowrank_packed_size() floats each). Why: z = A x is rank dot
 * products of length in_dim per batch row and y = B z is, per 16 outputs,
 * rank FMAs of a broadcast z[b][k] with 16 floats of B's column k; in the
 * panel layout both kernels read one contiguous stream of vectors, and a
 * row of B's panels is one AVX-512 vector (two AVX2 ones), so y = B z
 * needs no lane shuffles.
 * Row-major A and column-major B would read rank streams whose stride is
 * the layer width, and at power-of-two widths (4096 floats = 16 KiB) those
 * streams all map to the same L1 sets and evict each other (measured on
 * this project's bench machine at 4096 x 4096: B z at half the speed of
 * the panel layout, A x at 85%).
 *
 * 1 <= rank <= 64 (8 is the design point). The kernels are single-threaded
 * (the other core runs the device in real use), allocate nothing, keep no
 * state between calls and are safe to call from several threads at once.
 * x, z and y must not overlap; Ap and Bp must not overlap y or z.
 * A row's bits depend only on that row, A, B and the kernel: not on the
 * batch size, the row's place in the call or the rows beside it, so a
 * batch cut into calls of any sizes gives the same bits as done whole
 * (polar_qlayer_forward() relies on it; test_lowrank and test_qlayer
 * check it).
 *
 * Kernels: AVX-512 (F, VL, DQ) when the CPU has it, else AVX2+FMA when it
 * has both, else a portable C11 path, chosen at run time (all read the
 * same packed panels).
 * POLAR_LOWRANK=<kernel name> in the environment (read at the first call)
 * caps the choice: avx2-fma or portable. polar_lowrank_force_kernel()
 * selects a kernel for the process (tests, benchmarks). Results of the
 * paths agree to float rounding (the order of the sums differs), not bit
 * for bit.
 *
 * Errors are -EINVAL (rank out of 1..64, a NULL pointer, a zero dimension)
 * with a sentence in polar_errmsg().
 */
#ifndef POLAR_LOWRANK_H
#define POLAR_LOWRANK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The largest rank the kernels take. */
#define POLAR_LOWRANK_MAX_RANK 64

/* Floats of a packed A (dim = in_dim) or B (dim = out_dim): rank x dim
 * rounded up to a multiple of 16. 0 if rank or dim is 0. */
size_t polar_lowrank_packed_size(uint32_t rank, uint32_t dim);

/*
 * Writes Ap from A (rank x in_dim, row-major) and Bp from B (out_dim x
 * rank, row-major), polar_lowrank_packed_size() floats each; either pair
 * may be NULL to pack only the other. Returns 0 or -EINVAL.
 */
int polar_lowrank_pack(const float *A, const float *B, uint32_t rank,
		       uint32_t in_dim, uint32_t out_dim, float *Ap,
		       float *Bp);

/*
 * z = A x for each of batch rows of x: z[b][k] = sum_i A[k][i] x[b][i],
 * A packed. Returns 0 or -EINVAL.
 */
int polar_lowrank_az(const float *Ap, uint32_t rank, uint32_t in_dim,
		     uint32_t batch, const float *x, float *z);

/*
 * y = B z (accumulate 0) or y += B z (accumulate 1) for each batch row:
 * y[b][o] (+)= sum_k B[o][k] z[b][k], B packed. Returns 0 or -EINVAL.
 */
int polar_lowrank_bz(const float *Bp, uint32_t rank, uint32_t out_dim,
		     uint32_t batch, const float *z, float *y, int accumulate);

/*
 * y (+)= B (A x): polar_lowrank_az() into z_scratch (batch x rank floats),
 * then polar_lowrank_bz(). On return z_scratch holds A x. Nothing is
 * written when the arguments are wrong. Returns 0 or -EINVAL.
 */
int polar_lowrank_apply(const float *Ap, const float *Bp, uint32_t rank,
			uint32_t in_dim, uint32_t out_dim, uint32_t batch,
			const float *x, float *z_scratch, float *y,
			int accumulate);

/* The kernel the next call will use: "avx512", "avx2-fma" or "portable". */
const char *polar_lowrank_kernel_name(void);

/*
 * Makes every later call of this process use the kernel of that name
 * ("avx512", "avx2-fma", "portable"); NULL returns to the run-time
 * choice. Returns 0, -EINVAL (no such kernel) or -ENOTSUP (this CPU
 * cannot run it), with a sentence in polar_errmsg().
 */
int polar_lowrank_force_kernel(const char *name);

/*
 * force != 0 is polar_lowrank_force_kernel("portable"); 0 returns to the
 * run-time choice (for tests and benchmarks).
 */
void polar_lowrank_force_portable(int force);

#ifdef __cplusplus
}
#endif

#endif /* POLAR_LOWRANK_H */
