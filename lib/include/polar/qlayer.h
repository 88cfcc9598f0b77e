/* SPDX-License-Identifier: MIT */
/*
 * Polarized layers: y = deq(Q(W) q(x)) + B(A x) + b.
 *
 * A layer quantizes its fp32 weights (<polar/quant.h>), programs them onto
 * device tiles once, and then runs batches: the input is quantized with
 * the layer's activation scale, the device computes the quantized product
 * while the calling thread computes the rank-r term B(A x) on the CPU
 * (<polar/lowrank.h>), and the two meet in fp32 with the bias. A batch
 * larger than the device's max_batch runs in chunks; the host path of
 * each chunk runs while the device computes that chunk.
 *
 * Tiling. The weight matrix is cut into parts: one per NF4 scale block of
 * the input (INT formats: one for the whole input) and per column tile of
 * the output (cols outputs). Each part is programmed into its own tile
 * range and multiplied by its own MATMUL job; parts go round-robin over the
 * devices given and over each device's queues, so a large layer keeps all
 * of them busy. A convolution is the same layer applied to im2col patches.
 *
 * A layer is used by one thread at a time, like its devices.
 */
#ifndef POLAR_QLAYER_H
#define POLAR_QLAYER_H

#include <stdint.h>

#include "polar/polar.h"
#include "polar/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * struct polar_qlayer_desc - what a layer is made from
 * @in_dim, @out_dim: the shape of @weight (out_dim x in_dim, row-major)
 * @weight: fp32 weights; quantized with @wfmt (and @block for NF4)
 * @bias: out_dim values, or NULL
 * @wfmt: weight format; @block: NF4 scale block (0 = 64)
 * @xfmt: input format; @x_scale: activation scale (polar_act_calibrate())
 * @rank: rank of the host path (0 = none); @A: rank x in_dim, @B: out_dim
 *	x rank, row-major fp32 (copied)
 * @adc_fs_q8: the MATMULs' ADC full scale, Q8 cells (0 = firmware default)
 * @job_seed: seed of the device's read noise for this layer's MATMULs
 */
struct polar_qlayer_desc {
	uint32_t in_dim;
	uint32_t out_dim;
	const float *weight;
	const float *bias;
	enum polar_wfmt wfmt;
	uint32_t block;
	enum polar_xfmt xfmt;
	float x_scale;
	uint32_t rank;
	const float *A;
	const float *B;
	uint32_t adc_fs_q8;
	uint32_t job_seed;
};

struct polar_qlayer;

/*
 * Quantizes the weights and programs them onto free tiles of the devices
 * (ndevs >= 1; parts are spread over them). Waits for the programming.
 *
 * A layer reaps its own jobs' completions on the handles it is given, so
 * this and polar_qlayer_forward() need those handles idle: with any job
 * of the application in flight on one (polar_inflight() > 0) they return
 * -EBUSY and touch nothing. An application that keeps its own jobs
 * running beside a layer opens the device a second time for them.
 */
int polar_qlayer_create(struct polar_device **devs, uint32_t ndevs,
		       const struct polar_qlayer_desc *desc,
		       struct polar_qlayer **layer);

/* Releases the layer's tiles and buffers. NULL is allowed. */
void polar_qlayer_destroy(struct polar_qlayer *layer);

/* Replaces the host path (rank 0 removes it); A and B are copied. */
int polar_qlayer_set_lowrank(struct polar_qlayer *layer, uint32_t rank,
			    const float *A, const float *B);

/* Changes the ADC full scale of later runs (0 = firmware default). */
void polar_qlayer_set_adc_fs(struct polar_qlayer *layer, uint32_t adc_fs_q8);

/* The quantized weights the device holds. */
const struct polar_qweights *polar_qlayer_qweights(const struct polar_qlayer *l);

/* Tiles the layer occupies on all its devices together. */
uint32_t polar_qlayer_tiles(const struct polar_qlayer *layer);

/* What polar_qlayer_forward() runs: */
enum polar_forward_flags {
	POLAR_FWD_OVERLAP = 0,		/* device and host path at once */
	POLAR_FWD_SERIAL = 1 << 0,	/* each chunk's host path after its
					 * device work (for measurements) */
	POLAR_FWD_DEVICE_ONLY = 1 << 1,	/* no host path: deq(Q(W) q(x)) + b */
	POLAR_FWD_HOST_ONLY = 1 << 2,	/* only B(A x), no device, no bias */
};

/*
 * y (batch x out_dim) = the layer applied to x (batch x in_dim), both
 * row-major fp32. flags: enum polar_forward_flags. -EBUSY when one of
 * the layer's handles has jobs in flight (see polar_qlayer_create()),
 * unless POLAR_FWD_HOST_ONLY, which uses no device.
 */
int polar_qlayer_forward(struct polar_qlayer *layer, uint32_t batch,
			const float *x, float *y, unsigned int flags);

/*
 * The device's INT32 sums of the last forward, as polar_dequantize_sums()
 * takes them (block-major: sums[(b * batch + k) * out_dim + o]), for
 * calibration code that fits to what the chip computes.
 */
const int32_t *polar_qlayer_last_sums(const struct polar_qlayer *layer);

#ifdef __cplusplus
}
#endif

#endif /* POLAR_QLAYER_H */
