/* SPDX-License-Identifier: MIT */
/*
 * Named tensors and their file format, safetensors
 * (https://github.com/huggingface/safetensors):
 *
 *   8 bytes    N, the header length, unsigned little-endian
 *   N bytes    a JSON object: for each tensor
 *                "name": {"dtype": "F32", "shape": [16, 1, 5, 5],
 *                         "data_offsets": [begin, end]}
 *              and optionally "__metadata__": {"key": "value", ...}
 *              (string values only); may end in spaces
 *   the rest   the byte buffer; a tensor's bytes are [begin, end) of it,
 *              little-endian, row-major
 *
 * Reading rejects, with a one-line polar_errmsg() naming the file, the
 * tensor and the problem: a file shorter than 8 bytes, a header length
 * beyond the file, invalid JSON (with its position), a missing or
 * ill-typed dtype, shape or data_offsets, an unknown dtype, more than
 * POLAR_TENSOR_MAX_DIMS dimensions, offsets out of range or overlapping
 * another tensor, and a shape whose element count does not match the byte
 * length. Duplicate names are rejected too.
 *
 * Writing pads the header with spaces so the byte buffer starts 8-byte
 * aligned and lays the tensors out back to back in the order added.
 */
#ifndef POLAR_MODEL_H
#define POLAR_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "polar/polar.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Element types, named in files as "F32", "I8", "U8", "I32". */
enum polar_dtype {
	POLAR_DTYPE_F32,
	POLAR_DTYPE_I8,
	POLAR_DTYPE_U8,
	POLAR_DTYPE_I32,
};

#define POLAR_TENSOR_MAX_DIMS 4

/**
 * struct polar_tensor - one named tensor
 * @name: its name, e.g. "conv1.weight"
 * @dtype: element type
 * @ndim: number of dimensions (0 for a scalar)
 * @shape: the dimensions, outermost first
 * @count: number of elements (product of @shape)
 * @nbytes: @count times the element size
 * @data: the elements, row-major, aligned to 64 bytes, owned by the set
 */
struct polar_tensor {
	char *name;
	enum polar_dtype dtype;
	unsigned int ndim;
	uint64_t shape[POLAR_TENSOR_MAX_DIMS];
	uint64_t count;
	size_t nbytes;
	void *data;
};

/* One __metadata__ entry. */
struct polar_meta {
	char *key;
	char *value;
};

/**
 * struct polar_tensors - a set of named tensors with string metadata
 * @source: the file it was read from, or "" (used in messages)
 * @tensors, @count: the tensors in file (or insertion) order
 * @meta, @nmeta: the __metadata__ entries
 *
 * Zero-initialise (or polar_tensors_init()) before adding to a new set.
 */
struct polar_tensors {
	char source[256];
	struct polar_tensor *tensors;
	size_t count, cap;
	struct polar_meta *meta;
	size_t nmeta, meta_cap;
};

/* "F32", "I8", ...; NULL for a value outside the enum. */
const char *polar_dtype_name(enum polar_dtype dtype);
/* Bytes per element; 0 for a value outside the enum. */
size_t polar_dtype_size(enum polar_dtype dtype);

void polar_tensors_init(struct polar_tensors *ts);
void polar_tensors_free(struct polar_tensors *ts);

/* Reads a safetensors file into *ts (initialised here). */
int polar_tensors_load(const char *path, struct polar_tensors *ts);
/*
 * The same from a buffer of len bytes holding a whole file; source names it
 * in messages.
 */
int polar_tensors_parse(const void *buf, size_t len, const char *source,
			struct polar_tensors *ts);

/* Writes ts as a safetensors file (through a temporary file and rename). */
int polar_tensors_save(const struct polar_tensors *ts, const char *path);

/* The tensor called name, or NULL. */
const struct polar_tensor *polar_tensors_find(const struct polar_tensors *ts,
					       const char *name);

/*
 * Finds name and checks its dtype and shape: ndim dimensions follow as int
 * arguments, e.g.
 *   polar_tensors_get(ts, "conv1.weight", POLAR_DTYPE_F32, &t, 4, 16, 1, 5, 5)
 * -ENOENT when it is missing, -EINVAL with a message such as
 * "model.safetensors: conv1.weight has shape [16,1,5,5], expected
 * [16,1,3,3]" when it differs.
 */
int polar_tensors_get(const struct polar_tensors *ts, const char *name,
		      enum polar_dtype dtype, const struct polar_tensor **out,
		      unsigned int ndim, ...);

/*
 * Adds a tensor, copying nbytes = count * element size from data (data NULL:
 * zero-filled). -EEXIST if the name is taken.
 */
int polar_tensors_add(struct polar_tensors *ts, const char *name,
		      enum polar_dtype dtype, unsigned int ndim,
		      const uint64_t *shape, const void *data);

/* Sets (adds or replaces) a metadata entry. */
int polar_tensors_set_meta(struct polar_tensors *ts, const char *key,
			   const char *value);
/* A metadata value, or NULL. */
const char *polar_tensors_meta(const struct polar_tensors *ts,
			       const char *key);

#ifdef __cplusplus
}
#endif

#endif /* POLAR_MODEL_H */
