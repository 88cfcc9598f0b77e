// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: polar_tensors_parse() on the input, then every lookup
 * a model loader would do on what it accepted.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "polar/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct polar_tensors ts;
	size_t i;

	if (polar_tensors_parse(data, size, "fuzz.safetensors", &ts) == 0) {
		for (i = 0; i < ts.count; i++) {
			const struct polar_tensor *t = &ts.tensors[i];
			volatile uint8_t sink = 0;

			if (polar_tensors_find(&ts, t->name) != t)
				__builtin_trap();	/* names are unique */
			if (t->nbytes != t->count * polar_dtype_size(t->dtype))
				__builtin_trap();
			if (t->nbytes)	/* touch both ends of the data */
				sink ^= ((const uint8_t *)t->data)[0] ^
					((const uint8_t *)t->data)[t->nbytes - 1];
			(void)sink;
		}
		for (i = 0; i < ts.nmeta; i++)
			if (polar_tensors_meta(&ts, ts.meta[i].key) == NULL)
				__builtin_trap();
	}
	polar_tensors_free(&ts);
	return 0;
}
