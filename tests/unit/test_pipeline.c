// SPDX-License-Identifier: MIT
/*
 * The polarization pipeline (<polar/pipeline.h>) on the sim, with a tiny
 * CNN on 8x8 images: every method calibrates, its per-chip calibration
 * saved and loaded into a fresh pipeline on a fresh handle gives the same
 * logits bit for bit, polar_pipeline_evaluate() agrees with
 * polar_pipeline_infer(), the host paths change the outputs, the progress
 * callback sees every stage, and bad files and calls are refused with a
 * message naming what is wrong.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "polar/model.h"
#include "polar/nn.h"
#include "polar/pipeline.h"
#include "polar/polar.h"
#include "unit.h"

#define NCAL 40
#define NHELD 10
#define NTEST 300		/* more than one batch of 250 */
#define SIM "sim:sigma-static=26214,seed=5"

static uint64_t rs = 0x2545F4914F6CDD1Dull;

static float frand01(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return (float)((double)(rs >> 40) / (double)(1ull << 24));
}

static struct polar_model model;
static struct polar_dataset cal, held, test;
static char dir[64];

static int dataset(struct polar_dataset *d, size_t n)
{
	size_t j;

	memset(d, 0, sizeof(*d));
	d->count = n;
	d->channels = 1;
	d->rows = d->cols = 8;
	d->classes = 10;
	d->images = malloc(sizeof(float) * n * 64);
	d->labels = malloc(n);
	if (!d->images || !d->labels)
		return -ENOMEM;
	for (j = 0; j < n * 64; j++)
		d->images[j] = frand01();
	for (j = 0; j < n; j++)
		d->labels[j] = (uint8_t)(j % 10);
	return 0;
}

static int setup(void)
{
	int ret = polar_model_init(&model, "tiny", 1, 8, 8);

	ret = ret ? ret : polar_model_add_conv2d(&model, "conv", 4, 3, 1);
	ret = ret ? ret : polar_model_add_relu(&model);
	ret = ret ? ret : polar_model_add_maxpool2(&model);
	ret = ret ? ret : polar_model_add_linear(&model, "fc1", 12);
	ret = ret ? ret : polar_model_add_relu(&model);
	ret = ret ? ret : polar_model_add_linear(&model, "fc2", 10);
	ret = ret ? ret : polar_model_finalize(&model, 3);
	ret = ret ? ret : dataset(&cal, NCAL);
	ret = ret ? ret : dataset(&held, NHELD);
	ret = ret ? ret : dataset(&test, NTEST);
	snprintf(dir, sizeof(dir), "/tmp/polar-pipeline-XXXXXX");
	if (!ret && !mkdtemp(dir))
		ret = -errno;
	return ret;
}

struct stages {
	unsigned int calls, starts, ends, notes;
	int saw_fisher, saw_layer, saw_train, saw_eval;
};

static void count_progress(void *ctx, const char *stage, size_t done,
			   size_t total, const char *note)
{
	struct stages *s = ctx;

	s->calls++;
	if (note) {
		s->notes++;
		return;
	}
	if (!done && !total)
		s->starts++;
	else if (done == total)
		s->ends++;
	s->saw_fisher |= !strcmp(stage, "sensitivity (Fisher)");
	s->saw_layer |= !strcmp(stage, "calibrate fc1");
	s->saw_train |= !strcmp(stage, "train host paths");
	s->saw_eval |= !strncmp(stage, "eval ", 5);
}

/* A pipeline of the tiny model on a fresh sim chip of seed 5. */
static struct polar_pipeline *pipeline(struct stages *st)
{
	struct polar_calib_train_opts to = { .epochs = 1, .batch = 8,
					     .lr = 0.01f, .patience = 1,
					     .layer_weight = 1.0f, .seed = 1 };
	struct polar_pipeline *p = NULL;
	int ret = polar_pipeline_create(&model, &p);

	ret = ret ? ret : polar_pipeline_set_rank(p, 2);
	ret = ret ? ret : polar_pipeline_set_training(p, &to, &held);
	ret = ret ? ret : polar_pipeline_set_threads(p, 2);
	if (!ret && st)
		ret = polar_pipeline_set_progress(p, count_progress, st);
	ret = ret ? ret : polar_pipeline_open(p, SIM);
	CHECK(!ret, "%s", polar_errmsg());
	if (ret) {
		polar_pipeline_destroy(p);
		return NULL;
	}
	return p;
}

static const enum polar_method host_methods[] = {
	POLAR_METHOD_SVD, POLAR_METHOD_ACT, POLAR_METHOD_ACT_DEVICE,
	POLAR_METHOD_SENSITIVITY, POLAR_METHOD_TRAINED,
	POLAR_METHOD_SENS_IDENTITY,
};
#define NHOST (sizeof(host_methods) / sizeof(host_methods[0]))

/*
 * Every method: calibrated, saved, loaded into a fresh pipeline on a fresh
 * handle: the same logits, bit for bit, and the same classes.
 */
