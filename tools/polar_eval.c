// SPDX-License-Identifier: MIT
/*
 * polar calibrate / polar eval: quantize a trained model onto a device (or
 * the software backend), choose each layer's ADC full scale, fit the
 * rank-r host paths with every method, and measure Fashion-MNIST test
 * accuracy, energy and throughput.
 *
 * Methods: fp32 (host only), quant (device main path, no host path), svd,
 * act, act-device, sensitivity, trained (see <polar/calib.h> and the comments at
 * calibrate() below). The same code runs on /dev/accel/accelN and on
 * "sim:..." (which computes bit for bit what the device computes).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "polar/calib.h"
#include "polar/data.h"
#include "polar/model.h"
#include "polar/nn.h"
#include "polar/onnx.h"
#include "polar/polar.h"
#include "polar/qlayer.h"
#include "polar/quant.h"
#include "polar_cim_hw.h"

#include "cli.h"

int polar_cmd_eval(int argc, char **argv);
int polar_cmd_calibrate(int argc, char **argv);

/*
 * sens-identity is a control, not a default method: sensitivity's fit on
 * the same sequential chip inputs with the identity metric instead of the
 * Fisher's, so that the Fisher weighting's own gain is measured.
 */
enum method { M_FP32, M_QUANT, M_SVD, M_ACT, M_ACTDEV, M_SENS, M_TRAINED,
	      M_SENSID, NMETH };
static const char *const method_names[NMETH] = {
	"fp32", "quant", "svd", "act", "act-device", "sensitivity", "trained",
	"sens-identity",
};

#define MAXL POLAR_MODEL_MAX_LAYERS
#define DEFAULT_METHODS "fp32,quant,svd,act,act-device,sensitivity,trained"
#define MAX_WORKERS 16		/* --threads */
#define MAX_VARY 16		/* --vary, --select: variants of the options */
#define EVAL_BATCH 250		/* test images per forward call */
#define MAX_FIT_ROWS 8192	/* im2col rows per conv layer for fitting */
#define MAX_FS_ROWS 256		/* input rows for the ADC statistics */
#define FISHER_RIDGE 0.1	/* x mean diagonal, added to the full Fisher */

/*
 * Energy of one fp32 FLOP on the host CPU, joules. M. Horowitz, "Computing's
 * energy problem (and what we can do about it)", ISSCC 2014, 45 nm: fp32
 * multiply 3.7 pJ + add 0.9 pJ = 4.6 pJ per FMA (2 FLOPs) = 2.3 pJ/FLOP,
 * plus about 70 pJ of instruction overhead (fetch, decode, register file)
 * per instruction, amortised over the 16 FLOPs of one AVX2 8-wide FMA:
 * 4.4 pJ/FLOP. Total 6.7 pJ/FLOP. Not tuned: a fixed published figure, and
 * optimistic for a real core (caches, uncore and idle power excluded).
 */
#define HOST_J_PER_FLOP 6.7e-12

/*
 * The trained method's defaults. lr was chosen on the held-out images
 * (HELD_IMAGES) of the default chip (seed 7): 1e-3, 1e-2 and 3e-2 over 6
 * epochs reached held-out losses of 0.1032, 0.0956 and 0.1031 from the
 * sensitivity fit's 0.1059, 1e-2 the lowest, and already 0.0978 after one
 * epoch. Two epochs of 512 images are what fits the guest's budget of
 * about 90 s (ACCURACY.md, "Trained host paths").
 */
#define TRAIN_EPOCHS 2
#define TRAIN_BATCH 32
#define TRAIN_LR 1e-2
#define TRAIN_PATIENCE 1
#define HELD_IMAGES 128	/* the trained method's held-out images */
#define PAPER_TOPS_W 464.0

struct opts {
	const char *model, *device, *data, *report, *out, *methods;
	const char *device_layers;	/* NULL: every weighted layer */
	uint8_t on_device[MAXL];	/* resolved against the model */
	uint64_t chip_seed;
	uint32_t sigma_static, adc_bits;
	uint32_t recon, recon_frac_bits;	/* POLAR_CIM_RECON_*, F */
	int seed_set, sigma_set, adc_set, recon_set;
	enum polar_wfmt wfmt;
	enum polar_xfmt xfmt, first_xfmt;
	uint32_t rank, calib, test, threads;
	int sweep, intercept, fisher_full, lambda_set;
	double adc_pct, act_pct, lambda;
	enum method save_method;
	uint64_t seed_lo, seed_hi;	/* --chip-seeds A-B */
	int chips_set;
	int train;		/* the trained method is wanted */
	int sens_identity;	/* the sens-identity control is wanted */
	uint32_t validate;	/* evaluate on validation images, not test */
	int select;		/* --select: sweep the choices */
	const char *vary[MAX_VARY];	/* --vary NAME=VALUE */
	unsigned int nvary;
	const struct polar_dataset *held;	/* its early stopping's images */
	struct polar_calib_train_opts topt;	/* its epochs, batch, lr */
};

/*
 * Wall-clock seconds of each phase of one operating point, always measured
 * and printed (a handful of clock reads per layer and batch): where a run's
 * time goes, on the host or in the VM.
 */
enum phase {
	PH_OPEN,	/* open the device, read its properties */
	PH_FISHER,	/* the sensitivity method's Fisher (fp32 model) */
	PH_PROGRAM,	/* activation scales, quantize and program the weights */
	PH_ADC,		/* ADC full-scale statistics */
	PH_SVD_ACT,	/* the svd and act fits (host only) */
	PH_ACTDEV,	/* act-device: device run and fit */
	PH_SENS,	/* sensitivity: device run and fit */
	PH_TRAIN,	/* trained: end-to-end training through the device */
	PH_PROPAGATE,	/* calibration images through the polarized layer */
	PH_WORKERS,	/* the evaluation workers' devices and layers */
	NPHASE
};
static const char *const phase_names[NPHASE] = {
	"open", "fisher", "quantize+program", "adc-range", "fit svd+act",
	"calib act-device", "calib sensitivity", "train", "propagate",
	"workers",
};

struct timing {
	double load;			/* model and data, before the point */
	double phase[NPHASE];
	double eval[NMETH];		/* each method's evaluation */
	double eval_layers[NMETH];	/* of which in the polarized layers */
	double eval_layer[NMETH][MAXL];	/* of which in each of them */
	double total;			/* load to the last evaluation */
};

struct ctx {
	const struct opts *o;
	struct polar_model *m;
	struct polar_device *dev;
	struct polar_caps caps;
	struct polar_qlayer *ql[MAXL];
	struct polar_qlayer_desc desc[MAXL];	/* what ql[] was made from */
	uint32_t open_sigma, open_adc_bits;	/* what the device was opened with */
	int quiet;		/* a worker's copy: no warnings */
	struct polar_act_quant aq[MAXL];
	uint32_t adc_fs[MAXL];
	double lambda[NMETH][MAXL];	/* the ridge each fit used */
	float *A[NMETH][MAXL], *B[NMETH][MAXL];
	float *bc[NMETH][MAXL];	/* bias corrections (--intercept), or NULL */
	enum method cur;
	int use_host;		/* run the low-rank path in the hook */
	int sens;		/* the model has gradients: fit sensitivity */
	uint64_t host_flops;
	double calib_s;
	struct timing *t;	/* phases of this point */
	double t_mark;		/* end of the last phase timed */
	double t_layers;	/* seconds in hook_matmul */
	double t_layer[MAXL];	/* of which in each layer */
	struct image_sums *shared;	/* per layer, while evaluating */
	size_t batch;		/* 1 + the batch's first test image */
	size_t batch_images;	/* its images */
};

/*
 * A layer that reads the images (conv1) quantizes the same input and gets
 * the same sums from the device (the same programmed tiles and job seeds)
 * for every method: the evaluation computes them once per batch and each
 * method adds its own host path to them (hook_matmul()).
 */
struct image_sums {
	size_t batch;		/* ctx's batch they belong to; 0: none */
	size_t cap;		/* int32s allocated */
	int32_t *sums;		/* polar_qlayer_last_sums() of that batch */
};

/* ---- small helpers ------------------------------------------------------ */

static int die(const char *what)
{
	fprintf(stderr, "polar eval: %s: %s\n", what, polar_errmsg());
	return 1;
}

static int method_index(const char *s)
{
	int i;

	for (i = 0; i < NMETH; i++)
		if (!strcmp(s, method_names[i]))
			return i;
	return -1;
}

static int is_weighted(const struct polar_layer *l)
{
	return l->type == POLAR_LAYER_CONV2D || l->type == POLAR_LAYER_LINEAR;
}

/*
 * --device-layers: which weighted layers run on the device; the others
 * stay in fp32 on the host, so one layer's share of the accuracy lost can
 * be measured on its own.
 */
static int resolve_device_layers(struct opts *o, const struct polar_model *m)
{
	char names[256] = "", *list, *tok, *save = NULL;
	unsigned int i;
	int any = 0;

	for (i = 0; i < m->nlayers; i++) {
		o->on_device[i] = is_weighted(&m->layers[i]) && !o->device_layers;
		if (is_weighted(&m->layers[i]))
			snprintf(names + strlen(names), sizeof(names) - strlen(names),
				 "%s%s", names[0] ? ", " : "", m->layers[i].name);
	}
	if (!o->device_layers)
		return 0;
	list = strdup(o->device_layers);
	if (!list)
		return -ENOMEM;
	for (tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		for (i = 0; i < m->nlayers; i++)
			if (is_weighted(&m->layers[i]) &&
			    !strcmp(tok, m->layers[i].name))
				break;
		if (i == m->nlayers) {
			fprintf(stderr, "polar eval: --device-layers: the model "
				"has no weighted layer '%s' (it has %s)\n", tok,
				names);
			free(list);
			return -EINVAL;
		}
		o->on_device[i] = 1;
		any = 1;
	}
	free(list);
	if (!any) {
		fprintf(stderr, "polar eval: --device-layers: no layer named "
			"(the model has %s)\n", names);
		return -EINVAL;
	}
	return 0;
}

/*
 * A layer's host-path rank: --rank, but never more than the layer has
 * (a 10-output classifier holds at most rank 10), so a larger --rank
 * applies where it can instead of failing on the smallest layer.
 */
static uint32_t layer_rank(const struct opts *o, const struct polar_layer *l)
{
	uint32_t r = o->rank;

	if (r > l->rows)
		r = l->rows;
	if (r > l->cols)
		r = l->cols;
	return r;
}

/* Charges the time since the last mark to phase ph. */
static void phase_end(struct ctx *c, enum phase ph)
{
	double t = now_s();

	c->t->phase[ph] += t - c->t_mark;
	c->t_mark = t;
}

/* Rows of layer l's product over n samples and the subsample we fit on. */
static size_t layer_rows(const struct polar_layer *l, size_t n)
{
	return l->type == POLAR_LAYER_CONV2D ?
	       n * l->out_h * l->out_w : n;
}

/* ---- the device hook --------------------------------------------------------- */

/*
 * The shared sums of layer i for a call on nrows rows, or NULL: only for
 * a layer that reads the images, and only when the call covers the whole
 * batch (a forward that splits a batch would call it on parts of it).
 */
static struct image_sums *shared_sums(const struct ctx *c, unsigned int i,
				      size_t nrows)
{
	const struct polar_layer *l = &c->m->layers[i];

	if (!c->shared || !c->batch || l->ninputs != 1 || l->input[0] >= 0 ||
	    nrows != layer_rows(l, c->batch_images))
		return NULL;
	return &c->shared[i];
}

/*
 * Layer i's output from the sums the batch's first method left: the host
 * path (if any) and then polar_dequantize_sums() on top of it, what
 * polar_qlayer_forward() does after the device, so the bits are the
 * same. -EAGAIN: nothing to reuse, run the layer.
 */
static int shared_forward(struct ctx *c, unsigned int i, const float *x,
			  size_t nrows, float *y)
{
	const struct image_sums *sh = shared_sums(c, i, nrows);
	int ret = 0;

	if (!sh || sh->batch != c->batch)
		return -EAGAIN;
	if (c->use_host)
		ret = polar_qlayer_forward(c->ql[i], (uint32_t)nrows, x, y,
					   POLAR_FWD_HOST_ONLY);
	if (!ret)
		ret = polar_dequantize_sums(polar_qlayer_qweights(c->ql[i]),
					    &c->aq[i], sh->sums, (uint32_t)nrows,
					    NULL, c->use_host ?
					    POLAR_DEQ_ACCUMULATE : 0, y);
	return ret;
}

/* After a layer ran on the device: keeps its sums for the other methods. */
static int keep_shared(struct ctx *c, unsigned int i, size_t nrows)
{
	struct image_sums *sh = shared_sums(c, i, nrows);
	size_t n;

	if (!sh || sh->batch == c->batch)
		return 0;
	n = nrows * polar_qlayer_qweights(c->ql[i])->nblocks *
	    c->m->layers[i].rows;
	if (n > sh->cap) {
		free(sh->sums);
		sh->sums = malloc(sizeof(int32_t) * n);
		sh->cap = sh->sums ? n : 0;
		if (!sh->sums) {
			sh->batch = 0;
			return -ENOMEM;
		}
	}
	memcpy(sh->sums, polar_qlayer_last_sums(c->ql[i]), sizeof(int32_t) * n);
	sh->batch = c->batch;
	return 0;
}

static int hook_matmul(void *p, const struct polar_model *m, unsigned int layer,
		       const float *x, size_t nrows, float *y)
{
	struct ctx *c = p;
	const struct polar_layer *l = &m->layers[layer];
	double t0 = now_s();
	int ret;

	if (!c->ql[layer])
		return -ENOSYS;
	ret = shared_forward(c, layer, x, nrows, y);
	if (ret == -EAGAIN)
		ret = polar_qlayer_forward(c->ql[layer], (uint32_t)nrows, x, y,
					   c->use_host ? POLAR_FWD_OVERLAP :
					   POLAR_FWD_DEVICE_ONLY);
	if (!ret)
		ret = keep_shared(c, layer, nrows);
	if (!ret && c->use_host) {
		const float *bc = c->bc[c->cur][layer];

		c->host_flops += (uint64_t)nrows * 2 * layer_rank(c->o, l) *
				 (l->rows + l->cols);
		if (bc) {
			size_t k;
			uint32_t o;

			for (k = 0; k < nrows; k++)
				for (o = 0; o < l->rows; o++)
					y[k * l->rows + o] += bc[o];
			c->host_flops += (uint64_t)nrows * l->rows;
		}
	}
	t0 = now_s() - t0;
	c->t_layers += t0;
	c->t_layer[layer] += t0;
	return ret;
}

