// SPDX-License-Identifier: MIT
/*
 * polar calibrate / polar eval: the options, the data (calibration,
 * held-out, test and validation images of Fashion-MNIST), several chips
 * with paired bootstrap intervals, and the printed results and report of
 * the polarization pipeline, which lives in the library
 * (<polar/pipeline.h>, lib/src/pipeline.c): quantize a trained model onto
 * a device (or the software backend), choose each layer's ADC full scale,
 * fit the rank-r host paths with every method, and measure accuracy,
 * energy and throughput.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "polar/calib.h"
#include "polar/data.h"
#include "polar/model.h"
#include "polar/nn.h"
#include "polar/onnx.h"
#include "polar/pipeline.h"
#include "polar/polar.h"
#include "polar/quant.h"
#include "polar_cim_hw.h"

#include "cli.h"

int polar_cmd_eval(int argc, char **argv);
int polar_cmd_calibrate(int argc, char **argv);

#define MAXL POLAR_MODEL_MAX_LAYERS
#define DEFAULT_METHODS "fp32,quant,svd,act,act-device,sensitivity,trained"
#define MAX_WORKERS POLAR_PIPELINE_MAX_THREADS	/* --threads */
#define MAX_VARY 16		/* --vary, --select: variants of the options */
#define HOST_J_PER_FLOP POLAR_HOST_J_PER_FLOP
#define TRAIN_EPOCHS POLAR_PIPELINE_TRAIN_EPOCHS
#define TRAIN_BATCH POLAR_PIPELINE_TRAIN_BATCH
#define TRAIN_LR POLAR_PIPELINE_TRAIN_LR
#define TRAIN_PATIENCE POLAR_PIPELINE_TRAIN_PATIENCE
#define HELD_IMAGES 128	/* the trained method's held-out images */
#define PAPER_TOPS_W 464.0

