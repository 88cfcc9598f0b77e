/* SPDX-License-Identifier: MIT */
/*
 * fp32 neural networks on the host: layers, models, inference, training.
 *
 * A model is a graph of layers over one sample of shape C x H x W (NCHW
 * batches): a list of layers in an order where each layer comes after the
 * layers it reads (@input), so a residual add reads two earlier outputs.
 * The built-in models are chains (each layer reads the one before); ONNX
 * import (polar/onnx.h) builds general graphs. The layers with weights,
 * conv2d and linear, are both a matrix
 * product with a weight matrix W of rows x cols (out features x in
 * features, row-major, PyTorch's layout):
 *
 *   linear:  y[n][o] = sum_i x[n][i] W[o][i] + b[o]
 *   conv2d:  cols = im2col(x), one row of in_c * k * k values per output
 *            position (channel-major, then kernel row, then kernel column),
 *            y[o][pos] = sum_i cols[pos][i] W[o][i] + b[o]
 *
 * so a conv is im2col followed by a linear layer applied to every output
 * position. A struct polar_matmul_hook can replace that product, layer by
 * layer, with another implementation (e.g. a quantized device path).
 *
 * Determinism: every reduction runs in a fixed order, and the results of
 * inference for one sample do not depend on the batch it is in. Training
 * with the same seed, data and options gives the same weights bit for bit
 * for any number of threads (a batch is cut into a fixed number of shards
 * whose gradients are summed in shard order). The matrix kernel uses AVX2
 * and FMA where the CPU has them, so bits may differ between CPUs with and
 * without them.
 */
#ifndef POLAR_NN_H
#define POLAR_NN_H

#include <stddef.h>
#include <stdint.h>

#include "polar/data.h"
#include "polar/model.h"