static int set_method(struct ctx *c, enum method me)
{
	unsigned int l;
	int ret;

	for (l = 0; l < c->m->nlayers; l++) {
		if (!c->ql[l])
			continue;
		if (me >= M_SVD)
			ret = polar_qlayer_set_lowrank(c->ql[l],
					layer_rank(c->o, &c->m->layers[l]),
					c->A[me][l], c->B[me][l]);
		else
			ret = polar_qlayer_set_lowrank(c->ql[l], 0, NULL, NULL);
		if (ret)
			return ret;
	}
	c->use_host = me >= M_SVD;
	c->cur = me;
	return 0;
}

/* ---- counters -------------------------------------------------------------------- */

static int read_counters(struct polar_device *dev,
			 uint64_t cnt[POLAR_CIM_NUM_COUNTERS])
{
	struct polar_buffer *buf;
	struct polar_cmd cmd = { 0 };
	struct polar_completion done;
	int ret;

	ret = polar_buffer_create(dev, POLAR_CIM_NUM_COUNTERS * 8, &buf);
	if (ret)
		return ret;
	cmd.opcode = POLAR_CIM_OP_READ_COUNTERS;
	cmd.dst = (struct polar_buf_ref){ buf, 0, POLAR_CIM_NUM_COUNTERS * 8 };
	ret = polar_submit(dev, 0, &cmd, 1, 0xc0);
	if (!ret)
		ret = polar_reap(dev, &done, 1, 1);
	if (ret == 1)
		ret = done.status;
	else if (ret >= 0)
		ret = -EIO;
	if (!ret)
		memcpy(cnt, polar_buffer_map(buf), POLAR_CIM_NUM_COUNTERS * 8);
	polar_buffer_free(buf);
	return ret;
}

/* ---- calibration ----------------------------------------------------------------- */

/*
 * Row j of S picked from total: jittered stratified sampling (one row per
 * stratum, at a golden-ratio offset), so that a stride that divides the
 * image size cannot alias to the same pixel positions in every image.
 */
static size_t pick_row(size_t j, size_t S, size_t total)
{
	double u = fmod((double)j * 0.6180339887498949, 1.0);
	size_t r = (size_t)(((double)j + u) * (double)total / (double)S);

	return r < total ? r : total - 1;
}

/*
 * The product-input rows (im2col for a conv) of the selected rows of layer
 * l, from its n x in_size input act. X is S x cols.
 */
static int gather_rows(const struct polar_layer *l, size_t n, const float *act,
		       size_t S, float *X)
{
	size_t total = layer_rows(l, n), j, per, chunk = 16, s0;
	size_t insz = polar_layer_in_size(l);
	float *cols;

	if (l->type != POLAR_LAYER_CONV2D) {
		for (j = 0; j < S; j++)
			memcpy(X + j * l->cols, act + pick_row(j, S, total) * insz,
			       sizeof(float) * l->cols);
		return 0;
	}
	per = (size_t)l->out_h * l->out_w;
	cols = malloc(sizeof(float) * chunk * per * l->cols);
	if (!cols)
		return -ENOMEM;
	j = 0;
	for (s0 = 0; s0 < n && j < S; s0 += chunk) {
		size_t b = n - s0 < chunk ? n - s0 : chunk;

		polar_conv2d_im2col(l, b, act + s0 * insz, cols);
		while (j < S) {
			size_t r = pick_row(j, S, total);

			if (r >= (s0 + b) * per)
				break;
			memcpy(X + j * l->cols, cols + (r - s0 * per) * l->cols,
			       sizeof(float) * l->cols);
			j++;
		}
	}
	free(cols);
	return 0;
}

/*
 * Runs layer i of m on n samples, chunked so that the im2col scratch stays
 * small: its inputs are act[j + 1] for each layer j it reads (act[0], the
 * images, for POLAR_LAYER_INPUT). hook may be NULL.
 */
static int run_layer(struct ctx *c, unsigned int i, size_t n,
		     float *const *act, float *out,
		     const struct polar_matmul_hook *hook)
{
	const struct polar_layer *l = &c->m->layers[i];
	size_t chunk = 64, s0, isz = polar_layer_in_size(l),
	       osz = polar_layer_out_size(l);
	float *scr = malloc(sizeof(float) * polar_layer_scratch_size(l, chunk) + 64);
	int ret = 0;

	if (!scr)
		return -ENOMEM;
	for (s0 = 0; s0 < n && !ret; s0 += chunk) {
		size_t b = n - s0 < chunk ? n - s0 : chunk;
		const float *in[2] = {
			act[l->input[0] + 1] + s0 * isz,
			act[l->ninputs > 1 ? l->input[1] + 1 : 0] + s0 * isz,
		};

		ret = polar_layer_forward_inputs(c->m, i, b, in,
						 out + s0 * osz, scr, hook);
	}
	free(scr);
	return ret;
}

/*
 * --intercept: centre X (n x in) and R (n x out) in place before the
 * regression and return the bias that restores the means:
 * bc = mean(R) - B A mean(X) (computed by finish_intercept()).
 */
static int center(float *X, size_t n, uint32_t dim, double *mean)
{
	size_t k;
	uint32_t i;

	for (i = 0; i < dim; i++)
		mean[i] = 0;
	for (k = 0; k < n; k++)
		for (i = 0; i < dim; i++)
			mean[i] += X[k * dim + i];
	for (i = 0; i < dim; i++)
		mean[i] /= (double)n;
	for (k = 0; k < n; k++)
		for (i = 0; i < dim; i++)
			X[k * dim + i] -= (float)mean[i];
	return 0;
}

static float *finish_intercept(const double *mx, const double *mr,
			       const float *A, const float *B, uint32_t in,
			       uint32_t out, uint32_t r)
{
	float *bc = malloc(sizeof(float) * out);
	double z[64];
	uint32_t i, k, o;

	if (!bc)
		return NULL;
	for (k = 0; k < r; k++) {
		z[k] = 0;
		for (i = 0; i < in; i++)
			z[k] += (double)A[(size_t)k * in + i] * mx[i];
	}
	for (o = 0; o < out; o++) {
		double v = mr[o];

		for (k = 0; k < r; k++)
			v -= (double)B[o * r + k] * z[k];
		bc[o] = (float)v;
	}
	return bc;
}

/*
 * The device-fitted methods' ridge: --lambda if given, else chosen per
 * layer on the calibration images held out by held_out_rows().
 */
static const double lambda_grid[] = { 0.001, 0.01, 0.1, 1.0, 10.0, 100.0 };

static int fit(struct ctx *c, unsigned int i, enum method me, const float *X,
	       const float *R, size_t S, const double *metric,
	       const uint8_t *held_out)
{
	const struct polar_layer *l = &c->m->layers[i];
	uint32_t r = layer_rank(c->o, l);

	if (c->o->lambda_set) {
		c->lambda[me][i] = c->o->lambda;
		return polar_calib_rrr_metric(X, R, S, l->cols, l->rows, r,
					      metric, c->o->lambda,
					      c->A[M_ACT][i], c->B[M_ACT][i], r,
					      c->A[me][i], c->B[me][i]);
	}
	return polar_calib_rrr_select(X, R, S, l->cols, l->rows, r, metric,
				      held_out, lambda_grid,
				      sizeof(lambda_grid) / sizeof(lambda_grid[0]),
				      c->A[M_ACT][i], c->B[M_ACT][i], r,
				      c->A[me][i], c->B[me][i],
				      &c->lambda[me][i]);
}

/*
 * Every fifth calibration image's rows (all of its positions, for a conv)
 * are held out to choose the ridge.
 */
static void held_out_rows(const struct polar_layer *l, size_t n, size_t S,
			  uint8_t *held_out)
{
	size_t total = layer_rows(l, n), per = total / n, j;

	for (j = 0; j < S; j++)
		held_out[j] = pick_row(j, S, total) / per % 5 == 4;
}

/* The layer that sees the image itself. */
static unsigned int first_weighted(const struct polar_model *m)
{
	unsigned int i;

	for (i = 0; i < m->nlayers; i++)
		if (is_weighted(&m->layers[i]))
			return i;
	return 0;
}

static void train_progress(void *p, const struct polar_calib_train_progress *pg)
{
	struct bar *bar = p;

	if (pg->epoch_done) {
		bar_line(bar, "  epoch %u: training loss %.4f, held-out loss "
			 "%.4f\n", pg->epoch, pg->loss, pg->val_loss);
		return;
	}
	bar_update(bar, (pg->epoch - 1) * pg->batches + pg->batch,
		   (size_t)pg->epochs * pg->batches);
}

/*
 * trained: every device layer's A, B and bias correction, initialised from
 * the sensitivity fit, trained jointly through the device
 * (polar_calib_train()) on the calibration images; HELD_IMAGES other
 * training-split images, which no fit sees, choose the epoch whose
 * factors are kept. They cannot be calibration images: the sensitivity
 * fit has seen those (its ridge choice holds some out, its final fit uses
 * all), and it follows the chip's rounding noise on those exact inputs,
 * so their loss at the start is lower than on any other image and any
 * change looks like a loss.
 */
static int train_paths(struct ctx *c, const struct polar_dataset *cal,
		       double *const fisher[MAXL])
{
	const struct polar_model *m = c->m;
	struct polar_calib_train_layer ly[MAXL] = { 0 };
	struct polar_calib_train_result res;
	struct polar_calib_train_opts to = c->o->topt;
	float *fd[MAXL] = { 0 };
	unsigned int i;
	struct bar bar;
	int ret = 0;

	for (i = 0; i < m->nlayers && !ret; i++) {
		const struct polar_layer *l = &m->layers[i];
		uint32_t r = layer_rank(c->o, l), o;

		if (!c->ql[i])
			continue;
		c->A[M_TRAINED][i] = malloc(sizeof(float) * r * l->cols);
		c->B[M_TRAINED][i] = malloc(sizeof(float) * l->rows * r);
		c->bc[M_TRAINED][i] = calloc(l->rows, sizeof(float));
		fd[i] = malloc(sizeof(float) * l->rows);
		if (!c->A[M_TRAINED][i] || !c->B[M_TRAINED][i] ||
		    !c->bc[M_TRAINED][i] || !fd[i]) {
			ret = -ENOMEM;
			break;
		}
		memcpy(c->A[M_TRAINED][i], c->A[M_SENS][i],
		       sizeof(float) * r * l->cols);
		memcpy(c->B[M_TRAINED][i], c->B[M_SENS][i],
		       sizeof(float) * l->rows * r);
		if (c->bc[M_SENS][i])
			memcpy(c->bc[M_TRAINED][i], c->bc[M_SENS][i],
			       sizeof(float) * l->rows);
		for (o = 0; o < l->rows; o++)
			fd[i][o] = (float)fisher[i][(size_t)o * l->rows + o];
		ly[i] = (struct polar_calib_train_layer){ c->ql[i], r,
			c->A[M_TRAINED][i], c->B[M_TRAINED][i],
			c->bc[M_TRAINED][i], fd[i] };
		c->lambda[M_TRAINED][i] = c->lambda[M_SENS][i];
	}
	if (ret) {
		fprintf(stderr, "polar eval: out of memory\n");
		goto out;
	}
	bar_start(&bar, "train host paths");
	to.progress = train_progress;
	to.ctx = &bar;
	ret = polar_calib_train(m, ly, cal, c->o->held, &to, &res);
	bar_done(&bar, (size_t)to.epochs * ((cal->count + to.batch - 1) /
					    to.batch));
	if (ret) {
		die("train");
		goto out;
	}
	fprintf(stderr, "trained: %zu images, %zu held out: loss %.4f -> %.4f, "
		"accuracy %.2f%% -> %.2f%%, epoch %u of %u kept\n", cal->count,
		c->o->held->count, res.val_loss0, res.val_loss, 100 * res.val_accuracy0,
		100 * res.val_accuracy, res.best_epoch, res.epochs_run);
out:
	for (i = 0; i < MAXL; i++)
		free(fd[i]);
	return ret;
}

/*
 * Calibrates every weighted layer on n training images x (labels y):
 *  - activation scale: per-tensor, from the fp32 model's layer inputs
 *    (percentile --act-pct);
 *  - quantize the weights and program them (polar_qlayer_create);
 *  - ADC full scale: polar_calib_adc_fs() at --adc-pct over the quantized
 *    fp32 inputs of up to 256 product rows;
 *  - svd, act: from E = W - deq(Q(W)) (act scales from the fp32 inputs);
 *  - act-device: per layer, independently, on the fp32 model's inputs X:
 *    R = X W^T - device(X), ridge-regularised towards the act fit;
 *  - sensitivity: layers in order; X = the layer's input in the network
 *    whose earlier layers are already polarized with their sensitivity
 *    factors (device in the loop), R = fp32 model's layer output (its own
 *    fp32 input) - device(X), each output weighted by the diagonal Fisher
 *    of the loss at it (--fisher full: the error measured in the whole
 *    output Fisher, polar_calib_output_fisher_full()), ridge towards act.
 *  - sens-identity (when wanted): sensitivity's inputs and targets, the
 *    identity metric.
 *  The ridge of the device fits is chosen per layer on every fifth
 *  calibration image, held out (polar_calib_rrr_select()), unless
 *  --lambda fixes it.
 *  - trained (when wanted): train_paths(), after every layer is fitted.
 */
