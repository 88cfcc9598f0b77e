// SPDX-License-Identifier: MIT
/*
 * Polarized layers (see <polar/qlayer.h>): the weight matrix cut into parts
 * on device tiles, one MATMUL job per part and batch chunk, the host's
 * rank-r path computed while the device works, and the sums dequantized.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "polar/qlayer.h"
#include "polar/lowrank.h"
#include "polar_internal.h"

#define LAYER_MAX_DEVS 16

/**
 * struct layer_part - a block of the weight matrix on one device
 * @dev: where it lives; @dev_index: its index in the layer's devices
 * @queue: the queue its jobs go to
 * @block: NF4 scale block of the inputs it covers (0 for INT formats)
 * @in0, @in_width: its inputs; @out0, @out_width: its outputs
 * @tile0, @ntiles: its tiles
 * @x_off, @y_off: its regions in the device's input and output buffers
 *	(per vector of the batch chunk: in_width bytes, out_width * 4 bytes)
 */
struct layer_part {
	struct polar_device *dev;
	uint32_t dev_index;
	uint32_t queue;
	uint32_t block;
	uint32_t in0, in_width;
	uint32_t out0, out_width;
	uint32_t tile0, ntiles;
	uint64_t x_off, y_off;
};

/* Per device: its buffers, sized for a batch chunk of `chunk` vectors. */
struct layer_dev {
	struct polar_device *dev;
	struct polar_buffer *x, *y;
	uint64_t x_per_vec, y_per_vec;	/* bytes per vector of all its parts */
	uint32_t chunk;			/* vectors the buffers hold */
	uint32_t jobs;			/* submitted in this forward */
};

struct polar_qlayer {
	struct polar_qlayer_desc d;
	struct polar_qweights q;
	struct polar_act_quant aq;
	float *bias;
	float *A, *B;		/* packed by polar_lowrank_pack() */
	struct layer_part *parts;
	uint32_t nparts;
	struct layer_dev devs[LAYER_MAX_DEVS];
	uint32_t ndevs;
	/* Host scratch, grown to the largest batch seen. */
	uint32_t cap;
	int8_t *xcodes;
	int32_t *sums;
	float *lowrank_y, *lowrank_z;
};

/* ---- tile allocation: first fit over the device's tile map ---------------- */

static int tiles_alloc(struct polar_device *dev, uint32_t n, uint32_t *tile0)
{
	uint32_t t, run = 0;

	if (!dev->tile_used) {
		dev->tile_used = calloc(dev->caps.tiles, 1);
		if (!dev->tile_used)
			return -ENOMEM;
	}
	for (t = 0; t < dev->caps.tiles; t++) {
		run = dev->tile_used[t] ? 0 : run + 1;
		if (run == n) {
			*tile0 = t + 1 - n;
			memset(dev->tile_used + *tile0, 1, n);
			return 0;
		}
	}
	return -ENOSPC;
}

static void tiles_free(struct polar_device *dev, uint32_t tile0, uint32_t n)
{
	if (dev->tile_used)
		memset(dev->tile_used + tile0, 0, n);
}

/* ---- building --------------------------------------------------------------- */

static uint32_t div_up(uint32_t a, uint32_t b)
{
	return (a + b - 1) / b;
}

static int layer_plan(struct polar_qlayer *l, struct polar_device **devs)
{
	uint32_t cols = devs[0]->caps.cols, b, g, p = 0, i;
	uint32_t ngroups = div_up(l->d.out_dim, cols);

	l->nparts = l->q.nblocks * ngroups;
	l->parts = calloc(l->nparts, sizeof(*l->parts));
	if (!l->parts)
		return polar_fail(-ENOMEM, "out of memory");
	for (b = 0; b < l->q.nblocks; b++) {
		for (g = 0; g < ngroups; g++, p++) {
			struct layer_part *part = &l->parts[p];
			struct layer_dev *ld;

			part->dev_index = p % l->ndevs;
			ld = &l->devs[part->dev_index];
			part->dev = ld->dev;
			/* Spread a device's parts over its queues. */
			part->queue = (p / l->ndevs) % part->dev->caps.num_queues;
			part->block = b;
			part->in0 = b * l->q.block;
			part->in_width = l->d.in_dim - part->in0 < l->q.block ?
					 l->d.in_dim - part->in0 : l->q.block;
			part->out0 = g * cols;
			part->out_width = l->d.out_dim - part->out0 < cols ?
					  l->d.out_dim - part->out0 : cols;
			if (part->dev->caps.cols != cols)
				return polar_fail(-EINVAL, "layer: devices have "
						  "different tile widths (%u, %u)",
						  cols, part->dev->caps.cols);
			part->ntiles = div_up(part->in_width,
					      part->dev->caps.rows) *
				       div_up(part->out_width,
					      part->dev->caps.cols);
			if (tiles_alloc(part->dev, part->ntiles, &part->tile0)) {
				part->ntiles = 0;
				return polar_fail(-ENOSPC, "layer %ux%u: %s has no "
						  "%u free consecutive tiles "
						  "for part %u", l->d.out_dim,
						  l->d.in_dim,
						  polar_device_path(part->dev),
						  part->ntiles, p);
			}
			part->x_off = ld->x_per_vec;
			part->y_off = ld->y_per_vec;
			ld->x_per_vec += part->in_width;
			ld->y_per_vec += 4ull * part->out_width;
		}
	}
	for (i = 0; i < l->ndevs; i++)
		if (!l->devs[i].x_per_vec)
			l->devs[i].dev = NULL;	/* more devices than parts */
	return 0;
}

