// SPDX-License-Identifier: MIT
/*
 * polar: the command-line front end of libpolar-accel.
 *   polar info [DEVICE]   print the identity and geometry of an accelerator
 *   polar train ...       train the fp32 model on Fashion-MNIST (polar_train.c)
 *   polar eval|calibrate  polarize and evaluate a model (polar_eval.c)
 * The subcommands share option parsing and the progress bar (cli.c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "drm/polar_accel.h"
#include "polar/polar.h"

static const struct {
	uint32_t param;
	const char *name;
} info_params[] = {
	{ DRM_POLAR_ACCEL_PARAM_UAPI_VERSION, "uapi_version" },
	{ DRM_POLAR_ACCEL_PARAM_DEVICE_ID, "device_id" },
	{ DRM_POLAR_ACCEL_PARAM_DEVICE_VERSION, "device_version" },
	{ DRM_POLAR_ACCEL_PARAM_PCI_ID, "pci_id" },
	{ DRM_POLAR_ACCEL_PARAM_TILE_ROWS, "tile_rows" },
	{ DRM_POLAR_ACCEL_PARAM_TILE_COLS, "tile_cols" },
	{ DRM_POLAR_ACCEL_PARAM_NUM_TILES, "num_tiles" },
	{ DRM_POLAR_ACCEL_PARAM_ADC_BITS, "adc_bits" },
};

static int cmd_info(int argc, char **argv)
{
	struct polar_device *dev;
	uint64_t value;
	size_t i;
	int ret;

	ret = polar_open(argc > 0 ? argv[0] : NULL, &dev);
	if (ret) {
		fprintf(stderr, "polar info: %s\n", polar_errmsg());
		return 1;
	}
	printf("device: %s\n", polar_device_path(dev));
	for (i = 0; i < sizeof(info_params) / sizeof(info_params[0]); i++) {
		ret = polar_get_param(dev, info_params[i].param, &value);
		if (ret) {
			fprintf(stderr, "polar info: %s\n", polar_errmsg());
			polar_close(dev);
			return 1;
		}
		if (info_params[i].param == DRM_POLAR_ACCEL_PARAM_DEVICE_VERSION)
			printf("%s: %u.%u\n", info_params[i].name,
			       (unsigned int)(value >> 16),
			       (unsigned int)(value & 0xffff));
		else if (info_params[i].param == DRM_POLAR_ACCEL_PARAM_DEVICE_ID ||
			 info_params[i].param == DRM_POLAR_ACCEL_PARAM_PCI_ID)
			printf("%s: 0x%08llx\n", info_params[i].name,
			       (unsigned long long)value);
		else
			printf("%s: %llu\n", info_params[i].name,
			       (unsigned long long)value);
	}
	polar_close(dev);
	return 0;
}

int polar_cmd_train(int argc, char **argv);
int polar_cmd_eval(int argc, char **argv);
int polar_cmd_calibrate(int argc, char **argv);

static void usage(FILE *out)
{
	fprintf(out, "usage: polar info [DEVICE]\n"
		"       polar train [--arch cnn|mlp] [--epochs N] [--seed S] "
		"[--data DIR] [--out FILE] [--threads N]\n"
		"       polar eval|calibrate [options]  (polar eval --help)\n");
}

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
	{ "train", polar_cmd_train },
	{ "eval", polar_cmd_eval },
	{ "calibrate", polar_cmd_calibrate },
};

int main(int argc, char **argv)
{
	char name[32];
	size_t i;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "info"))
		return cmd_info(argc - 2, argv + 2);
	/* argv[0] of a subcommand is "polar CMD", which getopt's errors name */
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name))
			continue;
		snprintf(name, sizeof(name), "polar %s", commands[i].name);
		argv[1] = name;
		return commands[i].run(argc - 1, argv + 1);
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "polar: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
