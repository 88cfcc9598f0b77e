// SPDX-License-Identifier: MIT
/*
 * The polarization pipeline (<polar/pipeline.h>): quantize a trained model
 * onto a device (or the software backend), choose each layer's ADC full
 * scale, fit the rank-r host paths with every method, evaluate them on
 * labelled images with energy and throughput, and save or load the
 * per-chip calibration. Moved here from tools/polar_eval.c, which is now
 * a user of this API; the same code runs on /dev/accel/accelN and on
 * "sim:..." (which computes bit for bit what the device computes).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "polar/calib.h"
#include "polar/data.h"
#include "polar/model.h"
#include "polar/nn.h"
#include "polar/pipeline.h"
#include "polar/polar.h"
#include "polar/qlayer.h"
#include "polar/quant.h"
#include "polar_cim_hw.h"
#include "polar_internal.h"

/*
 * sens-identity is a control, not a default method: sensitivity's fit on
 * the same sequential chip inputs with the identity metric instead of the
 * Fisher's, so that the Fisher weighting's own gain is measured.
 */
#define M_FP32 POLAR_METHOD_FP32
#define M_QUANT POLAR_METHOD_QUANT
#define M_SVD POLAR_METHOD_SVD
#define M_ACT POLAR_METHOD_ACT
#define M_ACTDEV POLAR_METHOD_ACT_DEVICE
#define M_SENS POLAR_METHOD_SENSITIVITY
#define M_TRAINED POLAR_METHOD_TRAINED
#define M_SENSID POLAR_METHOD_SENS_IDENTITY
#define NMETH POLAR_METHOD_COUNT
static const char *const method_names[NMETH] = {
	"fp32", "quant", "svd", "act", "act-device", "sensitivity", "trained",
	"sens-identity",
};

#define MAXL POLAR_MODEL_MAX_LAYERS
#define MAX_WORKERS POLAR_PIPELINE_MAX_THREADS
#define EVAL_BATCH 250		/* test images per forward call */
#define MAX_FIT_ROWS 8192	/* im2col rows per conv layer for fitting */
#define MAX_FS_ROWS 256		/* input rows for the ADC statistics */
#define FISHER_RIDGE 0.1	/* x mean diagonal, added to the full Fisher */
#define HOST_J_PER_FLOP POLAR_HOST_J_PER_FLOP

static double pipeline_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* err with "what: " before the message the failing call left. */
static int layer_fail(int err, const char *what)
{
	char msg[400];

	snprintf(msg, sizeof(msg), "%s", polar_errmsg());
	return polar_fail(err, "%s: %s", what, msg);
}

/* What the setters of <polar/pipeline.h> choose. */
struct opts {
	const char *device_layers;	/* NULL: every weighted layer */
	uint8_t on_device[MAXL];	/* resolved against the model */
	enum polar_wfmt wfmt;
	enum polar_xfmt xfmt, first_xfmt;
	uint32_t rank, threads;
	int intercept, fisher_full, lambda_set;
	double adc_pct, act_pct, lambda;
	int train;		/* the trained method is wanted */
	int sens_identity;	/* the sens-identity control is wanted */
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
	double phase[NPHASE];
	double eval[NMETH];		/* each method's evaluation */
	double eval_layers[NMETH];	/* of which in the polarized layers */
	double eval_layer[NMETH][MAXL];	/* of which in each of them */
};

struct ctx {
	const struct opts *o;
	const struct polar_model *m;
	const char *device;	/* what dev was opened from */
	struct polar_device *dev;
	struct polar_caps caps;
	struct polar_qlayer *ql[MAXL];
	struct polar_qlayer_desc desc[MAXL];	/* what ql[] was made from */
	struct polar_act_quant aq[MAXL];
	uint32_t adc_fs[MAXL];
	double lambda[NMETH][MAXL];	/* the ridge each fit used */
	float *A[NMETH][MAXL], *B[NMETH][MAXL];
	float *bc[NMETH][MAXL];	/* bias corrections (--intercept), or NULL */
	enum polar_method cur;
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
	polar_pipeline_progress_fn progress;
	void *progress_ctx;
};

static void progress(const struct ctx *c, const char *stage, size_t done,
		     size_t total)
{
	if (c->progress)
		c->progress(c->progress_ctx, stage, done, total, NULL);
}

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
		return polar_fail(-ENOMEM, "out of memory");
	for (tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		for (i = 0; i < m->nlayers; i++)
			if (is_weighted(&m->layers[i]) &&
			    !strcmp(tok, m->layers[i].name))
				break;
		if (i == m->nlayers) {
			polar_fail(-EINVAL, "the model has no weighted layer "
				   "'%s' (it has %s)", tok, names);
			free(list);
			return -EINVAL;
		}
		o->on_device[i] = 1;
		any = 1;
	}
	free(list);
	if (!any)
		return polar_fail(-EINVAL, "no layer named (the model has %s)",
				  names);
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
	double t = pipeline_now();

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
	double t0 = pipeline_now();
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
	t0 = pipeline_now() - t0;
	c->t_layers += t0;
	c->t_layer[layer] += t0;
	return ret;
}

static int set_method(struct ctx *c, enum polar_method me)
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