/* Sizes each device's buffers for `chunk` vectors. */
static int layer_buffers(struct polar_qlayer *l, uint32_t chunk)
{
	uint32_t i;
	int ret;

	for (i = 0; i < l->ndevs; i++) {
		struct layer_dev *ld = &l->devs[i];

		if (!ld->dev || ld->chunk >= chunk)
			continue;
		polar_buffer_free(ld->x);
		polar_buffer_free(ld->y);
		ld->x = ld->y = NULL;
		ret = polar_buffer_create(ld->dev, ld->x_per_vec * chunk, &ld->x);
		if (!ret)
			ret = polar_buffer_create(ld->dev, ld->y_per_vec * chunk,
						  &ld->y);
		if (ret)
			return ret;
		ld->chunk = chunk;
	}
	return 0;
}

/*
 * The layer reaps its jobs by count, so a handle with another job in
 * flight would hand it that job's completion: refuse it instead.
 */
static int device_idle(struct polar_device *dev, const char *fn)
{
	if (dev && polar_inflight(dev))
		return polar_fail(-EBUSY, "%s: %u jobs of the application in "
				  "flight on %s; reap them first, or give the "
				  "layer a handle of its own", fn,
				  polar_inflight(dev), polar_device_path(dev));
	return 0;
}

/* Waits for every job submitted to the layer's devices in this call. */
static int layer_reap(struct polar_qlayer *l, const char *what)
{
	struct polar_completion c[64];
	int ret = 0;
	uint32_t i;

	for (i = 0; i < l->ndevs; i++) {
		struct layer_dev *ld = &l->devs[i];

		while (ld->jobs) {
			uint32_t want = ld->jobs < 64 ? ld->jobs : 64;
			int n = polar_reap(ld->dev, c, want, want), k;

			if (n < 0)
				return n;
			for (k = 0; k < n; k++)
				if (c[k].status && !ret)
					ret = polar_fail(c[k].status, "layer %ux%u: "
							 "%s of part %llu failed: "
							 "%s (device status %u)",
							 l->d.out_dim, l->d.in_dim,
							 what,
							 (unsigned long long)c[k].user_data,
							 strerror(-c[k].status),
							 c[k].cmd_status);
			ld->jobs -= n;
		}
	}
	return ret;
}

static int layer_program(struct polar_qlayer *l)
{
	uint32_t p, o, maxw = 0;
	int8_t *block_codes;
	int ret = 0;

	for (p = 0; p < l->nparts; p++)
		if (l->parts[p].in_width > maxw)
			maxw = l->parts[p].in_width;
	block_codes = malloc((size_t)l->d.out_dim * maxw);
	if (!block_codes)
		return polar_fail(-ENOMEM, "out of memory");

	/* The devices' input buffers carry the weights while programming. */
	for (p = 0; p < l->nparts && !ret; p++) {
		struct layer_part *part = &l->parts[p];
		struct layer_dev *ld = &l->devs[part->dev_index];
		struct polar_buffer *wbuf;
		struct polar_cmd cmd = { 0 };
		int8_t *w;

		/* Returns the block's width. */
		ret = polar_qweights_block_codes(&l->q, part->block,
						 block_codes);
		if (ret < 0)
			break;
		ret = polar_buffer_create(part->dev, (size_t)part->out_width *
					  part->in_width, &wbuf);
		if (ret)
			break;
		w = polar_buffer_map(wbuf);
		for (o = 0; o < part->out_width; o++)
			memcpy(w + (size_t)o * part->in_width,
			       block_codes + (size_t)(part->out0 + o) *
			       part->in_width, part->in_width);
		cmd.opcode = POLAR_CIM_OP_PROGRAM_TILES;
		cmd.wfmt = l->q.fmt;
		cmd.tile0 = part->tile0;
		cmd.in_dim = part->in_width;
		cmd.out_dim = part->out_width;
		cmd.src = (struct polar_buf_ref){ wbuf, 0, polar_buffer_size(wbuf) };
		ret = polar_submit(part->dev, part->queue, &cmd, 1, p);
		if (!ret) {
			ld->jobs++;
			ret = layer_reap(l, "PROGRAM_TILES");
		}
		polar_buffer_free(wbuf);
	}
	free(block_codes);
	return ret;
}

