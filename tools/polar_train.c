// SPDX-License-Identifier: MIT
/*
 * polar train: fp32 training of the built-in models on Fashion-MNIST, on
 * the host, deterministic for a seed (whatever --threads is), written as
 * safetensors with the options in __metadata__.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "polar/data.h"
#include "polar/model.h"
#include "polar/nn.h"
#include "polar/polar.h"

#include "cli.h"

int polar_cmd_train(int argc, char **argv);

#define DEFAULT_EPOCHS_CNN 5
#define DEFAULT_EPOCHS_MLP 10

enum {
	OPT_ARCH = 256, OPT_EPOCHS, OPT_SEED, OPT_DATA, OPT_OUT, OPT_THREADS,
	OPT_BATCH, OPT_LR, OPT_NO_FLIP, OPT_VALIDATE,
};

static const struct option train_options[] = {
	{ "help", no_argument, NULL, 'h' },
	{ "arch", required_argument, NULL, OPT_ARCH },
	{ "epochs", required_argument, NULL, OPT_EPOCHS },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "data", required_argument, NULL, OPT_DATA },
	{ "out", required_argument, NULL, OPT_OUT },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "batch", required_argument, NULL, OPT_BATCH },
	{ "lr", required_argument, NULL, OPT_LR },
	{ "validate", required_argument, NULL, OPT_VALIDATE },
	{ "no-flip", no_argument, NULL, OPT_NO_FLIP },
	{ NULL, 0, NULL, 0 },
};

static void train_usage(FILE *out)
{
	fprintf(out,
		"usage: polar train [--arch cnn|mlp] [--epochs N] [--seed S] "
		"[--data DIR]\n"
		"                   [--out FILE] [--threads N] [--batch N] "
		"[--lr LR] [--no-flip]\n"
		"                   [--validate N]\n"
		"  --arch     model: cnn (default) or mlp\n"
		"  --epochs   passes over the training images "
		"(default %d for cnn, %d for mlp)\n"
		"  --validate the last N of the 60000 training images are "
		"not trained on:\n"
		"             polar eval --validate makes its choices on "
		"them (default %d)\n"
		"  --seed     initial weights, shuffling, flips (default 1)\n"
		"  --data     Fashion-MNIST directory (default %s)\n"
		"  --out      safetensors file to write (default ARCH.safetensors)\n"
		"  --threads  worker threads, 0 = one per CPU (default 0); "
		"the result does not depend on it\n"
		"  --batch    samples per step (default 64)\n"
		"  --lr       Adam peak learning rate (default 0.002)\n"
		"  --no-flip  no random left-right mirroring of training images\n",
		DEFAULT_EPOCHS_CNN, DEFAULT_EPOCHS_MLP,
		POLAR_FASHION_MNIST_VALIDATE, POLAR_FASHION_MNIST_DIR);
}

struct progress_state {
	struct bar bar;
	unsigned int epoch;	/* the bar's, 0 before the first */
	char label[32];
	double t0;
};

static void show_progress(void *ctx, const struct polar_train_progress *p)
{
	struct progress_state *st = ctx;

	if (p->epoch != st->epoch) {
		st->epoch = p->epoch;
		snprintf(st->label, sizeof(st->label), "epoch %u/%u", p->epoch,
			 p->epochs);
		bar_start(&st->bar, st->label);
	}
	if (p->epoch_done) {
		bar_line(&st->bar, "epoch %u/%u: loss %.4f  train %.2f%%",
			 p->epoch, p->epochs, p->loss, 100.0 * p->accuracy);
		if (p->test_accuracy >= 0.0)
			fprintf(stderr, "  validation %.2f%%",
				100.0 * p->test_accuracy);
		fprintf(stderr, "  %.0f img/s  %.1f s\n", p->images_per_s,
			now_s() - st->t0);
		return;
	}
	/* the epoch's line takes the place of its last frame */
	if (p->batch < p->batches)
		bar_updatef(&st->bar, p->batch, p->batches,
			    "loss %.4f  acc %.2f%%  %.0f img/s", p->loss,
			    100.0 * p->accuracy, p->images_per_s);
}

