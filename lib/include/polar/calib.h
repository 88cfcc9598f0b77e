/* SPDX-License-Identifier: MIT */
/*
 * Calibration of polarized layers: the rank-r host path A (rank x in), B
 * (out x rank), row-major fp32, that cancels what the device gets wrong,
 * and the ADC full scale of each layer.
 *
 * Fitting methods (all at equal rank):
 *
 *   polar_calib_svd()   ZeroQuant-V2 LoRC: truncated SVD of the weight
 *                       quantization error E = W - deq(Q(W)).
 *   polar_calib_act()   LQER / QERA: truncated SVD of E diag(s), s_i =
 *                       sqrt(mean x_i^2) over calibration inputs
 *                       (polar_calib_act_scales()), scaling undone in A.
 *   polar_calib_rrr()   device in the loop: (weighted) reduced-rank ridge
 *                       regression of a residual R (n x out, e.g. target
 *                       outputs minus what the device returned) on the
 *                       layer input X (n x in), optionally regularised
 *                       towards an initial A0, B0 (e.g. the act fit) and
 *                       with a per-output weight (e.g. the loss's diagonal
 *                       Fisher at that output: the "sensitivity" method).
 *
 * Only out x out eigenproblems are solved (LAPACK's dsyevd, double); the
 * in x in system of the ridge regression is solved by Cholesky (LAPACK's
 * dpotrf). Everything is deterministic for one LAPACK build on one machine
 * (fixed summation orders; the library starts no threads of its own there).
 *
 * polar_calib_adc_fs() chooses a layer's ADC full scale from the
 * distribution of the per-conversion analog sums the device will see,
 * estimated on the host from the bit-planes of the quantized weights and
 * of calibration inputs (see its comment).
 *
 * Errors are -EINVAL (bad argument) or -ENOMEM with a sentence in
 * polar_errmsg(); nothing is printed.
 */
#ifndef POLAR_CALIB_H
#define POLAR_CALIB_H

#include <stddef.h>
#include <stdint.h>

#include "polar/quant.h"
#include "polar/nn.h"

struct polar_caps;

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Eigen-decomposition of the symmetric n x n matrix S (row-major, double,
 * destroyed) by LAPACK's dsyevd: evals[n] descending, evecs n x n row-major
 * with eigenvector k in column k (evecs[i * n + k]). n <= 4096. -EDOM for
 * a NaN or infinite entry and when LAPACK does not converge.
 */
int polar_calib_symeig(double *S, uint32_t n, double *evals, double *evecs);

/*
 * A, B of rank `rank` (1..min(out, in, 64)) with B A the best rank-r
 * approximation of E (out x in, row-major) in Frobenius norm: the top-r
 * left singular vectors U_r (from E E^T) give B = U_r, A = U_r^T E.
 */
int polar_calib_svd(const float *E, uint32_t out, uint32_t in, uint32_t rank,
		    float *A, float *B);

/* s[i] = sqrt(mean over n rows of x[k][i]^2), X n x in row-major. */
int polar_calib_act_scales(const float *X, size_t n, uint32_t in, float *s);

/*
 * Activation-aware: U_r = top-r left singular vectors of E diag(s);
 * B = U_r, A = U_r^T E diag(s) diag(s)^-1 = U_r^T E. B A is the best rank-r
 * approximation of E in the norm ||(.) diag(s)||_F.
 */
int polar_calib_act(const float *E, uint32_t out, uint32_t in, const float *s,
		    uint32_t rank, float *A, float *B);

/**
 * polar_calib_rrr() - weighted reduced-rank ridge regression
 * @X: n x in inputs; @R: n x out residuals (what B A x should add)
 * @out_weight: out positive weights w_o, or NULL (all 1)
 * @lambda_rel: ridge strength relative to mean(diag(X^T X)) (> 0)
 * @A0, @B0: rank0 initial factors the ridge pulls towards (NULL: towards 0)
 *
 * M = (X^T X + l I)^-1 (X^T R + l M0), M0 = (B0 A0)^T; F = X M D^1/2 with
 * D = diag(w); V = top-r eigenvectors of F^T F (out x out); then
 * B = D^-1/2 V, A = V^T D^1/2 M^T: the rank-r fit minimising
 * sum_o w_o ||R_o - X M_r,o||^2 over the ridge solution's column space.
 */
int polar_calib_rrr(const float *X, const float *R, size_t n, uint32_t in,
		    uint32_t out, uint32_t rank, const float *out_weight,
		    double lambda_rel, const float *A0, const float *B0,
		    uint32_t rank0, float *A, float *B);