static void test_save_load_same_bits(void)
{
	static float z0[NTEST * 10], z1[NTEST * 10], zq[NTEST * 10];
	static uint8_t c0[NTEST], c1[NTEST];
	struct stages st = { 0 };
	struct polar_pipeline *p = pipeline(&st), *q;
	unsigned int k;
	char path[128];
	int ret;

	if (!p)
		return;
	ret = polar_pipeline_polarize(p, &cal, POLAR_METHOD_MASK(POLAR_METHOD_TRAINED) |
				      POLAR_METHOD_MASK(POLAR_METHOD_SENS_IDENTITY));
	CHECK(!ret, "polarize: %s", polar_errmsg());
	if (ret)
		goto out;
	CHECK(st.saw_fisher && st.saw_layer && st.saw_train,
	      "progress stages: fisher %d, layer %d, train %d", st.saw_fisher,
	      st.saw_layer, st.saw_train);
	CHECK(st.starts > 0 && st.ends >= st.starts && st.notes >= 2,
	      "progress: %u starts, %u ends, %u notes", st.starts, st.ends,
	      st.notes);
	ret = polar_pipeline_infer(p, POLAR_METHOD_QUANT, NTEST, test.images, zq,
				   NULL);
	CHECK(!ret, "quant: %s", polar_errmsg());
	for (k = 0; k < NHOST; k++) {
		enum polar_method me = host_methods[k];

		snprintf(path, sizeof(path), "%s/%s.safetensors", dir,
			 polar_method_name(me));
		ret = polar_pipeline_infer(p, me, NTEST, test.images, z0, c0);
		CHECK(!ret, "%s: %s", polar_method_name(me), polar_errmsg());
		/* a host path that changed nothing would be no calibration */
		CHECK(memcmp(z0, zq, sizeof(z0)), "%s: the logits of quant",
		      polar_method_name(me));
		ret = ret ? ret : polar_pipeline_save(p, me, path);
		CHECK(!ret, "save %s: %s", path, polar_errmsg());
		if (ret)
			continue;
		q = pipeline(NULL);
		if (!q)
			continue;
		ret = polar_pipeline_load(q, path);
		CHECK(ret == (int)me, "load %s: %d %s", path, ret,
		      polar_errmsg());
		memset(z1, 0, sizeof(z1));
		if (ret == (int)me)
			ret = polar_pipeline_infer(q, me, NTEST, test.images, z1,
						   c1);
		CHECK(!ret, "%s", polar_errmsg());
		CHECK(!memcmp(z0, z1, sizeof(z0)) && !memcmp(c0, c1, sizeof(c0)),
		      "%s: the loaded calibration gives other logits",
		      polar_method_name(me));
		polar_pipeline_destroy(q);
		unlink(path);
	}
out:
	polar_pipeline_destroy(p);
}

/*
 * polar_pipeline_evaluate() on two threads: each method's hits are
 * polar_pipeline_infer()'s classes against the labels, its accuracy their
 * share, and quant's pass reads the device's energy counters.
 */
static void test_evaluate_matches_infer(void)
{
	static uint8_t hits[POLAR_METHOD_COUNT][NTEST], cls[NTEST];
	uint8_t *hit[POLAR_METHOD_COUNT];
	struct polar_pipeline_result r = { .sz = sizeof(r) };
	struct stages st = { 0 };
	struct polar_pipeline *p = pipeline(&st);
	unsigned int methods = POLAR_METHOD_MASK(POLAR_METHOD_FP32) |
			       POLAR_METHOD_MASK(POLAR_METHOD_QUANT) |
			       POLAR_METHOD_MASK(POLAR_METHOD_ACT_DEVICE) |
			       POLAR_METHOD_MASK(POLAR_METHOD_SENSITIVITY);
	int me, ret;
	size_t k, right;

	if (!p)
		return;
	for (me = 0; me < POLAR_METHOD_COUNT; me++)
		hit[me] = hits[me];
	ret = polar_pipeline_polarize(p, &cal, 0);
	ret = ret ? ret : polar_pipeline_evaluate(p, methods, &test, hit);
	CHECK(!ret, "%s", polar_errmsg());
	CHECK(st.saw_eval, "no eval stage in the progress");
	for (me = 0; me < POLAR_METHOD_COUNT && !ret; me++) {
		if (!(methods & POLAR_METHOD_MASK(me)))
			continue;
		ret = polar_pipeline_infer(p, me, NTEST, test.images, NULL, cls);
		ret = ret ? ret : polar_pipeline_get_result(p, me, &r);
		CHECK(!ret, "%s", polar_errmsg());
		for (k = right = 0; k < NTEST; k++) {
			CHECK(hits[me][k] == (cls[k] == test.labels[k]),
			      "%s image %zu", polar_method_name(me), k);
			right += hits[me][k];
		}
		CHECK(r.accuracy == 100.0 * (double)right / NTEST,
		      "%s: accuracy %g, %zu right", polar_method_name(me),
		      r.accuracy, right);
		if (me == POLAR_METHOD_QUANT)
			CHECK(r.have_energy && r.macs > 0 && r.device_j > 0,
			      "quant: no energy");
		if (me == POLAR_METHOD_SENSITIVITY)
			CHECK(r.host_flops > 0, "sensitivity: no host FLOPs");
	}
	polar_pipeline_destroy(p);
}