static int calibrate(struct ctx *c, const struct polar_dataset *cal)
{
	const struct opts *o = c->o;
	struct polar_model *m = c->m;
	size_t n = cal->count;
	/*
	 * Activations of the calibration images: fp[j + 1] (pol[j + 1]) is
	 * layer j's output in the fp32 (polarized) network, fp[0] = pol[0]
	 * the images. Each is freed after the last layer that reads it.
	 */
	float *fp[MAXL + 1] = { 0 }, *pol[MAXL + 1] = { 0 };
	unsigned int last[MAXL], i, k;
	double *fisher[MAXL] = { 0 };
	struct polar_matmul_hook hook = { hook_matmul, c };
	struct bar bar;
	double t0 = now_s();
	int ret = 0;

	polar_model_last_reader(m, last);
	fp[0] = pol[0] = cal->images;
	c->t_mark = t0;
	if (c->sens) {
		bar_start(&bar, "sensitivity (Fisher)");
		ret = polar_calib_output_fisher_full(m, n, cal->images,
						     cal->labels, fisher);
		bar_done(&bar, 1);
	}
	phase_end(c, PH_FISHER);
	if (ret) {
		die("fisher");
		goto out;
	}

	for (i = 0; i < m->nlayers && !ret; i++) {
		const struct polar_layer *l = &m->layers[i];
		const float *fp_in = fp[l->input[0] + 1],
			    *pol_in = pol[l->input[0] + 1];
		float *fp_out, *pol_out = NULL;
		size_t isz = polar_layer_in_size(l), total, S, Sfs, j;
		uint32_t in = l->cols, out = l->rows, r = layer_rank(o, l);
		struct polar_qlayer_desc d = { 0 };
		float *X = NULL, *Xp = NULL, *Yt = NULL, *Yd = NULL, *E = NULL,
		      *s = NULL;
		double *mx = NULL, *mr = NULL, *metric = NULL;
		int8_t *codes = NULL;
		uint8_t *held_out = NULL;
		char label[64];
		double fmean = 0;
		enum method me;
		enum polar_xfmt xf = i == first_weighted(m) ? o->first_xfmt :
				     o->xfmt;

		fp_out = fp[i + 1] = malloc(sizeof(float) * n *
					    polar_layer_out_size(l));
		if (c->sens)
			pol_out = pol[i + 1] = malloc(sizeof(float) * n *
						      polar_layer_out_size(l));
		if (!fp_out || (c->sens && !pol_out)) {
			ret = -ENOMEM;
			fprintf(stderr, "polar eval: out of memory\n");
			break;
		}
		if (!o->on_device[i]) {
			ret = run_layer(c, i, n, fp, fp_out, NULL);
			if (!ret && c->sens)
				ret = run_layer(c, i, n, pol, pol_out, NULL);
			goto next;
		}
		snprintf(label, sizeof(label), "calibrate %s", l->name);
		bar_start(&bar, label);
		total = layer_rows(l, n);
		S = total < MAX_FIT_ROWS ? total : MAX_FIT_ROWS;
		Sfs = S < MAX_FS_ROWS ? S : MAX_FS_ROWS;
		X = malloc(sizeof(float) * S * in);
		Xp = malloc(sizeof(float) * S * in);
		Yt = malloc(sizeof(float) * S * out);
		Yd = malloc(sizeof(float) * S * out);
		E = malloc(sizeof(float) * (size_t)out * in);
		s = malloc(sizeof(float) * in);
		metric = malloc(sizeof(double) * out * out);
		codes = malloc(S * in);
		held_out = malloc(S);
		mx = malloc(sizeof(double) * in);
		mr = malloc(sizeof(double) * out);
		for (me = M_SVD; me <= M_SENSID; me++) {
			if (me == M_TRAINED ||
			    (me == M_SENSID && !o->sens_identity))
				continue;
			c->A[me][i] = malloc(sizeof(float) * r * in);
			c->B[me][i] = malloc(sizeof(float) * out * r);
			if (!c->A[me][i] || !c->B[me][i])
				ret = -ENOMEM;
		}
		if (!X || !Xp || !Yt || !Yd || !E || !s || !metric || !codes ||
		    !held_out || !mx || !mr || ret) {
			ret = -ENOMEM;
			fprintf(stderr, "polar eval: out of memory\n");
			goto layer_out;
		}
		/* Activation scale from the fp32 inputs of the layer. */
		ret = polar_act_calibrate(fp_in, n * isz, xf,
					  (float)o->act_pct, &c->aq[i]);
		if (ret) {
			die(l->name);
			goto layer_out;
		}
		d.in_dim = in;
		d.out_dim = out;
		d.weight = l->weight;
		d.bias = NULL;	/* the model adds the bias after the hook */
		d.wfmt = o->wfmt;
		d.xfmt = xf;
		d.x_scale = c->aq[i].scale;
		d.job_seed = 0x1000u * (i + 1);
		c->desc[i] = d;
		ret = polar_qlayer_create(&c->dev, 1, &d, &c->ql[i]);
		if (ret) {
			die(l->name);
			goto layer_out;
		}
		ret = polar_dequantize_weights(polar_qlayer_qweights(c->ql[i]), E);
		if (ret) {
			die(l->name);
			goto layer_out;
		}
		for (j = 0; j < (size_t)out * in; j++)
			E[j] = l->weight[j] - E[j];
		bar_update(&bar, 1, 6);
		phase_end(c, PH_PROGRAM);

		/* fp32 rows of the layer's product, and the ADC full scale. */
		ret = gather_rows(l, n, fp_in, S, X);
		if (!ret)
			ret = polar_quantize_acts(&c->aq[i], X, Sfs * in, codes);
		if (!ret) {
			/* Spread the statistics rows over the whole subsample. */
			for (j = 0; j < Sfs; j++)
				polar_quantize_acts(&c->aq[i],
						    X + pick_row(j, Sfs, S) * in,
						    in, codes + j * in);
			ret = polar_calib_adc_fs(polar_qlayer_qweights(c->ql[i]),
						 codes, Sfs, xf, c->caps.rows,
						 c->caps.rows_per_conv,
						 o->adc_pct, &c->adc_fs[i]);
			c->adc_fs[i] = polar_calib_adc_fs_recon(c->adc_fs[i],
								&c->caps);
		}
		if (ret) {
			die(l->name);
			goto layer_out;
		}
		polar_qlayer_set_adc_fs(c->ql[i], c->adc_fs[i]);
		bar_update(&bar, 2, 6);
		phase_end(c, PH_ADC);

		/* svd and act */
		ret = polar_calib_svd(E, out, in, r, c->A[M_SVD][i],
				      c->B[M_SVD][i]);
		if (!ret)
			ret = polar_calib_act_scales(X, S, in, s);
		if (!ret)
			ret = polar_calib_act(E, out, in, s, r, c->A[M_ACT][i],
					      c->B[M_ACT][i]);
		if (ret) {
			die(l->name);
			goto layer_out;
		}
		bar_update(&bar, 3, 6);
		phase_end(c, PH_SVD_ACT);

		/* act-device: fp32 inputs, uniform weights */
		polar_sgemm(0, 1, S, out, in, X, in, l->weight, in, 0.0f, Yt, out);
		ret = polar_qlayer_forward(c->ql[i], (uint32_t)S, X, Yd,
					   POLAR_FWD_DEVICE_ONLY);
		if (ret) {
			die(l->name);
			goto layer_out;
		}
		for (j = 0; j < S * out; j++)
			Yd[j] = Yt[j] - Yd[j];
		if (o->intercept) {
			center(X, S, in, mx);
			center(Yd, S, out, mr);
		}
		held_out_rows(l, n, S, held_out);
		ret = fit(c, i, M_ACTDEV, X, Yd, S, NULL, held_out);
		if (!ret && o->intercept &&
		    !(c->bc[M_ACTDEV][i] = finish_intercept(mx, mr,
				c->A[M_ACTDEV][i], c->B[M_ACTDEV][i], in, out, r)))
			ret = -ENOMEM;
		if (ret) {
			die(l->name);
			goto layer_out;
		}
		bar_update(&bar, 4, 6);
		phase_end(c, PH_ACTDEV);

		/*
		 * sensitivity: polarized inputs, fp32 targets, Fisher weights;
		 * only where the model has gradients (c->sens).
		 */
		if (!c->sens) {
			ret = run_layer(c, i, n, fp, fp_out, NULL);
			if (ret)
				die(l->name);
			bar_done(&bar, 6);
			goto layer_out;
		}
		ret = gather_rows(l, n, pol_in, S, Xp);
		if (!ret)
			ret = polar_qlayer_forward(c->ql[i], (uint32_t)S, Xp, Yd,
						   POLAR_FWD_DEVICE_ONLY);
		if (ret) {
			die(l->name);
			goto layer_out;
		}
		for (j = 0; j < S * out; j++)
			Yd[j] = Yt[j] - Yd[j];
		if (o->intercept) {
			center(Xp, S, in, mx);
			center(Yd, S, out, mr);
		}
		/*
		 * --fisher diag: a diagonal metric, each output channel
		 * weighted by its Fisher plus 1 % of their mean (in float, as
		 * the weights always were). --fisher full measures the error
		 * in the whole output Fisher: the loss sees a layer's error
		 * only through what follows (fc1's 128 outputs reach the 10
		 * logits through fc2), so the directions that matter need
		 * not be channels; its ridge is larger (FISHER_RIDGE of the
		 * mean diagonal) because the off-diagonal entries of a few
		 * hundred images' empirical Fisher are noisy.
		 */
		for (j = 0; j < out; j++)
			fmean += (float)fisher[i][j * out + j] / out;
		for (j = 0; j < (size_t)out * out; j++)
			metric[j] = o->fisher_full ? fisher[i][j] : 0.0;
		for (j = 0; j < out; j++)
			metric[j * out + j] = o->fisher_full ?
				metric[j * out + j] + FISHER_RIDGE * fmean + 1e-30 :
				(double)((float)fisher[i][j * out + j] +
					 0.01f * (float)fmean + 1e-30f);
		ret = fit(c, i, M_SENS, Xp, Yd, S, metric, held_out);
		if (!ret && o->intercept &&
		    !(c->bc[M_SENS][i] = finish_intercept(mx, mr,
				c->A[M_SENS][i], c->B[M_SENS][i], in, out, r)))
			ret = -ENOMEM;
		/*
		 * sens-identity: the same inputs and targets, every output
		 * weighted alike; act-device differs from sensitivity in its
		 * inputs too (the fp32 model's), so only this one isolates
		 * the Fisher weighting.
		 */
		if (!ret && o->sens_identity)
			ret = fit(c, i, M_SENSID, Xp, Yd, S, NULL, held_out);
		if (!ret && o->sens_identity && o->intercept &&
		    !(c->bc[M_SENSID][i] = finish_intercept(mx, mr,
				c->A[M_SENSID][i], c->B[M_SENSID][i], in, out,
				r)))
			ret = -ENOMEM;
		if (ret) {
			die(l->name);
			goto layer_out;
		}
		bar_update(&bar, 5, 6);
		phase_end(c, PH_SENS);

		/* Propagate: fp32 through fp32, polarized through the device. */
		ret = run_layer(c, i, n, fp, fp_out, NULL);
		if (!ret)
			ret = polar_qlayer_set_lowrank(c->ql[i], r, c->A[M_SENS][i],
						       c->B[M_SENS][i]);
		c->use_host = 1;
		c->cur = M_SENS;
		if (!ret)
			ret = run_layer(c, i, n, pol, pol_out, &hook);
		c->use_host = 0;
		if (ret)
			die(l->name);
		bar_done(&bar, 6);
layer_out:
		free(X);
		free(Xp);
		free(Yt);
		free(Yd);
		free(E);
		free(s);
		free(metric);
		free(codes);
		free(held_out);
		free(mx);
		free(mr);
next:
		phase_end(c, PH_PROPAGATE);
		for (k = 0; k <= i; k++)
			if (last[k] == i) {
				free(fp[k + 1]);
				free(pol[k + 1]);
				fp[k + 1] = pol[k + 1] = NULL;
			}
	}
	if (!ret && o->train) {
		c->t_mark = now_s();
		ret = train_paths(c, cal, fisher);
		phase_end(c, PH_TRAIN);
	}
	c->host_flops = 0;
out:
	for (i = 0; i < MAXL; i++) {
		free(fisher[i]);
		free(fp[i + 1]);
		free(pol[i + 1]);
	}
	c->calib_s = now_s() - t0;
	return ret;
}

/* ---- evaluation ---------------------------------------------------------------------- */

struct result {
	double acc, seconds, ips;
	double dev_j, host_j, macs, host_flops;
	int have_energy;
};

struct point {
	uint32_t sigma, adc_bits;
	uint32_t recon, recon_frac_bits;	/* of the device evaluated */
	struct polar_design design;
	struct result r[NMETH];
	uint8_t *hit[NMETH];	/* per test image, when allocated by the caller */
	uint32_t adc_fs[MAXL];
	double lambda[NMETH][MAXL];
	double calib_s;
	struct timing t;
};

/*
 * Evaluation runs on nw workers (--threads, default the online CPUs): worker
 * 0 is the calibrated context itself, each other one a copy with its own
 * device handle and its own polarized layers (make_worker()). Worker w
 * takes the test batches w, w + nw, w + 2 nw, ...: each batch is the same
 * forward call, with the same job seeds, as on one thread, so the results
 * do not depend on the number of workers. One pass evaluates several
 * methods, each batch through all of them in turn, so that they share
 * what the layers reading the images compute (struct image_sums).
 */
struct worker {
	struct ctx c;
	const struct polar_dataset *t;
	const int *which;	/* the pass's methods */
	unsigned int w, nw;
	atomic_size_t *done;	/* images evaluated by all workers */
	uint8_t *const *hit;	/* per method and test image: 1 if right */
	struct bar *bar;	/* worker 0 shows everyone's progress */
	struct image_sums shared[MAXL];
	size_t correct[NMETH];
	double seconds[NMETH];	/* in each method's forward calls */
	double t_layers[NMETH], t_layer[NMETH][MAXL];
	uint64_t host_flops[NMETH];
	int ret;
};

/* Batch k0 of b images through method me on worker wk. */
static int worker_batch(struct worker *wk, enum method me, size_t k0, size_t b,
			float *logits)
{
	struct ctx *c = &wk->c;
	struct polar_matmul_hook hook = { hook_matmul, c };
	size_t insz = (size_t)c->m->in_c * c->m->in_h * c->m->in_w, k;
	double t0 = now_s();
	unsigned int l;
	int ret = me == M_FP32 ? 0 : set_method(c, me);

	c->host_flops = 0;
	c->t_layers = 0;
	memset(c->t_layer, 0, sizeof(c->t_layer));
	c->batch = k0 + 1;
	c->batch_images = b;
	if (!ret)
		ret = polar_model_forward(c->m, b, wk->t->images + k0 * insz,
					  logits, me == M_FP32 ? NULL : &hook);
	if (ret)
		return die(method_names[me]);
	for (k = 0; k < b; k++) {
		const float *z = logits + k * c->m->classes;
		unsigned int j, best = 0;

		for (j = 1; j < c->m->classes; j++)
			if (z[j] > z[best])
				best = j;
		wk->correct[me] += best == wk->t->labels[k0 + k];
		if (wk->hit[me])
			wk->hit[me][k0 + k] = best == wk->t->labels[k0 + k];
	}
	wk->seconds[me] += now_s() - t0;
	wk->t_layers[me] += c->t_layers;
	for (l = 0; l < MAXL; l++)
		wk->t_layer[me][l] += c->t_layer[l];
	wk->host_flops[me] += c->host_flops;
	return 0;
}

static void *worker_run(void *p)
{
	struct worker *wk = p;
	float *logits = malloc(sizeof(float) * EVAL_BATCH * wk->c.m->classes);
	size_t k0, b;
	int me;

	wk->ret = logits ? 0 : -ENOMEM;
	wk->c.shared = wk->shared;
	for (k0 = (size_t)wk->w * EVAL_BATCH; k0 < wk->t->count && !wk->ret;
	     k0 += (size_t)wk->nw * EVAL_BATCH) {
		b = wk->t->count - k0 < EVAL_BATCH ? wk->t->count - k0 :
		    EVAL_BATCH;
		for (me = 0; me < NMETH && !wk->ret; me++)
			if (wk->which[me])
				wk->ret = worker_batch(wk, me, k0, b, logits);
		atomic_fetch_add(wk->done, b);
		if (wk->bar)
			bar_update(wk->bar, atomic_load(wk->done), wk->t->count);
	}
	wk->c.shared = NULL;
	wk->c.batch = 0;
	free(logits);
	return NULL;
}