static int fit(struct ctx *c, unsigned int i, enum polar_method me, const float *X,
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

/* The trained method's steps and epochs, as the pipeline's progress. */
static void train_progress(void *p, const struct polar_calib_train_progress *pg)
{
	const struct ctx *c = p;
	size_t done = (pg->epoch - 1) * pg->batches + pg->batch,
	       total = (size_t)pg->epochs * pg->batches;
	char note[160];

	if (!c->progress)
		return;
	if (pg->epoch_done) {
		snprintf(note, sizeof(note), "  epoch %u: training loss %.4f, "
			 "held-out loss %.4f\n", pg->epoch, pg->loss,
			 pg->val_loss);
		c->progress(c->progress_ctx, "train host paths", done, total,
			    note);
		return;
	}
	c->progress(c->progress_ctx, "train host paths", done, total, NULL);
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
	char note[200];
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
		polar_fail(-ENOMEM, "out of memory");
		goto out;
	}
	progress(c, "train host paths", 0, 0);
	to.progress = train_progress;
	to.ctx = c;
	ret = polar_calib_train(m, ly, cal, c->o->held, &to, &res);
	progress(c, "train host paths", (size_t)to.epochs *
		 ((cal->count + to.batch - 1) / to.batch), (size_t)to.epochs *
		 ((cal->count + to.batch - 1) / to.batch));
	if (ret) {
		ret = layer_fail(ret, "train");
		goto out;
	}
	snprintf(note, sizeof(note), "trained: %zu images, %zu held out: loss "
		 "%.4f -> %.4f, accuracy %.2f%% -> %.2f%%, epoch %u of %u "
		 "kept\n", cal->count, c->o->held->count, res.val_loss0,
		 res.val_loss, 100 * res.val_accuracy0, 100 * res.val_accuracy,
		 res.best_epoch, res.epochs_run);
	if (c->progress)
		c->progress(c->progress_ctx, "train host paths", 1, 1, note);
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
	const struct polar_model *m = c->m;
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
	double t0 = pipeline_now();
	int ret = 0;

	polar_model_last_reader(m, last);
	fp[0] = pol[0] = cal->images;
	c->t_mark = t0;
	if (c->sens) {
		progress(c, "sensitivity (Fisher)", 0, 0);
		ret = polar_calib_output_fisher_full(m, n, cal->images,
						     cal->labels, fisher);
		progress(c, "sensitivity (Fisher)", 1, 1);
	}
	phase_end(c, PH_FISHER);
	if (ret) {
		ret = layer_fail(ret, "fisher");
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
		enum polar_method me;
		enum polar_xfmt xf = i == first_weighted(m) ? o->first_xfmt :
				     o->xfmt;

		fp_out = fp[i + 1] = malloc(sizeof(float) * n *
					    polar_layer_out_size(l));
		if (c->sens)
			pol_out = pol[i + 1] = malloc(sizeof(float) * n *
						      polar_layer_out_size(l));
		if (!fp_out || (c->sens && !pol_out)) {
			ret = -ENOMEM;
			polar_fail(-ENOMEM, "out of memory");
			break;
		}
		if (!o->on_device[i]) {
			ret = run_layer(c, i, n, fp, fp_out, NULL);
			if (!ret && c->sens)
				ret = run_layer(c, i, n, pol, pol_out, NULL);
			goto next;
		}
		snprintf(label, sizeof(label), "calibrate %s", l->name);
		progress(c, label, 0, 0);
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
			polar_fail(-ENOMEM, "out of memory");
			goto layer_out;
		}
		/* Activation scale from the fp32 inputs of the layer. */
		ret = polar_act_calibrate(fp_in, n * isz, xf,
					  (float)o->act_pct, &c->aq[i]);
		if (ret) {
			ret = layer_fail(ret, l->name);
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
			ret = layer_fail(ret, l->name);
			goto layer_out;
		}
		ret = polar_dequantize_weights(polar_qlayer_qweights(c->ql[i]), E);
		if (ret) {
			ret = layer_fail(ret, l->name);
			goto layer_out;
		}
		for (j = 0; j < (size_t)out * in; j++)
			E[j] = l->weight[j] - E[j];
		progress(c, label, 1, 6);
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
			ret = layer_fail(ret, l->name);
			goto layer_out;
		}
		polar_qlayer_set_adc_fs(c->ql[i], c->adc_fs[i]);
		progress(c, label, 2, 6);
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
			ret = layer_fail(ret, l->name);
			goto layer_out;
		}
		progress(c, label, 3, 6);
		phase_end(c, PH_SVD_ACT);

		/* act-device: fp32 inputs, uniform weights */
		polar_sgemm(0, 1, S, out, in, X, in, l->weight, in, 0.0f, Yt, out);
		ret = polar_qlayer_forward(c->ql[i], (uint32_t)S, X, Yd,
					   POLAR_FWD_DEVICE_ONLY);
		if (ret) {
			ret = layer_fail(ret, l->name);
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
			ret = layer_fail(ret, l->name);
			goto layer_out;
		}
		progress(c, label, 4, 6);
		phase_end(c, PH_ACTDEV);

		/*
		 * sensitivity: polarized inputs, fp32 targets, Fisher weights;
		 * only where the model has gradients (c->sens).
		 */
		if (!c->sens) {
			ret = run_layer(c, i, n, fp, fp_out, NULL);
			if (ret)
				ret = layer_fail(ret, l->name);
			progress(c, label, 6, 6);
			goto layer_out;
		}
		ret = gather_rows(l, n, pol_in, S, Xp);
		if (!ret)
			ret = polar_qlayer_forward(c->ql[i], (uint32_t)S, Xp, Yd,
						   POLAR_FWD_DEVICE_ONLY);
		if (ret) {
			ret = layer_fail(ret, l->name);
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
			ret = layer_fail(ret, l->name);
			goto layer_out;
		}
		progress(c, label, 5, 6);
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
			ret = layer_fail(ret, l->name);
		progress(c, label, 6, 6);
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
		c->t_mark = pipeline_now();
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
	c->calib_s = pipeline_now() - t0;
	return ret;
}

/* ---- evaluation ---------------------------------------------------------------------- */


struct result {
	double acc, seconds, ips;
	double dev_j, host_j, macs, host_flops;
	int have_energy;
};

/* What one evaluation measured, per method. */
struct point {
	struct result r[NMETH];
	uint8_t *hit[NMETH];	/* per test image, when allocated by the caller */
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
	const char *label;	/* worker 0 shows everyone's progress */
	struct image_sums shared[MAXL];
	size_t correct[NMETH];
	double seconds[NMETH];	/* in each method's forward calls */
	double t_layers[NMETH], t_layer[NMETH][MAXL];
	uint64_t host_flops[NMETH];
	int ret;
	char err[256];		/* polar_errmsg() of ret, from its thread */
};

