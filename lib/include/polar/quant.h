/* SPDX-License-Identifier: MIT */
/*
 * Quantizers of libpolar-accel: weights to the device's integer codes,
 * activations to its input bytes, and the device's INT32 sums back to fp32.
 *
 * A polarized layer computes y = deq(Q(W) q(x)) + B(A x) + b. This header is
 * the Q, q and deq of that equation. W is fp32, out_dim x in_dim, row-major
 * (w[o * in_dim + i]), exactly the layout PROGRAM_TILES takes.
 *
 * There are no zero points anywhere: every format is a scale times an
 * integer code, so a device sum dequantizes with multiplications only.
 *
 * Weights (struct polar_qweights; scales[o * nblocks + b]):
 *
 *   INT8  symmetric per output channel: scale[o] = absmax(row o) / 127,
 *         code = clamp(round(w / scale), -127, 127). nblocks = 1.
 *   INT4  the same with 7: codes -7..7. (-128 and -8 are never produced, so
 *         the grid is symmetric and saturation cannot happen.)
 *   NF4   QLoRA NormalFloat-4 (Dettmers et al. 2023) with one absmax scale
 *         per block of `block` consecutive inputs of a row (default 64):
 *         scale[o][b] = absmax(w[o][b*block .. b*block + width_b)),
 *         code = index 0..15 of the codebook level nearest to w / scale.
 *         The last block may be ragged: nblocks = ceil(in_dim / block) and
 *         block b covers inputs [b*block, min((b+1)*block, in_dim)).
 *
 *   A row (INT) or block (NF4) that is all zero gets scale 0 and the code
 *   of value 0 (NF4: the level nearest 0, index 7 of the default codebook);
 *   nothing divides by zero and nothing becomes NaN.
 *
 * The NF4 codebook exists twice, on purpose:
 *
 *   polar_nf4_codebook[16]     QLoRA's float levels in [-1, 1]. Used by
 *                              polar_quantize_weights() to choose codes.
 *   polar_nf4_codebook_i8[16]  what the device's cells store: round(v*127)
 *                              (-127 -88 -67 ... 92 127), the default of the
 *                              firmware's CODEBOOK section. Dequantization
 *                              uses these values / 127, so host-side
 *                              simulation matches the device bit for bit in
 *                              the integer part.
 *
 *   Firmware may replace the device's codebook. struct polar_qweights
 *   carries the int8 codebook its codes are meant for (field codebook[]);
 *   polar_quantize_weights_cb() takes the firmware's table and then picks,
 *   for each weight, the level cb[i] / 127 nearest to w / scale.
 *
 * Activations (struct polar_act_quant), one scale per tensor, calibrated:
 *
 *   INT8 / INT4    symmetric signed: scale = clip / 127 (or / 7),
 *                  code = clamp(round(x / scale), -127, 127) (or -7..7).
 *   UINT8 / UINT4  unsigned, scale only, for inputs that are >= 0 (after a
 *                  ReLU): scale = clip / 255 (or / 15),
 *                  code = clamp(round(x / scale), 0, 255) (or 0..15);
 *                  negative inputs become 0. There is no zero point, so an
 *                  unsigned format is only right for non-negative inputs;
 *                  use a signed one otherwise.
 *
 *   clip is max |x| (signed) or max(x, 0) (unsigned) over the calibration
 *   data, or a percentile of those values (polar_act_calibrate()). Codes are
 *   one byte per element, as MATMUL reads them: INT8/INT4 two's complement,
 *   UINT8/UINT4 the unsigned value in the byte (read it through a uint8_t
 *   pointer). INT4/UINT4 inputs are not packed: one code per byte.
 *
 * Device sums and how they dequantize (polar_dequantize_sums()):
 *
 *   INT8/INT4 weights: one MATMUL over the whole layer returns, per vector
 *   k, S[k][o] = sum_i code_w[o][i] * code_x[k][i], and
 *       y[k][o] = w_scale[o] * x_scale * S[k][o] + bias[o].
 *   Tiling is free: the device adds tile partial sums digitally.
 *
 *   NF4 weights: a per-block scale along the input dimension cannot be
 *   factored out of a device sum that spans two blocks (a 128-row tile
 *   holds two 64-wide blocks). An NF4 layer therefore runs as nblocks
 *   device matrices: block b is the out_dim x width_b sub-matrix of codes
 *   whose columns are the inputs of block b (polar_qweights_block_codes()
 *   extracts it), programmed and multiplied as its own matrix with the
 *   matching slice x[k][b*block .. b*block + width_b) of the input codes.
 *   Its MATMUL returns P_b[k][o] = sum_{i in b} cb[code_w[o][i]] *
 *   code_x[k][i], and
 *       y[k][o] = x_scale * sum_b (scale[o][b] / 127) * P_b[k][o] + bias[o].
 *
 *   Layout of the sums, the same for every format (nblocks = 1 for INT):
 *       sums[(b * batch + k) * out_dim + o]
 *   i.e. block-major: the batch x out_dim INT32 outputs of block b's MATMUL,
 *   for b = 0 .. nblocks-1, back to back. A caller that splits a batch into
 *   several MATMULs dequantizes each split on its own (batch = its size).
 *
 * Errors are -errno (-EINVAL for a bad argument, -ENOMEM); polar_errmsg()
 * then names the function, the argument and the shape, e.g.
 * "quantize_weights: in_dim 0". Nothing is printed.
 *
 * All functions are thread-safe: they touch only their arguments (and the
 * calling thread's error message).
 */
