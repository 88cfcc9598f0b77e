// SPDX-License-Identifier: MIT
/*
 * polar_calib_train() on a tiny CNN (conv, ReLU, max-pool, two linear
 * layers) whose three weighted layers run on a simulated chip with static
 * variability: over a few full-batch steps on fixed data the loss goes
 * down, the fp32 weights and the programmed codes stay bit for bit what
 * they were, and A, B and the bias corrections change; bad options are
 * refused with a message naming them.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "polar/calib.h"
#include "polar/nn.h"
#include "polar/polar.h"
#include "polar/qlayer.h"
#include "polar/quant.h"
#include "unit.h"

#define NIMG 32
#define RANK 2

static uint64_t rs = 0x2545F4914F6CDD1Dull;

static float frand(void)	/* uniform in [-1, 1) */
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return (float)((double)(rs >> 40) / (double)(1ull << 23)) - 1.0f;
}

struct tiny {
	struct polar_model m;
	struct polar_device *dev;
	struct polar_qlayer *ql[POLAR_MODEL_MAX_LAYERS];
	struct polar_calib_train_layer ly[POLAR_MODEL_MAX_LAYERS];
	float fisher[16];
	struct polar_dataset d;
};

static int tiny_make(struct tiny *t)
{
	unsigned int i;
	size_t j;
	int ret;

	memset(t, 0, sizeof(*t));
	ret = polar_model_init(&t->m, "tiny", 1, 8, 8);
	ret = ret ? ret : polar_model_add_conv2d(&t->m, "conv", 4, 3, 1);
	ret = ret ? ret : polar_model_add_relu(&t->m);
	ret = ret ? ret : polar_model_add_maxpool2(&t->m);
	ret = ret ? ret : polar_model_add_linear(&t->m, "fc1", 12);
	ret = ret ? ret : polar_model_add_relu(&t->m);
	ret = ret ? ret : polar_model_add_linear(&t->m, "fc2", 10);
	ret = ret ? ret : polar_model_finalize(&t->m, 3);
	ret = ret ? ret : polar_open("sim:sigma-static=13107,seed=5", &t->dev);
	if (ret)
		return ret;
	for (j = 0; j < 16; j++)
		t->fisher[j] = 0.5f + (float)(j % 3);
	for (i = 0; i < t->m.nlayers; i++) {
		const struct polar_layer *l = &t->m.layers[i];
		struct polar_qlayer_desc d = { 0 };
		struct polar_calib_train_layer *y = &t->ly[i];

		if (l->type != POLAR_LAYER_CONV2D && l->type != POLAR_LAYER_LINEAR)
			continue;
		d.in_dim = l->cols;
		d.out_dim = l->rows;
		d.weight = l->weight;
		d.wfmt = POLAR_WFMT_NF4;
		d.xfmt = i ? POLAR_XFMT_UINT4 : POLAR_XFMT_UINT8;
		d.x_scale = i ? 1.0f / 15 : 1.0f / 255;
		d.job_seed = i + 1;
		ret = polar_qlayer_create(&t->dev, 1, &d, &t->ql[i]);
		if (ret)
			return ret;
		y->qlayer = t->ql[i];
		y->rank = RANK;
		y->A = malloc(sizeof(float) * RANK * l->cols);
		y->B = malloc(sizeof(float) * l->rows * RANK);
		y->bias = calloc(l->rows, sizeof(float));
		y->fisher = t->fisher;
		if (!y->A || !y->B || !y->bias)
			return -ENOMEM;
		for (j = 0; j < (size_t)RANK * l->cols; j++)
			y->A[j] = 0.1f * frand();
		for (j = 0; j < (size_t)RANK * l->rows; j++)
			y->B[j] = 0.1f * frand();
	}
	t->d.count = NIMG;
	t->d.channels = 1;
	t->d.rows = t->d.cols = 8;
	t->d.classes = 10;
	t->d.images = malloc(sizeof(float) * NIMG * 64);
	t->d.labels = malloc(NIMG);
	if (!t->d.images || !t->d.labels)
		return -ENOMEM;
	for (j = 0; j < NIMG * 64; j++)
		t->d.images[j] = (frand() + 1.0f) / 2;
	for (j = 0; j < NIMG; j++)
		t->d.labels[j] = (uint8_t)(j % 10);
	return 0;
}

static void tiny_free(struct tiny *t)
{
	unsigned int i;

	for (i = 0; i < POLAR_MODEL_MAX_LAYERS; i++) {
		polar_qlayer_destroy(t->ql[i]);
		free(t->ly[i].A);
		free(t->ly[i].B);
		free(t->ly[i].bias);
	}
	polar_close(t->dev);
	polar_model_free(&t->m);
	free(t->d.images);
	free(t->d.labels);
}

/* The codes and scales the chip was programmed with, as one blob. */
static size_t qsnapshot(const struct polar_qlayer *ql, unsigned char *out)
{
	const struct polar_qweights *q = polar_qlayer_qweights(ql);
	size_t nc = (size_t)q->out_dim * q->in_dim,
	       ns = (size_t)q->out_dim * q->nblocks * sizeof(float);

	if (out) {
		memcpy(out, q->codes, nc);
		memcpy(out + nc, q->scales, ns);
	}
	return nc + ns;
}