/* Batch k0 of b images through method me on worker wk. */
static int worker_batch(struct worker *wk, enum polar_method me, size_t k0, size_t b,
			float *logits)
{
	struct ctx *c = &wk->c;
	struct polar_matmul_hook hook = { hook_matmul, c };
	size_t insz = (size_t)c->m->in_c * c->m->in_h * c->m->in_w, k;
	double t0 = pipeline_now();
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
		return layer_fail(ret, method_names[me]);
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
	wk->seconds[me] += pipeline_now() - t0;
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
		if (wk->label)
			progress(&wk->c, wk->label, atomic_load(wk->done),
				 wk->t->count);
	}
	/* polar_errmsg() is per thread: the caller's thread reports it */
	if (wk->ret)
		snprintf(wk->err, sizeof(wk->err), "%s", logits ?
			 polar_errmsg() : "out of memory");
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
		k->label = w ? NULL : label;
	}
	if (nchip == 1 && !read_all_counters(wk, nw, c0))
		have_energy = 1;
	progress(&wk[0].c, label, 0, 0);
	for (w = 1; w < nw; w++) {
		if (pthread_create(&th[w], NULL, worker_run, &wk[w])) {
			ret = polar_fail(-EAGAIN, "cannot start a thread");
			break;
		}
		started = w;
	}
	if (!ret)
		worker_run(&wk[0]);
	for (w = 1; w <= started; w++)
		pthread_join(th[w], NULL);
	progress(&wk[0].c, label, atomic_load(&done), t->count);
	for (w = 0; w < nw; w++) {
		if (!ret && wk[w].ret)
			ret = polar_fail(wk[w].ret, "%s", wk[w].err);
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


/* The polarized layers and host paths, not the device. */
static void free_layers(struct ctx *c)
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
}

static void ctx_free(struct ctx *c)
{
	free_layers(c);
	polar_close(c->dev);
	c->dev = NULL;
}

static const char *recon_name(uint32_t recon)
{
	return recon == POLAR_CIM_RECON_CODES ? "codes" :
	       recon == POLAR_CIM_RECON_CELLS ? "cells" : "?";
}