/* Energy counters, summed over the workers' devices when each is its own chip. */
static int read_all_counters(struct worker *wk, unsigned int nw,
			     uint64_t cnt[POLAR_CIM_NUM_COUNTERS])
{
	uint64_t one[POLAR_CIM_NUM_COUNTERS];
	unsigned int w, i;
	int ret;

	memset(cnt, 0, sizeof(one));
	/* Handles of one real device share its counters. */
	if (!wk[0].c.caps.sim)
		nw = 1;
	for (w = 0; w < nw; w++) {
		ret = read_counters(wk[w].c.dev, one);
		if (ret)
			return ret;
		for (i = 0; i < POLAR_CIM_NUM_COUNTERS; i++)
			cnt[i] += one[i];
	}
	return 0;
}

/*
 * One pass over the test images with the methods in which[] (results and
 * times into pt). The device's counters over the pass are one method's
 * main path only when the pass has one chip method; a pass of several
 * shares jobs between them (struct image_sums), and run_point() gives
 * them the main path's energy from a pass of its own.
 */
static int evaluate(struct worker *wk, unsigned int nw, const int which[NMETH],
		    const struct polar_dataset *t, struct point *pt)
{
	uint64_t c0[POLAR_CIM_NUM_COUNTERS], c1[POLAR_CIM_NUM_COUNTERS];
	pthread_t th[MAX_WORKERS];
	atomic_size_t done = 0;
	unsigned int w, l, started = 0, nchip = 0;
	char label[64] = "eval";
	struct bar bar;
	int ret = 0, me, have_energy = 0;

	for (me = 0; me < NMETH; me++)
		if (which[me]) {
			memset(&pt->r[me], 0, sizeof(pt->r[me]));
			nchip += me != M_FP32;
			snprintf(label + strlen(label), sizeof(label) - strlen(label),
				 "%s%s", label[4] ? "," : " ", method_names[me]);
		}
	for (w = 0; w < nw; w++) {
		struct worker *k = &wk[w];

		memset(k->correct, 0, sizeof(k->correct));
		memset(k->seconds, 0, sizeof(k->seconds));
		memset(k->t_layers, 0, sizeof(k->t_layers));
		memset(k->t_layer, 0, sizeof(k->t_layer));
		memset(k->host_flops, 0, sizeof(k->host_flops));
		for (l = 0; l < MAXL; l++)
			k->shared[l].batch = 0;
		k->t = t;
		k->which = which;
		k->w = w;
		k->nw = nw;
		k->done = &done;
		k->hit = pt->hit;
		k->bar = w ? NULL : &bar;
	}
	if (nchip == 1 && !read_all_counters(wk, nw, c0))
		have_energy = 1;
	bar_start(&bar, label);
	for (w = 1; w < nw; w++) {
		if (pthread_create(&th[w], NULL, worker_run, &wk[w])) {
			fprintf(stderr, "polar eval: cannot start a thread\n");
			ret = -EAGAIN;
			break;
		}
		started = w;
	}
	if (!ret)
		worker_run(&wk[0]);
	for (w = 1; w <= started; w++)
		pthread_join(th[w], NULL);
	bar_update(&bar, atomic_load(&done), t->count);
	for (w = 0; w < nw; w++) {
		if (!ret)
			ret = wk[w].ret;
		for (l = 0; l < MAXL; l++) {
			free(wk[w].shared[l].sums);
			memset(&wk[w].shared[l], 0, sizeof(wk[w].shared[l]));
		}
	}
	if (ret)
		return ret;
	if (have_energy && read_all_counters(wk, nw, c1))
		have_energy = 0;
	for (me = 0; me < NMETH; me++) {
		struct result *res = &pt->r[me];
		double host_flops = 0;

		if (!which[me])
			continue;
		pt->t.eval_layers[me] = 0;
		memset(pt->t.eval_layer[me], 0, sizeof(pt->t.eval_layer[me]));
		for (w = 0; w < nw; w++) {
			res->acc += (double)wk[w].correct[me];
			res->seconds += wk[w].seconds[me] / nw;
			host_flops += (double)wk[w].host_flops[me];
			pt->t.eval_layers[me] += wk[w].t_layers[me] / nw;
			for (l = 0; l < MAXL; l++)
				pt->t.eval_layer[me][l] += wk[w].t_layer[me][l] / nw;
		}
		pt->t.eval[me] = res->seconds;
		res->acc = 100.0 * res->acc / (double)t->count;
		res->ips = (double)t->count / res->seconds;
		res->host_flops = host_flops;
		res->host_j = host_flops * HOST_J_PER_FLOP;
		if (have_energy && me != M_FP32) {
			res->have_energy = 1;
			res->macs = (double)(c1[POLAR_CIM_CNT_MACS] -
					     c0[POLAR_CIM_CNT_MACS]);
			res->dev_j = (double)(c1[POLAR_CIM_CNT_ENERGY_FJ] -
					      c0[POLAR_CIM_CNT_ENERGY_FJ]) * 1e-15;
		}
	}
	return 0;
}

/* ---- setup --------------------------------------------------------------------------- */

static void ctx_free(struct ctx *c)
{
	unsigned int i;
	int me;

	for (i = 0; i < MAXL; i++) {
		polar_qlayer_destroy(c->ql[i]);
		c->ql[i] = NULL;
		for (me = 0; me < NMETH; me++) {
			free(c->A[me][i]);
			free(c->B[me][i]);
			free(c->bc[me][i]);
			c->A[me][i] = c->B[me][i] = c->bc[me][i] = NULL;
		}
	}
	polar_close(c->dev);
	c->dev = NULL;
}

static const char *recon_name(uint32_t recon)
{
	return recon == POLAR_CIM_RECON_CODES ? "codes" :
	       recon == POLAR_CIM_RECON_CELLS ? "cells" : "?";
}

static int open_device(struct ctx *c, uint32_t sigma, uint32_t adc_bits)
{
	const struct opts *o = c->o;
	char path[256];
	int ret;

	c->open_sigma = sigma;
	c->open_adc_bits = adc_bits;
	if (!strncmp(o->device, "sim", 3)) {
		char recon[64] = "";

		if (o->recon_set)
			snprintf(recon, sizeof(recon), ",recon=%s,"
				 "recon-frac-bits=%u", recon_name(o->recon),
				 o->recon_frac_bits);
		snprintf(path, sizeof(path), "sim:%s%ssigma-static=%u,adc-bits=%u,"
			 "seed=%llu%s", o->device[3] == ':' ? o->device + 4 : "",
			 o->device[3] == ':' ? "," : "", sigma, adc_bits,
			 (unsigned long long)o->chip_seed, recon);
		ret = polar_open(path, &c->dev);
	} else {
		ret = polar_open(o->device, &c->dev);
	}
	if (ret)
		return die("open");
	ret = polar_get_caps(c->dev, &c->caps);
	if (ret)
		return die("caps");
	if (!c->caps.sim && !c->quiet) {
		/* A real chip's properties are what they are: report them. */
		if (o->seed_set && c->caps.seed != o->chip_seed)
			fprintf(stderr, "polar eval: warning: device chip seed is "
				"%llu, not %llu\n", (unsigned long long)c->caps.seed,
				(unsigned long long)o->chip_seed);
		if (o->sigma_set && c->caps.sigma_static != sigma)
			fprintf(stderr, "polar eval: warning: device sigma-static "
				"is %u, not %u\n", c->caps.sigma_static, sigma);
		if (o->adc_set && c->caps.adc_bits != adc_bits)
			fprintf(stderr, "polar eval: warning: device adc-bits is "
				"%u, not %u\n", c->caps.adc_bits, adc_bits);
		if (o->recon_set && (c->caps.recon != o->recon ||
				     c->caps.recon_frac_bits != o->recon_frac_bits))
			fprintf(stderr, "polar eval: warning: device recon is "
				"%s with %u fractional bits, not %s with %u\n",
				recon_name(c->caps.recon),
				c->caps.recon_frac_bits, recon_name(o->recon),
				o->recon_frac_bits);
	}
	return 0;
}

/*
 * Worker w > 0 of c: its own device handle, and polarized layers made from
 * the same descriptors in the same order as c's, so that the library places
 * them on the same tiles. On a device, its tiles then receive the same
 * weights again (the worker shares the chip, and the calibrated ADC full
 * scales and host paths, with c); on the sim, the worker is an identical
 * chip of its own.
 */
static int make_worker(const struct ctx *c, struct ctx *wc)
{
	unsigned int i;
	int ret;

	*wc = *c;
	wc->dev = NULL;
	memset(wc->ql, 0, sizeof(wc->ql));
	wc->quiet = 1;
	if (!c->dev)	/* fp32 only: no chip */
		return 0;
	ret = open_device(wc, c->open_sigma, c->open_adc_bits);
	for (i = 0; !ret && i < c->m->nlayers; i++) {
		if (!c->ql[i])
			continue;
		ret = polar_qlayer_create(&wc->dev, 1, &c->desc[i], &wc->ql[i]);
		if (ret)
			ret = die(c->m->layers[i].name);
		else
			polar_qlayer_set_adc_fs(wc->ql[i], c->adc_fs[i]);
	}
	return ret;
}

/* Frees what make_worker() made, not what the worker shares with c. */
static void free_worker(struct ctx *wc)
{
	unsigned int i;

	for (i = 0; i < MAXL; i++)
		polar_qlayer_destroy(wc->ql[i]);
	polar_close(wc->dev);
	memset(wc, 0, sizeof(*wc));
}

static const char *wfmt_name(enum polar_wfmt f)
{
	return f == POLAR_WFMT_NF4 ? "nf4" : f == POLAR_WFMT_INT4 ? "int4" : "int8";
}

static const char *xfmt_name(enum polar_xfmt f)
{
	switch (f) {
	case POLAR_XFMT_INT8: return "int8";
	case POLAR_XFMT_UINT8: return "uint8";
	case POLAR_XFMT_INT4: return "int4";
	case POLAR_XFMT_UINT4: return "uint4";
	}
	return "?";
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: polar eval [options]      calibrate, then evaluate every method\n"
		"       polar calibrate --out FILE [options]   save the factors\n"
		"  --model FILE       trained model (default build/models/cnn.safetensors)\n"
		"  --device D         /dev/accel/accelN or sim[:props] (default sim)\n"
		"  --chip-seed N      sim chip seed (default 7)\n"
		"  --chip-seeds A-B   sim chips A..B (at most 64), each calibrated and\n"
		"                     evaluated; each method's mean gap to fp32 with a\n"
		"                     paired bootstrap 95%% interval over images and chips\n"
		"  --sigma-static Q16 sim static conductance sigma (default 13107 = 0.2,\n"
		"                     where the uncalibrated path loses >= 3 points)\n"
		"  --adc-bits N       sim ADC bits (default 5)\n"
		"  --recon codes|cells  sim reconstruction: shift-add ADC codes, "
		"step once per\n"
		"                     output (default), or each conversion in "
		"whole cells\n"
		"  --recon-frac-bits F  with --recon cells: fractional bits kept "
		"(0..8, default 0)\n"
		"  --wfmt nf4|int4|int8   weights (default nf4)\n"
		"  --xfmt uint4|int4|int8|uint8 inputs (default uint4)\n"
		"  --first-xfmt F     the first layer's inputs, the image "
		"(default uint8)\n"
		"  --rank R           host path rank (default 8)\n"
		"  --calib N          calibration images from the training split "
		"(default 512, max 1024)\n"
		"  --test N           test images (default 10000)\n"
		"  --validate N       evaluate on N validation images instead "
		"(the training\n"
		"                     split's last %u, which polar train and "
		"calibration leave out)\n"
		"  --vary OPT=V       with --chip-seeds: also every chip with "
		"--OPT V (or --OPT),\n"
		"                     each method's change against the options "
		"given, paired\n"
		"  --select           --vary over the choices (act-pct, adc-pct, "
		"first-xfmt,\n"
		"                     intercept, ridge); needs --validate; "
		"prints each chosen value\n"
		"  --threads N        evaluation threads, each with its own device "
		"handle\n"
		"                     (default: the online CPUs, at most 16)\n"
		"  --methods LIST     default fp32,quant,svd,act,act-device,"
		"sensitivity,trained\n"
		"  --device-layers L  weighted layers run on the device, e.g. conv1,fc2\n"
		"                     (default all; the others stay fp32 on the host)\n"
		"  --report DIR       write report.md and SVG plots there\n"
		"  --sweep            sigma-static x adc-bits grid (sim only)\n"
		"  --adc-pct P        ADC full-scale percentile (default 99.99)\n"
		"  --act-pct P        activation clip percentile (default 99.9)\n"
		"  --lambda L         ridge of the device fits, relative (default: chosen\n"
		"                     per layer from 0.001 ... 100 on held-out images)\n"
		"  --no-intercept     act-device/sensitivity fit no bias "
		"correction (default: they do)\n"
		"  --fisher diag|full sensitivity weights outputs by the "
		"diagonal Fisher, or\n"
		"                     measures errors in the whole output "
		"Fisher (default diag)\n"
		"  --epochs N         trained: at most N epochs (default %u)\n"
		"  --train-batch N    trained: images per step (default %u)\n"
		"  --patience N       trained: stop after N epochs without a "
		"lower held-out\n"
		"                     loss (default %u; 0: never early)\n"
		"  --lr L             trained: Adam's step (default %g)\n"
		"  --layer-weight W   trained: weight of the Fisher-weighted "
		"layer errors\n"
		"                     against the distillation loss (default 1)\n"
		"  --method M         calibrate: which factors to save "
		"(default sensitivity)\n"
		"  --data DIR         Fashion-MNIST directory\n",
		POLAR_FASHION_MNIST_VALIDATE, TRAIN_EPOCHS, TRAIN_BATCH,
		TRAIN_PATIENCE, TRAIN_LR);
}

enum {
	OPT_MODEL = 256, OPT_DEVICE, OPT_CHIP_SEED, OPT_CHIP_SEEDS,
	OPT_SIGMA_STATIC, OPT_ADC_BITS, OPT_RECON, OPT_RECON_FRAC_BITS,
	OPT_WFMT, OPT_XFMT, OPT_FIRST_XFMT, OPT_RANK, OPT_CALIB, OPT_TEST,
	OPT_THREADS, OPT_METHODS, OPT_DEVICE_LAYERS, OPT_REPORT, OPT_SWEEP,
	OPT_ADC_PCT, OPT_ACT_PCT, OPT_LAMBDA, OPT_INTERCEPT,
	OPT_NO_INTERCEPT, OPT_FISHER, OPT_EPOCHS, OPT_TRAIN_BATCH,
	OPT_PATIENCE, OPT_LR, OPT_LAYER_WEIGHT, OPT_METHOD, OPT_DATA, OPT_OUT,
	OPT_SELECT, OPT_VALIDATE, OPT_VARY,
};

