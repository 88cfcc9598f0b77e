// SPDX-License-Identifier: MIT
/*
 * IDX files (raw or gzip'd, through zlib's gzread, which passes raw files
 * through unchanged) and the Fashion-MNIST split built from them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "polar/data.h"
#include "polar_internal.h"

const char *const polar_fashion_mnist_classes[10] = {
	"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
	"Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
};

/* Reads the whole (decompressed) file into a malloc'd buffer. */
static int read_all(const char *path, uint8_t **out, size_t *len)
{
	size_t cap = 1 << 16, n = 0;
	uint8_t *buf = NULL;
	gzFile gz;
	int errnum, r;

	errno = 0;
	gz = gzopen(path, "rb");
	if (!gz)
		return polar_fail(errno ? -errno : -ENOMEM, "%s: cannot open: %s",
				  path, errno ? strerror(errno) : "out of memory");
	gzbuffer(gz, 1 << 17);
	buf = malloc(cap);
	if (!buf) {
		gzclose(gz);
		return polar_fail(-ENOMEM, "%s: out of memory", path);
	}
	for (;;) {
		if (n == cap) {
			uint8_t *nb = cap > SIZE_MAX / 2 ? NULL :
				realloc(buf, cap * 2);

			if (!nb) {
				free(buf);
				gzclose(gz);
				return polar_fail(-ENOMEM, "%s: out of memory",
						  path);
			}
			buf = nb;
			cap *= 2;
		}
		r = gzread(gz, buf + n,
			   (unsigned int)(cap - n > (1u << 30) ? 1u << 30 :
					  cap - n));
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	if (r < 0 || (gzerror(gz, &errnum), errnum != Z_OK)) {
		int saved_errno = errno, err;
		char msg[128];

		/* gzerror()'s string belongs to gz: copy it before gzclose(). */
		snprintf(msg, sizeof(msg), "%s", gzerror(gz, &errnum));
		err = errnum == Z_ERRNO ? -saved_errno : -EINVAL;
		free(buf);
		gzclose(gz);
		if (errnum == Z_BUF_ERROR)
			return polar_fail(-EINVAL, "%s: gzip stream truncated "
					  "(unexpected end of file)", path);
		return polar_fail(err, "%s: cannot read: %s", path,
				  errnum == Z_ERRNO ? strerror(-err) : msg);
	}
	gzclose(gz);
	*out = buf;
	*len = n;
	return 0;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

int polar_idx_load_expect(const char *path, uint32_t want_magic,
			  struct polar_idx *out)
{
	size_t len = 0, hdr, need, i;
	uint32_t magic, ndim;
	uint8_t *buf = NULL;
	int ret;

	polar_clear_error();
	POLAR_NONNULL("polar_idx_load", out);
	memset(out, 0, sizeof(*out));
	POLAR_NONNULL("polar_idx_load", path);
	ret = read_all(path, &buf, &len);
	if (ret)
		return ret;
	if (len < 4) {
		ret = polar_fail(-EINVAL, "%s: truncated IDX header (%zu bytes, "
				 "need at least 4)", path, len);
		goto fail;
	}
	magic = be32(buf);
	if (want_magic && magic != want_magic) {
		ret = polar_fail(-EINVAL, "%s: bad IDX magic 0x%08x (want "
				 "0x%08x)", path, magic, want_magic);
		goto fail;
	}
	if (magic != POLAR_IDX_MAGIC_LABELS && magic != POLAR_IDX_MAGIC_IMAGES) {
		ret = polar_fail(-EINVAL, "%s: bad IDX magic 0x%08x (want "
				 "0x%08x or 0x%08x)", path, magic,
				 POLAR_IDX_MAGIC_LABELS, POLAR_IDX_MAGIC_IMAGES);
		goto fail;
	}
	ndim = magic & 0xff;
	hdr = 4 + 4 * (size_t)ndim;
	if (len < hdr) {
		ret = polar_fail(-EINVAL, "%s: truncated IDX header (%zu bytes, "
				 "need %zu for %u dimensions)", path, len, hdr,
				 ndim);
		goto fail;
	}
	out->magic = magic;
	out->ndim = ndim;
	need = 1;
	for (i = 0; i < ndim; i++) {
		out->dims[i] = be32(buf + 4 + 4 * i);
		if (!out->dims[i]) {
			ret = polar_fail(-EINVAL, "%s: IDX dimension %zu is 0",
					 path, i);
			goto fail;
		}
		if (need > SIZE_MAX / out->dims[i]) {
			ret = polar_fail(-EINVAL, "%s: IDX dimensions overflow",
					 path);
			goto fail;
		}
		need *= out->dims[i];
	}
	if (len - hdr != need) {
		if (ndim == 3)
			ret = polar_fail(-EINVAL, "%s: %s: dimensions %ux%ux%u "
					 "need %zu data bytes, file has %zu",
					 path, len - hdr < need ? "truncated" :
					 "trailing bytes", out->dims[0],
					 out->dims[1], out->dims[2], need,
					 len - hdr);
		else
			ret = polar_fail(-EINVAL, "%s: %s: dimension %u needs "
					 "%zu data bytes, file has %zu", path,
					 len - hdr < need ? "truncated" :
					 "trailing bytes", out->dims[0], need,
					 len - hdr);
		goto fail;
	}
	out->count = out->dims[0];
	out->item_size = need / out->count;
	/* Keep the data only: move it to the front and shrink. */
	memmove(buf, buf + hdr, need);
	out->data = realloc(buf, need);
	if (!out->data)
		out->data = buf;
	return 0;
fail:
	free(buf);
	memset(out, 0, sizeof(*out));
	return ret;
}

int polar_idx_load(const char *path, struct polar_idx *out)
{
	return polar_idx_load_expect(path, 0, out);
}

void polar_idx_free(struct polar_idx *idx)
{
	if (!idx)
		return;
	free(idx->data);
	memset(idx, 0, sizeof(*idx));
}

int polar_dataset_load_idx(const char *images_path, const char *labels_path,
			   uint32_t classes, struct polar_dataset *out)
{
	struct polar_idx img, lab;
	size_t i, n;
	int ret;

	polar_clear_error();
	POLAR_NONNULL(__func__, out);
	memset(out, 0, sizeof(*out));
	POLAR_NONNULL(__func__, images_path);
	POLAR_NONNULL(__func__, labels_path);
	ret = polar_idx_load_expect(images_path, POLAR_IDX_MAGIC_IMAGES, &img);
	if (ret)
		return ret;
	ret = polar_idx_load_expect(labels_path, POLAR_IDX_MAGIC_LABELS, &lab);
	if (ret) {
		polar_idx_free(&img);
		return ret;
	}
	if (img.count != lab.count) {
		ret = polar_fail(-EINVAL, "%s: %zu labels for %zu images in %s",
				 labels_path, lab.count, img.count,
				 images_path);
		goto out;
	}
	for (i = 0; i < lab.count; i++) {
		if (lab.data[i] >= classes) {
			ret = polar_fail(-EINVAL, "%s: label %u of item %zu is "
					 "not below %u", labels_path,
					 lab.data[i], i, classes);
			goto out;
		}
	}
	n = img.count * img.item_size;
	out->images = malloc(n * sizeof(float));
	if (!out->images) {
		ret = polar_fail(-ENOMEM, "%s: out of memory", images_path);
		goto out;
	}
	for (i = 0; i < n; i++)
		out->images[i] = (float)img.data[i] / 255.0f;
	out->count = img.count;
	out->channels = 1;
	out->rows = img.dims[1];
	out->cols = img.dims[2];
	out->classes = classes;
	out->labels = lab.data;
	lab.data = NULL;
out:
	polar_idx_free(&img);
	polar_idx_free(&lab);
	return ret;
}

void polar_dataset_free(struct polar_dataset *d)
{
	if (!d)
		return;
	free(d->images);
	free(d->labels);
	memset(d, 0, sizeof(*d));
}

int polar_dataset_preprocess(struct polar_dataset *d,
			     const struct polar_preprocess *p)
{
	size_t plane, k, j;
	uint32_t c, i;
	int identity;

	polar_clear_error();
	POLAR_NONNULL(__func__, d);
	POLAR_NONNULL(__func__, p);
	if (p->channels && p->channels != d->channels)
		return polar_fail(-EINVAL, "%s: preprocessing for %u channels, "
				  "the images have %u", __func__, p->channels,
				  d->channels);
	if (p->channels > POLAR_PRE_MAX_CHANNELS)
		return polar_fail(-EINVAL, "%s: %u channels, at most %d",
				  __func__, p->channels, POLAR_PRE_MAX_CHANNELS);
	if (!isfinite(p->pixel_scale) || p->pixel_scale == 0.0f)
		return polar_fail(-EINVAL, "%s: pixel_scale %g", __func__,
				  (double)p->pixel_scale);
	identity = p->pixel_scale == 1.0f / 255.0f;
	for (i = 0; i < p->channels; i++) {
		if (!isfinite(p->mean[i]) || !isfinite(p->std[i]) ||
		    p->std[i] == 0.0f)
			return polar_fail(-EINVAL, "%s: channel %u has mean %g "
					  "and std %g", __func__, i,
					  (double)p->mean[i],
					  (double)p->std[i]);
		identity &= p->mean[i] == 0.0f && p->std[i] == 1.0f;
	}
	/* The images already are pixels / 255: ToTensor changes no bit. */
	if (identity)
		return 0;
	plane = (size_t)d->rows * d->cols;
	for (k = 0; k < d->count; k++)
		for (c = 0; c < d->channels; c++) {
			float *x = d->images + (k * d->channels + c) * plane;
			float scale = p->pixel_scale * 255.0f;
			float mean = p->channels ? p->mean[c] : 0.0f;
			float std = p->channels ? p->std[c] : 1.0f;

			for (j = 0; j < plane; j++)
				x[j] = (x[j] * scale - mean) / std;
		}
	return 0;
}

static int load_part(const char *dir, const char *prefix,
		     struct polar_dataset *d)
{
	char img[4096], lab[4096];

	if (snprintf(img, sizeof(img), "%s/%s-images-idx3-ubyte.gz", dir,
		     prefix) >= (int)sizeof(img) ||
	    snprintf(lab, sizeof(lab), "%s/%s-labels-idx1-ubyte.gz", dir,
		     prefix) >= (int)sizeof(lab))
		return polar_fail(-ENAMETOOLONG, "%s: path too long", dir);
	return polar_dataset_load_idx(img, lab, 10, d);
}

int polar_fashion_mnist_load(const char *dir, struct polar_dataset *train,
			     struct polar_dataset *test)
{
	int ret;

	if (!dir)
		dir = POLAR_FASHION_MNIST_DIR;
	if (train) {
		ret = load_part(dir, "train", train);
		if (ret)
			return ret;
	}
	if (test) {
		ret = load_part(dir, "t10k", test);
		if (ret) {
			polar_dataset_free(train);
			return ret;
		}
	}
	return 0;
}