/* Opens c->device; what it is opened with is the caller's choice. */
static int open_device(struct ctx *c)
{
	int ret;

	ret = polar_open(c->device, &c->dev);
	if (ret)
		return layer_fail(ret, "open");
	ret = polar_get_caps(c->dev, &c->caps);
	if (ret)
		return layer_fail(ret, "caps");
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
	if (!c->dev)	/* fp32 only: no chip */
		return 0;
	ret = open_device(wc);
	for (i = 0; !ret && i < c->m->nlayers; i++) {
		if (!c->ql[i])
			continue;
		ret = polar_qlayer_create(&wc->dev, 1, &c->desc[i], &wc->ql[i]);
		if (ret)
			ret = layer_fail(ret, c->m->layers[i].name);
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


/* ---- the public API ------------------------------------------------------ */

struct polar_pipeline {
	struct opts o;
	struct ctx c;		/* the pipeline's own handle and layers */
	struct point pt;	/* the last evaluation of each method */
	char *device, *device_layers, *model_name;
	size_t calib_images;	/* what polarize() calibrated on */
	unsigned int fitted;	/* POLAR_METHOD_MASK()s that can run */
	uint64_t infer_flops;	/* host paths' FLOPs in polar_pipeline_infer() */
};

const char *polar_method_name(enum polar_method me)
{
	if ((unsigned int)me >= NMETH) {
		polar_fail(-EINVAL, "polar_method_name: me %d is not a method",
			   (int)me);
		return NULL;
	}
	return method_names[me];
}

int polar_method_parse(const char *name)
{
	int i;

	POLAR_NONNULL("polar_method_parse", name);
	for (i = 0; i < NMETH; i++)
		if (!strcmp(name, method_names[i]))
			return i;
	return polar_fail(-EINVAL, "unknown method '%s' (fp32, quant, svd, act, "
			  "act-device, sensitivity, trained, sens-identity)",
			  name);
}

int polar_pipeline_create(const struct polar_model *m,
			  struct polar_pipeline **out)
{
	struct polar_pipeline *p;
	int ret;

	POLAR_NONNULL("polar_pipeline_create", out);
	*out = NULL;
	POLAR_NONNULL("polar_pipeline_create", m);
	if (!m->nlayers || m->nlayers > MAXL || !m->classes)
		return polar_fail(-EINVAL, "polar_pipeline_create: the model "
				  "has %u layers and %u classes", m->nlayers,
				  m->classes);
	p = calloc(1, sizeof(*p));
	if (!p)
		return polar_fail(-ENOMEM, "out of memory");
	p->o.wfmt = POLAR_WFMT_NF4;
	p->o.xfmt = POLAR_XFMT_UINT4;
	/*
	 * The image's pixels are 8-bit already: as uint8 they reach the
	 * first layer unrounded, where 4 bits would discard half of each.
	 */
	p->o.first_xfmt = POLAR_XFMT_UINT8;
	p->o.rank = 8;
	p->o.threads = 1;
	p->o.adc_pct = 99.99;
	/*
	 * 4-bit inputs: clipping the rare largest activations buys finer
	 * steps for all the others (99.9 beat 99.99 by about a point).
	 */
	p->o.act_pct = 99.9;
	p->o.intercept = 1;
	p->o.topt.epochs = POLAR_PIPELINE_TRAIN_EPOCHS;
	p->o.topt.batch = POLAR_PIPELINE_TRAIN_BATCH;
	p->o.topt.lr = POLAR_PIPELINE_TRAIN_LR;
	p->o.topt.patience = POLAR_PIPELINE_TRAIN_PATIENCE;
	p->o.topt.layer_weight = 1.0f;
	p->o.topt.seed = 1;
	p->c.o = &p->o;
	p->c.m = m;
	p->c.sens = polar_model_is_chain(m);
	p->c.t = &p->pt.t;
	ret = resolve_device_layers(&p->o, m);
	if (ret) {
		free(p);
		return ret;
	}
	polar_clear_error();
	*out = p;
	return 0;
}

void polar_pipeline_destroy(struct polar_pipeline *p)
{
	if (!p)
		return;
	ctx_free(&p->c);
	free(p->device);
	free(p->device_layers);
	free(p->model_name);
	free(p);
}

/* Options change what polarize() does: not after it (or a load). */
static int settable(const struct polar_pipeline *p, const char *fn)
{
	if (!p)
		return polar_null_arg(fn, "p");
	if (p->fitted)
		return polar_fail(-EBUSY, "%s: the pipeline is already "
				  "polarized", fn);
	return 0;
}

static int xfmt_ok(enum polar_xfmt f)
{
	return f == POLAR_XFMT_INT8 || f == POLAR_XFMT_UINT8 ||
	       f == POLAR_XFMT_INT4 || f == POLAR_XFMT_UINT4;
}

int polar_pipeline_set_formats(struct polar_pipeline *p, enum polar_wfmt wfmt,
			       enum polar_xfmt xfmt, enum polar_xfmt first_xfmt)
{
	int ret = settable(p, "polar_pipeline_set_formats");

	if (ret)
		return ret;
	if (wfmt != POLAR_WFMT_NF4 && wfmt != POLAR_WFMT_INT4 &&
	    wfmt != POLAR_WFMT_INT8)
		return polar_fail(-EINVAL, "polar_pipeline_set_formats: wfmt %d "
				  "is not a weight format", (int)wfmt);
	if (!xfmt_ok(xfmt) || !xfmt_ok(first_xfmt))
		return polar_fail(-EINVAL, "polar_pipeline_set_formats: xfmt %d "
				  "or first_xfmt %d is not an input format",
				  (int)xfmt, (int)first_xfmt);
	p->o.wfmt = wfmt;
	p->o.xfmt = xfmt;
	p->o.first_xfmt = first_xfmt;
	return 0;
}

int polar_pipeline_set_rank(struct polar_pipeline *p, uint32_t rank)
{
	int ret = settable(p, "polar_pipeline_set_rank");

	if (ret)
		return ret;
	if (rank < 1 || rank > 64)
		return polar_fail(-EINVAL, "polar_pipeline_set_rank: rank %u "
				  "(1..64)", rank);
	p->o.rank = rank;
	return 0;
}

int polar_pipeline_set_percentiles(struct polar_pipeline *p, double act_pct,
				   double adc_pct)
{
	int ret = settable(p, "polar_pipeline_set_percentiles");

	if (ret)
		return ret;
	if (!(act_pct > 0 && act_pct <= 100) || !(adc_pct > 0 && adc_pct <= 100))
		return polar_fail(-EINVAL, "polar_pipeline_set_percentiles: "
				  "act_pct %g, adc_pct %g (0 < x <= 100)",
				  act_pct, adc_pct);
	p->o.act_pct = act_pct;
	p->o.adc_pct = adc_pct;
	return 0;
}

int polar_pipeline_set_ridge(struct polar_pipeline *p, double lambda)
{
	int ret = settable(p, "polar_pipeline_set_ridge");

	if (ret)
		return ret;
	if (!(lambda >= 0) || isinf(lambda))
		return polar_fail(-EINVAL, "polar_pipeline_set_ridge: lambda %g "
				  "(0: chosen, or finite > 0)", lambda);
	p->o.lambda_set = lambda > 0;
	p->o.lambda = lambda;
	return 0;
}

int polar_pipeline_set_intercept(struct polar_pipeline *p, int on)
{
	int ret = settable(p, "polar_pipeline_set_intercept");

	if (!ret)
		p->o.intercept = !!on;
	return ret;
}

int polar_pipeline_set_fisher_full(struct polar_pipeline *p, int on)
{
	int ret = settable(p, "polar_pipeline_set_fisher_full");

	if (!ret)
		p->o.fisher_full = !!on;
	return ret;
}

int polar_pipeline_set_device_layers(struct polar_pipeline *p,
				     const char *names)
{
	struct opts o;
	char *copy = NULL;
	int ret = settable(p, "polar_pipeline_set_device_layers");

	if (ret)
		return ret;
	if (names) {
		copy = strdup(names);
		if (!copy)
			return polar_fail(-ENOMEM, "out of memory");
	}
	o = p->o;
	o.device_layers = copy;
	ret = resolve_device_layers(&o, p->c.m);
	if (ret) {
		free(copy);
		return ret;
	}
	free(p->device_layers);
	p->device_layers = copy;
	p->o = o;
	return 0;
}

int polar_pipeline_set_training(struct polar_pipeline *p,
				const struct polar_calib_train_opts *opts,
				const struct polar_dataset *held)
{
	int ret = settable(p, "polar_pipeline_set_training");

	if (ret)
		return ret;
	POLAR_NONNULL("polar_pipeline_set_training", opts);
	POLAR_NONNULL("polar_pipeline_set_training", held);
	if (!held->count || !held->images || !held->labels)
		return polar_fail(-EINVAL, "polar_pipeline_set_training: held "
				  "has no images");
	p->o.topt = *opts;
	p->o.topt.progress = NULL;
	p->o.topt.ctx = NULL;
	p->o.held = held;
	return 0;
}

int polar_pipeline_set_threads(struct polar_pipeline *p, unsigned int threads)
{
	POLAR_NONNULL("polar_pipeline_set_threads", p);
	if (threads < 1 || threads > MAX_WORKERS)
		return polar_fail(-EINVAL, "polar_pipeline_set_threads: threads "
				  "%u (1..%u)", threads, MAX_WORKERS);
	p->o.threads = threads;
	return 0;
}

int polar_pipeline_set_progress(struct polar_pipeline *p,
				polar_pipeline_progress_fn fn, void *ctx)
{
	POLAR_NONNULL("polar_pipeline_set_progress", p);
	p->c.progress = fn;
	p->c.progress_ctx = ctx;
	return 0;
}

int polar_pipeline_set_model_name(struct polar_pipeline *p, const char *name)
{
	char *copy = NULL;

	POLAR_NONNULL("polar_pipeline_set_model_name", p);
	if (name && !(copy = strdup(name)))
		return polar_fail(-ENOMEM, "out of memory");
	free(p->model_name);
	p->model_name = copy;
	return 0;
}

int polar_pipeline_open(struct polar_pipeline *p, const char *device)
{
	int ret;

	POLAR_NONNULL("polar_pipeline_open", p);
	POLAR_NONNULL("polar_pipeline_open", device);
	if (p->c.dev)
		return polar_fail(-EBUSY, "polar_pipeline_open: %s is open "
				  "already", p->device);
	free(p->device);
	p->device = strdup(device);
	if (!p->device)
		return polar_fail(-ENOMEM, "out of memory");
	p->c.device = p->device;
	p->c.t_mark = pipeline_now();
	ret = open_device(&p->c);
	phase_end(&p->c, PH_OPEN);
	if (ret) {
		polar_close(p->c.dev);
		p->c.dev = NULL;
	}
	return ret;
}

struct polar_device *polar_pipeline_device(const struct polar_pipeline *p)
{
	if (!p) {
		polar_null_arg("polar_pipeline_device", "p");
		return NULL;
	}
	return p->c.dev;
}

/* The images of d fit the model's input. */
static int check_images(const struct polar_pipeline *p, const char *fn,
			const char *what, const struct polar_dataset *d,
			int labels)
{
	const struct polar_model *m = p->c.m;

	if (!d->count || !d->images || (labels && !d->labels))
		return polar_fail(-EINVAL, "%s: %s has %zu images%s", fn, what,
				  d->count, labels && !d->labels ?
				  " and no labels" : "");
	if ((uint64_t)d->channels * d->rows * d->cols !=
	    (uint64_t)m->in_c * m->in_h * m->in_w)
		return polar_fail(-EINVAL, "%s: %s has %ux%ux%u images, the "
				  "model takes %ux%ux%u", fn, what, d->channels,
				  d->rows, d->cols, m->in_c, m->in_h, m->in_w);
	return 0;
}

int polar_pipeline_polarize(struct polar_pipeline *p,
			    const struct polar_dataset *cal, unsigned int methods)
{
	static const char fn[] = "polar_pipeline_polarize";
	int ret;

	POLAR_NONNULL(fn, p);
	POLAR_NONNULL(fn, cal);
	ret = settable(p, fn);
	if (ret)
		return ret;
	if (!p->c.dev)
		return polar_fail(-EINVAL, "%s: no device (polar_pipeline_open() "
				  "first)", fn);
	if (methods >> NMETH)
		return polar_fail(-EINVAL, "%s: methods 0x%x: unknown bits", fn,
				  methods);
	ret = check_images(p, fn, "cal", cal, 1);
	if (ret)
		return ret;
	p->o.train = !!(methods & POLAR_METHOD_MASK(M_TRAINED));
	p->o.sens_identity = !!(methods & POLAR_METHOD_MASK(M_SENSID));
	if ((p->o.train || p->o.sens_identity) && !p->c.sens)
		return polar_fail(-EINVAL, "%s: trained and sens-identity need "
				  "the model's gradient: it is not a chain of "
				  "the built-in layer types", fn);
	if (p->o.train && !p->o.held)
		return polar_fail(-EINVAL, "%s: trained needs held-out images "
				  "(polar_pipeline_set_training())", fn);
	ret = calibrate(&p->c, cal);
	if (ret)
		return ret;
	p->calib_images = cal->count;
	p->fitted = POLAR_METHOD_MASK(M_FP32) | POLAR_METHOD_MASK(M_QUANT) |
		    POLAR_METHOD_MASK(M_SVD) | POLAR_METHOD_MASK(M_ACT) |
		    POLAR_METHOD_MASK(M_ACTDEV);
	if (p->c.sens)
		p->fitted |= POLAR_METHOD_MASK(M_SENS);
	if (p->o.train)
		p->fitted |= POLAR_METHOD_MASK(M_TRAINED);
	if (p->o.sens_identity)
		p->fitted |= POLAR_METHOD_MASK(M_SENSID);
	return 0;
}

/* methods can run: fp32 always, the others once fitted (or loaded). */
static int check_methods(const struct polar_pipeline *p, const char *fn,
			 unsigned int methods)
{
	int me;

	if (!methods || methods >> NMETH)
		return polar_fail(-EINVAL, "%s: methods 0x%x", fn, methods);
	for (me = M_QUANT; me < NMETH; me++)
		if ((methods & POLAR_METHOD_MASK(me)) &&
		    !(p->fitted & POLAR_METHOD_MASK(me)))
			return polar_fail(-EINVAL, "%s: method %s is not "
					  "calibrated", fn, method_names[me]);
	return 0;
}

int polar_pipeline_infer(struct polar_pipeline *p, enum polar_method me,
			 size_t n, const float *images, float *logits,
			 uint8_t *classes)
{
	static const char fn[] = "polar_pipeline_infer";
	struct ctx *c;
	struct polar_matmul_hook hook;
	size_t insz, k0, k, b;
	float *z;
	int ret;

	POLAR_NONNULL(fn, p);
	POLAR_NONNULL(fn, images);
	if (!n)
		return polar_fail(-EINVAL, "%s: n is 0", fn);
	if (!logits && !classes)
		return polar_fail(-EINVAL, "%s: logits and classes are NULL", fn);
	if ((unsigned int)me >= NMETH)
		return polar_fail(-EINVAL, "%s: me %d is not a method", fn,
				  (int)me);
	ret = check_methods(p, fn, POLAR_METHOD_MASK(me));
	if (ret)
		return ret;
	c = &p->c;
	hook = (struct polar_matmul_hook){ hook_matmul, c };
	insz = (size_t)c->m->in_c * c->m->in_h * c->m->in_w;
	z = malloc(sizeof(float) * EVAL_BATCH * c->m->classes);
	if (!z)
		return polar_fail(-ENOMEM, "out of memory");
	ret = me == M_FP32 ? 0 : set_method(c, me);
	/* the same batches as polar_pipeline_evaluate(), so the same bits */
	for (k0 = 0; k0 < n && !ret; k0 += EVAL_BATCH) {
		b = n - k0 < EVAL_BATCH ? n - k0 : EVAL_BATCH;
		c->host_flops = 0;
		ret = polar_model_forward(c->m, b, images + k0 * insz, z,
					  me == M_FP32 ? NULL : &hook);
		if (ret) {
			ret = layer_fail(ret, method_names[me]);
			break;
		}
		p->infer_flops += c->host_flops;
		if (logits)
			memcpy(logits + k0 * c->m->classes, z,
			       sizeof(float) * b * c->m->classes);
		for (k = 0; classes && k < b; k++) {
			const float *y = z + k * c->m->classes;
			unsigned int j, best = 0;

			for (j = 1; j < c->m->classes; j++)
				if (y[j] > y[best])
					best = j;
			classes[k0 + k] = (uint8_t)best;
		}
	}
	c->host_flops = 0;
	free(z);
	return ret;
}

int polar_pipeline_evaluate(struct polar_pipeline *p, unsigned int methods,
			    const struct polar_dataset *d,
			    uint8_t *const hit[POLAR_METHOD_COUNT])
{
	static const char fn[] = "polar_pipeline_evaluate";
	struct worker *wk;
	int want[NMETH], me, ret;
	unsigned int nw, w;

	POLAR_NONNULL(fn, p);
	POLAR_NONNULL(fn, d);
	ret = check_methods(p, fn, methods);
	if (!ret)
		ret = check_images(p, fn, "d", d, 1);
	if (ret)
		return ret;
	for (me = 0; me < NMETH; me++) {
		want[me] = !!(methods & POLAR_METHOD_MASK(me));
		p->pt.hit[me] = hit ? hit[me] : NULL;
	}
	wk = calloc(MAX_WORKERS, sizeof(*wk));
	if (!wk)
		return polar_fail(-ENOMEM, "out of memory");
	nw = (d->count + EVAL_BATCH - 1) / EVAL_BATCH;
	if (nw > p->o.threads)
		nw = p->o.threads;
	p->c.t_mark = pipeline_now();
	wk[0].c = p->c;
	for (w = 1; w < nw && !ret; w++)
		ret = make_worker(&p->c, &wk[w].c);
	phase_end(&p->c, PH_WORKERS);
	if (!ret)
		ret = evaluate_all(wk, nw, want, d, &p->pt);
	for (w = 1; w < nw; w++)
		if (wk[w].c.o)
			free_worker(&wk[w].c);
	free(wk);
	for (me = 0; me < NMETH; me++)
		p->pt.hit[me] = NULL;
	return ret;
}

static int method_arg(const char *fn, enum polar_method me)
{
	if ((unsigned int)me >= NMETH)
		return polar_fail(-EINVAL, "%s: me %d is not a method", fn,
				  (int)me);
	return 0;
}

/* A struct of the caller's size sz: the fields it has, the rest dropped. */
static int check_sz(const char *fn, size_t sz, size_t min)
{
	if (sz < min)
		return polar_fail(-EINVAL, "%s: sz %zu is below %zu", fn, sz, min);
	return 0;
}

int polar_pipeline_get_result(const struct polar_pipeline *p,
			      enum polar_method me,
			      struct polar_pipeline_result *r)
{
	static const char fn[] = "polar_pipeline_get_result";
	struct polar_pipeline_result v = { 0 };
	const struct result *res;
	size_t sz;
	int ret;

	POLAR_NONNULL(fn, p);
	POLAR_NONNULL(fn, r);
	ret = method_arg(fn, me);
	if (!ret)
		ret = check_sz(fn, r->sz, offsetof(struct polar_pipeline_result,
						    accuracy) + sizeof(double));
	if (ret)
		return ret;
	res = &p->pt.r[me];
	sz = r->sz < sizeof(v) ? r->sz : sizeof(v);
	v.sz = sz;
	v.accuracy = res->acc;
	v.seconds = res->seconds;
	v.images_per_s = res->ips;
	v.have_energy = res->have_energy;
	v.device_j = res->dev_j;
	v.macs = res->macs;
	v.host_flops = res->host_flops;
	v.host_j = res->host_j;
	v.layers_seconds = p->pt.t.eval_layers[me];
	memcpy(v.layer_seconds, p->pt.t.eval_layer[me], sizeof(v.layer_seconds));
	memcpy(r, &v, sz);
	return 0;
}

int polar_pipeline_get_layer(const struct polar_pipeline *p, unsigned int layer,
			     struct polar_pipeline_layer_info *li)
{
	static const char fn[] = "polar_pipeline_get_layer";
	struct polar_pipeline_layer_info v = { 0 };
	size_t sz;
	int me, ret;

	POLAR_NONNULL(fn, p);
	POLAR_NONNULL(fn, li);
	if (layer >= p->c.m->nlayers)
		return polar_fail(-EINVAL, "%s: layer %u (the model has %u)", fn,
				  layer, p->c.m->nlayers);
	ret = check_sz(fn, li->sz, offsetof(struct polar_pipeline_layer_info,
					    on_device) + sizeof(int));
	if (ret)
		return ret;
	sz = li->sz < sizeof(v) ? li->sz : sizeof(v);
	v.sz = sz;
	v.on_device = p->c.ql[layer] != NULL;
	if (v.on_device) {
		v.rank = layer_rank(&p->o, &p->c.m->layers[layer]);
		v.adc_fs = p->c.adc_fs[layer];
		v.x_scale = p->c.aq[layer].scale;
		for (me = 0; me < NMETH; me++)
			v.ridge[me] = p->c.lambda[me][layer];
	}
	memcpy(li, &v, sz);
	return 0;
}

int polar_pipeline_get_timing(const struct polar_pipeline *p,
			      struct polar_pipeline_timing *t)
{
	static const char fn[] = "polar_pipeline_get_timing";
	struct polar_pipeline_timing v = { 0 };
	size_t sz;
	int ph, ret;

	POLAR_NONNULL(fn, p);
	POLAR_NONNULL(fn, t);
	ret = check_sz(fn, t->sz, offsetof(struct polar_pipeline_timing,
					   nphases) + sizeof(unsigned int));
	if (ret)
		return ret;
	sz = t->sz < sizeof(v) ? t->sz : sizeof(v);
	v.sz = sz;
	v.nphases = NPHASE;
	for (ph = 0; ph < NPHASE; ph++) {
		v.phase_name[ph] = phase_names[ph];
		v.phase_seconds[ph] = p->pt.t.phase[ph];
	}
	v.calib_seconds = p->c.calib_s;
	memcpy(t, &v, sz);
	return 0;
}

int polar_pipeline_read_energy(const struct polar_pipeline *p,
			       struct polar_pipeline_energy *e)
{
	static const char fn[] = "polar_pipeline_read_energy";
	struct polar_pipeline_energy v = { 0 };
	uint64_t cnt[POLAR_CIM_NUM_COUNTERS];
	size_t sz;
	int ret;

	POLAR_NONNULL(fn, p);
	POLAR_NONNULL(fn, e);
	ret = check_sz(fn, e->sz, offsetof(struct polar_pipeline_energy,
					   device_j) + sizeof(double));
	if (ret)
		return ret;
	if (!p->c.dev)
		return polar_fail(-EINVAL, "%s: no device open", fn);
	ret = read_counters(p->c.dev, cnt);
	if (ret)
		return layer_fail(ret, "read counters");
	sz = e->sz < sizeof(v) ? e->sz : sizeof(v);
	v.sz = sz;
	v.device_j = (double)cnt[POLAR_CIM_CNT_ENERGY_FJ] * 1e-15;
	v.macs = (double)cnt[POLAR_CIM_CNT_MACS];
	v.host_flops = (double)p->infer_flops;
	v.host_j = v.host_flops * HOST_J_PER_FLOP;
	memcpy(e, &v, sz);
	return 0;
}

/* ---- per-chip calibration files ------------------------------------------ */

int polar_pipeline_save(const struct polar_pipeline *p, enum polar_method me,
			const char *path)
{
	static const char fn[] = "polar_pipeline_save";
	const struct polar_model *m;
	const struct ctx *c;
	struct polar_tensors ts;
	unsigned int l;
	char buf[64];
	int ret;

	POLAR_NONNULL(fn, p);
	POLAR_NONNULL(fn, path);
	ret = method_arg(fn, me);
	if (ret)
		return ret;
	if (me < M_SVD)
		return polar_fail(-EINVAL, "%s: %s has no host path to save", fn,
				  method_names[me]);
	ret = check_methods(p, fn, POLAR_METHOD_MASK(me));
	if (ret)
		return ret;
	c = &p->c;
	m = c->m;
	polar_tensors_init(&ts);
	for (l = 0; l < m->nlayers; l++) {
		const struct polar_layer *ly = &m->layers[l];
		uint64_t r = layer_rank(&p->o, ly);
		uint64_t sa[2] = { r, ly->cols }, sb[2] = { ly->rows, r };
		uint64_t one = 1;
		int32_t fs = (int32_t)c->adc_fs[l];
		char name[64];

		if (!c->ql[l])
			continue;
		snprintf(name, sizeof(name), "%s.lowrank_A", ly->name);
		ret = polar_tensors_add(&ts, name, POLAR_DTYPE_F32, 2, sa,
					c->A[me][l]);
		snprintf(name, sizeof(name), "%s.lowrank_B", ly->name);
		if (!ret)
			ret = polar_tensors_add(&ts, name, POLAR_DTYPE_F32, 2, sb,
						c->B[me][l]);
		snprintf(name, sizeof(name), "%s.bias_correction", ly->name);
		if (!ret && c->bc[me][l])
			ret = polar_tensors_add(&ts, name, POLAR_DTYPE_F32, 1, &sb[0],
						c->bc[me][l]);
		snprintf(name, sizeof(name), "%s.x_scale", ly->name);
		if (!ret)
			ret = polar_tensors_add(&ts, name, POLAR_DTYPE_F32, 1, &one,
						&c->aq[l].scale);
		snprintf(name, sizeof(name), "%s.adc_fs_q8", ly->name);
		if (!ret)
			ret = polar_tensors_add(&ts, name, POLAR_DTYPE_I32, 1, &one,
						&fs);
		if (ret)
			goto out;
	}
	ret = polar_tensors_set_meta(&ts, "format", polar_wfmt_name(p->o.wfmt));
	ret |= polar_tensors_set_meta(&ts, "xfmt", polar_xfmt_name(p->o.xfmt));
	ret |= polar_tensors_set_meta(&ts, "first_xfmt",
				      polar_xfmt_name(p->o.first_xfmt));
	snprintf(buf, sizeof(buf), "%u", p->o.rank);
	ret |= polar_tensors_set_meta(&ts, "rank", buf);
	ret |= polar_tensors_set_meta(&ts, "method", method_names[me]);
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)c->caps.seed);
	ret |= polar_tensors_set_meta(&ts, "chip_seed", buf);
	snprintf(buf, sizeof(buf), "%u", c->caps.sigma_static);
	ret |= polar_tensors_set_meta(&ts, "sigma_static_q16", buf);
	snprintf(buf, sizeof(buf), "%u", c->caps.adc_bits);
	ret |= polar_tensors_set_meta(&ts, "adc_bits", buf);
	snprintf(buf, sizeof(buf), "%ux%u", c->caps.rows, c->caps.cols);
	ret |= polar_tensors_set_meta(&ts, "tile", buf);
	snprintf(buf, sizeof(buf), "%u", c->caps.rows_per_conv);
	ret |= polar_tensors_set_meta(&ts, "rows_per_conv", buf);
	/* the ADC full scales above were fitted to this reconstruction */
	snprintf(buf, sizeof(buf), "%s/%u", recon_name(c->caps.recon),
		 c->caps.recon_frac_bits);
	ret |= polar_tensors_set_meta(&ts, "recon", buf);
	ret |= polar_tensors_set_meta(&ts, "device", polar_device_path(c->dev));
	if (p->model_name)
		ret |= polar_tensors_set_meta(&ts, "model", p->model_name);
	if (p->calib_images) {
		snprintf(buf, sizeof(buf), "%zu", p->calib_images);
		ret |= polar_tensors_set_meta(&ts, "calib_images", buf);
	}
	if (p->o.device_layers)
		ret |= polar_tensors_set_meta(&ts, "device_layers",
					      p->o.device_layers);
	if (me >= M_ACTDEV) {
		/* the ridge each layer's fit used, "conv1=0.001,conv2=0.1" */
		char ridge[256] = "";

		for (l = 0; l < m->nlayers; l++)
			if (c->ql[l])
				snprintf(ridge + strlen(ridge),
					 sizeof(ridge) - strlen(ridge), "%s%s=%g",
					 ridge[0] ? "," : "", m->layers[l].name,
					 c->lambda[me][l]);
		ret |= polar_tensors_set_meta(&ts, "ridge", ridge);
	}
	if (me >= M_SENS)
		ret |= polar_tensors_set_meta(&ts, "fisher",
					      p->o.fisher_full ? "full" : "diag");
	if (!ret)
		ret = polar_tensors_save(&ts, path);
out:
	polar_tensors_free(&ts);
	return ret ? layer_fail(ret < 0 ? ret : -EIO, path) : 0;
}