/**
 * polar_calib_rrr_metric() - polar_calib_rrr() with a whole output metric
 * @metric: out x out symmetric positive definite W (row-major), or NULL
 *	(identity): minimises sum over rows of (R - X M_r) W (R - X M_r)^T,
 *	so errors along directions the loss is sensitive to (e.g. W the
 *	output Fisher of polar_calib_output_fisher_full(), regularised)
 *	cost more, whatever their basis. With W diagonal it is
 *	polar_calib_rrr() with out_weight its diagonal.
 *
 * B = W^-1/2 V_r, A = V_r^T W^1/2 M^T with V_r the top-r eigenvectors of
 * W^1/2 (X M)^T (X M) W^1/2.
 */
int polar_calib_rrr_metric(const float *X, const float *R, size_t n,
			   uint32_t in, uint32_t out, uint32_t rank,
			   const double *metric, double lambda_rel,
			   const float *A0, const float *B0, uint32_t rank0,
			   float *A, float *B);

/**
 * polar_calib_rrr_select() - polar_calib_rrr_metric() with the ridge
 *	chosen on held-out rows
 * @held_out: n flags; rows with a non-zero flag are held out (both parts
 *	must have rows). Hold out whole samples (all the positions of an
 *	image), or neighbouring rows make the check look better than it is.
 * @lambdas: @nlambdas candidate lambda_rel values, 1..64 of them; they
 *	are fitted on a thread per CPU, and the choice does not depend on it
 * @chosen: written: the candidate used
 *
 * Fits on the other rows with each candidate, keeps the one whose fit has
 * the smallest metric-weighted squared error on the held-out rows, and
 * refits with it on all n rows. With a few hundred calibration samples
 * and a wide layer (fc1: 1568 inputs from 512 images) a small ridge fits
 * the sample's noise, and how much ridge a layer needs depends on the
 * chip: a fixed value is too little on one and too much on another.
 */
int polar_calib_rrr_select(const float *X, const float *R, size_t n,
			   uint32_t in, uint32_t out, uint32_t rank,
			   const double *metric, const uint8_t *held_out,
			   const double *lambdas, unsigned int nlambdas,
			   const float *A0, const float *B0, uint32_t rank0,
			   float *A, float *B, double *chosen);

/**
 * polar_calib_adc_fs() - ADC full scale from partial-sum statistics.
 * @q: the layer's quantized weights (INT4/INT8 one part over all inputs;
 *	NF4 one device matrix per scale block)
 * @xcodes: n x in input codes as polar_quantize_acts() writes them
 * @xfmt: their format
 * @rows, @rows_per_conv: the device's tile rows and row parallelism
 * @percentile: in (0, 100], e.g. 99.9
 * @fs_q8: written: ceil(percentile of the analog sums) cells, Q8, >= 256
 *
 * Every conversion the device makes sums, over one row group of one tile,
 * the cells whose input bit (plane i) and stored weight bit (plane j) are
 * both 1. This counts those ON cells exactly (popcounts of bit masks) for
 * every (input row, column, group, plane pair) of the n given inputs and
 * returns the chosen percentile of the counts. Static variability changes
 * a sum by about sigma * sqrt(count), small beside the count, and is
 * ignored. Clipping the top (100 - percentile) % costs little; a full
 * scale at the maximum would waste ADC levels on sums that never occur.
 */
int polar_calib_adc_fs(const struct polar_qweights *q, const int8_t *xcodes,
		       size_t n, enum polar_xfmt xfmt, uint32_t rows,
		       uint32_t rows_per_conv, double percentile,
		       uint32_t *fs_q8);

/**
 * polar_calib_adc_fs_recon() - a full scale fitted to the chip's
 * reconstruction.
 * @fs_q8: the statistics' choice (polar_calib_adc_fs()), Q8 cells
 * @caps: the device it is for (adc_bits, recon, recon_frac_bits)
 *
 * Returns @fs_q8, raised to L = 2^adc_bits - 1 cells when the chip rounds
 * every conversion to whole cells (recon cells with F = 0). There the
 * output of a conversion is round(code * FS / L): an ADC step below one
 * cell (FS < L) still gives whole cells, now rounded twice and clipped
 * earlier, while FS = L gives round(n + deviation) exactly. Under code
 * reconstruction (the default) or with fractional bits the finer step
 * is kept, and the statistics' choice stands.
 */
uint32_t polar_calib_adc_fs_recon(uint32_t fs_q8,
				  const struct polar_caps *caps);

/**
 * polar_calib_output_fisher() - loss sensitivity of each layer's outputs.
 * @fisher: for every layer with weights, rows floats written at
 *	fisher[layer][o]; other entries of the array are left NULL. Free
 *	each with free().
 *
 * The diagonal (empirical) Fisher of the fp32 model's cross-entropy with
 * respect to each output channel: mean over the n samples of
 * (dL/d b_o)^2, with b the layer's bias. For a linear layer dL/db_o is
 * exactly dL/dy_o; for a conv it is the gradient summed over the output
 * positions of channel o. Computed one sample at a time with
 * polar_model_grad().
 */
int polar_calib_output_fisher(const struct polar_model *m, size_t n,
			      const float *x, const uint8_t *labels,
			      float *fisher[POLAR_MODEL_MAX_LAYERS]);