int polar_qlayer_set_lowrank(struct polar_qlayer *l, uint32_t rank,
			    const float *A, const float *B)
{
	float *a = NULL, *b = NULL;

	polar_clear_error();
	if (!l)
		return polar_null_arg(__func__, "layer");
	if (rank > 64)
		return polar_fail(-EINVAL, "layer: rank %u, at most 64", rank);
	if (rank && !A)
		return polar_fail(-EINVAL, "%s: A is NULL with rank %u",
				  __func__, rank);
	if (rank && !B)
		return polar_fail(-EINVAL, "%s: B is NULL with rank %u",
				  __func__, rank);
	if (rank) {
		/* The kernels read A and B in their packed panel layout. */
		a = malloc(sizeof(float) *
			   polar_lowrank_packed_size(rank, l->d.in_dim));
		b = malloc(sizeof(float) *
			   polar_lowrank_packed_size(rank, l->d.out_dim));
		if (!a || !b) {
			free(a);
			free(b);
			return polar_fail(-ENOMEM, "out of memory");
		}
		polar_lowrank_pack(A, B, rank, l->d.in_dim, l->d.out_dim, a, b);
	}
	free(l->A);
	free(l->B);
	l->A = a;
	l->B = b;
	l->d.rank = rank;
	/* Scratch for z = A x is sized with the batch. */
	l->cap = 0;
	return 0;
}

void polar_qlayer_set_adc_fs(struct polar_qlayer *l, uint32_t adc_fs_q8)
{
	if (!l) {
		polar_null_arg(__func__, "layer");
		return;
	}
	l->d.adc_fs_q8 = adc_fs_q8;
}

int polar_qlayer_create(struct polar_device **devs, uint32_t ndevs,
		       const struct polar_qlayer_desc *d,
		       struct polar_qlayer **out)
{
	struct polar_qlayer *l;
	uint32_t i;
	int ret;