/* The format named by a saved calibration's metadata key. */
static int meta_format(const struct polar_tensors *ts, const char *path,
		       const char *key, int weights, int *fmt)
{
	const char *v = polar_tensors_meta(ts, key);
	int f = !v ? -EINVAL :
		weights ? polar_wfmt_parse(v) : polar_xfmt_parse(v);

	if (f >= 0) {
		*fmt = f;
		return 0;
	}
	return polar_fail(-EINVAL, "%s: metadata %s is %s%s%s", path, key,
			  v ? "'" : "missing", v ? v : "", v ? "'" : "");
}

/* LAYER.WHAT of a saved calibration, of the shape given. */
static int saved_tensor(const struct polar_tensors *ts, const char *path,
			const char *layer, const char *what,
			enum polar_dtype dtype, const struct polar_tensor **t,
			unsigned int ndim, uint32_t d0, uint32_t d1)
{
	char name[80];
	int ret;

	snprintf(name, sizeof(name), "%s.%s", layer, what);
	ret = ndim == 2 ? polar_tensors_get(ts, name, dtype, t, 2, (int)d0,
					    (int)d1) :
			  polar_tensors_get(ts, name, dtype, t, 1, (int)d0);
	if (ret == -ENOENT)
		return polar_fail(-EINVAL, "%s: no tensor %s", path, name);
	return ret;
}

