/* SPDX-License-Identifier: MIT */
/*
 * Data sets: IDX files (the format of MNIST and Fashion-MNIST, raw or
 * gzip'd) and the Fashion-MNIST train/test split as Debian's
 * dataset-fashion-mnist package installs it.
 *
 * IDX: a big-endian 32-bit magic 0x0000TTNN (TT the element type, 0x08 for
 * unsigned bytes, NN the number of dimensions), NN big-endian 32-bit
 * dimensions, then the elements, row-major. Only unsigned-byte files of one
 * to three dimensions are read: 0x00000801 (labels) and 0x00000803 (images).
 *
 * Errors are -errno with a one-line polar_errmsg() naming the file and the
 * problem, e.g. "t10k-images-idx3-ubyte.gz: bad IDX magic 0x12345678 (want
 * 0x00000803)".
 */
#ifndef POLAR_DATA_H
#define POLAR_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "polar/polar.h"

#ifdef __cplusplus
extern "C" {
#endif

#define POLAR_IDX_MAGIC_LABELS 0x00000801u
#define POLAR_IDX_MAGIC_IMAGES 0x00000803u

/**
 * struct polar_idx - the contents of one IDX file
 * @magic: POLAR_IDX_MAGIC_LABELS or POLAR_IDX_MAGIC_IMAGES
 * @ndim: number of dimensions (1 or 3)
 * @dims: the dimensions, outermost first (@dims[0] items)
 * @count: @dims[0], the number of items
 * @item_size: bytes per item (product of @dims[1..ndim-1]; 1 for labels)
 * @data: @count * @item_size bytes, owned (polar_idx_free())
 */
struct polar_idx {
	uint32_t magic;
	uint32_t ndim;
	uint32_t dims[3];
	size_t count;
	size_t item_size;
	uint8_t *data;
};

/*
 * Reads an IDX file, gzip'd (by its content, not its name) or raw. Checks
 * the magic, that the dimensions are non-zero and that the data is exactly
 * as long as they say (neither truncated nor followed by trailing bytes).
 * polar_idx_load() accepts labels and images; polar_idx_load_expect() also
 * requires want_magic. On error *out is left empty.
 */
int polar_idx_load(const char *path, struct polar_idx *out);
int polar_idx_load_expect(const char *path, uint32_t want_magic,
			  struct polar_idx *out);
void polar_idx_free(struct polar_idx *idx);

/**
 * struct polar_dataset - labelled images
 * @count: number of images
 * @channels, @rows, @cols: shape of one image (1 x 28 x 28 for
 *	Fashion-MNIST)
 * @images: @count images of @channels * @rows * @cols floats, channel-major
 *	then row-major (NCHW). A pixel is its byte divided by 255, so [0, 1]
 *	with 0 the background; no mean or variance normalisation is applied
 *	(models see exactly these values).
 * @labels: @count class indices, each < @classes
 * @classes: number of classes (10)
 */
struct polar_dataset {
	size_t count;
	uint32_t channels, rows, cols;
	float *images;
	uint8_t *labels;
	uint32_t classes;
};

/*
 * The validation split: the last images of Fashion-MNIST's training split,
 * which polar train does not train on and polar eval does not calibrate
 * on, so that every choice is made on them and the test split gives only
 * final numbers.
 */
#define POLAR_FASHION_MNIST_VALIDATE 10000

/* Where dataset-fashion-mnist installs the four files. */
#define POLAR_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/* The Fashion-MNIST class names, by label. */
extern const char *const polar_fashion_mnist_classes[10];

/*
 * Loads an image file and a label file into *out, checking that the counts
 * agree and that every label is below classes.
 */
int polar_dataset_load_idx(const char *images_path, const char *labels_path,
			   uint32_t classes, struct polar_dataset *out);

/*
 * Loads the Fashion-MNIST split from dir (NULL: POLAR_FASHION_MNIST_DIR):
 * train-{images-idx3,labels-idx1}-ubyte.gz (60000) and
 * t10k-{images-idx3,labels-idx1}-ubyte.gz (10000). Either pointer may be
 * NULL to skip that part.
 */
int polar_fashion_mnist_load(const char *dir, struct polar_dataset *train,
			     struct polar_dataset *test);

void polar_dataset_free(struct polar_dataset *d);

#define POLAR_PRE_MAX_CHANNELS 4

/**
 * struct polar_preprocess - how a model wants its input made from pixels
 * @pixel_scale: multiplies the 8-bit pixel value (1/255: [0, 1] floats)
 * @channels: entries of @mean and @std in use (0: the same mean 0 and std
 *	1 for every channel)
 * @mean, @std: per channel, x = (pixel * @pixel_scale - @mean) / @std
 *
 * torchvision's ToTensor is { 1/255, 0 }; ToTensor then
 * Normalize((0.2860,), (0.3530,)) is { 1/255, 1, { 0.2860 }, { 0.3530 } }.
 */
struct polar_preprocess {
	float pixel_scale;
	uint32_t channels;
	float mean[POLAR_PRE_MAX_CHANNELS];
	float std[POLAR_PRE_MAX_CHANNELS];
};

/*
 * Turns d's images (pixels / 255, as loaded) into what p asks for, in
 * place. p's @channels must be 0 or d's channels, every @std nonzero and
 * @pixel_scale finite and nonzero. ToTensor leaves d as it is.
 */
int polar_dataset_preprocess(struct polar_dataset *d,
			     const struct polar_preprocess *p);

#ifdef __cplusplus
}
#endif

#endif /* POLAR_DATA_H */