/**
 * polar_calib_output_fisher_full() - the whole (empirical) Fisher of each
 * layer's outputs: gram[layer] is rows x rows doubles, the mean over the n
 * samples of g g^T with g = dL/d b (as above), so that an output error e
 * costs about e^T gram e of loss. Its diagonal is polar_calib_output_fisher().
 * Layers without weights get NULL; free each with free().
 */
int polar_calib_output_fisher_full(const struct polar_model *m, size_t n,
				   const float *x, const uint8_t *labels,
				   double *gram[POLAR_MODEL_MAX_LAYERS]);

/* ---- trained host paths ------------------------------------------------ */

struct polar_qlayer;

/**
 * struct polar_calib_train_layer - one layer of the model being trained.
 * @qlayer: the layer's main path (made from a descriptor without a bias:
 *	the model adds its own), or NULL: the layer runs in fp32 on the host
 *	and is not trained (its other fields are ignored)
 * @rank: of the host path, 1..min(rows, cols)
 * @A: rank x cols, @B: rows x rank, @bias: rows: the host path
 *	y = main(x) + B (A x) + bias, trained in place from their values
 * @fisher: rows floats, the diagonal Fisher of the layer's outputs
 *	(polar_calib_output_fisher()), or NULL: no per-layer loss term
 */
struct polar_calib_train_layer {
	struct polar_qlayer *qlayer;
	uint32_t rank;
	float *A, *B, *bias;
	const float *fisher;
};

/**
 * struct polar_calib_train_progress - what the progress callback sees.
 * @epoch, @epochs: from 1; @batch, @batches: from 1, within the epoch
 * @loss: mean training loss over the epoch so far
 * @epoch_done: 1 after an epoch, when @val_loss is that epoch's
 *	validation loss
 */
struct polar_calib_train_progress {
	unsigned int epoch, epochs;
	size_t batch, batches;
	double loss, val_loss;
	int epoch_done;
};

/**
 * struct polar_calib_train_opts - how polar_calib_train() trains.
 * @epochs: at most, 1..1000
 * @batch: images per step, 1..4096
 * @lr: Adam's step, in (0, 1]
 * @patience: epochs without a lower validation loss before stopping, 0
 *	never stops early
 * @layer_weight: weight of the Fisher-weighted layer errors, >= 0
 * @seed: the order of the training images in each epoch
 * @progress: called after every step and epoch, or NULL; @ctx its first
 *	argument
 */
struct polar_calib_train_opts {
	unsigned int epochs, batch;
	float lr;
	unsigned int patience;
	float layer_weight;
	uint64_t seed;
	void (*progress)(void *ctx, const struct polar_calib_train_progress *p);
	void *ctx;
};

/**
 * struct polar_calib_train_result - what polar_calib_train() achieved.
 * @val_loss0, @val_accuracy0: on the validation images, before training
 * @val_loss, @val_accuracy: with the factors kept (the lowest validation
 *	loss seen, the initial ones included)
 * @best_epoch: the epoch those factors came from, 0: the initial ones
 * @epochs_run: epochs trained before the end or the early stop
 */
struct polar_calib_train_result {
	double val_loss0, val_accuracy0, val_loss, val_accuracy;
	unsigned int best_epoch, epochs_run;
};

/**
 * polar_calib_train() - trains every layer's host path jointly, end to
 * end, through the main paths' real outputs.
 * @m: the fp32 model; its weights are never changed
 * @layers: m->nlayers entries
 * @train, @val: images (labels only for the accuracy) in m's input shape;
 *	val chooses the epoch whose factors are kept
 * @opts: see struct polar_calib_train_opts
 * @res: filled in
 *
 * The loss of an image is the KL divergence of the polarized model's
 * softmax from the fp32 model's (distillation) plus, per trained layer,
 * @layer_weight x 1/2 sum_o fisher_o e_o^2 (the loss increase a second
 * order expansion predicts for an output error e, averaged over a
 * conv's positions), e the layer's output minus the fp32 model's. The
 * forward pass runs each main path (POLAR_FWD_DEVICE_ONLY: the device's
 * actual outputs) plus B (A x) + bias; the backward pass goes straight
 * through the quantized main path, as through deq(Q(W)) + B A. Adam
 * steps only A, B and bias. After each epoch the validation loss is
 * measured; the factors with the lowest one (the initial factors
 * included) are left in A, B and bias.
 *
 * Return: 0, or a -errno (-EINVAL for a bad argument or option, with
 * polar_errmsg() naming it), when A, B and bias hold the best factors
 * seen so far.
 */
int polar_calib_train(const struct polar_model *m,
		      struct polar_calib_train_layer *layers,
		      const struct polar_dataset *train,
		      const struct polar_dataset *val,
		      const struct polar_calib_train_opts *opts,
		      struct polar_calib_train_result *res);

#ifdef __cplusplus
}
#endif

#endif /* POLAR_CALIB_H */