/*
 * Layer i programmed from a saved calibration: the same descriptor, in the
 * same layer order, as calibrate() gives it, so the device places it on
 * the same tiles and its jobs get the same seeds.
 */
static int load_layer(struct polar_pipeline *p, const struct polar_tensors *ts,
		      const char *path, unsigned int i, enum polar_method me)
{
	struct ctx *c = &p->c;
	const struct polar_layer *l = &c->m->layers[i];
	const struct polar_tensor *ta, *tb, *tbc = NULL, *tx, *tf;
	struct polar_qlayer_desc d = { 0 };
	uint32_t r = layer_rank(&p->o, l);
	char name[80];
	int ret;

	ret = saved_tensor(ts, path, l->name, "lowrank_A", POLAR_DTYPE_F32, &ta,
			   2, r, l->cols);
	if (!ret)
		ret = saved_tensor(ts, path, l->name, "lowrank_B",
				   POLAR_DTYPE_F32, &tb, 2, l->rows, r);
	if (!ret)
		ret = saved_tensor(ts, path, l->name, "x_scale", POLAR_DTYPE_F32,
				   &tx, 1, 1, 0);
	if (!ret)
		ret = saved_tensor(ts, path, l->name, "adc_fs_q8",
				   POLAR_DTYPE_I32, &tf, 1, 1, 0);
	snprintf(name, sizeof(name), "%s.bias_correction", l->name);
	if (!ret && polar_tensors_find(ts, name))
		ret = saved_tensor(ts, path, l->name, "bias_correction",
				   POLAR_DTYPE_F32, &tbc, 1, l->rows, 0);
	if (ret)
		return ret;
	c->aq[i].fmt = i == first_weighted(c->m) ? p->o.first_xfmt : p->o.xfmt;
	memcpy(&c->aq[i].scale, tx->data, sizeof(float));
	memcpy(&c->adc_fs[i], tf->data, sizeof(uint32_t));
	if (!(c->aq[i].scale > 0) || isinf(c->aq[i].scale))
		return polar_fail(-EINVAL, "%s: %s.x_scale is not a finite "
				  "positive number", path, l->name);
	c->A[me][i] = malloc(ta->nbytes);
	c->B[me][i] = malloc(tb->nbytes);
	c->bc[me][i] = tbc ? malloc(tbc->nbytes) : NULL;
	if (!c->A[me][i] || !c->B[me][i] || (tbc && !c->bc[me][i]))
		return polar_fail(-ENOMEM, "out of memory");
	memcpy(c->A[me][i], ta->data, ta->nbytes);
	memcpy(c->B[me][i], tb->data, tb->nbytes);
	if (tbc)
		memcpy(c->bc[me][i], tbc->data, tbc->nbytes);
	d.in_dim = l->cols;
	d.out_dim = l->rows;
	d.weight = l->weight;
	d.bias = NULL;	/* the model adds the bias after the hook */
	d.wfmt = p->o.wfmt;
	d.xfmt = c->aq[i].fmt;
	d.x_scale = c->aq[i].scale;
	d.job_seed = 0x1000u * (i + 1);
	c->desc[i] = d;
	ret = polar_qlayer_create(&c->dev, 1, &d, &c->ql[i]);
	if (ret)
		return layer_fail(ret, l->name);
	polar_qlayer_set_adc_fs(c->ql[i], c->adc_fs[i]);
	return 0;
}

