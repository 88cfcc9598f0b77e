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
#include <time.h>
#include <unistd.h>

#include "polar/data.h"
#include "polar/model.h"
#include "polar/nn.h"
#include "polar/polar.h"

int polar_cmd_train(int argc, char **argv);

#define DEFAULT_EPOCHS_CNN 5
#define DEFAULT_EPOCHS_MLP 10

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
	int tty;
	double t0;
};

static double wall_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void show_progress(void *ctx, const struct polar_train_progress *p)
{
	struct progress_state *st = ctx;
	char bar[31];
	size_t i, fill = p->batch * 30 / p->batches;

	if (p->epoch_done) {
		fprintf(stderr, "%sepoch %u/%u: loss %.4f  train %.2f%%",
			st->tty ? "\r\033[K" : "", p->epoch, p->epochs, p->loss,
			100.0 * p->accuracy);
		if (p->test_accuracy >= 0.0)
			fprintf(stderr, "  validation %.2f%%",
				100.0 * p->test_accuracy);
		fprintf(stderr, "  %.0f img/s  %.1f s\n", p->images_per_s,
			wall_s() - st->t0);
		return;
	}
	if (!st->tty)
		return;
	for (i = 0; i < 30; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[30] = '\0';
	fprintf(stderr, "\r\033[Kepoch %u/%u [%s] %zu/%zu  loss %.4f  "
		"acc %.2f%%  %.0f img/s", p->epoch, p->epochs, bar, p->batch,
		p->batches, p->loss, 100.0 * p->accuracy, p->images_per_s);
	fflush(stderr);
}

/* --name VALUE or --name=VALUE; returns the value or NULL. */
static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n))
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] || *i + 1 >= argc)
		return NULL;
	return argv[++*i];
}

static int parse_ul(const char *opt, const char *s, unsigned long long max,
		    unsigned long long *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 0);
	if (errno || !*s || *end || *s == '-' || *out > max) {
		fprintf(stderr, "polar train: %s: invalid value '%s'\n", opt, s);
		return -1;
	}
	return 0;
}

int polar_cmd_train(int argc, char **argv)
{
	const char *arch = "cnn", *dir = NULL, *out = NULL, *v;
	struct polar_dataset train, test, fit, held;
	struct polar_train_opts opts;
	struct polar_tensors ts;
	struct polar_model m;
	struct progress_state st;
	unsigned long long epochs = 0, seed = 1, threads = 0, batch = 64;
	unsigned long long validate = POLAR_FASHION_MNIST_VALIDATE;
	char outbuf[64], val[64];
	double acc, t0;
	float lr = 2e-3f;
	int flip = 1, ret, i;

	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			train_usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--no-flip")) {
			flip = 0;
		} else if ((v = opt_value(argc, argv, &i, "--arch"))) {
			arch = v;
		} else if ((v = opt_value(argc, argv, &i, "--data"))) {
			dir = v;
		} else if ((v = opt_value(argc, argv, &i, "--out"))) {
			out = v;
		} else if ((v = opt_value(argc, argv, &i, "--epochs"))) {
			if (parse_ul("--epochs", v, 1000, &epochs) || !epochs)
				return 2;
		} else if ((v = opt_value(argc, argv, &i, "--seed"))) {
			if (parse_ul("--seed", v, UINT64_MAX, &seed))
				return 2;
		} else if ((v = opt_value(argc, argv, &i, "--threads"))) {
			if (parse_ul("--threads", v, 64, &threads))
				return 2;
		} else if ((v = opt_value(argc, argv, &i, "--batch"))) {
			if (parse_ul("--batch", v, 4096, &batch) || !batch)
				return 2;
		} else if ((v = opt_value(argc, argv, &i, "--validate"))) {
			if (parse_ul("--validate", v, 1000000, &validate))
				return 2;
		} else if ((v = opt_value(argc, argv, &i, "--lr"))) {
			char *end;

			lr = strtof(v, &end);
			if (*end || !(lr > 0.0f && lr < 1.0f)) {
				fprintf(stderr, "polar train: --lr: invalid "
					"value '%s'\n", v);
				return 2;
			}
		} else {
			fprintf(stderr, "polar train: unknown argument '%s'\n",
				argv[i]);
			train_usage(stderr);
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
			"split has %zu images\n", validate, train.count);
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
		m.nparams, fit.count, held.count, test.count, epochs, seed);
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
	st.tty = isatty(STDERR_FILENO);
	st.t0 = t0 = wall_s();
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
	META("seed", "%llu", seed);
	META("epochs", "%llu", epochs);
	META("batch", "%llu", batch);
	META("lr", "%g", (double)lr);
	META("flip", "%d", flip);
	META("validate", "%llu", validate);
	META("test_accuracy", "%.4f", acc);
	META("train_seconds", "%.1f", wall_s() - t0);
#undef META
	if (!ret)
		ret = polar_tensors_save(&ts, out);
	polar_tensors_free(&ts);
	if (ret) {
		fprintf(stderr, "polar train: %s\n", polar_errmsg());
		goto out_model;
	}
	fprintf(stderr, "polar train: wrote %s (%.1f s)\n", out,
		wall_s() - t0);
	printf("fp32 test accuracy: %.2f%%\n", 100.0 * acc);
out_model:
	polar_model_free(&m);
out_data:
	polar_dataset_free(&train);
	polar_dataset_free(&test);
	return ret ? 1 : 0;
}