static const struct option eval_options[] = {
	{ "help", no_argument, NULL, 'h' },
	{ "model", required_argument, NULL, OPT_MODEL },
	{ "device", required_argument, NULL, OPT_DEVICE },
	{ "chip-seed", required_argument, NULL, OPT_CHIP_SEED },
	{ "chip-seeds", required_argument, NULL, OPT_CHIP_SEEDS },
	{ "sigma-static", required_argument, NULL, OPT_SIGMA_STATIC },
	{ "adc-bits", required_argument, NULL, OPT_ADC_BITS },
	{ "recon", required_argument, NULL, OPT_RECON },
	{ "recon-frac-bits", required_argument, NULL, OPT_RECON_FRAC_BITS },
	{ "wfmt", required_argument, NULL, OPT_WFMT },
	{ "xfmt", required_argument, NULL, OPT_XFMT },
	{ "first-xfmt", required_argument, NULL, OPT_FIRST_XFMT },
	{ "rank", required_argument, NULL, OPT_RANK },
	{ "calib", required_argument, NULL, OPT_CALIB },
	{ "test", required_argument, NULL, OPT_TEST },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "methods", required_argument, NULL, OPT_METHODS },
	{ "device-layers", required_argument, NULL, OPT_DEVICE_LAYERS },
	{ "report", required_argument, NULL, OPT_REPORT },
	{ "sweep", no_argument, NULL, OPT_SWEEP },
	{ "adc-pct", required_argument, NULL, OPT_ADC_PCT },
	{ "act-pct", required_argument, NULL, OPT_ACT_PCT },
	{ "lambda", required_argument, NULL, OPT_LAMBDA },
	{ "intercept", no_argument, NULL, OPT_INTERCEPT },
	{ "no-intercept", no_argument, NULL, OPT_NO_INTERCEPT },
	{ "fisher", required_argument, NULL, OPT_FISHER },
	{ "epochs", required_argument, NULL, OPT_EPOCHS },
	{ "train-batch", required_argument, NULL, OPT_TRAIN_BATCH },
	{ "patience", required_argument, NULL, OPT_PATIENCE },
	{ "lr", required_argument, NULL, OPT_LR },
	{ "layer-weight", required_argument, NULL, OPT_LAYER_WEIGHT },
	{ "method", required_argument, NULL, OPT_METHOD },
	{ "data", required_argument, NULL, OPT_DATA },
	{ "out", required_argument, NULL, OPT_OUT },
	{ "select", no_argument, NULL, OPT_SELECT },
	{ "validate", required_argument, NULL, OPT_VALIDATE },
	{ "vary", required_argument, NULL, OPT_VARY },
	{ NULL, 0, NULL, 0 },
};

static int parse_args(int argc, char **argv, struct opts *o);

/* argv[0] is "polar eval" or "polar calibrate" (polar.c). */
static int parse_opts(int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	o->model = "build/models/cnn.safetensors";
	o->device = "sim";
	o->chip_seed = 7;
	o->sigma_static = 13107;
	o->adc_bits = 5;
	o->wfmt = POLAR_WFMT_NF4;
	o->xfmt = POLAR_XFMT_UINT4;
	/*
	 * The image's pixels are 8-bit already: as uint8 they reach the
	 * first layer unrounded, where 4 bits would discard half of each.
	 */
	o->first_xfmt = POLAR_XFMT_UINT8;
	o->rank = 8;
	o->calib = 512;
	o->test = 10000;
	{
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

		o->threads = ncpu < 1 ? 1 : ncpu > MAX_WORKERS ? MAX_WORKERS :
			     (uint32_t)ncpu;
	}
	o->methods = DEFAULT_METHODS;
	o->topt.epochs = TRAIN_EPOCHS;
	o->topt.batch = TRAIN_BATCH;
	o->topt.lr = TRAIN_LR;
	o->topt.patience = TRAIN_PATIENCE;
	o->topt.layer_weight = 1.0f;
	o->topt.seed = 1;
	o->adc_pct = 99.99;
	/*
	 * 4-bit inputs: clipping the rare largest activations buys finer
	 * steps for all the others (99.9 beat 99.99 by about a point).
	 */
	o->act_pct = 99.9;
	o->intercept = 1;
	o->lambda = 0.01;
	o->save_method = M_SENS;
	return parse_args(argc, argv, o);
}

/*
 * The options a --vary variant may change: the chip's and the
 * calibration's, never what is evaluated or how.
 */
static const char *const vary_opts[] = {
	"act-pct", "adc-pct", "first-xfmt", "xfmt", "wfmt", "intercept",
	"no-intercept", "lambda", "sigma-static", "adc-bits", "recon",
	"recon-frac-bits", "rank", "calib", "fisher",
};

/*
 * Applies --vary NAME=VALUE (or NAME, a flag) to o through the option
 * parser, so a variant's value meets the option's own checks. It starts
 * getopt afresh: call it only when no other parse is under way.
 */
static int apply_variant(struct opts *o, const char *variant)
{
	char name[64], *eq, *argv[4];
	size_t k;

	snprintf(name, sizeof(name), "--%s", variant);
	eq = strchr(name, '=');
	if (eq)
		*eq++ = 0;
	for (k = 0; k < sizeof(vary_opts) / sizeof(vary_opts[0]); k++)
		if (!strcmp(name + 2, vary_opts[k]))
			break;
	if (k == sizeof(vary_opts) / sizeof(vary_opts[0])) {
		fprintf(stderr, "polar eval: --vary %s: not a chip or "
			"calibration option\n", variant);
		return -1;
	}
	argv[0] = (char *)"polar eval";
	argv[1] = name;
	argv[2] = eq;
	argv[3] = NULL;
	optind = 0;	/* glibc: start a new scan */
	return parse_args(eq ? 3 : 2, argv, o);
}

/*
 * --select: the choices made on validation images, each value against
 * today's default (act-pct 99.9, adc-pct 99.99, first-xfmt uint8, the
 * intercept, the ridge chosen per layer on held-out calibration images).
 */
static const char *const select_variants[] = {
	"act-pct=99.5", "act-pct=99.99", "adc-pct=100", "first-xfmt=uint4",
	"no-intercept", "lambda=0.01",
};

static int parse_args(int argc, char **argv, struct opts *o)
{
	const char *cmd = argv[0], *a;
	unsigned int k, nvary0 = o->nvary;
	uint64_t v;
	double x;
	int c;

	while ((c = cli_getopt(argc, argv, eval_options, &a)) != -1) {
		const char *val = optarg;

		switch (c) {
		case 'h':
			usage(stdout);
			exit(0);
		case OPT_SWEEP:
			o->sweep = 1;
			break;
		case OPT_SELECT:
			o->select = 1;
			break;
		case OPT_INTERCEPT:
		case OPT_NO_INTERCEPT:
			o->intercept = c == OPT_INTERCEPT;
			break;
		case OPT_MODEL:
			o->model = val;
			break;
		case OPT_DEVICE:
			o->device = val;
			break;
		case OPT_DATA:
			o->data = val;
			break;
		case OPT_REPORT:
			o->report = val;
			break;
		case OPT_OUT:
			o->out = val;
			break;
		case OPT_METHODS:
			o->methods = val;
			break;
		case OPT_DEVICE_LAYERS:
			o->device_layers = val;
			break;
		case OPT_METHOD: {
			int me = method_index(val);

			if (me < M_SVD) {
				fprintf(stderr, "%s: --method %s: one of svd, "
					"act, act-device, sensitivity, "
					"sens-identity, trained\n", cmd, val);
				return -1;
			}
			o->save_method = me;
			break;
		}
		case OPT_CHIP_SEED:
			if (cli_parse_u64(cmd, a, val, 0, UINT64_MAX,
					  &o->chip_seed))
				return -1;
			o->seed_set = 1;
			break;
		case OPT_CHIP_SEEDS: {
			char lo[32], *dash;

			snprintf(lo, sizeof(lo), "%s", val);
			dash = strchr(lo, '-');
			if (!dash) {
				fprintf(stderr, "%s: --chip-seeds: bad value "
					"'%s' (A-B)\n", cmd, val);
				return -1;
			}
			*dash = 0;
			if (cli_parse_u64(cmd, a, lo, 0, UINT64_MAX,
					  &o->seed_lo) ||
			    cli_parse_u64(cmd, a, dash + 1, o->seed_lo,
					  o->seed_lo + 63, &o->seed_hi))
				return -1;
			o->chips_set = 1;
			break;
		}
		case OPT_SIGMA_STATIC:
			if (cli_parse_u64(cmd, a, val, 0, 4 * 65536, &v))
				return -1;
			o->sigma_static = (uint32_t)v;
			o->sigma_set = 1;
			break;
		case OPT_ADC_BITS:
			if (cli_parse_u64(cmd, a, val, 1, 16, &v))
				return -1;
			o->adc_bits = (uint32_t)v;
			o->adc_set = 1;
			break;
		case OPT_RECON:
			if (strcmp(val, "codes") && strcmp(val, "cells")) {
				fprintf(stderr, "%s: --recon %s: codes or "
					"cells\n", cmd, val);
				return -1;
			}
			o->recon = val[1] == 'o' ? POLAR_CIM_RECON_CODES :
						  POLAR_CIM_RECON_CELLS;
			o->recon_set = 1;
			break;
		case OPT_RECON_FRAC_BITS:
			if (cli_parse_u64(cmd, a, val, 0, 8, &v))
				return -1;
			o->recon_frac_bits = (uint32_t)v;
			break;
		case OPT_RANK:
			if (cli_parse_u64(cmd, a, val, 1, 64, &v))
				return -1;
			o->rank = (uint32_t)v;
			break;
		case OPT_FISHER:
			if (strcmp(val, "diag") && strcmp(val, "full")) {
				fprintf(stderr, "%s: --fisher %s: diag or "
					"full\n", cmd, val);
				return -1;
			}
			o->fisher_full = val[0] == 'f';
			break;
		case OPT_EPOCHS:
			if (cli_parse_u64(cmd, a, val, 1, 1000, &v))
				return -1;
			o->topt.epochs = (unsigned int)v;
			break;
		case OPT_PATIENCE:
			if (cli_parse_u64(cmd, a, val, 0, 1000, &v))
				return -1;
			o->topt.patience = (unsigned int)v;
			break;
		case OPT_TRAIN_BATCH:
			if (cli_parse_u64(cmd, a, val, 1, 1024, &v))
				return -1;
			o->topt.batch = (unsigned int)v;
			break;
		case OPT_CALIB:
			if (cli_parse_u64(cmd, a, val, 1, 1024, &v))
				return -1;
			o->calib = (uint32_t)v;
			break;
		case OPT_THREADS:
			if (cli_parse_u64(cmd, a, val, 1, MAX_WORKERS, &v))
				return -1;
			o->threads = (uint32_t)v;
			break;
		case OPT_TEST:
			if (cli_parse_u64(cmd, a, val, 1, 10000, &v))
				return -1;
			o->test = (uint32_t)v;
			break;
		case OPT_VALIDATE:
			if (cli_parse_u64(cmd, a, val, 1,
					  POLAR_FASHION_MNIST_VALIDATE, &v))
				return -1;
			o->validate = (uint32_t)v;
			break;
		case OPT_VARY:
			if (o->nvary == MAX_VARY) {
				fprintf(stderr, "%s: --vary: at most %d\n", cmd,
					MAX_VARY);
				return -1;
			}
			o->vary[o->nvary++] = val;
			break;
		case OPT_WFMT:
			if (!strcmp(val, "nf4"))
				o->wfmt = POLAR_WFMT_NF4;
			else if (!strcmp(val, "int4"))
				o->wfmt = POLAR_WFMT_INT4;
			else if (!strcmp(val, "int8"))
				o->wfmt = POLAR_WFMT_INT8;
			else {
				fprintf(stderr, "%s: --wfmt %s: nf4, int4 or "
					"int8\n", cmd, val);
				return -1;
			}
			break;
		case OPT_XFMT:
		case OPT_FIRST_XFMT: {
			enum polar_xfmt *f = c == OPT_XFMT ? &o->xfmt :
						 &o->first_xfmt;

			if (!strcmp(val, "int4"))
				*f = POLAR_XFMT_INT4;
			else if (!strcmp(val, "uint4"))
				*f = POLAR_XFMT_UINT4;
			else if (!strcmp(val, "int8"))
				*f = POLAR_XFMT_INT8;
			else if (!strcmp(val, "uint8"))
				*f = POLAR_XFMT_UINT8;
			else {
				fprintf(stderr, "%s: %s %s: uint4, int4, int8 "
					"or uint8\n", cmd, a, val);
				return -1;
			}
			break;
		}
		case OPT_ADC_PCT:
			if (cli_parse_double(cmd, a, val, 0, 100, CLI_MIN_OPEN,
					     &o->adc_pct))
				return -1;
			break;
		case OPT_ACT_PCT:
			if (cli_parse_double(cmd, a, val, 0, 100, CLI_MIN_OPEN,
					     &o->act_pct))
				return -1;
			break;
		case OPT_LAMBDA:
			if (cli_parse_double(cmd, a, val, 0, INFINITY,
					     CLI_MIN_OPEN | CLI_MAX_OPEN,
					     &o->lambda))
				return -1;
			o->lambda_set = 1;
			break;
		case OPT_LR:
			if (cli_parse_double(cmd, a, val, 0, 1, CLI_MIN_OPEN, &x))
				return -1;
			o->topt.lr = (float)x;
			break;
		case OPT_LAYER_WEIGHT:
			/* 0: the distillation loss alone */
			if (cli_parse_double(cmd, a, val, 0, 100, 0, &x))
				return -1;
			o->topt.layer_weight = (float)x;
			break;
		default:	/* cli_getopt() said why */
			return -1;
		}
	}
	if (o->recon_frac_bits && o->recon != POLAR_CIM_RECON_CELLS) {
		fprintf(stderr, "polar eval: --recon-frac-bits needs --recon "
			"cells\n");
		return -1;
	}
	/* each new --vary must parse, once this scan is over */
	for (k = nvary0; k < o->nvary; k++) {
		struct opts scratch = *o;

		if (apply_variant(&scratch, o->vary[k]))
			return -1;
	}
	return 0;
}

static int parse_methods(const char *s, int want[NMETH])
{
	char buf[256], *tok, *save;

	memset(want, 0, sizeof(int) * NMETH);
	snprintf(buf, sizeof(buf), "%s", s);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		int me = method_index(tok);

		if (me < 0) {
			fprintf(stderr, "polar eval: unknown method '%s' (fp32, "
				"quant, svd, act, act-device, sensitivity, "
				"trained, sens-identity)\n", tok);
			return -1;
		}
		want[me] = 1;
	}
	return 0;
}

/* The first n images of a data set (no copy). */
static struct polar_dataset head(const struct polar_dataset *d, size_t n)
{
	struct polar_dataset h = *d;

	h.count = n < d->count ? n : d->count;
	return h;
}