struct opts {
	const char *model, *device, *data, *report, *out, *methods;
	const char *device_layers;	/* NULL: every weighted layer */
	uint64_t chip_seed;
	uint32_t sigma_static, adc_bits;
	uint32_t recon, recon_frac_bits;	/* POLAR_CIM_RECON_*, F */
	int seed_set, sigma_set, adc_set, recon_set;
	enum polar_wfmt wfmt;
	enum polar_xfmt xfmt, first_xfmt;
	uint32_t rank, calib, test, threads;
	int sweep, intercept, fisher_full, lambda_set;
	double adc_pct, act_pct, lambda;
	enum polar_method save_method;
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
 * Wall-clock seconds of one operating point: loading the model and data,
 * the pipeline's phases (polar_pipeline_get_timing()), each method's
 * evaluation and its time inside the polarized layers.
 */
struct timing {
	double load;			/* model and data, before the point */
	struct polar_pipeline_timing phases;
	double eval[POLAR_METHOD_COUNT];		/* each method's evaluation */
	double eval_layers[POLAR_METHOD_COUNT];	/* of which in the polarized layers */
	double eval_layer[POLAR_METHOD_COUNT][MAXL];	/* of which in each of them */
	double total;			/* load to the last evaluation */
};

struct result {
	double acc, seconds, ips;
	double dev_j, host_j, macs, host_flops;
	int have_energy;
};

struct point {
	uint32_t sigma, adc_bits;
	uint32_t recon, recon_frac_bits;	/* of the device evaluated */
	struct polar_design design;
	struct result r[POLAR_METHOD_COUNT];
	uint8_t *hit[POLAR_METHOD_COUNT];	/* per test image, when allocated by the caller */
	uint32_t adc_fs[MAXL];
	double lambda[POLAR_METHOD_COUNT][MAXL];
	double calib_s;
	struct timing t;
};

/* ---- small helpers ------------------------------------------------------ */

static int die(const char *what)
{
	fprintf(stderr, "polar eval: %s: %s\n", what, polar_errmsg());
	return 1;
}

/* A failed pipeline call: its message names what was wrong. */
static int die_pipeline(void)
{
	fprintf(stderr, "polar eval: %s\n", polar_errmsg());
	return 1;
}

static const char *recon_name(uint32_t recon)
{
	return recon == POLAR_CIM_RECON_CODES ? "codes" :
	       recon == POLAR_CIM_RECON_CELLS ? "cells" : "?";
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
	o->save_method = POLAR_METHOD_SENSITIVITY;
	return parse_args(argc, argv, o);
}

/*
 * The options a --vary variant may change: the chip's and the
 * calibration's, never what is evaluated or how. Not calib: the
 * calibration images are drawn once, before the variants (load_all()).
 */
static const char *const vary_opts[] = {
	"act-pct", "adc-pct", "first-xfmt", "xfmt", "wfmt", "intercept",
	"no-intercept", "lambda", "sigma-static", "adc-bits", "recon",
	"recon-frac-bits", "rank", "fisher",
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
			int me = polar_method_parse(val);

			if (me < POLAR_METHOD_SVD) {
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
		case OPT_WFMT: {
			int f = polar_wfmt_parse(val);

			if (f < 0) {
				fprintf(stderr, "%s: --wfmt: %s\n", cmd,
					polar_errmsg());
				return -1;
			}
			o->wfmt = (enum polar_wfmt)f;
			break;
		}
		case OPT_XFMT:
		case OPT_FIRST_XFMT: {
			int f = polar_xfmt_parse(val);

			if (f < 0) {
				fprintf(stderr, "%s: %s: %s\n", cmd, a,
					polar_errmsg());
				return -1;
			}
			*(c == OPT_XFMT ? &o->xfmt : &o->first_xfmt) =
				(enum polar_xfmt)f;
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

static int parse_methods(const char *s, int want[POLAR_METHOD_COUNT])
{
	char buf[256], *tok, *save;

	memset(want, 0, sizeof(int) * POLAR_METHOD_COUNT);
	snprintf(buf, sizeof(buf), "%s", s);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		int me = polar_method_parse(tok);

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

/* The pipeline's progress on the one progress bar (cli.c). */
struct progress_bar {
	struct bar bar;
	char stage[64];
};

static void show_progress(void *p, const char *stage, size_t done,
			  size_t total, const char *note)
{
	struct progress_bar *pb = p;

	if (note) {
		bar_line(&pb->bar, "%s", note);
		return;
	}
	if (!done && !total) {
		snprintf(pb->stage, sizeof(pb->stage), "%s", stage);
		bar_start(&pb->bar, pb->stage);
		return;
	}
	bar_update(&pb->bar, done, total);
}

/* A pipeline for m with the options o. */
static int make_pipeline(const struct opts *o, const struct polar_model *m,
			 struct progress_bar *pb, struct polar_pipeline **out)
{
	struct polar_pipeline *p;
	int ret;

	ret = polar_pipeline_create(m, &p);
	if (ret)
		return ret;
	ret = polar_pipeline_set_formats(p, o->wfmt, o->xfmt, o->first_xfmt);
	if (!ret)
		ret = polar_pipeline_set_rank(p, o->rank);
	if (!ret)
		ret = polar_pipeline_set_percentiles(p, o->act_pct, o->adc_pct);
	if (!ret)
		ret = polar_pipeline_set_ridge(p, o->lambda_set ? o->lambda : 0);
	if (!ret)
		ret = polar_pipeline_set_intercept(p, o->intercept);
	if (!ret)
		ret = polar_pipeline_set_fisher_full(p, o->fisher_full);
	if (!ret)
		ret = polar_pipeline_set_device_layers(p, o->device_layers);
	if (!ret && o->held)
		ret = polar_pipeline_set_training(p, &o->topt, o->held);
	if (!ret)
		ret = polar_pipeline_set_threads(p, o->threads);
	if (!ret)
		ret = polar_pipeline_set_progress(p, show_progress, pb);
	if (!ret)
		ret = polar_pipeline_set_model_name(p, o->model);
	if (ret) {
		polar_pipeline_destroy(p);
		return ret;
	}
	*out = p;
	return 0;
}

/*
 * Opens --device for the pipeline: a sim gets the chip options in its
 * spec; a real chip's properties are what they are, so they are reported
 * where they differ from the options given.
 */
static int open_device(const struct opts *o, struct polar_pipeline *p,
		       uint32_t sigma, uint32_t adc_bits,
		       struct polar_caps *caps)
{
	char path[256];
	int ret;

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
		ret = polar_pipeline_open(p, path);
	} else {
		ret = polar_pipeline_open(p, o->device);
	}
	if (ret)
		return die_pipeline();
	ret = polar_get_caps(polar_pipeline_device(p), caps);
	if (ret)
		return die("caps");
	if (!caps->sim) {
		if (o->seed_set && caps->seed != o->chip_seed)
			fprintf(stderr, "polar eval: warning: device chip seed is "
				"%llu, not %llu\n", (unsigned long long)caps->seed,
				(unsigned long long)o->chip_seed);
		if (o->sigma_set && caps->sigma_static != sigma)
			fprintf(stderr, "polar eval: warning: device sigma-static "
				"is %u, not %u\n", caps->sigma_static, sigma);
		if (o->adc_set && caps->adc_bits != adc_bits)
			fprintf(stderr, "polar eval: warning: device adc-bits is "
				"%u, not %u\n", caps->adc_bits, adc_bits);
		if (o->recon_set && (caps->recon != o->recon ||
				     caps->recon_frac_bits != o->recon_frac_bits))
			fprintf(stderr, "polar eval: warning: device recon is "
				"%s with %u fractional bits, not %s with %u\n",
				recon_name(caps->recon),
				caps->recon_frac_bits, recon_name(o->recon),
				o->recon_frac_bits);
	}
	return 0;
}

/* What the pipeline measured, into pt. */
static int collect(const struct polar_pipeline *p, const struct polar_model *m,
		   const int want[POLAR_METHOD_COUNT], struct point *pt)
{
	struct polar_pipeline_layer_info li = { .sz = sizeof(li) };
	struct polar_pipeline_result r = { .sz = sizeof(r) };
	unsigned int l;
	int me, ret;

	pt->t.phases.sz = sizeof(pt->t.phases);
	ret = polar_pipeline_get_timing(p, &pt->t.phases);
	pt->calib_s = pt->t.phases.calib_seconds;
	for (l = 0; l < m->nlayers && !ret; l++) {
		ret = polar_pipeline_get_layer(p, l, &li);
		pt->adc_fs[l] = li.adc_fs;
		for (me = 0; me < POLAR_METHOD_COUNT; me++)
			pt->lambda[me][l] = li.ridge[me];
	}
	for (me = 0; me < POLAR_METHOD_COUNT && !ret; me++) {
		if (!want[me])
			continue;
		ret = polar_pipeline_get_result(p, me, &r);
		pt->r[me] = (struct result){ r.accuracy, r.seconds,
			r.images_per_s, r.device_j, r.host_j, r.macs,
			r.host_flops, r.have_energy };
		pt->t.eval[me] = r.seconds;
		pt->t.eval_layers[me] = r.layers_seconds;
		memcpy(pt->t.eval_layer[me], r.layer_seconds,
		       sizeof(pt->t.eval_layer[me]));
	}
	return ret ? die_pipeline() : 0;
}

/*
 * One operating point: open the device, polarize the model on the
 * calibration images, evaluate the methods wanted (polar calibrate wants
 * none: keep gets the pipeline instead).
 */
static int run_point(const struct opts *o, struct polar_model *m,
		     const struct polar_dataset *cal,
		     const struct polar_dataset *test, const int want[POLAR_METHOD_COUNT],
		     struct point *pt, struct polar_pipeline **keep)
{
	struct progress_bar pb = { 0 };
	struct polar_pipeline *p;
	struct polar_caps caps;
	unsigned int methods = 0;
	int me, ret, chip = 0;

	for (me = 0; me < POLAR_METHOD_COUNT; me++)
		if (want[me])
			methods |= POLAR_METHOD_MASK(me);
	for (me = POLAR_METHOD_QUANT; me < POLAR_METHOD_COUNT; me++)
		chip |= want[me];
	if (make_pipeline(o, m, &pb, &p))
		return die_pipeline();
	/*
	 * The fp32 reference alone needs neither a chip nor calibration;
	 * polar calibrate wants no evaluation, only the calibration.
	 */
	if (!chip && want[POLAR_METHOD_FP32])
		goto evaluate;
	ret = open_device(o, p, pt->sigma, pt->adc_bits, &caps);
	if (ret)
		goto out;
	polar_get_design(polar_pipeline_device(p), &pt->design);
	fprintf(stderr, "device %s: %ux%u tiles x %u, adc %u bits, rows/conv %u, "
		"recon %s (F %u), digital planes %u, msb adc %u bits x %u "
		"levels, sigma-static %u, seed %llu\n",
		polar_device_path(polar_pipeline_device(p)), caps.rows,
		caps.cols, caps.tiles, caps.adc_bits, caps.rows_per_conv,
		recon_name(caps.recon), caps.recon_frac_bits,
		pt->design.digital_planes, pt->design.adc_bits_msb,
		pt->design.adc_msb_levels,
		caps.sigma_static, (unsigned long long)caps.seed);
	pt->recon = caps.recon;
	pt->recon_frac_bits = caps.recon_frac_bits;
	if (o->device_layers)
		fprintf(stderr, "on the device: %s; the other weighted layers "
			"in fp32 on the host\n", o->device_layers);
	pt->sigma = caps.sigma_static;
	pt->adc_bits = caps.adc_bits;
	ret = polar_pipeline_polarize(p, cal,
				      (o->train ? POLAR_METHOD_MASK(POLAR_METHOD_TRAINED) : 0) |
				      (o->sens_identity ?
				       POLAR_METHOD_MASK(POLAR_METHOD_SENS_IDENTITY) : 0));
	if (ret) {
		ret = die_pipeline();
		goto out;
	}
evaluate:
	ret = 0;
	if (methods && polar_pipeline_evaluate(p, methods, test, pt->hit))
		ret = die_pipeline();
	if (!ret)
		ret = collect(p, m, want, pt);
out:
	if (keep && !ret)
		*keep = p;
	else
		polar_pipeline_destroy(p);
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
		     const struct polar_dataset *test, const int want[POLAR_METHOD_COUNT])
{
	size_t C = o0->seed_hi - o0->seed_lo + 1, N = test->count, V, c, v;
	const char *const *vary = o0->select ? select_variants : o0->vary;
	size_t stride = POLAR_METHOD_COUNT * N;	/* one chip's hits */
	uint8_t *hit;
	double gap, ci[2], worst;
	int me, ret = 0;

	V = 1 + (o0->select ? sizeof(select_variants) /
		 sizeof(select_variants[0]) : o0->nvary);
	hit = calloc(V * C * stride, 1);
#define HIT(v, c, me) (hit + (((v) * C + (c)) * POLAR_METHOD_COUNT + (me)) * N)
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
		int want_v[POLAR_METHOD_COUNT];

		memcpy(want_v, want, sizeof(want_v));
		if (v) {
			ret = apply_variant(&o, vary[v - 1]);
			want_v[POLAR_METHOD_FP32] = 0;
		}
		for (c = 0; c < C && !ret; c++) {
			struct point pt = { 0 };

			o.chip_seed = o0->seed_lo + c;
			pt.sigma = o.sigma_static;
			pt.adc_bits = o.adc_bits;
			for (me = 0; me < POLAR_METHOD_COUNT; me++)
				pt.hit[me] = want_v[me] ? HIT(v, c, me) : NULL;
			ret = run_point(&o, m, cal, test, want_v, &pt, NULL);
			if (ret)
				break;
			printf("chip %llu%s%s:", (unsigned long long)o.chip_seed,
			       v ? " with " : "", v ? vary[v - 1] : "");
			for (me = 0; me < POLAR_METHOD_COUNT; me++)
				if (want_v[me])
					printf(" %s %.2f", polar_method_name(me),
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
	for (me = POLAR_METHOD_QUANT; me < POLAR_METHOD_COUNT && !ret; me++) {
		if (!want[me])
			continue;
		ret = paired_gap(HIT(0, 0, POLAR_METHOD_FP32), HIT(0, 0, me), stride, C, N,
				 &gap, ci, &worst);
		if (!ret)
			printf("gap %s=%.2f ci95=[%.2f,%.2f] worst_chip=%.2f\n",
			       polar_method_name(me), gap, ci[0], ci[1], worst);
	}
	/*
	 * The Fisher weighting's own gain: sens-identity's gap minus
	 * sensitivity's, on the same inputs, chips and images.
	 */
	if (!ret && want[POLAR_METHOD_SENSITIVITY] && want[POLAR_METHOD_SENS_IDENTITY]) {
		ret = paired_gap(HIT(0, 0, POLAR_METHOD_SENSITIVITY), HIT(0, 0, POLAR_METHOD_SENS_IDENTITY), stride,
				 C, N, &gap, ci, &worst);
		if (!ret)
			printf("fisher gain (gap sens-identity - gap sensitivity)"
			       "=%.2f ci95=[%.2f,%.2f]\n", gap, ci[0], ci[1]);
	}
	for (v = 1; v < V && !ret; v++)
		for (me = POLAR_METHOD_QUANT; me < POLAR_METHOD_COUNT && !ret; me++) {
			double d, dci[2];

			if (!want[me])
				continue;
			ret = paired_gap(HIT(0, 0, POLAR_METHOD_FP32), HIT(v, 0, me),
					 stride, C, N, &gap, ci, &worst);
			if (!ret)
				ret = paired_gap(HIT(0, 0, me), HIT(v, 0, me),
						 stride, C, N, &d, dci, &worst);
			if (!ret)
				printf("with %s: gap %s=%.2f ci95=[%.2f,%.2f] "
				       "change=%.2f ci95=[%.2f,%.2f]\n",
				       vary[v - 1], polar_method_name(me), gap, ci[0],
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
		for (me = POLAR_METHOD_QUANT; me < POLAR_METHOD_COUNT && !ret; me++) {
			size_t best = 0;	/* the options given */
			double best_d = 0, d, dci[2];

			if (!want[me] || me == POLAR_METHOD_QUANT)
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
				ret = paired_gap(HIT(0, 0, POLAR_METHOD_FP32), HIT(best, 0, me),
						 stride, C, N, &gap, ci, &worst);
			if (!ret)
				printf("chosen %s for %s: %s, gap %.2f ci95=[%.2f,"
				       "%.2f]\n", name, polar_method_name(me),
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
			 const int want[POLAR_METHOD_COUNT], const struct polar_model *m)
{
	const char *sep;
	unsigned int l;
	int ph, me;

	fprintf(f, "%sload %.1f s", pre, t->load);
	for (ph = 0; ph < (int)t->phases.nphases; ph++)
		fprintf(f, ", %s %.1f s", t->phases.phase_name[ph],
			t->phases.phase_seconds[ph]);
	for (me = 0; me < POLAR_METHOD_COUNT; me++) {
		if (!want[me])
			continue;
		fprintf(f, ", eval %s %.1f s", polar_method_name(me), t->eval[me]);
		if (me == POLAR_METHOD_FP32)
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

static const char *const colors[POLAR_METHOD_COUNT] = {
	"#000000", "#d62728", "#ff7f0e", "#2ca02c", "#9467bd", "#1f77b4",
	"#8c564b",
};

static void svg_sweep(const char *path, const struct point *pts, size_t np,
		      uint32_t adc_bits, const int want[POLAR_METHOD_COUNT])
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
		for (me = 0; me < POLAR_METHOD_COUNT; me++)
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
	for (me = 0; me < POLAR_METHOD_COUNT; me++) {
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
			polar_method_name(me));
	}
	fprintf(f, "</svg>\n");
#undef PX
#undef PY
	fclose(f);
}

static void svg_bars(const char *path, const struct point *pt,
		     const int want[POLAR_METHOD_COUNT])
{
	FILE *f = fopen(path, "w");
	double ymin = 100, y0;
	int me, k = 0;

	if (!f)
		return;
	for (me = 0; me < POLAR_METHOD_COUNT; me++)
		if (want[me])
			ymin = fmin(ymin, pt->r[me].acc);
	y0 = floor(ymin / 5) * 5 - 5;
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"520\" "
		"height=\"300\" font-family=\"sans-serif\" font-size=\"12\">\n"
		"<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
		"<text x=\"10\" y=\"18\">test accuracy (%%), axis from %.0f</text>\n",
		y0);
	for (me = 0; me < POLAR_METHOD_COUNT; me++) {
		double h;

		if (!want[me])
			continue;
		h = (pt->r[me].acc - y0) / (100 - y0) * 230;
		fprintf(f, "<rect x=\"%d\" y=\"%.1f\" width=\"60\" height=\"%.1f\" "
			"fill=\"%s\"/>\n<text x=\"%d\" y=\"%.1f\" text-anchor="
			"\"middle\">%.2f</text>\n<text x=\"%d\" y=\"292\" "
			"text-anchor=\"middle\">%s</text>\n", 20 + 82 * k,
			270 - h, h, colors[me], 50 + 82 * k, 265 - h,
			pt->r[me].acc, 50 + 82 * k, polar_method_name(me));
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
			 size_t nbits, const int want[POLAR_METHOD_COUNT],
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
		pt->sigma / 65536.0, pt->adc_bits, polar_wfmt_name(o->wfmt),
		polar_xfmt_name(o->xfmt), polar_xfmt_name(o->first_xfmt), o->rank,
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
	for (me = 0; me < POLAR_METHOD_COUNT; me++)
		if (want[me])
			fprintf(f, "| %s | %.2f | %.1f | %.0f |\n", polar_method_name(me),
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
				pt->lambda[POLAR_METHOD_ACT_DEVICE][l], pt->lambda[POLAR_METHOD_SENSITIVITY][l]);
	fprintf(f, ".\n\n## Time\n\nWall-clock seconds of each phase (eval "
		"X (layers Y): Y of the X seconds inside the polarized layers: "
		"quantize, device, host path, dequantize):\n");
	print_timing(f, "", &pt->t, want, m);
	fprintf(f, "\n## Energy\n\n");
	for (me = POLAR_METHOD_QUANT; me < POLAR_METHOD_COUNT; me++)
		if (want[me] && pt->r[me].have_energy) {
			fprintf(f, "- %s: ", polar_method_name(me));
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
		for (me = 0; me < POLAR_METHOD_COUNT; me++)
			if (want[me])
				fprintf(f, " %s |", polar_method_name(me));
		fprintf(f, "\n|---|---|");
		for (me = 0; me < POLAR_METHOD_COUNT; me++)
			if (want[me])
				fprintf(f, "---|");
		fprintf(f, "\n");
		for (i = 0; i < nsweep; i++) {
			fprintf(f, "| %u (%.3f) | %u |", sweep[i].sigma,
				sweep[i].sigma / 65536.0, sweep[i].adc_bits);
			for (me = 0; me < POLAR_METHOD_COUNT; me++)
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
	if (o->device_layers) {
		struct polar_pipeline *p;
		int bad = polar_pipeline_create(m, &p) ||
			  polar_pipeline_set_device_layers(p, o->device_layers);

		polar_pipeline_destroy(p);
		if (bad) {
			fprintf(stderr, "polar eval: --device-layers: %s\n",
				polar_errmsg());
			return 1;
		}
	}
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
	int want[POLAR_METHOD_COUNT], me, ret = 1;
	struct point pt = { 0 }, *sweep = NULL;
	static const uint32_t sig[] = { 0, 3277, 6554, 9830, 13107, 19661 };
	static const uint32_t bits[] = { 4, 5, 6 };
	size_t nsweep = 0, i, j;
	double t0 = now_s();

	if (parse_opts(argc, argv, &o) || parse_methods(o.methods, want))
		return 2;
	o.train = want[POLAR_METHOD_TRAINED];
	o.sens_identity = want[POLAR_METHOD_SENS_IDENTITY];
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
	if (o.chips_set && (!want[POLAR_METHOD_FP32] || strncmp(o.device, "sim", 3) ||
			    o.sweep || o.report)) {
		fprintf(stderr, "polar eval: --chip-seeds, --vary and --select "
			"need a sim device and fp32 among the methods, without "
			"--sweep or --report\n");
		return 2;
	}
	if (load_all(&o, &m, &train, &test, &cal, &held, &val))
		goto out;
	if ((want[POLAR_METHOD_SENSITIVITY] || want[POLAR_METHOD_TRAINED] || want[POLAR_METHOD_SENS_IDENTITY]) &&
	    !polar_model_is_chain(&m)) {
		/*
		 * Their Fisher and training need the model's gradient, which
		 * the library computes for chains of the built-in layer types
		 * only: the other methods still run, with a note.
		 */
		int left = 0;

		fprintf(stderr, "polar eval: no sensitivity or trained method "
			"for %s (%s)\n", o.model, polar_errmsg());
		want[POLAR_METHOD_SENSITIVITY] = 0;
		want[POLAR_METHOD_TRAINED] = 0;
		want[POLAR_METHOD_SENS_IDENTITY] = 0;
		o.train = 0;
		o.sens_identity = 0;
		for (me = 0; me < POLAR_METHOD_COUNT; me++)
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
	for (me = 0; me < POLAR_METHOD_COUNT; me++)
		if (want[me] && me != POLAR_METHOD_FP32)
			fprintf(stderr, "%-12s %.2f%%  %.1f s  %.0f images/s\n",
				polar_method_name(me), pt.r[me].acc, pt.r[me].seconds,
				pt.r[me].ips);
	if (want[POLAR_METHOD_FP32])
		fprintf(stderr, "%-12s %.2f%%  %.1f s  %.0f images/s (host)\n",
			"fp32", pt.r[POLAR_METHOD_FP32].acc, pt.r[POLAR_METHOD_FP32].seconds,
			pt.r[POLAR_METHOD_FP32].ips);
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
				pt.lambda[POLAR_METHOD_ACT_DEVICE][i], pt.lambda[POLAR_METHOD_SENSITIVITY][i]);
	fprintf(stderr, "\n");
	print_timing(stderr, "phases: ", &pt.t, want, &m);
	for (me = POLAR_METHOD_QUANT; me < POLAR_METHOD_COUNT; me++)
		if (want[me] && (me == POLAR_METHOD_QUANT || me == POLAR_METHOD_SENSITIVITY))
			print_energy(stdout, &pt.r[me], me == POLAR_METHOD_QUANT ?
				     "quant " : "sensitivity ", o.rank);
	if (want[POLAR_METHOD_SENSITIVITY] && pt.r[POLAR_METHOD_SENSITIVITY].have_energy)
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
		for (me = 0; me < POLAR_METHOD_COUNT; me++)
			if (want[me])
				printf(" %12s", polar_method_name(me));
		printf("\n");
		for (i = 0; i < nsweep; i++) {
			printf("%.3f %4u", sweep[i].sigma / 65536.0,
			       sweep[i].adc_bits);
			for (me = 0; me < POLAR_METHOD_COUNT; me++)
				if (want[me])
					printf(" %12.2f", sweep[i].r[me].acc);
			printf("\n");
		}
	}
	if (o.report)
		write_report(&o, &pt, sweep, nsweep, sig, sizeof(sig) / sizeof(sig[0]),
			     bits, o.sweep ? sizeof(bits) / sizeof(bits[0]) : 0,
			     want, &m);
	for (me = 0; me < POLAR_METHOD_COUNT; me++)
		if (want[me])
			printf("accuracy %s=%.2f\n", polar_method_name(me), pt.r[me].acc);
	/*
	 * The chip's compute efficiency: the main path's MACs per joule of the
	 * device's counters, the same for every method (the first measured).
	 */
	for (me = POLAR_METHOD_QUANT; me < POLAR_METHOD_COUNT; me++)
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
	struct polar_pipeline *p = NULL;
	struct opts o;
	int want[POLAR_METHOD_COUNT] = { 0 }, ret = 1;
	struct point pt = { 0 };

	if (parse_opts(argc, argv, &o))
		return 2;
	if (!o.out) {
		fprintf(stderr, "polar calibrate: --out FILE is required\n");
		return 2;
	}
	o.train = o.save_method == POLAR_METHOD_TRAINED;
	o.sens_identity = o.save_method == POLAR_METHOD_SENS_IDENTITY;
	if (load_all(&o, &m, &train, &test, &cal, &held, &val))
		goto out;
	if ((o.save_method == POLAR_METHOD_SENSITIVITY || o.save_method == POLAR_METHOD_TRAINED ||
	     o.save_method == POLAR_METHOD_SENS_IDENTITY) &&
	    !polar_model_is_chain(&m)) {
		fprintf(stderr, "polar calibrate: no %s factors for %s "
			"(%s): saving act-device's\n",
			polar_method_name(o.save_method), o.model, polar_errmsg());
		o.save_method = POLAR_METHOD_ACT_DEVICE;
		o.train = 0;
		o.sens_identity = 0;
	}
	pt.sigma = o.sigma_static;
	pt.adc_bits = o.adc_bits;
	if (run_point(&o, &m, &cal, &test, want, &pt, &p))
		goto out;
	if (polar_pipeline_save(p, o.save_method, o.out)) {
		die_pipeline();
		goto out;
	}
	fprintf(stderr, "wrote %s (%s, rank %u, calibration %.1f s)\n", o.out,
		polar_method_name(o.save_method), o.rank, pt.calib_s);
	ret = 0;
out:
	polar_pipeline_destroy(p);
	polar_dataset_free(&train);
	polar_dataset_free(&test);
	free(cal.images);
	free(cal.labels);
	free(held.images);
	free(held.labels);
	polar_model_free(&m);
	return ret;
}
