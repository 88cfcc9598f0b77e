// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: polar_model_parse_onnx() on the input and, when it
 * accepts a model small enough to run, one forward pass of a zero sample
 * through it (every layer's shapes are then exercised, not just read).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "polar/onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct polar_model m;
	size_t work = 0, insz;
	unsigned int i;
	float *x, *y;

	if (polar_model_parse_onnx(&m, data, size, "fuzz.onnx", NULL))
		return 0;
	if (!m.nlayers || !m.classes || !m.params)
		__builtin_trap();	/* accepted means runnable */
	for (i = 0; i < m.nlayers; i++) {
		const struct polar_layer *l = &m.layers[i];

		if (l->input[0] >= (int32_t)i || l->input[1] >= (int32_t)i)
			__builtin_trap();	/* each reads earlier layers */
		work += polar_layer_out_size(l) +
			polar_layer_scratch_size(l, 1);
	}
	insz = (size_t)m.in_c * m.in_h * m.in_w;
	if (work + insz < (1u << 22)) {
		x = calloc(insz, sizeof(float));
		y = malloc(sizeof(float) * m.classes);
		if (x && y && polar_model_forward(&m, 1, x, y, NULL))
			__builtin_trap();
		free(x);
		free(y);
	}
	polar_model_free(&m);
	return 0;
}