/*
 * n images of the training split on a grid of `grid` evenly spaced ones,
 * src = (k * grid / n) * (count / grid) + offset: the calibration images
 * are the grid (grid = n, offset 0); the trained method's held-out images
 * sit half a step after grid points, so they are never calibration images.
 */
static int calib_subset(const struct polar_dataset *train, size_t n,
			size_t grid, size_t offset, struct polar_dataset *out)
{
	size_t k, isz = (size_t)train->channels * train->rows * train->cols;

	*out = *train;
	out->count = n;
	out->images = malloc(sizeof(float) * n * isz);
	out->labels = malloc(n);
	if (!out->images || !out->labels)
		return -ENOMEM;
	for (k = 0; k < n; k++) {
		size_t src = k * grid / n * (train->count / grid) + offset;

		memcpy(out->images + k * isz, train->images + src * isz,
		       sizeof(float) * isz);
		out->labels[k] = train->labels[src];
	}
	return 0;
}

/* ---- one operating point --------------------------------------------------------------- */

/*
 * The passes: fp32 alone (no chip), quant alone (its device counters are
 * the main path's energy), then every method with a host path in one
 * pass that shares the layers reading the images. Each of those runs the
 * same device jobs per image as quant (the counters count operations,
 * not values), so it reports quant's main-path energy with its own host
 * FLOPs; one such method alone has a pass, and counters, of its own.
 */
static int evaluate_all(struct worker *wk, unsigned int nw,
			const int want[NMETH], const struct polar_dataset *test,
			struct point *pt)
{
	int pass[NMETH], me, nhost = 0, ret = 0;

	for (me = M_FP32; me <= M_QUANT && !ret; me++)
		if (want[me]) {
			memset(pass, 0, sizeof(pass));
			pass[me] = 1;
			ret = evaluate(wk, nw, pass, test, pt);
		}
	for (me = 0; me < NMETH; me++) {
		pass[me] = me > M_QUANT && want[me];
		nhost += pass[me];
	}
	if (!ret && nhost)
		ret = evaluate(wk, nw, pass, test, pt);
	if (ret || nhost < 2 || !want[M_QUANT] || !pt->r[M_QUANT].have_energy)
		return ret ? -EIO : 0;
	for (me = M_QUANT + 1; me < NMETH; me++)
		if (pass[me]) {
			pt->r[me].have_energy = 1;
			pt->r[me].macs = pt->r[M_QUANT].macs;
			pt->r[me].dev_j = pt->r[M_QUANT].dev_j;
		}
	return 0;
}

static int run_point(const struct opts *o, struct polar_model *m,
		     const struct polar_dataset *cal,
		     const struct polar_dataset *test, const int want[NMETH],
		     struct point *pt, struct ctx *keep)
{
	struct worker *wk;
	struct ctx c = { 0 };
	unsigned int nw = 0, w;
	int me, ret = 0, any = 0, chip = 0;

	c.o = o;
	c.m = m;
	c.sens = polar_model_is_chain(m);
	c.t = &pt->t;
	c.t_mark = now_s();
	for (me = M_QUANT; me < NMETH; me++)
		chip |= want[me];
	/*
	 * The fp32 reference alone needs neither a chip nor calibration;
	 * polar calibrate wants no evaluation, only the calibration.
	 */
	if (!chip && want[M_FP32])
		goto evaluate;
	ret = open_device(&c, pt->sigma, pt->adc_bits);
	phase_end(&c, PH_OPEN);
	if (ret) {
		ctx_free(&c);
		return ret;
	}
	polar_get_design(c.dev, &pt->design);
	fprintf(stderr, "device %s: %ux%u tiles x %u, adc %u bits, rows/conv %u, "
		"recon %s (F %u), digital planes %u, msb adc %u bits x %u "
		"levels, sigma-static %u, seed %llu\n",
		polar_device_path(c.dev), c.caps.rows, c.caps.cols,
		c.caps.tiles, c.caps.adc_bits, c.caps.rows_per_conv,
		recon_name(c.caps.recon), c.caps.recon_frac_bits,
		pt->design.digital_planes, pt->design.adc_bits_msb,
		pt->design.adc_msb_levels,
		c.caps.sigma_static, (unsigned long long)c.caps.seed);
	pt->recon = c.caps.recon;
	pt->recon_frac_bits = c.caps.recon_frac_bits;
	if (o->device_layers)
		fprintf(stderr, "on the device: %s; the other weighted layers "
			"in fp32 on the host\n", o->device_layers);
	pt->sigma = c.caps.sigma_static;
	pt->adc_bits = c.caps.adc_bits;
	ret = calibrate(&c, cal);
	pt->calib_s = c.calib_s;
	memcpy(pt->adc_fs, c.adc_fs, sizeof(pt->adc_fs));
	memcpy(pt->lambda, c.lambda, sizeof(pt->lambda));
evaluate:
	for (me = 0; me < NMETH; me++)
		any |= want[me];
	wk = calloc(MAX_WORKERS, sizeof(*wk));
	if (!wk && !ret) {
		fprintf(stderr, "polar eval: out of memory\n");
		ret = -ENOMEM;
	}
	if (!ret && any) {
		nw = (test->count + EVAL_BATCH - 1) / EVAL_BATCH;
		if (nw > o->threads)
			nw = o->threads;
		c.t_mark = now_s();
		wk[0].c = c;
		for (w = 1; w < nw && !ret; w++)
			ret = make_worker(&c, &wk[w].c);
		phase_end(&c, PH_WORKERS);
	}
	if (!ret && any)
		ret = evaluate_all(wk, nw, want, test, pt);
	for (w = 1; w < nw; w++)
		if (wk[w].c.o)
			free_worker(&wk[w].c);
	free(wk);
	if (keep && !ret)
		*keep = c;
	else
		ctx_free(&c);
	return ret;
}

/* ---- several chips ---------------------------------------------------------------------- */

#define BOOT_RESAMPLES 1000
#define BOOT_SEED 1

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/*
 * The mean over C chips and N images of a's correctness minus b's, in
 * points (chip c's N hits at a + c * stride), and its 95 % interval, a
 * paired bootstrap: BOOT_RESAMPLES times, draw the chips with replacement
 * and the test images with replacement (the same images for every drawn
 * chip, for a and for b), and take the 2.5th and 97.5th percentiles of the
 * resampled means; the draws come from erand48() seeded with BOOT_SEED,
 * restarted for every call so that all comparisons see the same resamples.
 * worst: the largest chip's mean.
 */
static int paired_gap(const uint8_t *a, const uint8_t *b, size_t stride,
		      size_t C, size_t N, double *mean, double ci[2],
		      double *worst)
{
	unsigned short xs[3] = { BOOT_SEED, 0, 0x330e };
	size_t *cs = malloc(sizeof(size_t) * C), *is = malloc(sizeof(size_t) * N);
	double *bs = malloc(sizeof(double) * BOOT_RESAMPLES), sum = 0;
	size_t c, k, r;

	if (!cs || !is || !bs) {
		free(cs);
		free(is);
		free(bs);
		fprintf(stderr, "polar eval: out of memory\n");
		return -ENOMEM;
	}
	*worst = -100;
	for (c = 0; c < C; c++) {
		long d = 0;

		for (k = 0; k < N; k++)
			d += a[c * stride + k] - b[c * stride + k];
		sum += (double)d;
		*worst = fmax(*worst, 100.0 * (double)d / (double)N);
	}
	for (r = 0; r < BOOT_RESAMPLES; r++) {
		long d = 0;

		for (c = 0; c < C; c++)
			cs[c] = (size_t)(erand48(xs) * (double)C);
		for (k = 0; k < N; k++)
			is[k] = (size_t)(erand48(xs) * (double)N);
		for (c = 0; c < C; c++) {
			const uint8_t *f = a + cs[c] * stride,
				      *h = b + cs[c] * stride;

			for (k = 0; k < N; k++)
				d += f[is[k]] - h[is[k]];
		}
		bs[r] = 100.0 * (double)d / (double)(C * N);
	}
	qsort(bs, BOOT_RESAMPLES, sizeof(double), cmp_double);
	*mean = 100.0 * sum / (double)(C * N);
	ci[0] = bs[BOOT_RESAMPLES * 25 / 1000];
	ci[1] = bs[BOOT_RESAMPLES * 975 / 1000 - 1];
	free(cs);
	free(is);
	free(bs);
	return 0;
}

/* "act-pct=99.5" -> the choice's name, "act-pct"; "lambda" is the ridge. */
static void variant_choice(const char *v, char *name, size_t len)
{
	snprintf(name, len, "%s", v);
	name[strcspn(name, "=")] = 0;
	if (!strcmp(name, "no-intercept") || !strcmp(name, "intercept"))
		snprintf(name, len, "intercept");
}

/*
 * --chip-seeds A-B: every chip calibrated and evaluated like one chip,
 * each test image's correctness kept. A method's gap to fp32 is the mean
 * over chips and images of fp32's correctness minus the method's, in
 * points, with its paired bootstrap interval (paired_gap()).
 *
 * --vary V (and --select, a list of them): every chip is calibrated and
 * evaluated again with the variant V of the options; fp32 does not depend
 * on them. Each method's gap under V, and its change against the options
 * given (negative: V is better), both paired over the same chips and
 * images. With --select, each choice keeps the value given unless another
 * one's change has its whole interval below zero; then the one with the
 * lowest change wins: a value is changed only on evidence beyond the
 * validation images' noise.
 */
static int run_chips(const struct opts *o0, struct polar_model *m,
		     const struct polar_dataset *cal,
		     const struct polar_dataset *test, const int want[NMETH])
{
	size_t C = o0->seed_hi - o0->seed_lo + 1, N = test->count, V, c, v;
	const char *const *vary = o0->select ? select_variants : o0->vary;
	size_t stride = NMETH * N;	/* one chip's hits */
	uint8_t *hit;
	double gap, ci[2], worst;
	int me, ret = 0;

	V = 1 + (o0->select ? sizeof(select_variants) /
		 sizeof(select_variants[0]) : o0->nvary);
	hit = calloc(V * C * stride, 1);
#define HIT(v, c, me) (hit + (((v) * C + (c)) * NMETH + (me)) * N)
	if (!hit) {
		fprintf(stderr, "polar eval: out of memory\n");
		return -ENOMEM;
	}
	printf("chips %llu..%llu, %zu %s images each\n",
	       (unsigned long long)o0->seed_lo,
	       (unsigned long long)o0->seed_hi, N,
	       o0->validate ? "validation" : "test");
	for (v = 0; v < V && !ret; v++) {
		struct opts o = *o0;
		int want_v[NMETH];

		memcpy(want_v, want, sizeof(want_v));
		if (v) {
			ret = apply_variant(&o, vary[v - 1]);
			want_v[M_FP32] = 0;
		}
		for (c = 0; c < C && !ret; c++) {
			struct point pt = { 0 };

			o.chip_seed = o0->seed_lo + c;
			pt.sigma = o.sigma_static;
			pt.adc_bits = o.adc_bits;
			for (me = 0; me < NMETH; me++)
				pt.hit[me] = want_v[me] ? HIT(v, c, me) : NULL;
			ret = run_point(&o, m, cal, test, want_v, &pt, NULL);
			if (ret)
				break;
			printf("chip %llu%s%s:", (unsigned long long)o.chip_seed,
			       v ? " with " : "", v ? vary[v - 1] : "");
			for (me = 0; me < NMETH; me++)
				if (want_v[me])
					printf(" %s %.2f", method_names[me],
					       pt.r[me].acc);
			printf("\n");
			fflush(stdout);
		}
	}
	if (ret)
		goto out;
	printf("gap to fp32 in points: mean over chips and images, paired "
	       "bootstrap 95%% interval (%d resamples of chips and images, "
	       "erand48 seed %d), the worst chip's gap\n", BOOT_RESAMPLES,
	       BOOT_SEED);
	for (me = M_QUANT; me < NMETH && !ret; me++) {
		if (!want[me])
			continue;
		ret = paired_gap(HIT(0, 0, M_FP32), HIT(0, 0, me), stride, C, N,
				 &gap, ci, &worst);
		if (!ret)
			printf("gap %s=%.2f ci95=[%.2f,%.2f] worst_chip=%.2f\n",
			       method_names[me], gap, ci[0], ci[1], worst);
	}
	/*
	 * The Fisher weighting's own gain: sens-identity's gap minus
	 * sensitivity's, on the same inputs, chips and images.
	 */
	if (!ret && want[M_SENS] && want[M_SENSID]) {
		ret = paired_gap(HIT(0, 0, M_SENS), HIT(0, 0, M_SENSID), stride,
				 C, N, &gap, ci, &worst);
		if (!ret)
			printf("fisher gain (gap sens-identity - gap sensitivity)"
			       "=%.2f ci95=[%.2f,%.2f]\n", gap, ci[0], ci[1]);
	}
	for (v = 1; v < V && !ret; v++)
		for (me = M_QUANT; me < NMETH && !ret; me++) {
			double d, dci[2];

			if (!want[me])
				continue;
			ret = paired_gap(HIT(0, 0, M_FP32), HIT(v, 0, me),
					 stride, C, N, &gap, ci, &worst);
			if (!ret)
				ret = paired_gap(HIT(0, 0, me), HIT(v, 0, me),
						 stride, C, N, &d, dci, &worst);
			if (!ret)
				printf("with %s: gap %s=%.2f ci95=[%.2f,%.2f] "
				       "change=%.2f ci95=[%.2f,%.2f]\n",
				       vary[v - 1], method_names[me], gap, ci[0],
				       ci[1], d, dci[0], dci[1]);
		}
	/* --select: per choice and method, the value kept. */
	for (v = 1; o0->select && v < V && !ret; v++) {
		char name[64], other[64];
		size_t u;

		variant_choice(vary[v - 1], name, sizeof(name));
		for (u = 1; u < v; u++) {
			variant_choice(vary[u - 1], other, sizeof(other));
			if (!strcmp(name, other))
				break;
		}
		if (u < v)	/* this choice is already reported */
			continue;
		for (me = M_QUANT; me < NMETH && !ret; me++) {
			size_t best = 0;	/* the options given */
			double best_d = 0, d, dci[2];

			if (!want[me] || me == M_QUANT)
				continue;
			for (u = v; u < V && !ret; u++) {
				variant_choice(vary[u - 1], other, sizeof(other));
				if (strcmp(name, other))
					continue;
				ret = paired_gap(HIT(0, 0, me), HIT(u, 0, me),
						 stride, C, N, &d, dci, &worst);
				if (!ret && dci[1] < 0 && d < best_d) {
					best = u;
					best_d = d;
				}
			}
			if (!ret)
				ret = paired_gap(HIT(0, 0, M_FP32), HIT(best, 0, me),
						 stride, C, N, &gap, ci, &worst);
			if (!ret)
				printf("chosen %s for %s: %s, gap %.2f ci95=[%.2f,"
				       "%.2f]\n", name, method_names[me],
				       best ? vary[best - 1] : "as given", gap,
				       ci[0], ci[1]);
		}
	}
#undef HIT
out:
	free(hit);
	return ret;
}