#ifdef __cplusplus
extern "C" {
#endif

enum polar_layer_type {
	POLAR_LAYER_CONV2D,	/* square kernel, @stride, zero padding */
	POLAR_LAYER_LINEAR,	/* flattens its C x H x W input */
	POLAR_LAYER_RELU,
	POLAR_LAYER_MAXPOOL2,	/* 2 x 2, stride 2 (odd edges dropped) */
	POLAR_LAYER_MAXPOOL,	/* @kernel square, @stride, @pad (never wins) */
	POLAR_LAYER_AVGPOOL,	/* @kernel square, @stride, @pad, @count_pad */
	POLAR_LAYER_GLOBAL_AVGPOOL,	/* C x H x W -> C x 1 x 1 */
	POLAR_LAYER_ADD,	/* the sum of two inputs of one size */
	POLAR_LAYER_SOFTMAX,	/* over all values of a sample */
};

/* Index in @input of a layer that reads the model's input. */
#define POLAR_LAYER_INPUT (-1)

/**
 * struct polar_layer - one layer of a model
 * @type: what it computes
 * @name: parameter prefix ("conv1", "fc2"); "" for layers without weights
 * @in_c, @in_h, @in_w: the shape of one input sample
 * @out_c, @out_h, @out_w: the shape of one output sample
 * @kernel, @pad: conv2d and pooling window size and zero padding
 * @rows, @cols: the weight matrix (out features x in features); 0 for
 *	layers without weights. conv2d: @out_c x (@in_c * @kernel^2);
 *	linear: @out_c x (@in_c * @in_h * @in_w)
 * @weight, @bias: @rows x @cols and @rows floats, inside the model's
 *	parameter array
 * @weight_off, @bias_off: their offsets in that array (and in gradients)
 * @stride: conv2d and pooling step (1 for the built-in layers)
 * @count_pad: avgpool divides by @kernel^2 (1) or by the cells of the
 *	window inside the input (0)
 * @ninputs: 2 for add, else 1
 * @input: the layers whose outputs this one reads, each earlier in the
 *	model, or POLAR_LAYER_INPUT for the model's input
 */
struct polar_layer {
	enum polar_layer_type type;
	char name[32];
	uint32_t in_c, in_h, in_w;
	uint32_t out_c, out_h, out_w;
	uint32_t kernel, pad;
	uint32_t rows, cols;
	float *weight, *bias;
	size_t weight_off, bias_off;
	uint32_t stride;
	uint32_t count_pad;
	uint32_t ninputs;
	int32_t input[2];
};

#define POLAR_MODEL_MAX_LAYERS 64

/**
 * struct polar_model - a graph of layers and its parameters
 * @arch: "cnn", "mlp", "onnx" or what polar_model_init() was given
 * @in_c, @in_h, @in_w: the input shape
 * @classes: outputs of the last layer
 * @nlayers, @layers: the layers, each after the layers it reads; the last
 *	one's output is the model's
 * @nparams, @params: every weight and bias, in layer order (weight, then
 *	bias), 64-byte aligned
 * @pre: how the model wants its input made from 8-bit pixels
 *	(polar_dataset_preprocess()); [0, 1] floats, torchvision's ToTensor,
 *	for the built-in models and by default for ONNX ones
 */
struct polar_model {
	char arch[16];
	uint32_t in_c, in_h, in_w;
	uint32_t classes;
	unsigned int nlayers;
	struct polar_layer layers[POLAR_MODEL_MAX_LAYERS];
	size_t nparams;
	float *params;
	struct polar_preprocess pre;
};

/* --- building ---------------------------------------------------------- */

/* Starts an empty model for inputs of c x h x w. */
int polar_model_init(struct polar_model *m, const char *arch, uint32_t c,
		     uint32_t h, uint32_t w);
int polar_model_add_conv2d(struct polar_model *m, const char *name,
			   uint32_t out_c, uint32_t kernel, uint32_t pad);
int polar_model_add_linear(struct polar_model *m, const char *name,
			   uint32_t out);
int polar_model_add_relu(struct polar_model *m);
int polar_model_add_maxpool2(struct polar_model *m);
/*
 * Allocates the parameters and initialises them from seed: He-uniform
 * weights (bound sqrt(6 / fan_in); 1 / sqrt(fan_in) for the last layer),
 * zero biases.
 */
int polar_model_finalize(struct polar_model *m, uint64_t seed);

/*
 * The two built-in architectures for 1 x 28 x 28 inputs and 10 classes:
 *   "cnn": conv1 5x5 1->16 pad 2, ReLU, maxpool, conv2 5x5 16->32 pad 2,
 *          ReLU, maxpool, fc1 1568->128, ReLU, fc2 128->10
 *   "mlp": fc1 784->256, ReLU, fc2 256->128, ReLU, fc3 128->10
 */
int polar_model_create(struct polar_model *m, const char *arch,
		       uint64_t seed);
void polar_model_free(struct polar_model *m);

/*
 * 1 when every layer reads the one before it (the first the input) and is
 * a conv2d of stride 1, linear, relu or maxpool2: the models that
 * polar_model_grad() and polar_model_train() can differentiate. 0 (with a
 * polar_errmsg() naming the first layer that is not) otherwise.
 */
int polar_model_is_chain(const struct polar_model *m);

/*
 * last[i] = the index of the last layer that reads layer i's output (i
 * itself when no layer does), for i < m->nlayers: when an evaluation that
 * keeps each layer's output may free it. 0, or -EINVAL.
 */
int polar_model_last_reader(const struct polar_model *m, unsigned int *last);

/* Values per sample at the input / output of layer i. */
size_t polar_layer_in_size(const struct polar_layer *l);
size_t polar_layer_out_size(const struct polar_layer *l);

/* --- safetensors ---------------------------------------------------------- */

/*
 * Adds "<name>.weight" ([out_c, in_c, k, k] for conv2d, [out, in] for
 * linear) and "<name>.bias" ([out]) of every layer, and the metadata "arch".
 */
int polar_model_to_tensors(const struct polar_model *m,
			   struct polar_tensors *ts);
/*
 * Builds the model named by the metadata "arch" and copies its parameters
 * from ts, checking each name, dtype and shape.
 */
int polar_model_from_tensors(struct polar_model *m,
			     const struct polar_tensors *ts);
int polar_model_load(struct polar_model *m, const char *path);

/* --- inference ---------------------------------------------------------- */

/**
 * struct polar_matmul_hook - replaces the matrix product of conv2d and
 * linear layers
 * @matmul: computes y[r][o] = sum_i x[r][i] W[o][i] for rows r < nrows,
 *	o < l->rows, i < l->cols, without the bias (the caller adds it).
 *	For conv2d, x is the im2col matrix. Returns 0 or -errno; returning
 *	-ENOSYS means "use the host product for this layer".
 * @ctx: passed back
 */
struct polar_matmul_hook {
	int (*matmul)(void *ctx, const struct polar_model *m,
		      unsigned int layer, const float *x, size_t nrows,
		      float *y);
	void *ctx;
};

/*
 * C[m][n] = beta * C + op(A)[m][k] op(B)[k][n], row-major; op(A) is A
 * (lda >= k) or, with trans_a, A^T (A is k x m, lda >= m); likewise B.
 * beta is 0 (C need not be initialised) or 1.
 */
void polar_sgemm(int trans_a, int trans_b, size_t m, size_t n, size_t k,
		 const float *a, size_t lda, const float *b, size_t ldb,
		 float beta, float *c, size_t ldc);

/*
 * The im2col matrix of a conv2d layer for n samples x (n x in_c x in_h x
 * in_w): n * out_h * out_w rows of in_c * kernel^2 values (row s * out_h *
 * out_w + oy * out_w + ox).
 */
void polar_conv2d_im2col(const struct polar_layer *l, size_t n,
			 const float *x, float *cols);

/* Floats of scratch memory polar_layer_forward() needs for n samples. */
size_t polar_layer_scratch_size(const struct polar_layer *l, size_t n);

/*
 * Runs layer `layer` of m on n samples: x is n x in_size, y n x out_size.
 * hook may be NULL. An add layer reads two inputs: -EINVAL, use
 * polar_layer_forward_inputs().
 */
int polar_layer_forward(const struct polar_model *m, unsigned int layer,
			size_t n, const float *x, float *y, float *scratch,
			const struct polar_matmul_hook *hook);
/*
 * The same with the layer's l->ninputs inputs in in[0], in[1] (each n x
 * in_size, in the order of l->input).
 */
int polar_layer_forward_inputs(const struct polar_model *m,
			       unsigned int layer, size_t n,
			       const float *const *in, float *y,
			       float *scratch,
			       const struct polar_matmul_hook *hook);

/* Logits (n x classes) of n samples; hook may be NULL. */
int polar_model_forward(const struct polar_model *m, size_t n,
			const float *x, float *logits,
			const struct polar_matmul_hook *hook);

/*
 * Fraction of d classified correctly (argmax of the logits, lowest index
 * on ties), using `threads` threads (0: one per CPU). hook may be NULL; it
 * is then called from that many threads at once.
 */
int polar_model_evaluate(const struct polar_model *m,
			 const struct polar_dataset *d, unsigned int threads,
			 const struct polar_matmul_hook *hook,
			 double *accuracy);

/* --- training ---------------------------------------------------------- */

/*
 * Gradient (chains only: polar_model_is_chain(), else -EOPNOTSUPP) of the
 * summed softmax cross-entropy of n samples:
 * grad[i] += scale * d(loss)/d(params[i]) (grad has m->nparams floats).
 * *loss (if not NULL) gets the summed loss, *correct (if not NULL) the
 * number of samples whose argmax is their label.
 */
int polar_model_grad(const struct polar_model *m, size_t n, const float *x,
		     const uint8_t *labels, float scale, float *grad,
		     double *loss, size_t *correct);

struct polar_train_progress {
	unsigned int epoch, epochs;	/* from 1 */
	size_t batch, batches;		/* from 1, within the epoch */
	double loss;			/* mean over the epoch so far */
	double accuracy;		/* running, over the epoch so far */
	double images_per_s;		/* over the epoch so far */
	double lr;			/* of the last step */
	int epoch_done;			/* 1 at the end of an epoch */
	double test_accuracy;		/* then, if a test set was given */
};

/**
 * struct polar_train_opts - how polar_model_train() trains
 * @epochs: passes over the data (default 5 when 0)
 * @batch: samples per step (default 64 when 0)
 * @threads: worker threads (0: one per CPU); does not change the result
 * @seed: shuffling and augmentation
 * @lr: Adam's peak learning rate (default 2e-3 when 0), decayed along a
 *	cosine to 0 over the run after a warm-up of 100 steps
 * @flip: mirror each sample left-right with probability 1/2
 * @test: evaluated at the end of each epoch when not NULL
 * @progress: called from the calling thread after some steps and at the
 *	end of each epoch (may be NULL)
 * @ctx: passed to @progress
 */
struct polar_train_opts {
	unsigned int epochs;
	unsigned int batch;
	unsigned int threads;
	uint64_t seed;
	float lr;
	int flip;
	const struct polar_dataset *test;
	void (*progress)(void *ctx, const struct polar_train_progress *p);
	void *ctx;
};

/* Trains m (a chain) on d with Adam (beta1 0.9, beta2 0.999). */
int polar_model_train(struct polar_model *m, const struct polar_dataset *d,
		      const struct polar_train_opts *opts);

#ifdef __cplusplus
}
#endif

#endif /* POLAR_NN_H */
