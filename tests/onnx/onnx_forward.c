// SPDX-License-Identifier: MIT
/*
 * The library side of tests/onnx/onnx-client.sh: loads an ONNX model with
 * polar_model_load_onnx(), runs libpolar-accel's fp32 forward pass over
 * the first N images of the Fashion-MNIST test split (all by default),
 * writes the outputs as little-endian float32 (N x classes) and prints how
 * many images it classified correctly.
 *
 * usage: onnx_forward MODEL.onnx OUT.f32 [N]
 */
#include <stdio.h>
#include <stdlib.h>

#include "polar/onnx.h"

int main(int argc, char **argv)
{
	struct polar_dataset train, test;
	struct polar_model m;
	size_t n, i, correct = 0;
	float *out;
	FILE *f;
	unsigned int j, best;

	if (argc < 3) {
		fprintf(stderr, "usage: onnx_forward MODEL.onnx OUT.f32 [N]\n");
		return 2;
	}
	if (polar_model_load_onnx(&m, argv[1], NULL) ||
	    polar_fashion_mnist_load(POLAR_FASHION_MNIST_DIR, &train, &test) ||
	    polar_dataset_preprocess(&test, &m.pre)) {
		fprintf(stderr, "onnx_forward: %s\n", polar_errmsg());
		return 1;
	}
	n = argc > 3 ? strtoul(argv[3], NULL, 10) : test.count;
	if (n > test.count)
		n = test.count;
	out = malloc(sizeof(float) * n * m.classes);
	if (!out || polar_model_forward(&m, n, test.images, out, NULL)) {
		fprintf(stderr, "onnx_forward: %s\n", polar_errmsg());
		return 1;
	}
	for (i = 0; i < n; i++) {
		for (best = 0, j = 1; j < m.classes; j++)
			if (out[i * m.classes + j] > out[i * m.classes + best])
				best = j;
		correct += best == test.labels[i];
	}
	f = fopen(argv[2], "wb");
	if (!f || fwrite(out, sizeof(float) * m.classes, n, f) != n ||
	    fclose(f)) {
		perror(argv[2]);
		return 1;
	}
	printf("%s: %u layers, %u classes, %zu of %zu correct\n", argv[1],
	       m.nlayers, m.classes, correct, n);
	free(out);
	polar_model_free(&m);
	polar_dataset_free(&train);
	polar_dataset_free(&test);
	return 0;
}