/* ---- report ---------------------------------------------------------------------------- */

/*
 * One line: "phases: load 1.2 s, open 0.1 s, ..., eval quant 30.5 s (layers
 * 28.1 s), ..., total 400.2 s"; "layers" is the time inside the polarized
 * layers (quantize, device, host path, dequantize), the rest of an
 * evaluation is the fp32 parts of the network (im2col, pooling, ReLU).
 */
static void print_timing(FILE *f, const char *pre, const struct timing *t,
			 const int want[NMETH], const struct polar_model *m)
{
	const char *sep;
	unsigned int l;
	int ph, me;

	fprintf(f, "%sload %.1f s", pre, t->load);
	for (ph = 0; ph < NPHASE; ph++)
		fprintf(f, ", %s %.1f s", phase_names[ph], t->phase[ph]);
	for (me = 0; me < NMETH; me++) {
		if (!want[me])
			continue;
		fprintf(f, ", eval %s %.1f s", method_names[me], t->eval[me]);
		if (me == M_FP32)
			continue;
		fprintf(f, " (layers %.1f s", t->eval_layers[me]);
		for (l = 0, sep = ": "; l < m->nlayers; l++)
			if (t->eval_layer[me][l] > 0) {
				fprintf(f, "%s%s %.1f", sep, m->layers[l].name,
					t->eval_layer[me][l]);
				sep = ", ";
			}
		fprintf(f, ")");
	}
	fprintf(f, ", total %.1f s\n", t->total);
}

static const char *const colors[NMETH] = {
	"#000000", "#d62728", "#ff7f0e", "#2ca02c", "#9467bd", "#1f77b4",
	"#8c564b",
};

static void svg_sweep(const char *path, const struct point *pts, size_t np,
		      uint32_t adc_bits, const int want[NMETH])
{
	FILE *f = fopen(path, "w");
	double xmin = 1e30, xmax = -1e30, ymin = 100, ymax = 0;
	const double W = 640, H = 400, L = 60, R = 150, T = 30, Bm = 50;
	size_t i;
	int me, k;

	if (!f)
		return;
	for (i = 0; i < np; i++) {
		if (pts[i].adc_bits != adc_bits)
			continue;
		xmin = fmin(xmin, pts[i].sigma / 65536.0);
		xmax = fmax(xmax, pts[i].sigma / 65536.0);
		for (me = 0; me < NMETH; me++)
			if (want[me]) {
				ymin = fmin(ymin, pts[i].r[me].acc);
				ymax = fmax(ymax, pts[i].r[me].acc);
			}
	}
	if (xmax <= xmin)
		xmax = xmin + 1;
	ymin = floor(ymin / 5) * 5;
	ymax = fmin(100, ceil(ymax / 5) * 5);
	if (ymax <= ymin)
		ymax = ymin + 5;
#define PX(x) (L + ((x) - xmin) / (xmax - xmin) * (W - L - R))
#define PY(y) (H - Bm - ((y) - ymin) / (ymax - ymin) * (H - T - Bm))
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
		"height=\"%.0f\" font-family=\"sans-serif\" font-size=\"12\">\n"
		"<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
		"<text x=\"%.0f\" y=\"18\">Fashion-MNIST test accuracy vs "
		"sigma-static (%u-bit ADC)</text>\n", W, H, L, adc_bits);
	fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" "
		"stroke=\"black\"/>\n<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" "
		"y2=\"%.0f\" stroke=\"black\"/>\n", L, H - Bm, W - R, H - Bm, L,
		T, L, H - Bm);
	for (k = 0; k <= 5; k++) {
		double y = ymin + (ymax - ymin) * k / 5,
		       x = xmin + (xmax - xmin) * k / 5;

		fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%.1f"
			"</text>\n", L - 5, PY(y) + 4, y);
		fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">"
			"%.3f</text>\n", PX(x), H - Bm + 16, x);
	}
	fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">"
		"sigma-static (cell current)</text>\n", (L + W - R) / 2, H - 12);
	for (me = 0; me < NMETH; me++) {
		int first = 1;

		if (!want[me])
			continue;
		fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width="
			"\"2\" points=\"", colors[me]);
		for (i = 0; i < np; i++) {
			if (pts[i].adc_bits != adc_bits)
				continue;
			fprintf(f, "%s%.1f,%.1f", first ? "" : " ",
				PX(pts[i].sigma / 65536.0), PY(pts[i].r[me].acc));
			first = 0;
		}
		fprintf(f, "\"/>\n<text x=\"%.0f\" y=\"%.0f\" fill=\"%s\">%s"
			"</text>\n", W - R + 10, T + 20.0 * me + 10, colors[me],
			method_names[me]);
	}
	fprintf(f, "</svg>\n");
#undef PX
#undef PY
	fclose(f);
}

static void svg_bars(const char *path, const struct point *pt,
		     const int want[NMETH])
{
	FILE *f = fopen(path, "w");
	double ymin = 100, y0;
	int me, k = 0;

	if (!f)
		return;
	for (me = 0; me < NMETH; me++)
		if (want[me])
			ymin = fmin(ymin, pt->r[me].acc);
	y0 = floor(ymin / 5) * 5 - 5;
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"520\" "
		"height=\"300\" font-family=\"sans-serif\" font-size=\"12\">\n"
		"<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
		"<text x=\"10\" y=\"18\">test accuracy (%%), axis from %.0f</text>\n",
		y0);
	for (me = 0; me < NMETH; me++) {
		double h;

		if (!want[me])
			continue;
		h = (pt->r[me].acc - y0) / (100 - y0) * 230;
		fprintf(f, "<rect x=\"%d\" y=\"%.1f\" width=\"60\" height=\"%.1f\" "
			"fill=\"%s\"/>\n<text x=\"%d\" y=\"%.1f\" text-anchor="
			"\"middle\">%.2f</text>\n<text x=\"%d\" y=\"292\" "
			"text-anchor=\"middle\">%s</text>\n", 20 + 82 * k,
			270 - h, h, colors[me], 50 + 82 * k, 265 - h,
			pt->r[me].acc, 50 + 82 * k, method_names[me]);
		k++;
	}
	fprintf(f, "</svg>\n");
	fclose(f);
}

static void print_energy(FILE *f, const struct result *r, const char *pre,
			 uint32_t rank)
{
	double tw_dev, tw_all;

	if (!r->have_energy || r->dev_j <= 0)
		return;
	tw_dev = 2.0 * r->macs / r->dev_j / 1e12;
	tw_all = (2.0 * r->macs + r->host_flops) / (r->dev_j + r->host_j) / 1e12;
	fprintf(f, "%senergy: device main path %.3g J for %.3g MACs = %.1f TOPS/W; "
		"with the host rank-%u path (%.3g FLOPs x %.1f pJ) %.1f TOPS/W; "
		"paper: %.0f TOPS/W; %.0f images/s\n", pre, r->dev_j, r->macs,
		tw_dev, rank,
		r->host_flops, HOST_J_PER_FLOP * 1e12, tw_all, PAPER_TOPS_W,
		r->ips);
}

static void write_report(const struct opts *o, const struct point *pt,
			 const struct point *sweep, size_t nsweep,
			 const uint32_t *sig, size_t nsig, const uint32_t *bits,
			 size_t nbits, const int want[NMETH],
			 const struct polar_model *m)
{
	char path[1024];
	FILE *f;
	int me;
	size_t i, j;
	unsigned int l;

	mkdir(o->report, 0755);
	snprintf(path, sizeof(path), "%s/accuracy.svg", o->report);
	svg_bars(path, pt, want);
	snprintf(path, sizeof(path), "%s/report.md", o->report);
	f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "polar eval: cannot write %s\n", path);
		return;
	}
	fprintf(f, "# polar eval report\n\n"
		"model `%s`, device `%s`, chip seed %llu, sigma-static %u "
		"(%.3f), ADC %u bits, weights %s, inputs %s (the first "
		"layer's, the image: %s), rank %u, "
		"%u calibration images (training split), %u test images.\n\n",
		o->model, o->device, (unsigned long long)o->chip_seed, pt->sigma,
		pt->sigma / 65536.0, pt->adc_bits, wfmt_name(o->wfmt),
		xfmt_name(o->xfmt), xfmt_name(o->first_xfmt), o->rank,
		o->calib, o->test);
	fprintf(f, "Chip design (`hw/README.md`, sections 12 and 13): "
		"reconstruction %s (F %u), %u most significant weight planes "
		"read digitally, MSB conversions at %u ADC bits (0: none) for "
		"%u significance levels.\n\n", recon_name(pt->recon),
		pt->recon_frac_bits, pt->design.digital_planes,
		pt->design.adc_bits_msb, pt->design.adc_msb_levels);
	if (o->device_layers)
		fprintf(f, "Only %s run on the device (`--device-layers`); the "
			"other weighted layers stay fp32 on the host.\n\n",
			o->device_layers);
	fprintf(f, "| method | accuracy %% | eval s | images/s |\n|---|---|---|---|\n");
	for (me = 0; me < NMETH; me++)
		if (want[me])
			fprintf(f, "| %s | %.2f | %.1f | %.0f |\n", method_names[me],
				pt->r[me].acc, pt->r[me].seconds, pt->r[me].ips);
	fprintf(f, "\n![accuracy](accuracy.svg)\n\nCalibration took %.1f s. "
		"ADC full scale per layer (cells, %.2f-th percentile of the "
		"per-conversion ON-cell counts of the calibration inputs):",
		pt->calib_s, o->adc_pct);
	for (l = 0; l < m->nlayers; l++)
		if (pt->adc_fs[l])
			fprintf(f, " %s %u", m->layers[l].name, pt->adc_fs[l] / 256);
	fprintf(f, ". Ridge (lambda) of the act-device / sensitivity fits per "
		"layer (%s):", o->lambda_set ? "--lambda" :
		"chosen on every fifth calibration image, held out");
	for (l = 0; l < m->nlayers; l++)
		if (pt->adc_fs[l])
			fprintf(f, " %s %g / %g", m->layers[l].name,
				pt->lambda[M_ACTDEV][l], pt->lambda[M_SENS][l]);
	fprintf(f, ".\n\n## Time\n\nWall-clock seconds of each phase (eval "
		"X (layers Y): Y of the X seconds inside the polarized layers: "
		"quantize, device, host path, dequantize):\n");
	print_timing(f, "", &pt->t, want, m);
	fprintf(f, "\n## Energy\n\n");
	for (me = M_QUANT; me < NMETH; me++)
		if (want[me] && pt->r[me].have_energy) {
			fprintf(f, "- %s: ", method_names[me]);
			print_energy(f, &pt->r[me], "", o->rank);
		}
	fprintf(f, "\nThe device figure is the modelled energy of the chip's "
		"counters (array, ADC, digital, I/O) over the test run. The "
		"whole-network figure adds the host's rank-r path at %.1f pJ per "
		"fp32 FLOP (Horowitz, ISSCC 2014, 45 nm arithmetic plus "
		"instruction overhead). The paper reports about 464 TOPS/W with "
		"rank-8 recovery; here the host path runs on a general-purpose "
		"CPU whose FLOPs cost far more than a CIM MAC, and for this small CNN a rank-%u "
		"path is not small: 2r(in+out) FLOPs per product row against "
		"in*out device MACs (conv1: 656 FLOPs vs 400 MACs per output "
		"position), so the host path dominates the total. The device "
		"figure itself is below the paper's because NF4 weights run as "
		"8 weight planes x 4 input planes = 32 plane pairs, each with "
		"its own ADC conversion per column and row group (NF4 blocks "
		"use 64-row groups), and the counter includes I/O.\n",
		HOST_J_PER_FLOP * 1e12, o->rank);
	if (nsweep) {
		fprintf(f, "\n## Sweep\n\n| sigma-static | ADC bits |");
		for (me = 0; me < NMETH; me++)
			if (want[me])
				fprintf(f, " %s |", method_names[me]);
		fprintf(f, "\n|---|---|");
		for (me = 0; me < NMETH; me++)
			if (want[me])
				fprintf(f, "---|");
		fprintf(f, "\n");
		for (i = 0; i < nsweep; i++) {
			fprintf(f, "| %u (%.3f) | %u |", sweep[i].sigma,
				sweep[i].sigma / 65536.0, sweep[i].adc_bits);
			for (me = 0; me < NMETH; me++)
				if (want[me])
					fprintf(f, " %.2f |", sweep[i].r[me].acc);
			fprintf(f, "\n");
		}
		for (j = 0; j < nbits; j++)
			fprintf(f, "\n![sweep %u bits](sweep_adc%u.svg)\n", bits[j],
				bits[j]);
		for (j = 0; j < nbits; j++) {
			snprintf(path, sizeof(path), "%s/sweep_adc%u.svg",
				 o->report, bits[j]);
			svg_sweep(path, sweep, nsweep, bits[j], want);
		}
	}
	(void)sig;
	(void)nsig;
	fclose(f);
	fprintf(stderr, "report: %s/report.md\n", o->report);
}

/* ---- commands ------------------------------------------------------------------------------ */

static int load_all(struct opts *o, struct polar_model *m,
		    struct polar_dataset *train, struct polar_dataset *test,
		    struct polar_dataset *cal, struct polar_dataset *held,
		    struct polar_dataset *val)
{
	size_t len = strlen(o->model), isz;
	struct polar_dataset fit;
	uint64_t want, have;

	if (len > 5 && !strcmp(o->model + len - 5, ".onnx") ?
	    polar_model_load_onnx(m, o->model, NULL) :
	    polar_model_load(m, o->model))
		return die("model");
	if (resolve_device_layers(o, m))
		return 1;
	if (polar_fashion_mnist_load(o->data, train, test))
		return die("data");
	/* A model on [N, F] inputs takes the images flattened. */
	want = (uint64_t)m->in_c * m->in_h * m->in_w;
	have = (uint64_t)train->channels * train->rows * train->cols;
	if (want != have || (m->in_h > 1 && (m->in_c != train->channels ||
					    m->in_h != train->rows))) {
		fprintf(stderr, "polar eval: %s takes %ux%ux%u inputs, the data "
			"set has %ux%ux%u images\n", o->model, m->in_c, m->in_h,
			m->in_w, train->channels, train->rows, train->cols);
		return 1;
	}
	if (m->classes < train->classes) {
		fprintf(stderr, "polar eval: %s has %u outputs, the data set %u "
			"classes\n", o->model, m->classes, train->classes);
		return 1;
	}
	if (polar_dataset_preprocess(train, &m->pre) ||
	    polar_dataset_preprocess(test, &m->pre))
		return die("preprocess");
	/*
	 * The calibration images (and the trained method's held-out ones)
	 * come from the images polar train trains on; the last ones are the
	 * validation split, which no fit sees.
	 */
	if (train->count <= POLAR_FASHION_MNIST_VALIDATE) {
		fprintf(stderr, "polar eval: the training split has only %zu "
			"images\n", train->count);
		return 1;
	}
	fit = *val = *train;
	fit.count = train->count - POLAR_FASHION_MNIST_VALIDATE;
	isz = (size_t)train->channels * train->rows * train->cols;
	val->images += fit.count * isz;
	val->labels += fit.count;
	val->count = POLAR_FASHION_MNIST_VALIDATE;
	if (calib_subset(&fit, o->calib, o->calib, 0, cal) ||
	    calib_subset(&fit, HELD_IMAGES, o->calib,
			 fit.count / o->calib / 2, held)) {
		fprintf(stderr, "polar eval: out of memory\n");
		return 1;
	}
	o->held = held;
	return 0;
}