static void test_train_step(void)
{
	struct polar_calib_train_opts o = { 0 };
	struct polar_calib_train_result res;
	float *params = NULL, *A0[POLAR_MODEL_MAX_LAYERS] = { 0 },
	      *B0[POLAR_MODEL_MAX_LAYERS] = { 0 };
	unsigned char *q0[POLAR_MODEL_MAX_LAYERS] = { 0 }, *q1 = NULL;
	struct tiny t;
	unsigned int i;
	int ret;

	ret = tiny_make(&t);
	CHECK(ret == 0, "%s", polar_errmsg());
	if (ret)
		goto out;
	params = malloc(sizeof(float) * t.m.nparams);
	memcpy(params, t.m.params, sizeof(float) * t.m.nparams);
	for (i = 0; i < t.m.nlayers; i++) {
		const struct polar_layer *l = &t.m.layers[i];

		if (!t.ql[i])
			continue;
		q0[i] = malloc(qsnapshot(t.ql[i], NULL));
		qsnapshot(t.ql[i], q0[i]);
		A0[i] = malloc(sizeof(float) * RANK * l->cols);
		B0[i] = malloc(sizeof(float) * l->rows * RANK);
		memcpy(A0[i], t.ly[i].A, sizeof(float) * RANK * l->cols);
		memcpy(B0[i], t.ly[i].B, sizeof(float) * l->rows * RANK);
	}
	/* Full batch, train = validation: every step sees the same data. */
	o.epochs = 5;
	o.batch = NIMG;
	o.lr = 0.01f;
	o.layer_weight = 1.0f;
	o.seed = 1;
	ret = polar_calib_train(&t.m, t.ly, &t.d, &t.d, &o, &res);
	CHECK(ret == 0, "%s", polar_errmsg());
	CHECK(res.epochs_run == 5, "ran %u epochs", res.epochs_run);
	CHECK(res.val_loss < 0.95 * res.val_loss0, "loss %g -> %g",
	      res.val_loss0, res.val_loss);
	CHECK(res.best_epoch >= 3, "best epoch %u", res.best_epoch);
	CHECK(!memcmp(params, t.m.params, sizeof(float) * t.m.nparams),
	      "the fp32 weights changed");
	for (i = 0; i < t.m.nlayers; i++) {
		const struct polar_layer *l = &t.m.layers[i];
		size_t n;

		if (!t.ql[i])
			continue;
		n = qsnapshot(t.ql[i], NULL);
		q1 = realloc(q1, n);
		qsnapshot(t.ql[i], q1);
		CHECK(!memcmp(q0[i], q1, n), "layer %u's codes changed", i);
		CHECK(memcmp(A0[i], t.ly[i].A, sizeof(float) * RANK * l->cols),
		      "layer %u's A did not change", i);
		CHECK(memcmp(B0[i], t.ly[i].B, sizeof(float) * l->rows * RANK),
		      "layer %u's B did not change", i);
	}
out:
	for (i = 0; i < POLAR_MODEL_MAX_LAYERS; i++) {
		free(q0[i]);
		free(A0[i]);
		free(B0[i]);
	}
	free(q1);
	free(params);
	tiny_free(&t);
}

static void test_train_options(void)
{
	struct polar_calib_train_opts ok = { 1, 8, 1e-3f, 0, 1.0f, 1, NULL, NULL },
				      o;
	struct polar_calib_train_layer none[POLAR_MODEL_MAX_LAYERS] = { { 0 } };
	struct polar_calib_train_result res;
	struct tiny t;
	int ret;

	ret = tiny_make(&t);
	CHECK(ret == 0, "%s", polar_errmsg());
	if (ret)
		goto out;
	o = ok;
	o.epochs = 0;
	CHECK(polar_calib_train(&t.m, t.ly, &t.d, &t.d, &o, &res) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "epochs is 0") != NULL, "%s",
	      polar_errmsg());
	o = ok;
	o.lr = -1;
	CHECK(polar_calib_train(&t.m, t.ly, &t.d, &t.d, &o, &res) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "lr is -1") != NULL, "%s", polar_errmsg());
	o = ok;
	o.layer_weight = NAN;
	CHECK(polar_calib_train(&t.m, t.ly, &t.d, &t.d, &o, &res) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "layer_weight") != NULL, "%s",
	      polar_errmsg());
	CHECK(polar_calib_train(&t.m, none, &t.d, &t.d, &ok, &res) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "no layer") != NULL, "%s", polar_errmsg());
	t.ly[3].rank = 13;
	CHECK(polar_calib_train(&t.m, t.ly, &t.d, &t.d, &ok, &res) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "rank is 13") != NULL, "%s",
	      polar_errmsg());
	t.ly[3].rank = RANK;
	t.d.rows = 7;
	CHECK(polar_calib_train(&t.m, t.ly, &t.d, &t.d, &ok, &res) == -EINVAL);
	CHECK(strstr(polar_errmsg(), "1x7x8") != NULL, "%s", polar_errmsg());
	t.d.rows = 8;
out:
	tiny_free(&t);
}

int main(void)
{
	RUN(test_train_step);
	RUN(test_train_options);
	return unit_summary();
}