	polar_clear_error();
	POLAR_NONNULL(__func__, devs);
	if (!d)
		return polar_null_arg(__func__, "desc");
	if (!out)
		return polar_null_arg(__func__, "layer");
	if (!d->weight)
		return polar_null_arg(__func__, "desc->weight");
	if (!ndevs || ndevs > LAYER_MAX_DEVS)
		return polar_fail(-EINVAL, "%s: ndevs is %u, allowed 1..%d",
				  __func__, ndevs, LAYER_MAX_DEVS);
	for (i = 0; i < ndevs; i++)
		if (!devs[i])
			return polar_fail(-EINVAL, "%s: devs[%u] is NULL",
					  __func__, i);
	if (!d->in_dim || !d->out_dim)
		return polar_fail(-EINVAL, "layer: shape %ux%u", d->out_dim,
				  d->in_dim);
	if (!(d->x_scale > 0))
		return polar_fail(-EINVAL, "layer %ux%u: activation scale %g "
				  "(calibrate it first)", d->out_dim, d->in_dim,
				  d->x_scale);
	*out = NULL;
	for (i = 0; i < ndevs; i++) {
		ret = device_idle(devs[i], __func__);
		if (ret)
			return ret;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return polar_fail(-ENOMEM, "out of memory");
	l->d = *d;
	l->d.rank = 0;
	l->ndevs = ndevs;
	for (i = 0; i < ndevs; i++)
		l->devs[i].dev = devs[i];
	l->aq.fmt = d->xfmt;
	l->aq.scale = d->x_scale;

	ret = polar_quantize_weights_cb(d->weight, d->out_dim, d->in_dim,
					d->wfmt, d->block,
					devs[0]->fw.has_codebook ?
					devs[0]->fw.codebook :
					polar_nf4_codebook_i8, &l->q);
	if (ret)
		goto err;
	/* INT formats have one part per column group over the whole input. */
	if (l->q.fmt != POLAR_WFMT_NF4)
		l->q.block = d->in_dim;
	if (d->bias) {
		l->bias = malloc(sizeof(float) * d->out_dim);
		if (!l->bias) {
			ret = polar_fail(-ENOMEM, "out of memory");
			goto err;
		}
		memcpy(l->bias, d->bias, sizeof(float) * d->out_dim);
	}
	ret = polar_qlayer_set_lowrank(l, d->rank, d->A, d->B);
	if (!ret)
		ret = layer_plan(l, devs);
	if (!ret)
		ret = layer_program(l);
	if (ret)
		goto err;
	*out = l;
	return 0;
err:
	polar_qlayer_destroy(l);
	return ret;
}

void polar_qlayer_destroy(struct polar_qlayer *l)
{
	uint32_t i;

	if (!l)
		return;
	for (i = 0; i < l->nparts; i++)
		if (l->parts[i].ntiles)
			tiles_free(l->parts[i].dev, l->parts[i].tile0,
				   l->parts[i].ntiles);
	for (i = 0; i < l->ndevs; i++) {
		polar_buffer_free(l->devs[i].x);
		polar_buffer_free(l->devs[i].y);
	}
	polar_qweights_free(&l->q);
	free(l->parts);
	free(l->bias);
	free(l->A);
	free(l->B);
	free(l->xcodes);
	free(l->sums);
	free(l->lowrank_y);
	free(l->lowrank_z);
	free(l);
}

const struct polar_qweights *polar_qlayer_qweights(const struct polar_qlayer *l)
{
	if (!l) {
		polar_null_arg(__func__, "l");
		return NULL;
	}
	return &l->q;
}

uint32_t polar_qlayer_tiles(const struct polar_qlayer *l)
{
	uint32_t i, n = 0;

	if (!l) {
		polar_null_arg(__func__, "layer");
		return 0;
	}
	for (i = 0; i < l->nparts; i++)
		n += l->parts[i].ntiles;
	return n;
}

const int32_t *polar_qlayer_last_sums(const struct polar_qlayer *l)
{
	if (!l) {
		polar_null_arg(__func__, "layer");
		return NULL;
	}
	return l->sums;
}

/* ---- running ------------------------------------------------------------------- */

static int layer_scratch(struct polar_qlayer *l, uint32_t batch)
{
	if (batch <= l->cap)
		return 0;
	free(l->xcodes);
	free(l->sums);
	free(l->lowrank_y);
	free(l->lowrank_z);
	l->xcodes = malloc((size_t)batch * l->d.in_dim);
	l->sums = malloc(sizeof(int32_t) * batch * l->q.nblocks * l->d.out_dim);
	l->lowrank_y = malloc(sizeof(float) * batch * l->d.out_dim);
	l->lowrank_z = malloc(sizeof(float) * batch * (l->d.rank ? l->d.rank : 1));
	if (!l->xcodes || !l->sums || !l->lowrank_y || !l->lowrank_z) {
		l->cap = 0;
		return polar_fail(-ENOMEM, "out of memory");
	}
	l->cap = batch;
	return 0;
}

/* Submits the MATMULs of vectors [k0, k0 + n) of the quantized input. */
static int layer_submit_chunk(struct polar_qlayer *l, uint32_t k0, uint32_t n)
{
	uint32_t p, k;
	int ret;

	for (p = 0; p < l->nparts; p++) {
		struct layer_part *part = &l->parts[p];
		struct layer_dev *ld = &l->devs[part->dev_index];
		int8_t *x = polar_buffer_map(ld->x);
		struct polar_cmd cmd = { 0 };

		/* The part's slice of each vector, back to back. */
		for (k = 0; k < n; k++)
			memcpy(x + part->x_off * ld->chunk + (uint64_t)k *
			       part->in_width,
			       l->xcodes + (uint64_t)(k0 + k) * l->d.in_dim +
			       part->in0, part->in_width);
		cmd.opcode = POLAR_CIM_OP_MATMUL;
		cmd.wfmt = l->q.fmt;
		cmd.xfmt = l->aq.fmt;
		cmd.tile0 = part->tile0;
		cmd.in_dim = part->in_width;
		cmd.out_dim = part->out_width;
		cmd.batch = n;
		cmd.adc_fs_q8 = l->d.adc_fs_q8;
		cmd.job_seed = l->d.job_seed + k0;
		cmd.src = (struct polar_buf_ref){ ld->x, part->x_off * ld->chunk,
						  (uint64_t)n * part->in_width };
		cmd.dst = (struct polar_buf_ref){ ld->y, part->y_off * ld->chunk,
						  4ull * n * part->out_width };
		ret = polar_submit(part->dev, part->queue, &cmd, 1, p);
		if (ret)
			return ret;
		ld->jobs++;
	}
	return 0;
}

/* Copies the chunk's outputs into the block-major sums of the batch. */
static void layer_gather(struct polar_qlayer *l, uint32_t batch, uint32_t k0,
			 uint32_t n)
{
	uint32_t p, k;

	for (p = 0; p < l->nparts; p++) {
		const struct layer_part *part = &l->parts[p];
		const struct layer_dev *ld = &l->devs[part->dev_index];
		const int32_t *y = (const int32_t *)((const uint8_t *)
				   polar_buffer_map(ld->y) + part->y_off * ld->chunk);

		for (k = 0; k < n; k++)
			memcpy(l->sums + ((uint64_t)part->block * batch + k0 + k) *
			       l->d.out_dim + part->out0,
			       y + (uint64_t)k * part->out_width,
			       sizeof(int32_t) * part->out_width);
	}
}

/*
 * The host path of vectors [k0, k0 + n) into their rows of lowrank_y. The
 * kernels compute each row on its own (<polar/lowrank.h>), so a batch done
 * chunk by chunk gives the same bits as done at once.
 */
static int layer_host_path(struct polar_qlayer *l, uint32_t k0, uint32_t n,
			   const float *x)
{
	return polar_lowrank_apply(l->A, l->B, l->d.rank, l->d.in_dim,
				   l->d.out_dim, n,
				   x + (size_t)k0 * l->d.in_dim,
				   l->lowrank_z + (size_t)k0 * l->d.rank,
				   l->lowrank_y + (size_t)k0 * l->d.out_dim, 0);
}

int polar_qlayer_forward(struct polar_qlayer *l, uint32_t batch, const float *x,
			float *y, unsigned int flags)
{
	uint32_t max_batch = UINT32_MAX, i, k0, n;
	int host, ret;

	polar_clear_error();
	if (!l)
		return polar_null_arg(__func__, "layer");
	POLAR_NONNULL(__func__, x);
	POLAR_NONNULL(__func__, y);
	if (!batch)
		return polar_fail(-EINVAL, "layer %ux%u: batch is 0",
				  l->d.out_dim, l->d.in_dim);
	host = l->d.rank && !(flags & POLAR_FWD_DEVICE_ONLY);
	if (flags & ~(POLAR_FWD_SERIAL | POLAR_FWD_DEVICE_ONLY |
		      POLAR_FWD_HOST_ONLY))
		return polar_fail(-EINVAL, "layer: unknown flags %#x", flags);
	ret = layer_scratch(l, batch);
	if (ret)
		return ret;
	if (flags & POLAR_FWD_HOST_ONLY) {
		if (!l->d.rank) {
			memset(y, 0, sizeof(float) * batch * l->d.out_dim);
			return 0;
		}
		ret = layer_host_path(l, 0, batch, x);
		if (!ret)
			memcpy(y, l->lowrank_y, sizeof(float) * batch * l->d.out_dim);
		return ret;
	}

	for (i = 0; i < l->ndevs; i++) {
		ret = device_idle(l->devs[i].dev, __func__);
		if (ret)
			return ret;
		if (l->devs[i].dev && l->devs[i].dev->caps.max_batch < max_batch)
			max_batch = l->devs[i].dev->caps.max_batch;
	}
	n = batch < max_batch ? batch : max_batch;
	ret = layer_buffers(l, n);
	if (ret)
		return ret;
	ret = polar_quantize_acts(&l->aq, x, (size_t)batch * l->d.in_dim,
				  l->xcodes);
	if (ret)
		return ret;

	for (k0 = 0; k0 < batch; k0 += n) {
		uint32_t m = batch - k0 < n ? batch - k0 : n;

		ret = layer_submit_chunk(l, k0, m);
		for (i = 0; !ret && i < l->ndevs; i++)
			if (l->devs[i].dev)
				ret = polar_flush(l->devs[i].dev);
		/* Each chunk's host path runs while the device computes it. */
		if (!ret && host && !(flags & POLAR_FWD_SERIAL))
			ret = layer_host_path(l, k0, m, x);
		if (!ret)
			ret = layer_reap(l, "MATMUL");
		else
			layer_reap(l, "MATMUL");
		if (!ret && host && (flags & POLAR_FWD_SERIAL))
			ret = layer_host_path(l, k0, m, x);
		if (ret)
			return ret;
		layer_gather(l, batch, k0, m);
	}
	if (host)
		memcpy(y, l->lowrank_y, sizeof(float) * batch * l->d.out_dim);
	return polar_dequantize_sums(&l->q, &l->aq, l->sums, batch, l->bias,
				     host ? POLAR_DEQ_ACCUMULATE : 0, y);
}