#ifndef POLAR_QUANT_H
#define POLAR_QUANT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Weight formats; the values are the device's (POLAR_CIM_WFMT_* of
 * polar_cim_hw.h), so a format goes into a command as it is.
 */
enum polar_wfmt {
	POLAR_WFMT_INT8 = 0,
	POLAR_WFMT_INT4 = 1,
	POLAR_WFMT_NF4 = 2,
};

/* Input formats; the values are the device's (POLAR_CIM_XFMT_*). */
enum polar_xfmt {
	POLAR_XFMT_INT8 = 0,
	POLAR_XFMT_UINT8 = 1,
	POLAR_XFMT_INT4 = 2,
	POLAR_XFMT_UINT4 = 3,
};

/*
 * The formats' names, as options and saved calibrations spell them ("nf4",
 * "int4", "int8"; "int8", "uint8", "int4", "uint4"). The *_name() functions
 * return NULL for a value that is not a format, the *_parse() functions the
 * format or -EINVAL for a name that is not one (polar_errmsg() lists them).
 */
const char *polar_wfmt_name(enum polar_wfmt fmt);
int polar_wfmt_parse(const char *name);
const char *polar_xfmt_name(enum polar_xfmt fmt);
int polar_xfmt_parse(const char *name);

/* NF4 block size when polar_quantize_weights() is given block 0. */
#define POLAR_NF4_DEFAULT_BLOCK 64

/* The divisor of the device's fixed-point NF4 levels: value = cb[i] / 127. */
#define POLAR_NF4_CB_ONE 127

/* QLoRA's NF4 levels, ascending, code i -> polar_nf4_codebook[i]. */
extern const float polar_nf4_codebook[16];

/* The device's default NF4 codebook: round(polar_nf4_codebook[i] * 127). */
extern const int8_t polar_nf4_codebook_i8[16];

/**
 * struct polar_qweights - a quantized weight matrix
 * @fmt: its format
 * @out_dim, @in_dim: the shape of W
 * @block: NF4: inputs per scale block (the last one may be shorter);
 *	INT8/INT4: in_dim (one scale per whole row)
 * @nblocks: scales per row: ceil(in_dim / block); 1 for INT8/INT4
 * @codes: out_dim x in_dim bytes, row-major, the PROGRAM_TILES source of
 *	the whole matrix: INT8 -127..127, INT4 -7..7, NF4 index 0..15
 * @scales: out_dim x nblocks, row-major: scales[o * nblocks + b]. INT: the
 *	step (w ~ scale * code); NF4: the block's absmax (w ~ scale * level)
 * @codebook: NF4: the device codebook the codes index (int8 levels, value
 *	= codebook[i] / 127); polar_nf4_codebook_i8 unless given to
 *	polar_quantize_weights_cb(). Unused (but filled) for INT formats.
 *
 * polar_quantize_weights*() allocate @codes and @scales; release them with
 * polar_qweights_free(). The struct itself is the caller's.
 */
struct polar_qweights {
	enum polar_wfmt fmt;
	uint32_t out_dim;
	uint32_t in_dim;
	uint32_t block;
	uint32_t nblocks;
	int8_t *codes;
	float *scales;
	int8_t codebook[16];
};