int polar_cmd_train(int argc, char **argv)
{
	const char *arch = "cnn", *dir = NULL, *out = NULL;
	struct polar_dataset train, test, fit, held;
	struct polar_train_opts opts;
	struct polar_tensors ts;
	struct polar_model m;
	struct progress_state st;
	uint64_t epochs = 0, seed = 1, threads = 0, batch = 64;
	uint64_t validate = POLAR_FASHION_MNIST_VALIDATE;
	const char *cmd = argv[0], *opt;
	char outbuf[64], val[64];
	double acc, t0, x;
	float lr = 2e-3f;
	int flip = 1, ret, c;

	while ((c = cli_getopt(argc, argv, train_options, &opt)) != -1) {
		switch (c) {
		case 'h':
			train_usage(stdout);
			return 0;
		case OPT_NO_FLIP:
			flip = 0;
			break;
		case OPT_ARCH:
			arch = optarg;
			break;
		case OPT_DATA:
			dir = optarg;
			break;
		case OPT_OUT:
			out = optarg;
			break;
		case OPT_EPOCHS:
			if (cli_parse_u64(cmd, opt, optarg, 1, 1000, &epochs))
				return 2;
			break;
		case OPT_SEED:
			if (cli_parse_u64(cmd, opt, optarg, 0, UINT64_MAX,
					  &seed))
				return 2;
			break;
		case OPT_THREADS:
			if (cli_parse_u64(cmd, opt, optarg, 0, 64, &threads))
				return 2;
			break;
		case OPT_BATCH:
			if (cli_parse_u64(cmd, opt, optarg, 1, 4096, &batch))
				return 2;
			break;
		case OPT_VALIDATE:
			if (cli_parse_u64(cmd, opt, optarg, 0, 1000000,
					  &validate))
				return 2;
			break;
		case OPT_LR:
			if (cli_parse_double(cmd, opt, optarg, 0, 1,
					     CLI_MIN_OPEN | CLI_MAX_OPEN, &x))
				return 2;
			lr = (float)x;
			break;
		default:	/* cli_getopt() said why */
			return 2;
		}
	}
	if (strcmp(arch, "cnn") && strcmp(arch, "mlp")) {
		fprintf(stderr, "polar train: --arch: '%s' is not cnn or mlp\n",
			arch);
		return 2;
	}
	if (!epochs)
		epochs = strcmp(arch, "cnn") ? DEFAULT_EPOCHS_MLP :
			DEFAULT_EPOCHS_CNN;
	if (!out) {
		snprintf(outbuf, sizeof(outbuf), "%s.safetensors", arch);
		out = outbuf;
	}

	ret = polar_fashion_mnist_load(dir, &train, &test);
	if (ret) {
		fprintf(stderr, "polar train: %s\n", polar_errmsg());
		return 1;
	}
	/*
	 * The validation images are the training split's last ones (no
	 * copy): the model never sees them, so the choices polar eval makes
	 * on them (clip percentiles, ridges, chip design) see the accuracy
	 * and activations of unseen images, as the test split will, without
	 * the test split being looked at.
	 */
	if (validate >= train.count) {
		fprintf(stderr, "polar train: --validate %llu: the training "
			"split has %zu images\n", (unsigned long long)validate,
			train.count);
		ret = 2;
		goto out_data;
	}
	fit = held = train;
	fit.count = train.count - validate;
	held.images += fit.count * (size_t)train.channels * train.rows *
		      train.cols;
	held.labels += fit.count;
	held.count = validate;
	ret = polar_model_create(&m, arch, seed);
	if (ret) {
		fprintf(stderr, "polar train: %s\n", polar_errmsg());
		goto out_data;
	}
	fprintf(stderr, "polar train: %s, %zu parameters, %zu training, %zu "
		"validation and %zu test images, %llu epochs, seed %llu\n", arch,
		m.nparams, fit.count, held.count, test.count,
		(unsigned long long)epochs, (unsigned long long)seed);
	memset(&opts, 0, sizeof(opts));
	opts.epochs = (unsigned int)epochs;
	opts.batch = (unsigned int)batch;
	opts.threads = (unsigned int)threads;
	opts.seed = seed;
	opts.lr = lr;
	opts.flip = flip;
	opts.test = held.count ? &held : NULL;
	opts.progress = show_progress;
	opts.ctx = &st;
	st.epoch = 0;
	st.t0 = t0 = now_s();
	ret = polar_model_train(&m, &fit, &opts);
	if (!ret)
		ret = polar_model_evaluate(&m, &test, (unsigned int)threads,
					   NULL, &acc);
	if (ret) {
		fprintf(stderr, "polar train: %s\n", polar_errmsg());
		goto out_model;
	}

	polar_tensors_init(&ts);
	ret = polar_model_to_tensors(&m, &ts);
#define META(k, ...)							\
	do {								\
		snprintf(val, sizeof(val), __VA_ARGS__);		\
		if (!ret)						\
			ret = polar_tensors_set_meta(&ts, k, val);	\
	} while (0)
	META("dataset", "fashion-mnist");
	META("seed", "%llu", (unsigned long long)seed);
	META("epochs", "%llu", (unsigned long long)epochs);
	META("batch", "%llu", (unsigned long long)batch);
	META("lr", "%g", (double)lr);
	META("flip", "%d", flip);
	META("validate", "%llu", (unsigned long long)validate);
	META("test_accuracy", "%.4f", acc);
	META("train_seconds", "%.1f", now_s() - t0);
#undef META
	if (!ret)
		ret = polar_tensors_save(&ts, out);
	polar_tensors_free(&ts);
	if (ret) {
		fprintf(stderr, "polar train: %s\n", polar_errmsg());
		goto out_model;
	}
	fprintf(stderr, "polar train: wrote %s (%.1f s)\n", out,
		now_s() - t0);
	printf("fp32 test accuracy: %.2f%%\n", 100.0 * acc);
out_model:
	polar_model_free(&m);
out_data:
	polar_dataset_free(&train);
	polar_dataset_free(&test);
	return ret ? 1 : 0;
}