/* Wrong calls and files: refused, with a message naming what is wrong. */
static void test_refusals(void)
{
	struct polar_model other = { 0 };
	struct polar_pipeline *p = pipeline(NULL), *q = NULL;
	uint8_t cls[4];
	char path[128], bogus[128];
	FILE *f;
	int ret;

	if (!p)
		return;
	ret = polar_pipeline_infer(p, POLAR_METHOD_SENSITIVITY, 4, test.images,
				   NULL, cls);
	CHECK(ret == -EINVAL && strstr(polar_errmsg(), "not calibrated"),
	      "infer before polarize: %d %s", ret, polar_errmsg());
	test.channels = 3;
	ret = polar_pipeline_polarize(p, &test, 0);
	CHECK(ret == -EINVAL && strstr(polar_errmsg(), "3x8x8"),
	      "3-channel images: %d %s", ret, polar_errmsg());
	test.channels = 1;
	ret = polar_pipeline_set_device_layers(p, "conv,fc9");
	CHECK(ret == -EINVAL && strstr(polar_errmsg(), "'fc9'"),
	      "an unknown layer: %d %s", ret, polar_errmsg());
	ret = polar_pipeline_polarize(p, &cal, 0);
	CHECK(!ret, "%s", polar_errmsg());
	ret = polar_pipeline_set_rank(p, 4);
	CHECK(ret == -EBUSY, "set_rank after polarize: %d", ret);
	ret = polar_pipeline_save(p, POLAR_METHOD_QUANT, "/nonexistent/x");
	CHECK(ret == -EINVAL && strstr(polar_errmsg(), "quant"),
	      "saving quant: %d %s", ret, polar_errmsg());
	ret = polar_pipeline_save(p, POLAR_METHOD_TRAINED, "/nonexistent/x");
	CHECK(ret == -EINVAL && strstr(polar_errmsg(), "trained"),
	      "saving an uncalibrated method: %d %s", ret, polar_errmsg());
	snprintf(path, sizeof(path), "%s/act.safetensors", dir);
	ret = polar_pipeline_save(p, POLAR_METHOD_ACT, path);
	CHECK(!ret, "%s", polar_errmsg());

	/* the same layer names, another shape: the tensor is named */
	ret = polar_model_init(&other, "tiny", 1, 8, 8);
	ret = ret ? ret : polar_model_add_conv2d(&other, "conv", 4, 3, 1);
	ret = ret ? ret : polar_model_add_relu(&other);
	ret = ret ? ret : polar_model_add_maxpool2(&other);
	ret = ret ? ret : polar_model_add_linear(&other, "fc1", 16);
	ret = ret ? ret : polar_model_add_relu(&other);
	ret = ret ? ret : polar_model_add_linear(&other, "fc2", 10);
	ret = ret ? ret : polar_model_finalize(&other, 3);
	ret = ret ? ret : polar_pipeline_create(&other, &q);
	ret = ret ? ret : polar_pipeline_open(q, SIM);
	CHECK(!ret, "%s", polar_errmsg());
	if (!ret) {
		ret = polar_pipeline_load(q, path);
		CHECK(ret == -EINVAL && strstr(polar_errmsg(), "fc1.lowrank_B"),
		      "another model's file: %d %s", ret, polar_errmsg());
		/* a safetensors file without a method */
		snprintf(bogus, sizeof(bogus), "%s/bogus.safetensors", dir);
		f = fopen(bogus, "w");
		if (f) {
			static const char file[] = "\x13\0\0\0\0\0\0\0"
						   "{\"__metadata__\":{}}";

			fwrite(file, 1, sizeof(file) - 1, f);
			fclose(f);
		}
		ret = polar_pipeline_load(q, bogus);
		CHECK(ret < 0 && strstr(polar_errmsg(), "bogus.safetensors"),
		      "no method: %d %s", ret, polar_errmsg());
		unlink(bogus);
	}
	polar_pipeline_destroy(q);
	polar_model_free(&other);
	unlink(path);
	polar_pipeline_destroy(p);
}

int main(void)
{
	if (setup()) {
		fprintf(stderr, "setup: %s\n", polar_errmsg());
		return 1;
	}
	RUN(test_save_load_same_bits);
	RUN(test_evaluate_matches_infer);
	RUN(test_refusals);
	rmdir(dir);
	polar_model_free(&model);
	polar_dataset_free(&cal);
	polar_dataset_free(&held);
	polar_dataset_free(&test);
	return unit_summary();
}