/**
 * polar_quantize_weights() - quantize W into *q.
 * @w: out_dim x in_dim floats, row-major; every element finite
 * @out_dim, @in_dim: the shape, both >= 1
 * @fmt: POLAR_WFMT_INT8, _INT4 (per-output-channel) or _NF4 (per block)
 * @block: NF4: inputs per block, 0 = POLAR_NF4_DEFAULT_BLOCK; it need not
 *	divide in_dim (the last block is ragged) and may exceed it (one
 *	block). INT8/INT4: must be 0.
 * @q: filled in; whatever it held before is overwritten, not freed
 *
 * NF4 codes are the index of the float level polar_nf4_codebook[] nearest
 * to w / absmax (a value exactly halfway between two levels takes the lower
 * one); q->codebook is set to polar_nf4_codebook_i8.
 *
 * Returns 0, -EINVAL (zero dimension, unknown format, block given for an
 * INT format, a non-finite weight: the message names its row and column,
 * out_dim * in_dim overflowing size_t) or -ENOMEM. On error *q is zeroed
 * and holds no memory.
 */
int polar_quantize_weights(const float *w, uint32_t out_dim, uint32_t in_dim,
			   enum polar_wfmt fmt, uint32_t block,
			   struct polar_qweights *q);

/**
 * polar_quantize_weights_cb() - polar_quantize_weights() for a device
 * whose firmware replaced the NF4 codebook.
 * @cb: the firmware's CODEBOOK section (16 int8 levels, value cb[i] / 127,
 *	any order); NULL = exactly polar_quantize_weights()
 *
 * With @cb, NF4 codes index the level cb[i] / 127 nearest to w / absmax
 * (halfway: the lower level; a level listed twice: its lowest index) and
 * q->codebook is a copy of @cb. INT formats
 * ignore @cb apart from copying it. Returns as polar_quantize_weights().
 */
int polar_quantize_weights_cb(const float *w, uint32_t out_dim,
			      uint32_t in_dim, enum polar_wfmt fmt,
			      uint32_t block, const int8_t cb[16],
			      struct polar_qweights *q);

/**
 * polar_qweights_free() - release q->codes and q->scales and zero *q.
 * NULL, and a zeroed or already freed struct, are allowed.
 */
void polar_qweights_free(struct polar_qweights *q);

/**
 * polar_dequantize_weights() - w = deq(Q(W)), what the device multiplies by
 * (before analog losses).
 * @q: a result of polar_quantize_weights*()
 * @w: out_dim x in_dim floats, row-major, written
 *
 * INT: w[o][i] = scales[o] * codes[o][i].
 * NF4: w[o][i] = scales[o][b] * q->codebook[codes[o][i]] / 127, with the
 * device's int8 levels, not the float ones the codes were chosen from.
 * W - deq(Q(W)) is the quantization error the low-rank path calibrates on.
 * Returns 0 or -EINVAL (q inconsistent: NULL buffers, zero dimension,
 * unknown format, an NF4 code above 15).
 */
int polar_dequantize_weights(const struct polar_qweights *q, float *w);

/**
 * polar_qweights_block_codes() - the device matrix of NF4 block b.
 * @q: quantized weights (any format; INT formats have one block, the
 *	whole matrix)
 * @b: block index, 0 .. q->nblocks - 1
 * @dst: out_dim x width bytes, written row-major: dst[o * width + j] =
 *	q->codes[o * in_dim + b * block + j]. NULL = only return width.
 *
 * This is the PROGRAM_TILES source (in_dim = width, out_dim, wfmt NF4) of
 * the block's own device matrix; its MATMUL takes input columns
 * [b * block, b * block + width) and returns P_b of the layout above.
 * Returns width (>= 1; < block only for a ragged last block) or -EINVAL
 * (b out of range, q inconsistent).
 */
int polar_qweights_block_codes(const struct polar_qweights *q, uint32_t b,
			       int8_t *dst);

/**
 * struct polar_act_quant - per-tensor activation quantizer
 * @fmt: the MATMUL input format
 * @scale: x ~ scale * code; >= 0 and finite. 0 (calibration data all zero,
 *	or all negative for an unsigned format) makes every code 0.
 *
 * Filled by polar_act_calibrate(), or by hand.
 */