int polar_pipeline_load(struct polar_pipeline *p, const char *path)
{
	static const char fn[] = "polar_pipeline_load";
	const struct polar_model *m;
	struct polar_tensors ts;
	const char *v;
	unsigned int i, any = 0;
	int ret, me, wf, xf, fxf;
	char *end;
	unsigned long rank;

	POLAR_NONNULL(fn, p);
	POLAR_NONNULL(fn, path);
	ret = settable(p, fn);
	if (ret)
		return ret;
	if (!p->c.dev)
		return polar_fail(-EINVAL, "%s: no device (polar_pipeline_open() "
				  "first)", fn);
	m = p->c.m;
	ret = polar_tensors_load(path, &ts);
	if (ret)
		return ret;
	v = polar_tensors_meta(&ts, "method");
	me = v ? polar_method_parse(v) : -EINVAL;
	if (me < M_SVD) {
		ret = polar_fail(-EINVAL, "%s: metadata method is %s%s%s", path,
				 v ? "'" : "missing", v ? v : "", v ? "'" : "");
		goto out;
	}
	v = polar_tensors_meta(&ts, "rank");
	rank = v ? strtoul(v, &end, 10) : 0;
	if (!v || *end || rank < 1 || rank > 64) {
		ret = polar_fail(-EINVAL, "%s: metadata rank is %s%s%s (1..64)",
				 path, v ? "'" : "missing", v ? v : "",
				 v ? "'" : "");
		goto out;
	}
	ret = meta_format(&ts, path, "format", 1, &wf);
	if (!ret)
		ret = meta_format(&ts, path, "xfmt", 0, &xf);
	if (!ret)
		ret = meta_format(&ts, path, "first_xfmt", 0, &fxf);
	if (ret)
		goto out;
	p->o.rank = (uint32_t)rank;
	p->o.wfmt = (enum polar_wfmt)wf;
	p->o.xfmt = (enum polar_xfmt)xf;
	p->o.first_xfmt = (enum polar_xfmt)fxf;
	/* the layers with factors are the ones on the device */
	for (i = 0; i < m->nlayers && !ret; i++) {
		char name[80];

		snprintf(name, sizeof(name), "%s.lowrank_A", m->layers[i].name);
		p->o.on_device[i] = is_weighted(&m->layers[i]) &&
				    polar_tensors_find(&ts, name);
		if (!p->o.on_device[i])
			continue;
		ret = load_layer(p, &ts, path, i, (enum polar_method)me);
		any = 1;
	}
	if (!ret && !any)
		ret = polar_fail(-EINVAL, "%s: no tensor of a weighted layer of "
				 "the model (%s.lowrank_A, ...)", path,
				 m->layers[first_weighted(m)].name);
	if (ret) {
		free_layers(&p->c);
		goto out;
	}
	p->fitted = POLAR_METHOD_MASK(M_FP32) | POLAR_METHOD_MASK(M_QUANT) |
		    POLAR_METHOD_MASK(me);
	ret = me;
out:
	polar_tensors_free(&ts);
	return ret;
}
