/* SPDX-License-Identifier: MIT */
/* Library-internal declarations: not installed, not exported. */
#ifndef POLAR_INTERNAL_H
#define POLAR_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "polar/nn.h"
#include "polar/polar.h"
#include "cim_command.h"

#if defined(__GNUC__)
#define POLAR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define POLAR_PRINTF(a, b)
#endif

/*
 * Jobs a handle may have in flight (submitted, not reaped), on every path
 * and backend: the io_uring ring has this many SQEs and twice as many
 * CQEs, so a job always finds an SQE and its CQE never overflows the ring.
 */
#define POLAR_MAX_INFLIGHT 256

/* Records the message for polar_errmsg() and returns err (a -errno). */
int polar_fail(int err, const char *fmt, ...) POLAR_PRINTF(2, 3);
void polar_clear_error(void);

/*
 * -EINVAL for the NULL pointer argument arg of the exported function fn,
 * with "fn: arg is NULL" for polar_errmsg(): every exported function
 * checks its pointers before it uses them, and the message names the one
 * that was wrong.
 */
/*
 * Reads the whole file at path into *buf (malloc'd, *len bytes); -errno
 * with a message naming the file.
 */
int polar_read_file(const char *path, void **buf, size_t *len);
int polar_null_arg(const char *fn, const char *arg);
#define POLAR_NONNULL(fn, p)						\
	do {								\
		if (!(p))						\
			return polar_null_arg((fn), #p);		\
	} while (0)

/* A FIFO of completions (sim) or of submitted ioctl jobs (seqnos). */
struct polar_fifo_entry {
	uint64_t user_data;
	uint64_t seqno;
	int status;
	uint32_t cmd_status;
};

struct polar_fifo {
	struct polar_fifo_entry *e;
	uint32_t cap, head, count;
};

int polar_fifo_push(struct polar_fifo *f, const struct polar_fifo_entry *e);
struct polar_fifo_entry *polar_fifo_peek(struct polar_fifo *f);
void polar_fifo_pop(struct polar_fifo *f);
void polar_fifo_free(struct polar_fifo *f);

struct polar_backend_ops {
	int (*flush)(struct polar_device *dev);	/* NULL: nothing to flush */
	int (*buffer_create)(struct polar_device *dev, struct polar_buffer *buf);
	void (*buffer_free)(struct polar_device *dev, struct polar_buffer *buf);
	int (*submit)(struct polar_device *dev, uint32_t queue,
		      const struct polar_cmd *cmds, uint32_t n,
		      uint64_t user_data);
	int (*reap)(struct polar_device *dev, struct polar_completion *out,
		    uint32_t max, uint32_t min_wait);
	void (*close)(struct polar_device *dev);
};

struct polar_buffer {
	struct polar_device *dev;
	void *map;
	size_t size;
	uint32_t handle;		/* GEM handle (device backend) */
};

struct polar_device {
	const struct polar_backend_ops *ops;
	char path[256];
	struct polar_caps caps;
	struct polar_design design;
	uint32_t inflight;
	enum polar_submit_path submit_path;
	/* Device backend. */
	int fd;
	struct io_uring *ring;	/* NULL: the driver has no uring_cmd */
	struct polar_uring_jobs *ujobs;	/* io_uring jobs' commands */
	int has_ring;
	uint32_t ring_flags;	/* the IORING_SETUP_* the kernel accepted */
	uint64_t ring_owner;	/* polar_thread_token() of the ring's thread */
	struct polar_fifo ioctl_jobs;
	/* The firmware the chip runs: its NF4 codebook shapes quantization. */
	struct cim_firmware fw;
	/* Tiles in use by this process's layers (polar_layer_create()). */
	uint8_t *tile_used;
	/* Software backend. */
	struct cim_engine *engine;
	uint64_t commands;	/* completed, as the device counts them */
	struct polar_fifo done;
};

extern const struct polar_backend_ops polar_drm_ops;
extern const struct polar_backend_ops polar_sim_ops;

/*
 * polar_model_grad() without the weights' gradients, which cost a third of
 * it: the biases' entries of grad (zeroed by the caller) get the summed
 * gradient of the loss at each layer's outputs, the same bits as
 * polar_model_grad() gives them with scale 1. For the output Fisher.
 */
struct polar_model;
int polar_model_bias_grad(const struct polar_model *m, size_t n,
			  const float *x, const uint8_t *labels, float *grad);

/*
 * C = A^T A (ta) or A A^T (n x n, k the other dimension), the same bits as
 * polar_sgemm() gives, for half its work (calib.c).
 */
void polar_gram_sym(int ta, size_t n, size_t k, const float *a, size_t lda,
		    float *c, size_t ldc);

int polar_drm_open(struct polar_device *dev);
int polar_load_firmware(struct polar_device *dev, int required);
int polar_sim_open(struct polar_device *dev, const char *props);

/*
 * nn.c's forward and backward passes, for the trained host paths
 * (calib_train.c), which run them through the device.
 */
/* Everything one thread needs to run forward and backward on n samples. */
struct nn_ws {
	size_t maxn;
	float *act[POLAR_MODEL_MAX_LAYERS + 1];	/* act[0] unused (input) */
	float *cols[POLAR_MODEL_MAX_LAYERS];	/* a conv's im2col rows */
	uint32_t *idx[POLAR_MODEL_MAX_LAYERS];
	float *tmp, *dcols, *g[2];
};

struct nn_ws *polar_nn_ws_alloc(const struct polar_model *m, size_t maxn);
void polar_nn_ws_free(struct nn_ws *ws);
/* Layer i forward on n <= maxn samples x: output in ws->act[i + 1]. */
int polar_nn_layer_fwd(const struct polar_model *m, unsigned int i,
		       struct nn_ws *ws, size_t n, const float *x,
		       const struct polar_matmul_hook *hook);
/* Layer i backward: dy -> dx (when dx) through m's weights; no gradients. */
void polar_nn_layer_bwd(const struct polar_model *m, unsigned int i,
			struct nn_ws *ws, size_t n, const float *x,
			const float *dy, float *dx);
/* Uniform below n from nn.c's splitmix64 stream s (shuffling). */
uint64_t polar_nn_rng_below(uint64_t *s, uint64_t n);
/* A conv's dy (n x rows x pos) as product rows (n * pos x rows). */
void polar_nn_conv_rows(const struct polar_layer *l, size_t n, const float *dy,
			float *rows);

#endif /* POLAR_INTERNAL_H */