struct polar_act_quant {
	enum polar_xfmt fmt;
	float scale;
};

/**
 * polar_act_calibrate() - choose the scale of an activation quantizer.
 * @x: n calibration values (e.g. a layer's inputs over a calibration set),
 *	all finite
 * @n: >= 1
 * @fmt: the input format to calibrate for
 * @percentile: 0 = clip at the maximum (absmax); else in (0, 100]: clip at
 *	that nearest-rank percentile of the values (|x| for signed formats,
 *	max(x, 0) for unsigned ones): the ceil(p / 100 * n)-th smallest.
 *	E.g. 99.99 ignores the largest 0.01 % as outliers, which then
 *	saturate. 100 is the same as 0.
 * @aq: written: fmt and scale = clip / qmax (127, 255, 7 or 15)
 *
 * Absmax scales of several calibration batches combine by taking their
 * maximum; percentile scales do not (give all the data in one call).
 * Returns 0, -EINVAL (NULL, n 0, unknown format, percentile outside
 * [0, 100], a non-finite x[i]) or -ENOMEM (percentile needs a copy of x).
 */
int polar_act_calibrate(const float *x, size_t n, enum polar_xfmt fmt,
			float percentile, struct polar_act_quant *aq);

/**
 * polar_quantize_acts() - x to MATMUL input bytes.
 * @aq: the quantizer
 * @x: n floats (a batch: batch x in_dim, row-major, as MATMUL reads it)
 * @n: number of elements (0 is allowed and does nothing)
 * @codes: n bytes, written: round(x / scale) to nearest (halves away from
 *	zero), saturated to the format's range (signed -127..127 / -7..7,
 *	unsigned 0..255 / 0..15, negatives to 0); +-inf saturate too
 *
 * Returns 0 or -EINVAL (NULL with n > 0, unknown format, scale negative or
 * not finite, a NaN in x: the message gives its index; @codes is then
 * partly written).
 */
int polar_quantize_acts(const struct polar_act_quant *aq, const float *x,
			size_t n, int8_t *codes);

/**
 * polar_dequantize_acts() - x = scale * code, the input the device sees.
 * @codes: n bytes as polar_quantize_acts() writes them (unsigned formats
 *	are read as uint8_t); @x: n floats, written.
 * Returns 0 or -EINVAL (NULL with n > 0, unknown format, bad scale, an
 * INT4/UINT4 code outside its range).
 */
int polar_dequantize_acts(const struct polar_act_quant *aq,
			  const int8_t *codes, size_t n, float *x);

/* polar_dequantize_sums() flags. */
#define POLAR_DEQ_ACCUMULATE (1u << 0)	/* y += result instead of y = */

/**
 * polar_dequantize_sums() - device INT32 sums to fp32 layer outputs.
 * @q: the weights the device was programmed with (format, shape, scales)
 * @aq: the quantizer of the inputs the MATMULs were given
 * @sums: nblocks x batch x out_dim INT32, block-major (see the top of this
 *	header): sums[(b * batch + k) * out_dim + o]; for INT8/INT4 simply
 *	the batch x out_dim output of one MATMUL
 * @batch: input vectors (0 does nothing)
 * @bias: out_dim floats added to every output, or NULL
 * @flags: 0 or POLAR_DEQ_ACCUMULATE (add to @y, e.g. on top of the host's
 *	low-rank term B(A x) computed while the device worked)
 * @y: batch x out_dim floats, row-major: y[k * out_dim + o]
 *
 * INT: y[k][o] = scales[o] * aq->scale * sums[k][o] + bias[o]
 * NF4: y[k][o] = aq->scale * sum_b (scales[o][b] / 127) * sums[b][k][o]
 *		  + bias[o]
 * computed in double and rounded once to float. The codebook is not used:
 * the device's sums already hold the codebook values.
 * Returns 0, -EINVAL (NULL, q inconsistent, bad aq scale, unknown flags)
 * or -ENOMEM.
 */
int polar_dequantize_sums(const struct polar_qweights *q,
			  const struct polar_act_quant *aq,
			  const int32_t *sums, uint32_t batch,
			  const float *bias, unsigned int flags, float *y);

#ifdef __cplusplus
}
#endif

#endif /* POLAR_QUANT_H */