int polar_cmd_eval(int argc, char **argv)
{
	struct polar_dataset train = { 0 }, test = { 0 }, cal = { 0 }, th,
			     held = { 0 }, val = { 0 };
	struct polar_model m = { 0 };
	struct opts o;
	int want[NMETH], me, ret = 1;
	struct point pt = { 0 }, *sweep = NULL;
	static const uint32_t sig[] = { 0, 3277, 6554, 9830, 13107, 19661 };
	static const uint32_t bits[] = { 4, 5, 6 };
	size_t nsweep = 0, i, j;
	double t0 = now_s();

	if (parse_opts(argc, argv, &o) || parse_methods(o.methods, want))
		return 2;
	o.train = want[M_TRAINED];
	o.sens_identity = want[M_SENSID];
	if (o.select && !o.validate) {
		fprintf(stderr, "polar eval: --select makes choices, on "
			"validation images only: give --validate N\n");
		return 2;
	}
	if (o.select && o.nvary) {
		fprintf(stderr, "polar eval: --select and --vary: one or the "
			"other\n");
		return 2;
	}
	if ((o.select || o.nvary) && !o.chips_set) {
		o.seed_lo = o.seed_hi = o.chip_seed;
		o.chips_set = 1;
	}
	if (o.chips_set && (!want[M_FP32] || strncmp(o.device, "sim", 3) ||
			    o.sweep || o.report)) {
		fprintf(stderr, "polar eval: --chip-seeds, --vary and --select "
			"need a sim device and fp32 among the methods, without "
			"--sweep or --report\n");
		return 2;
	}
	if (load_all(&o, &m, &train, &test, &cal, &held, &val))
		goto out;
	if ((want[M_SENS] || want[M_TRAINED] || want[M_SENSID]) &&
	    !polar_model_is_chain(&m)) {
		/*
		 * Their Fisher and training need the model's gradient, which
		 * the library computes for chains of the built-in layer types
		 * only: the other methods still run, with a note.
		 */
		int left = 0;

		fprintf(stderr, "polar eval: no sensitivity or trained method "
			"for %s (%s)\n", o.model, polar_errmsg());
		want[M_SENS] = 0;
		want[M_TRAINED] = 0;
		want[M_SENSID] = 0;
		o.train = 0;
		o.sens_identity = 0;
		for (me = 0; me < NMETH; me++)
			left += want[me];
		if (!left) {
			fprintf(stderr, "polar eval: --methods %s: no method "
				"left for this model\n", o.methods);
			goto out;
		}
	}
	pt.t.load = now_s() - t0;
	/*
	 * --validate: choices are made on the validation split; the test
	 * split gives only the final numbers.
	 */
	th = o.validate ? head(&val, o.validate) : head(&test, o.test);
	if (o.validate)
		fprintf(stderr, "evaluating on %zu validation images (the "
			"training split's last %u), not on the test split\n",
			th.count, POLAR_FASHION_MNIST_VALIDATE);
	if (o.chips_set) {
		ret = run_chips(&o, &m, &cal, &th, want) ? 1 : 0;
		goto out;
	}
	pt.sigma = o.sigma_static;
	pt.adc_bits = o.adc_bits;
	if (run_point(&o, &m, &cal, &th, want, &pt, NULL))
		goto out;
	pt.t.total = now_s() - t0;
	for (me = 0; me < NMETH; me++)
		if (want[me] && me != M_FP32)
			fprintf(stderr, "%-12s %.2f%%  %.1f s  %.0f images/s\n",
				method_names[me], pt.r[me].acc, pt.r[me].seconds,
				pt.r[me].ips);
	if (want[M_FP32])
		fprintf(stderr, "%-12s %.2f%%  %.1f s  %.0f images/s (host)\n",
			"fp32", pt.r[M_FP32].acc, pt.r[M_FP32].seconds,
			pt.r[M_FP32].ips);
	fprintf(stderr, "calibration %.1f s; ADC full scale (cells):",
		pt.calib_s);
	for (i = 0; i < m.nlayers; i++)
		if (pt.adc_fs[i])
			fprintf(stderr, " %s %u", m.layers[i].name,
				pt.adc_fs[i] / 256);
	fprintf(stderr, "\nridge (act-device / sensitivity):");
	for (i = 0; i < m.nlayers; i++)
		if (pt.adc_fs[i])
			fprintf(stderr, " %s %g / %g", m.layers[i].name,
				pt.lambda[M_ACTDEV][i], pt.lambda[M_SENS][i]);
	fprintf(stderr, "\n");
	print_timing(stderr, "phases: ", &pt.t, want, &m);
	for (me = M_QUANT; me < NMETH; me++)
		if (want[me] && (me == M_QUANT || me == M_SENS))
			print_energy(stdout, &pt.r[me], me == M_QUANT ?
				     "quant " : "sensitivity ", o.rank);
	if (want[M_SENS] && pt.r[M_SENS].have_energy)
		printf("note: the paper reports about 464 TOPS/W with rank-8 "
		       "recovery; here every modelled device operation (32 "
		       "plane pairs per NF4 x 4-bit product, I/O) and every "
		       "host FLOP of the rank-%u path (6.7 pJ each) is counted, "
		       "and for this small CNN the host path costs more FLOPs "
		       "than the layers' own MACs, so it dominates.\n", o.rank);
	if (o.sweep) {
		if (strncmp(o.device, "sim", 3)) {
			fprintf(stderr, "polar eval: --sweep needs a sim device\n");
			goto out;
		}
		sweep = calloc(sizeof(sig) / sizeof(sig[0]) *
			       (sizeof(bits) / sizeof(bits[0])), sizeof(*sweep));
		if (!sweep)
			goto out;
		for (j = 0; j < sizeof(bits) / sizeof(bits[0]); j++)
			for (i = 0; i < sizeof(sig) / sizeof(sig[0]); i++) {
				struct point *p = &sweep[nsweep];

				p->sigma = sig[i];
				p->adc_bits = bits[j];
				if (run_point(&o, &m, &cal, &th, want, p, NULL))
					goto out;
				nsweep++;
			}
		printf("sweep (accuracy %%):\nsigma   adc");
		for (me = 0; me < NMETH; me++)
			if (want[me])
				printf(" %12s", method_names[me]);
		printf("\n");
		for (i = 0; i < nsweep; i++) {
			printf("%.3f %4u", sweep[i].sigma / 65536.0,
			       sweep[i].adc_bits);
			for (me = 0; me < NMETH; me++)
				if (want[me])
					printf(" %12.2f", sweep[i].r[me].acc);
			printf("\n");
		}
	}
	if (o.report)
		write_report(&o, &pt, sweep, nsweep, sig, sizeof(sig) / sizeof(sig[0]),
			     bits, o.sweep ? sizeof(bits) / sizeof(bits[0]) : 0,
			     want, &m);
	for (me = 0; me < NMETH; me++)
		if (want[me])
			printf("accuracy %s=%.2f\n", method_names[me], pt.r[me].acc);
	/*
	 * The chip's compute efficiency: the main path's MACs per joule of the
	 * device's counters, the same for every method (the first measured).
	 */
	for (me = M_QUANT; me < NMETH; me++)
		if (want[me] && pt.r[me].have_energy && pt.r[me].dev_j > 0) {
			printf("tops_per_w=%.1f\n", 2.0 * pt.r[me].macs /
			       pt.r[me].dev_j / 1e12);
			break;
		}
	ret = 0;
out:
	free(sweep);
	polar_dataset_free(&train);
	polar_dataset_free(&test);
	free(cal.images);
	free(cal.labels);
	free(held.images);
	free(held.labels);
	polar_model_free(&m);
	return ret;
}

int polar_cmd_calibrate(int argc, char **argv)
{
	struct polar_dataset train = { 0 }, test = { 0 }, cal = { 0 },
			     held = { 0 }, val;
	struct polar_model m = { 0 };
	struct polar_tensors ts;
	struct ctx c = { 0 };
	struct opts o;
	int want[NMETH] = { 0 }, ret = 1;
	struct point pt = { 0 };
	unsigned int l;
	char buf[64];

	if (parse_opts(argc, argv, &o))
		return 2;
	if (!o.out) {
		fprintf(stderr, "polar calibrate: --out FILE is required\n");
		return 2;
	}
	o.train = o.save_method == M_TRAINED;
	o.sens_identity = o.save_method == M_SENSID;
	polar_tensors_init(&ts);
	if (load_all(&o, &m, &train, &test, &cal, &held, &val))
		goto out;
	if ((o.save_method == M_SENS || o.save_method == M_TRAINED ||
	     o.save_method == M_SENSID) &&
	    !polar_model_is_chain(&m)) {
		fprintf(stderr, "polar calibrate: no %s factors for %s "
			"(%s): saving act-device's\n",
			method_names[o.save_method], o.model, polar_errmsg());
		o.save_method = M_ACTDEV;
		o.train = 0;
		o.sens_identity = 0;
	}
	pt.sigma = o.sigma_static;
	pt.adc_bits = o.adc_bits;
	if (run_point(&o, &m, &cal, &test, want, &pt, &c))
		goto out;
	for (l = 0; l < m.nlayers; l++) {
		const struct polar_layer *ly = &m.layers[l];
		uint64_t r = layer_rank(&o, ly);
		uint64_t sa[2] = { r, ly->cols }, sb[2] = { ly->rows, r };
		uint64_t one = 1;
		int32_t fs = (int32_t)c.adc_fs[l];
		char name[64];

		if (!c.ql[l])
			continue;
		snprintf(name, sizeof(name), "%s.lowrank_A", ly->name);
		ret = polar_tensors_add(&ts, name, POLAR_DTYPE_F32, 2, sa,
					c.A[o.save_method][l]);
		snprintf(name, sizeof(name), "%s.lowrank_B", ly->name);
		if (!ret)
			ret = polar_tensors_add(&ts, name, POLAR_DTYPE_F32, 2, sb,
						c.B[o.save_method][l]);
		snprintf(name, sizeof(name), "%s.bias_correction", ly->name);
		if (!ret && c.bc[o.save_method][l])
			ret = polar_tensors_add(&ts, name, POLAR_DTYPE_F32, 1, &sb[0],
						c.bc[o.save_method][l]);
		snprintf(name, sizeof(name), "%s.x_scale", ly->name);
		if (!ret)
			ret = polar_tensors_add(&ts, name, POLAR_DTYPE_F32, 1, &one,
						&c.aq[l].scale);
		snprintf(name, sizeof(name), "%s.adc_fs_q8", ly->name);
		if (!ret)
			ret = polar_tensors_add(&ts, name, POLAR_DTYPE_I32, 1, &one,
						&fs);
		if (ret) {
			die("save");
			goto out_ctx;
		}
	}
	ret = polar_tensors_set_meta(&ts, "format", wfmt_name(o.wfmt));
	ret |= polar_tensors_set_meta(&ts, "xfmt", xfmt_name(o.xfmt));
	ret |= polar_tensors_set_meta(&ts, "first_xfmt",
				      xfmt_name(o.first_xfmt));
	snprintf(buf, sizeof(buf), "%u", o.rank);
	ret |= polar_tensors_set_meta(&ts, "rank", buf);
	ret |= polar_tensors_set_meta(&ts, "method", method_names[o.save_method]);
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)c.caps.seed);
	ret |= polar_tensors_set_meta(&ts, "chip_seed", buf);
	snprintf(buf, sizeof(buf), "%u", c.caps.sigma_static);
	ret |= polar_tensors_set_meta(&ts, "sigma_static_q16", buf);
	snprintf(buf, sizeof(buf), "%u", c.caps.adc_bits);
	ret |= polar_tensors_set_meta(&ts, "adc_bits", buf);
	snprintf(buf, sizeof(buf), "%ux%u", c.caps.rows, c.caps.cols);
	ret |= polar_tensors_set_meta(&ts, "tile", buf);
	snprintf(buf, sizeof(buf), "%u", c.caps.rows_per_conv);
	ret |= polar_tensors_set_meta(&ts, "rows_per_conv", buf);
	/* the ADC full scales above were fitted to this reconstruction */
	snprintf(buf, sizeof(buf), "%s/%u", recon_name(c.caps.recon),
		 c.caps.recon_frac_bits);
	ret |= polar_tensors_set_meta(&ts, "recon", buf);
	ret |= polar_tensors_set_meta(&ts, "device", polar_device_path(c.dev));
	ret |= polar_tensors_set_meta(&ts, "model", o.model);
	snprintf(buf, sizeof(buf), "%u", o.calib);
	ret |= polar_tensors_set_meta(&ts, "calib_images", buf);
	if (o.device_layers)
		ret |= polar_tensors_set_meta(&ts, "device_layers",
					      o.device_layers);
	if (o.save_method >= M_ACTDEV) {
		/* the ridge each layer's fit used, "conv1=0.001,conv2=0.1" */
		char ridge[256] = "";

		for (l = 0; l < m.nlayers; l++)
			if (c.ql[l])
				snprintf(ridge + strlen(ridge),
					 sizeof(ridge) - strlen(ridge), "%s%s=%g",
					 ridge[0] ? "," : "", m.layers[l].name,
					 c.lambda[o.save_method][l]);
		ret |= polar_tensors_set_meta(&ts, "ridge", ridge);
	}
	if (o.save_method >= M_SENS)
		ret |= polar_tensors_set_meta(&ts, "fisher",
					      o.fisher_full ? "full" : "diag");
	if (ret || polar_tensors_save(&ts, o.out)) {
		die("save");
		ret = 1;
		goto out_ctx;
	}
	fprintf(stderr, "wrote %s (%s, rank %u, calibration %.1f s)\n", o.out,
		method_names[o.save_method], o.rank, pt.calib_s);
	ret = 0;
out_ctx:
	ctx_free(&c);
out:
	polar_tensors_free(&ts);
	polar_dataset_free(&train);
	polar_dataset_free(&test);
	free(cal.images);
	free(cal.labels);
	free(held.images);
	free(held.labels);
	polar_model_free(&m);
	return ret;
}
