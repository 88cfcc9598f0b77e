// SPDX-License-Identifier: MIT
/*
 * Every exported function with a NULL pointer or a zero or oversized
 * count, one argument at a time, the others valid. Each case runs in a
 * child process so that a crash is one failed case, not the end of the
 * test. A function that can return an error must return -EINVAL and name
 * the argument in polar_errmsg(); one that cannot (a getter, a void
 * function) must return 0 or NULL, do nothing and name it too; a destructor
 * given NULL must just return.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "polar/calib.h"
#include "polar/data.h"
#include "polar/lowrank.h"
#include "polar/model.h"
#include "polar/nn.h"
#include "polar/onnx.h"
#include "polar/pipeline.h"
#include "polar/polar.h"
#include "polar/qlayer.h"
#include "polar/quant.h"
#include "unit.h"

#define IN 32
#define OUT 16
#define RANK 4

/* Valid objects that each case passes besides the bad argument. */
static struct polar_device *dev, *devs[1], *dev_out;
static struct polar_buffer *buf, *buf_out;
static struct polar_qlayer *layer, *layer_out;
static struct polar_qlayer_desc desc;
static struct polar_qweights q, q_out;
static struct polar_act_quant aq = { POLAR_XFMT_INT4, 0.1f };
static struct polar_caps caps;
static struct polar_design design;
static struct polar_model model, model_out;
static struct polar_pipeline *pipeline, *pipeline_out;
static struct polar_pipeline_result pres = { .sz = sizeof(pres) };
static struct polar_pipeline_layer_info pli = { .sz = sizeof(pli) };
static unsigned int last_out[POLAR_MODEL_MAX_LAYERS];
static struct polar_tensors ts, ts_out;
static const struct polar_tensor *tensor;
static struct polar_dataset data, data_out;
static struct polar_idx idx_out;
static struct polar_train_opts opts;
static struct polar_cmd cmd;
static struct polar_completion comp[4];
static const struct polar_layer *lin;
static float w[OUT * IN], x[4 * 784], y[4 * 784], z[4 * RANK];
static float A[RANK * IN], B[OUT * RANK], Ap[RANK * IN], Bp[OUT * RANK];
static float E[OUT * IN], R[4 * OUT], s[IN], scratch[1 << 16];
static float *grad_big, *fisher[POLAR_MODEL_MAX_LAYERS];
static double metric[OUT * OUT], S[4 * 4], evals[4], evecs[4 * 4];
static double gram_d, *gram[POLAR_MODEL_MAX_LAYERS], lambdas[1] = { 1e-2 };
static double acc, chosen;
static struct polar_calib_train_layer train_layers[POLAR_MODEL_MAX_LAYERS];
static struct polar_calib_train_opts train_opts = { 1, 1, 1e-3f, 0, 1.0f, 1,
						    NULL, NULL };
static struct polar_calib_train_result train_res;
static int8_t codes[4 * IN], cb[16], dst[IN];
static int32_t sums[4 * OUT];
static uint8_t labels[4], held_out[4] = { 0, 0, 0, 1 };
static uint32_t fs_q8;
static uint64_t value, shape[1] = { 4 }, shape5[5] = { 4, 1, 1, 1, 1 };
static char path[256];
static const float *ins[2] = { x, x }, *no_ins[2];
static const struct polar_preprocess bad_pre = { 0.0f, 1, { 0 }, { 1 } };
static const unsigned char st_file[] = "\x02\0\0\0\0\0\0\0{}";

enum want {
	WANT_EINVAL,	/* returns -EINVAL, polar_errmsg() names the argument */
	WANT_ZERO,	/* returns 0 or NULL, polar_errmsg() names the argument */
	WANT_NOCRASH,	/* returns; a documented no-op */
};

/*
 * X(function, argument, want, call): the call passes a bad `argument` to
 * `function`; its value (long) is compared with what `want` says.
 */
#define CASES(X)							\
	X(polar_errmsg, "", WANT_NOCRASH, (long)polar_errmsg())	\
	X(polar_lowrank_kernel_name, "", WANT_NOCRASH,			\
	  (long)polar_lowrank_kernel_name())				\
	X(polar_lowrank_force_portable, "force", WANT_NOCRASH,		\
	  (polar_lowrank_force_portable(2), 0))				\
	X(polar_fashion_mnist_load, "dir", WANT_NOCRASH,		\
	  polar_fashion_mnist_load("/nonexistent", NULL, NULL))		\
	X(polar_find_device, "path", WANT_EINVAL,			\
	  polar_find_device(NULL, 0, NULL, 16))				\
	X(polar_find_device, "len", WANT_EINVAL,			\
	  polar_find_device(NULL, 0, path, 0))				\
	X(polar_open, "dev", WANT_EINVAL, polar_open("sim", NULL))	\
	X(polar_close, "dev", WANT_NOCRASH, (polar_close(NULL), 0))	\
	X(polar_device_path, "dev", WANT_ZERO,				\
	  (long)polar_device_path(NULL))				\
	X(polar_get_param, "dev", WANT_EINVAL,				\
	  polar_get_param(NULL, 0, &value))				\
	X(polar_get_param, "value", WANT_EINVAL,			\
	  polar_get_param(dev, 0, NULL))				\
	X(polar_get_caps, "dev", WANT_EINVAL, polar_get_caps(NULL, &caps)) \
	X(polar_get_caps, "caps", WANT_EINVAL, polar_get_caps(dev, NULL)) \
	X(polar_get_design, "dev", WANT_EINVAL, polar_get_design(NULL, &design)) \
	X(polar_get_design, "design", WANT_EINVAL, \
	  polar_get_design(dev, NULL)) \
	X(polar_buffer_create, "dev", WANT_EINVAL,			\
	  polar_buffer_create(NULL, 4096, &buf_out))			\
	X(polar_buffer_create, "size", WANT_EINVAL,			\
	  polar_buffer_create(dev, 0, &buf_out))			\
	X(polar_buffer_create, "size", WANT_EINVAL,			\
	  polar_buffer_create(dev, (size_t)1 << 40, &buf_out))		\
	X(polar_buffer_create, "buf", WANT_EINVAL,			\
	  polar_buffer_create(dev, 4096, NULL))				\
	X(polar_buffer_map, "buf", WANT_ZERO, (long)polar_buffer_map(NULL)) \
	X(polar_buffer_size, "buf", WANT_ZERO, (long)polar_buffer_size(NULL)) \
	X(polar_buffer_free, "buf", WANT_NOCRASH, (polar_buffer_free(NULL), 0)) \
	X(polar_set_submit_path, "dev", WANT_EINVAL,			\
	  polar_set_submit_path(NULL, POLAR_PATH_IOCTL))		\
	X(polar_set_submit_path, "p", WANT_EINVAL,			\
	  polar_set_submit_path(dev, (enum polar_submit_path)99))	\
	X(polar_submit_path, "dev", WANT_ZERO, (long)polar_submit_path(NULL)) \
	X(polar_submit, "dev", WANT_EINVAL, polar_submit(NULL, 0, &cmd, 1, 0)) \
	X(polar_submit, "cmds", WANT_EINVAL, polar_submit(dev, 0, NULL, 1, 0)) \
	X(polar_submit, "n", WANT_EINVAL, polar_submit(dev, 0, &cmd, 0, 0)) \
	X(polar_submit, "n", WANT_EINVAL,				\
	  polar_submit(dev, 0, &cmd, caps.max_cmds + 1, 0))		\
	X(polar_submit, "queue", WANT_EINVAL,				\
	  polar_submit(dev, caps.num_queues, &cmd, 1, 0))		\
	X(polar_flush, "dev", WANT_EINVAL, polar_flush(NULL))		\
	X(polar_reap, "dev", WANT_EINVAL, polar_reap(NULL, comp, 4, 0))	\
	X(polar_reap, "out", WANT_EINVAL, polar_reap(dev, NULL, 4, 0))	\
	X(polar_reap, "min_wait", WANT_EINVAL, polar_reap(dev, comp, 1, 2)) \
	X(polar_inflight, "dev", WANT_ZERO, (long)polar_inflight(NULL))	\
	X(polar_max_inflight, "dev", WANT_ZERO, (long)polar_max_inflight(NULL)) \
	X(polar_qlayer_create, "devs", WANT_EINVAL,			\
	  polar_qlayer_create(NULL, 1, &desc, &layer_out))		\
	X(polar_qlayer_create, "ndevs", WANT_EINVAL,			\
	  polar_qlayer_create(devs, 0, &desc, &layer_out))		\
	X(polar_qlayer_create, "ndevs", WANT_EINVAL,			\
	  polar_qlayer_create(devs, 17, &desc, &layer_out))		\
	X(polar_qlayer_create, "desc", WANT_EINVAL,			\
	  polar_qlayer_create(devs, 1, NULL, &layer_out))		\
	X(polar_qlayer_create, "layer", WANT_EINVAL,			\
	  polar_qlayer_create(devs, 1, &desc, NULL))			\
	X(polar_qlayer_destroy, "layer", WANT_NOCRASH,			\
	  (polar_qlayer_destroy(NULL), 0))				\
	X(polar_qlayer_set_lowrank, "layer", WANT_EINVAL,		\
	  polar_qlayer_set_lowrank(NULL, RANK, A, B))			\
	X(polar_qlayer_set_lowrank, "A", WANT_EINVAL,			\
	  polar_qlayer_set_lowrank(layer, RANK, NULL, B))		\
	X(polar_qlayer_set_lowrank, "B", WANT_EINVAL,			\
	  polar_qlayer_set_lowrank(layer, RANK, A, NULL))		\
	X(polar_qlayer_set_lowrank, "rank", WANT_EINVAL,		\
	  polar_qlayer_set_lowrank(layer, POLAR_LOWRANK_MAX_RANK + 1, A, B)) \
	X(polar_qlayer_set_adc_fs, "layer", WANT_ZERO,			\
	  (polar_qlayer_set_adc_fs(NULL, 256), 0))			\
	X(polar_qlayer_qweights, "l", WANT_ZERO,			\
	  (long)polar_qlayer_qweights(NULL))				\
	X(polar_qlayer_tiles, "layer", WANT_ZERO, (long)polar_qlayer_tiles(NULL)) \
	X(polar_qlayer_forward, "layer", WANT_EINVAL,			\
	  polar_qlayer_forward(NULL, 1, x, y, 0))			\
	X(polar_qlayer_forward, "x", WANT_EINVAL,			\
	  polar_qlayer_forward(layer, 1, NULL, y, 0))			\
	X(polar_qlayer_forward, "y", WANT_EINVAL,			\
	  polar_qlayer_forward(layer, 1, x, NULL, 0))			\
	X(polar_qlayer_forward, "batch", WANT_EINVAL,			\
	  polar_qlayer_forward(layer, 0, x, y, 0))			\
	X(polar_qlayer_last_sums, "layer", WANT_ZERO,			\
	  (long)polar_qlayer_last_sums(NULL))				\
	X(polar_quantize_weights, "w", WANT_EINVAL,			\
	  polar_quantize_weights(NULL, OUT, IN, POLAR_WFMT_INT4, 0, &q_out)) \
	X(polar_quantize_weights, "q", WANT_EINVAL,			\
	  polar_quantize_weights(w, OUT, IN, POLAR_WFMT_INT4, 0, NULL))	\
	X(polar_quantize_weights, "out_dim", WANT_EINVAL,		\
	  polar_quantize_weights(w, 0, IN, POLAR_WFMT_INT4, 0, &q_out))	\
	X(polar_quantize_weights, "in_dim", WANT_EINVAL,		\
	  polar_quantize_weights(w, OUT, 0, POLAR_WFMT_INT4, 0, &q_out)) \
	X(polar_quantize_weights_cb, "w", WANT_EINVAL,			\
	  polar_quantize_weights_cb(NULL, OUT, IN, POLAR_WFMT_NF4, 0, cb, \
				    &q_out))				\
	X(polar_quantize_weights_cb, "q", WANT_EINVAL,			\
	  polar_quantize_weights_cb(w, OUT, IN, POLAR_WFMT_NF4, 0, cb, NULL)) \
	X(polar_qweights_free, "q", WANT_NOCRASH, (polar_qweights_free(NULL), 0)) \
	X(polar_dequantize_weights, "q", WANT_EINVAL,			\
	  polar_dequantize_weights(NULL, w))				\
	X(polar_dequantize_weights, "w", WANT_EINVAL,			\
	  polar_dequantize_weights(&q, NULL))				\
	X(polar_qweights_block_codes, "q", WANT_EINVAL,			\
	  polar_qweights_block_codes(NULL, 0, dst))			\
	X(polar_qweights_block_codes, "b", WANT_EINVAL,			\
	  polar_qweights_block_codes(&q, q.nblocks, dst))		\
	X(polar_act_calibrate, "x", WANT_EINVAL,			\
	  polar_act_calibrate(NULL, 4, POLAR_XFMT_INT4, 0, &aq))	\
	X(polar_act_calibrate, "aq", WANT_EINVAL,			\
	  polar_act_calibrate(x, 4, POLAR_XFMT_INT4, 0, NULL))		\
	X(polar_act_calibrate, "n", WANT_EINVAL,			\
	  polar_act_calibrate(x, 0, POLAR_XFMT_INT4, 0, &aq))		\
	X(polar_quantize_acts, "aq", WANT_EINVAL,			\
	  polar_quantize_acts(NULL, x, 4, codes))			\
	X(polar_quantize_acts, "x", WANT_EINVAL,			\
	  polar_quantize_acts(&aq, NULL, 4, codes))			\
	X(polar_quantize_acts, "codes", WANT_EINVAL,			\
	  polar_quantize_acts(&aq, x, 4, NULL))				\
	X(polar_dequantize_acts, "aq", WANT_EINVAL,			\
	  polar_dequantize_acts(NULL, codes, 4, x))			\
	X(polar_dequantize_acts, "codes", WANT_EINVAL,			\
	  polar_dequantize_acts(&aq, NULL, 4, x))			\
	X(polar_dequantize_acts, "x", WANT_EINVAL,			\
	  polar_dequantize_acts(&aq, codes, 4, NULL))			\
	X(polar_dequantize_sums, "q", WANT_EINVAL,			\
	  polar_dequantize_sums(NULL, &aq, sums, 1, NULL, 0, y))	\
	X(polar_dequantize_sums, "aq", WANT_EINVAL,			\
	  polar_dequantize_sums(&q, NULL, sums, 1, NULL, 0, y))		\
	X(polar_dequantize_sums, "sums", WANT_EINVAL,			\
	  polar_dequantize_sums(&q, &aq, NULL, 1, NULL, 0, y))		\
	X(polar_dequantize_sums, "y", WANT_EINVAL,			\
	  polar_dequantize_sums(&q, &aq, sums, 1, NULL, 0, NULL))	\
	X(polar_lowrank_packed_size, "rank", WANT_NOCRASH,		\
	  (long)polar_lowrank_packed_size(0, IN))			\
	X(polar_lowrank_pack, "rank", WANT_EINVAL,			\
	  polar_lowrank_pack(A, B, 0, IN, OUT, Ap, Bp))			\
	X(polar_lowrank_pack, "Ap", WANT_EINVAL,			\
	  polar_lowrank_pack(A, B, RANK, IN, OUT, NULL, Bp))		\
	X(polar_lowrank_az, "Ap", WANT_EINVAL,				\
	  polar_lowrank_az(NULL, RANK, IN, 1, x, z))			\
	X(polar_lowrank_az, "x", WANT_EINVAL,				\
	  polar_lowrank_az(Ap, RANK, IN, 1, NULL, z))			\
	X(polar_lowrank_az, "z", WANT_EINVAL,				\
	  polar_lowrank_az(Ap, RANK, IN, 1, x, NULL))			\
	X(polar_lowrank_az, "batch", WANT_EINVAL,			\
	  polar_lowrank_az(Ap, RANK, IN, 0, x, z))			\
	X(polar_lowrank_bz, "Bp", WANT_EINVAL,				\
	  polar_lowrank_bz(NULL, RANK, OUT, 1, z, y, 0))		\
	X(polar_lowrank_bz, "z", WANT_EINVAL,				\
	  polar_lowrank_bz(Bp, RANK, OUT, 1, NULL, y, 0))		\
	X(polar_lowrank_bz, "y", WANT_EINVAL,				\
	  polar_lowrank_bz(Bp, RANK, OUT, 1, z, NULL, 0))		\
	X(polar_lowrank_apply, "z_scratch", WANT_EINVAL,		\
	  polar_lowrank_apply(Ap, Bp, RANK, IN, OUT, 1, x, NULL, y, 0))	\
	X(polar_lowrank_apply, "rank", WANT_EINVAL,			\
	  polar_lowrank_apply(Ap, Bp, POLAR_LOWRANK_MAX_RANK + 1, IN, OUT, \
			      1, x, z, y, 0))				\
	X(polar_lowrank_force_kernel, "name", WANT_EINVAL,		\
	  polar_lowrank_force_kernel("none"))				\
	X(polar_calib_svd, "E", WANT_EINVAL,				\
	  polar_calib_svd(NULL, OUT, IN, RANK, A, B))			\
	X(polar_calib_svd, "A", WANT_EINVAL,				\
	  polar_calib_svd(E, OUT, IN, RANK, NULL, B))			\
	X(polar_calib_svd, "B", WANT_EINVAL,				\
	  polar_calib_svd(E, OUT, IN, RANK, A, NULL))			\
	X(polar_calib_svd, "rank", WANT_EINVAL,				\
	  polar_calib_svd(E, OUT, IN, 0, A, B))				\
	X(polar_calib_svd, "rank", WANT_EINVAL,				\
	  polar_calib_svd(E, OUT, IN, OUT + 1, A, B))			\
	X(polar_calib_act_scales, "X", WANT_EINVAL,			\
	  polar_calib_act_scales(NULL, 4, IN, s))			\
	X(polar_calib_act_scales, "s", WANT_EINVAL,			\
	  polar_calib_act_scales(x, 4, IN, NULL))			\
	X(polar_calib_act_scales, "n", WANT_EINVAL,			\
	  polar_calib_act_scales(x, 0, IN, s))				\
	X(polar_calib_act, "E", WANT_EINVAL,				\
	  polar_calib_act(NULL, OUT, IN, s, RANK, A, B))		\
	X(polar_calib_act, "s", WANT_EINVAL,				\
	  polar_calib_act(E, OUT, IN, NULL, RANK, A, B))		\
	X(polar_calib_act, "A", WANT_EINVAL,				\
	  polar_calib_act(E, OUT, IN, s, RANK, NULL, B))		\
	X(polar_calib_rrr, "X", WANT_EINVAL,				\
	  polar_calib_rrr(NULL, R, 4, IN, OUT, RANK, NULL, 1e-2, NULL,	\
			  NULL, 0, A, B))				\
	X(polar_calib_rrr, "R", WANT_EINVAL,				\
	  polar_calib_rrr(x, NULL, 4, IN, OUT, RANK, NULL, 1e-2, NULL,	\
			  NULL, 0, A, B))				\
	X(polar_calib_rrr, "B", WANT_EINVAL,				\
	  polar_calib_rrr(x, R, 4, IN, OUT, RANK, NULL, 1e-2, NULL,	\
			  NULL, 0, A, NULL))				\
	X(polar_calib_rrr, "n", WANT_EINVAL,				\
	  polar_calib_rrr(x, R, 0, IN, OUT, RANK, NULL, 1e-2, NULL,	\
			  NULL, 0, A, B))				\
	X(polar_calib_rrr_metric, "R", WANT_EINVAL,			\
	  polar_calib_rrr_metric(x, NULL, 4, IN, OUT, RANK, metric, 1e-2, \
				 NULL, NULL, 0, A, B))			\
	X(polar_calib_rrr_metric, "A", WANT_EINVAL,			\
	  polar_calib_rrr_metric(x, R, 4, IN, OUT, RANK, metric, 1e-2,	\
				 NULL, NULL, 0, NULL, B))		\
	X(polar_calib_rrr_select, "held_out", WANT_EINVAL,		\
	  polar_calib_rrr_select(x, R, 4, IN, OUT, RANK, metric, NULL,	\
				 lambdas, 1, NULL, NULL, 0, A, B, &chosen)) \
	X(polar_calib_rrr_select, "lambdas", WANT_EINVAL,		\
	  polar_calib_rrr_select(x, R, 4, IN, OUT, RANK, metric, held_out, \
				 NULL, 1, NULL, NULL, 0, A, B, &chosen)) \
	X(polar_calib_rrr_select, "nlambdas", WANT_EINVAL,		\
	  polar_calib_rrr_select(x, R, 4, IN, OUT, RANK, metric, held_out, \
				 lambdas, 0, NULL, NULL, 0, A, B, &chosen)) \
	X(polar_calib_rrr_select, "nlambdas", WANT_EINVAL,		\
	  polar_calib_rrr_select(x, R, 4, IN, OUT, RANK, metric, held_out, \
				 lambdas, 65, NULL, NULL, 0, A, B, &chosen)) \
	X(polar_calib_rrr_select, "chosen", WANT_EINVAL,		\
	  polar_calib_rrr_select(x, R, 4, IN, OUT, RANK, metric, held_out, \
				 lambdas, 1, NULL, NULL, 0, A, B, NULL)) \
	X(polar_calib_adc_fs, "q", WANT_EINVAL,				\
	  polar_calib_adc_fs(NULL, codes, 4, POLAR_XFMT_INT4, 128, 8, 0.99, \
			     &fs_q8))					\
	X(polar_calib_adc_fs, "xcodes", WANT_EINVAL,			\
	  polar_calib_adc_fs(&q, NULL, 4, POLAR_XFMT_INT4, 128, 8, 0.99, \
			     &fs_q8))					\
	X(polar_calib_adc_fs, "fs_q8", WANT_EINVAL,			\
	  polar_calib_adc_fs(&q, codes, 4, POLAR_XFMT_INT4, 128, 8, 0.99, \
			     NULL))					\
	X(polar_calib_adc_fs, "rows", WANT_EINVAL,			\
	  polar_calib_adc_fs(&q, codes, 4, POLAR_XFMT_INT4, 0, 8, 0.99,	\
			     &fs_q8))					\
	X(polar_calib_adc_fs_recon, "caps", WANT_ZERO,			\
	  polar_calib_adc_fs_recon(20 * 256, NULL))			\
	X(polar_calib_output_fisher, "m", WANT_EINVAL,			\
	  polar_calib_output_fisher(NULL, 1, x, labels, fisher))	\
	X(polar_calib_output_fisher, "x", WANT_EINVAL,			\
	  polar_calib_output_fisher(&model, 1, NULL, labels, fisher))	\
	X(polar_calib_output_fisher, "labels", WANT_EINVAL,		\
	  polar_calib_output_fisher(&model, 1, x, NULL, fisher))	\
	X(polar_calib_output_fisher, "fisher", WANT_EINVAL,		\
	  polar_calib_output_fisher(&model, 1, x, labels, NULL))	\
	X(polar_calib_output_fisher_full, "gram", WANT_EINVAL,		\
	  polar_calib_output_fisher_full(&model, 1, x, labels, NULL))	\
	X(polar_calib_output_fisher_full, "m", WANT_EINVAL,		\
	  polar_calib_output_fisher_full(NULL, 1, x, labels, gram))	\
	X(polar_calib_train, "m", WANT_EINVAL,				\
	  polar_calib_train(NULL, train_layers, &data, &data, &train_opts, \
			    &train_res))				\
	X(polar_calib_train, "layers", WANT_EINVAL,			\
	  polar_calib_train(&model, NULL, &data, &data, &train_opts,	\
			    &train_res))				\
	X(polar_calib_train, "train", WANT_EINVAL,			\
	  polar_calib_train(&model, train_layers, NULL, &data, &train_opts, \
			    &train_res))				\
	X(polar_calib_train, "val", WANT_EINVAL,			\
	  polar_calib_train(&model, train_layers, &data, NULL, &train_opts, \
			    &train_res))				\
	X(polar_calib_train, "opts", WANT_EINVAL,			\
	  polar_calib_train(&model, train_layers, &data, &data, NULL,	\
			    &train_res))				\
	X(polar_calib_train, "res", WANT_EINVAL,			\
	  polar_calib_train(&model, train_layers, &data, &data, &train_opts, \
			    NULL))					\
	X(polar_calib_symeig, "S", WANT_EINVAL,				\
	  polar_calib_symeig(NULL, 4, evals, evecs))			\
	X(polar_calib_symeig, "evals", WANT_EINVAL,			\
	  polar_calib_symeig(S, 4, NULL, evecs))			\
	X(polar_calib_symeig, "evecs", WANT_EINVAL,			\
	  polar_calib_symeig(S, 4, evals, NULL))			\
	X(polar_calib_symeig, "n", WANT_EINVAL,				\
	  polar_calib_symeig(S, 0, evals, evecs))			\
	X(polar_calib_symeig, "n", WANT_EINVAL,				\
	  polar_calib_symeig(S, 5000, evals, evecs))			\
	X(polar_idx_load, "path", WANT_EINVAL, polar_idx_load(NULL, &idx_out)) \
	X(polar_idx_load, "out", WANT_EINVAL, polar_idx_load(path, NULL)) \
	X(polar_idx_load_expect, "path", WANT_EINVAL,			\
	  polar_idx_load_expect(NULL, POLAR_IDX_MAGIC_LABELS, &idx_out)) \
	X(polar_idx_load_expect, "out", WANT_EINVAL,			\
	  polar_idx_load_expect(path, POLAR_IDX_MAGIC_LABELS, NULL))	\
	X(polar_idx_free, "idx", WANT_NOCRASH, (polar_idx_free(NULL), 0)) \
	X(polar_dataset_load_idx, "images_path", WANT_EINVAL,		\
	  polar_dataset_load_idx(NULL, path, 10, &data_out))		\
	X(polar_dataset_load_idx, "labels_path", WANT_EINVAL,		\
	  polar_dataset_load_idx(path, NULL, 10, &data_out))		\
	X(polar_dataset_load_idx, "out", WANT_EINVAL,			\
	  polar_dataset_load_idx(path, path, 10, NULL))			\
	X(polar_dataset_free, "d", WANT_NOCRASH, (polar_dataset_free(NULL), 0)) \
	X(polar_dtype_name, "dtype", WANT_NOCRASH,			\
	  (long)polar_dtype_name((enum polar_dtype)99))			\
	X(polar_dtype_size, "dtype", WANT_NOCRASH,			\
	  (long)polar_dtype_size((enum polar_dtype)99))			\
	X(polar_tensors_init, "ts", WANT_ZERO, (polar_tensors_init(NULL), 0)) \
	X(polar_tensors_free, "ts", WANT_NOCRASH, (polar_tensors_free(NULL), 0)) \
	X(polar_tensors_load, "path", WANT_EINVAL, polar_tensors_load(NULL, &ts_out)) \
	X(polar_tensors_load, "ts", WANT_EINVAL, polar_tensors_load(path, NULL)) \
	X(polar_tensors_parse, "buf", WANT_EINVAL,			\
	  polar_tensors_parse(NULL, sizeof(st_file) - 1, "f", &ts_out))	\
	X(polar_tensors_parse, "ts", WANT_EINVAL,			\
	  polar_tensors_parse(st_file, sizeof(st_file) - 1, "f", NULL))	\
	X(polar_tensors_save, "ts", WANT_EINVAL, polar_tensors_save(NULL, path)) \
	X(polar_tensors_save, "path", WANT_EINVAL, polar_tensors_save(&ts, NULL)) \
	X(polar_tensors_find, "ts", WANT_ZERO, (long)polar_tensors_find(NULL, "t")) \
	X(polar_tensors_find, "name", WANT_ZERO, (long)polar_tensors_find(&ts, NULL)) \
	X(polar_tensors_get, "ts", WANT_EINVAL,				\
	  polar_tensors_get(NULL, "t", POLAR_DTYPE_F32, &tensor, 1, 4))	\
	X(polar_tensors_get, "name", WANT_EINVAL,			\
	  polar_tensors_get(&ts, NULL, POLAR_DTYPE_F32, &tensor, 1, 4))	\
	X(polar_tensors_get, "out", WANT_EINVAL,			\
	  polar_tensors_get(&ts, "t", POLAR_DTYPE_F32, NULL, 1, 4))	\
	X(polar_tensors_add, "ts", WANT_EINVAL,				\
	  polar_tensors_add(NULL, "u", POLAR_DTYPE_F32, 1, shape, NULL)) \
	X(polar_tensors_add, "name", WANT_EINVAL,			\
	  polar_tensors_add(&ts, NULL, POLAR_DTYPE_F32, 1, shape, NULL)) \
	X(polar_tensors_add, "shape", WANT_EINVAL,			\
	  polar_tensors_add(&ts, "u", POLAR_DTYPE_F32, 1, NULL, NULL))	\
	X(polar_tensors_add, "dimensions", WANT_EINVAL,			\
	  polar_tensors_add(&ts, "u", POLAR_DTYPE_F32, 5, shape5, NULL)) \
	X(polar_tensors_get, "dimensions", WANT_EINVAL,			\
	  polar_tensors_get(&ts, "t", POLAR_DTYPE_F32, &tensor, 5, 4, 1, 1, \
			    1, 1))					\
	X(polar_tensors_set_meta, "ts", WANT_EINVAL,			\
	  polar_tensors_set_meta(NULL, "k", "v"))			\
	X(polar_tensors_set_meta, "key", WANT_EINVAL,			\
	  polar_tensors_set_meta(&ts, NULL, "v"))			\
	X(polar_tensors_set_meta, "value", WANT_EINVAL,			\
	  polar_tensors_set_meta(&ts, "k", NULL))			\
	X(polar_tensors_meta, "ts", WANT_ZERO, (long)polar_tensors_meta(NULL, "k")) \
	X(polar_tensors_meta, "key", WANT_ZERO, (long)polar_tensors_meta(&ts, NULL)) \
	X(polar_model_init, "m", WANT_EINVAL, polar_model_init(NULL, "a", 1, 2, 2)) \
	X(polar_model_init, "arch", WANT_EINVAL,			\
	  polar_model_init(&model_out, NULL, 1, 2, 2))			\
	X(polar_model_add_conv2d, "m", WANT_EINVAL,			\
	  polar_model_add_conv2d(NULL, "c", 1, 1, 0))			\
	X(polar_model_add_conv2d, "name", WANT_EINVAL,			\
	  polar_model_add_conv2d(&model_out, NULL, 1, 1, 0))		\
	X(polar_model_add_linear, "m", WANT_EINVAL,			\
	  polar_model_add_linear(NULL, "l", 1))				\
	X(polar_model_add_linear, "name", WANT_EINVAL,			\
	  polar_model_add_linear(&model_out, NULL, 1))			\
	X(polar_model_add_relu, "m", WANT_EINVAL, polar_model_add_relu(NULL)) \
	X(polar_model_add_maxpool2, "m", WANT_EINVAL,			\
	  polar_model_add_maxpool2(NULL))				\
	X(polar_model_finalize, "m", WANT_EINVAL, polar_model_finalize(NULL, 1)) \
	X(polar_model_create, "m", WANT_EINVAL, polar_model_create(NULL, "mlp", 1)) \
	X(polar_model_create, "arch", WANT_EINVAL,			\
	  polar_model_create(&model_out, NULL, 1))			\
	X(polar_model_free, "m", WANT_NOCRASH, (polar_model_free(NULL), 0)) \
	X(polar_layer_in_size, "l", WANT_ZERO, (long)polar_layer_in_size(NULL)) \
	X(polar_layer_out_size, "l", WANT_ZERO, (long)polar_layer_out_size(NULL)) \
	X(polar_model_to_tensors, "m", WANT_EINVAL,			\
	  polar_model_to_tensors(NULL, &ts_out))			\
	X(polar_model_to_tensors, "ts", WANT_EINVAL,			\
	  polar_model_to_tensors(&model, NULL))				\
	X(polar_model_from_tensors, "m", WANT_EINVAL,			\
	  polar_model_from_tensors(NULL, &ts))				\
	X(polar_model_from_tensors, "ts", WANT_EINVAL,			\
	  polar_model_from_tensors(&model_out, NULL))			\
	X(polar_model_load, "m", WANT_EINVAL, polar_model_load(NULL, path)) \
	X(polar_model_load, "path", WANT_EINVAL,			\
	  polar_model_load(&model_out, NULL))				\
	X(polar_model_load_onnx, "m", WANT_EINVAL,			\
	  polar_model_load_onnx(NULL, path, NULL))			\
	X(polar_model_load_onnx, "path", WANT_EINVAL,			\
	  polar_model_load_onnx(&model_out, NULL, NULL))		\
	X(polar_model_parse_onnx, "m", WANT_EINVAL,			\
	  polar_model_parse_onnx(NULL, st_file, 8, "f", NULL))		\
	X(polar_model_parse_onnx, "buf", WANT_EINVAL,			\
	  polar_model_parse_onnx(&model_out, NULL, 8, "f", NULL))	\
	X(polar_model_parse_onnx, "source", WANT_EINVAL,		\
	  polar_model_parse_onnx(&model_out, st_file, 8, NULL, NULL))	\
	X(polar_model_parse_onnx, "pre", WANT_EINVAL,			\
	  polar_model_parse_onnx(&model_out, st_file, 8, "f", &bad_pre))	\
	X(polar_model_is_chain, "m", WANT_ZERO,				\
	  (long)polar_model_is_chain(NULL))				\
	X(polar_model_last_reader, "m", WANT_EINVAL,			\
	  polar_model_last_reader(NULL, last_out))			\
	X(polar_model_last_reader, "last", WANT_EINVAL,			\
	  polar_model_last_reader(&model, NULL))			\
	X(polar_dataset_preprocess, "d", WANT_EINVAL,			\
	  polar_dataset_preprocess(NULL, &model.pre))			\
	X(polar_dataset_preprocess, "p", WANT_EINVAL,			\
	  polar_dataset_preprocess(&data_out, NULL))			\
	X(polar_sgemm, "a", WANT_ZERO,					\
	  (polar_sgemm(0, 0, 1, 1, 1, NULL, 1, w, 1, 0.0f, y, 1), 0))	\
	X(polar_sgemm, "c", WANT_ZERO,					\
	  (polar_sgemm(0, 0, 1, 1, 1, w, 1, w, 1, 0.0f, NULL, 1), 0))	\
	X(polar_sgemm, "lda", WANT_ZERO,				\
	  (polar_sgemm(0, 0, 2, 2, 2, w, 1, w, 2, 0.0f, y, 2), 0))	\
	X(polar_conv2d_im2col, "l", WANT_ZERO,				\
	  (polar_conv2d_im2col(NULL, 1, x, y), 0))			\
	X(polar_conv2d_im2col, "cols", WANT_ZERO,			\
	  (polar_conv2d_im2col(&model_cnn.layers[0], 1, x, NULL), 0))	\
	X(polar_layer_scratch_size, "l", WANT_ZERO,			\
	  (long)polar_layer_scratch_size(NULL, 1))			\
	X(polar_layer_forward, "m", WANT_EINVAL,			\
	  polar_layer_forward(NULL, 0, 1, x, y, scratch, NULL))		\
	X(polar_layer_forward, "x", WANT_EINVAL,			\
	  polar_layer_forward(&model, 0, 1, NULL, y, scratch, NULL))	\
	X(polar_layer_forward, "y", WANT_EINVAL,			\
	  polar_layer_forward(&model, 0, 1, x, NULL, scratch, NULL))	\
	X(polar_layer_forward, "scratch", WANT_EINVAL,			\
	  polar_layer_forward(&model_cnn, 0, 1, x, y, NULL, NULL))	\
	X(polar_layer_forward_inputs, "m", WANT_EINVAL,		\
	  polar_layer_forward_inputs(NULL, 0, 1, ins, y, scratch, NULL)) \
	X(polar_layer_forward_inputs, "in", WANT_EINVAL,		\
	  polar_layer_forward_inputs(&model, 0, 1, NULL, y, scratch, NULL)) \
	X(polar_layer_forward_inputs, "in[0]", WANT_EINVAL,		\
	  polar_layer_forward_inputs(&model, 0, 1, no_ins, y, scratch, NULL)) \
	X(polar_layer_forward_inputs, "y", WANT_EINVAL,		\
	  polar_layer_forward_inputs(&model, 0, 1, ins, NULL, scratch, NULL)) \
	X(polar_layer_forward_inputs, "scratch", WANT_EINVAL,		\
	  polar_layer_forward_inputs(&model_cnn, 0, 1, ins, y, NULL, NULL)) \
	X(polar_model_forward, "m", WANT_EINVAL,			\
	  polar_model_forward(NULL, 1, x, y, NULL))			\
	X(polar_model_forward, "x", WANT_EINVAL,			\
	  polar_model_forward(&model, 1, NULL, y, NULL))		\
	X(polar_model_forward, "logits", WANT_EINVAL,			\
	  polar_model_forward(&model, 1, x, NULL, NULL))		\
	X(polar_model_evaluate, "m", WANT_EINVAL,			\
	  polar_model_evaluate(NULL, &data, 1, NULL, &acc))		\
	X(polar_model_evaluate, "d", WANT_EINVAL,			\
	  polar_model_evaluate(&model, NULL, 1, NULL, &acc))		\
	X(polar_model_evaluate, "accuracy", WANT_EINVAL,		\
	  polar_model_evaluate(&model, &data, 1, NULL, NULL))		\
	X(polar_model_grad, "m", WANT_EINVAL,				\
	  polar_model_grad(NULL, 1, x, labels, 1.0f, grad_big, NULL, NULL)) \
	X(polar_model_grad, "x", WANT_EINVAL,				\
	  polar_model_grad(&model, 1, NULL, labels, 1.0f, grad_big, NULL, \
			   NULL))					\
	X(polar_model_grad, "labels", WANT_EINVAL,			\
	  polar_model_grad(&model, 1, x, NULL, 1.0f, grad_big, NULL, NULL)) \
	X(polar_model_grad, "grad", WANT_EINVAL,			\
	  polar_model_grad(&model, 1, x, labels, 1.0f, NULL, NULL, NULL)) \
	X(polar_method_name, "me", WANT_ZERO,				\
	  (long)polar_method_name(POLAR_METHOD_COUNT))			\
	X(polar_method_parse, "name", WANT_EINVAL, polar_method_parse(NULL)) \
	X(polar_wfmt_name, "fmt", WANT_ZERO,				\
	  (long)polar_wfmt_name((enum polar_wfmt)3))			\
	X(polar_wfmt_parse, "name", WANT_EINVAL, polar_wfmt_parse(NULL))	\
	X(polar_wfmt_parse, "name", WANT_EINVAL, polar_wfmt_parse("nf5")) \
	X(polar_xfmt_name, "fmt", WANT_ZERO,				\
	  (long)polar_xfmt_name((enum polar_xfmt)4))			\
	X(polar_xfmt_parse, "name", WANT_EINVAL, polar_xfmt_parse(NULL))	\
	X(polar_xfmt_parse, "name", WANT_EINVAL, polar_xfmt_parse("uint3")) \
	X(polar_pipeline_create, "m", WANT_EINVAL,			\
	  polar_pipeline_create(NULL, &pipeline_out))			\
	X(polar_pipeline_create, "out", WANT_EINVAL,			\
	  polar_pipeline_create(&model, NULL))				\
	X(polar_pipeline_destroy, "p", WANT_NOCRASH,			\
	  (polar_pipeline_destroy(NULL), 0))				\
	X(polar_pipeline_set_formats, "p", WANT_EINVAL,			\
	  polar_pipeline_set_formats(NULL, POLAR_WFMT_NF4,		\
				     POLAR_XFMT_UINT4, POLAR_XFMT_UINT8)) \
	X(polar_pipeline_set_formats, "wfmt", WANT_EINVAL,		\
	  polar_pipeline_set_formats(pipeline, (enum polar_wfmt)99,		\
				     POLAR_XFMT_UINT4, POLAR_XFMT_UINT8)) \
	X(polar_pipeline_set_rank, "rank", WANT_EINVAL,			\
	  polar_pipeline_set_rank(pipeline, 0))				\
	X(polar_pipeline_set_rank, "rank", WANT_EINVAL,			\
	  polar_pipeline_set_rank(pipeline, 65))				\
	X(polar_pipeline_set_percentiles, "act_pct", WANT_EINVAL,	\
	  polar_pipeline_set_percentiles(pipeline, 0, 99.99))		\
	X(polar_pipeline_set_ridge, "lambda", WANT_EINVAL,		\
	  polar_pipeline_set_ridge(pipeline, -1))				\
	X(polar_pipeline_set_intercept, "p", WANT_EINVAL,		\
	  polar_pipeline_set_intercept(NULL, 1))			\
	X(polar_pipeline_set_fisher_full, "p", WANT_EINVAL,		\
	  polar_pipeline_set_fisher_full(NULL, 1))			\
	X(polar_pipeline_set_device_layers, "p", WANT_EINVAL,		\
	  polar_pipeline_set_device_layers(NULL, "fc1"))		\
	X(polar_pipeline_set_training, "opts", WANT_EINVAL,		\
	  polar_pipeline_set_training(pipeline, NULL, &data))		\
	X(polar_pipeline_set_training, "held", WANT_EINVAL,		\
	  polar_pipeline_set_training(pipeline, &train_opts, NULL))		\
	X(polar_pipeline_set_threads, "threads", WANT_EINVAL,		\
	  polar_pipeline_set_threads(pipeline, 0))				\
	X(polar_pipeline_set_threads, "threads", WANT_EINVAL,		\
	  polar_pipeline_set_threads(pipeline, POLAR_PIPELINE_MAX_THREADS + 1)) \
	X(polar_pipeline_set_progress, "p", WANT_EINVAL,		\
	  polar_pipeline_set_progress(NULL, NULL, NULL))		\
	X(polar_pipeline_set_model_name, "p", WANT_EINVAL,		\
	  polar_pipeline_set_model_name(NULL, "m"))			\
	X(polar_pipeline_open, "p", WANT_EINVAL,			\
	  polar_pipeline_open(NULL, "sim"))				\
	X(polar_pipeline_open, "device", WANT_EINVAL,			\
	  polar_pipeline_open(pipeline, NULL))				\
	X(polar_pipeline_device, "p", WANT_ZERO,			\
	  (long)polar_pipeline_device(NULL))				\
	X(polar_pipeline_polarize, "p", WANT_EINVAL,			\
	  polar_pipeline_polarize(NULL, &data, 0))			\
	X(polar_pipeline_polarize, "cal", WANT_EINVAL,			\
	  polar_pipeline_polarize(pipeline, NULL, 0))			\
	X(polar_pipeline_save, "path", WANT_EINVAL,			\
	  polar_pipeline_save(pipeline, POLAR_METHOD_SVD, NULL))		\
	X(polar_pipeline_save, "me", WANT_EINVAL,			\
	  polar_pipeline_save(pipeline, POLAR_METHOD_COUNT, path))		\
	X(polar_pipeline_load, "p", WANT_EINVAL,			\
	  polar_pipeline_load(NULL, path))				\
	X(polar_pipeline_load, "path", WANT_EINVAL,			\
	  polar_pipeline_load(pipeline, NULL))				\
	X(polar_pipeline_infer, "images", WANT_EINVAL,			\
	  polar_pipeline_infer(pipeline, POLAR_METHOD_FP32, 1, NULL, y, NULL)) \
	X(polar_pipeline_infer, "n", WANT_EINVAL,			\
	  polar_pipeline_infer(pipeline, POLAR_METHOD_FP32, 0, x, y, NULL))	\
	X(polar_pipeline_infer, "me", WANT_EINVAL,			\
	  polar_pipeline_infer(pipeline, POLAR_METHOD_COUNT, 1, x, y, NULL)) \
	X(polar_pipeline_evaluate, "d", WANT_EINVAL,			\
	  polar_pipeline_evaluate(pipeline, 1, NULL, NULL))			\
	X(polar_pipeline_evaluate, "methods", WANT_EINVAL,		\
	  polar_pipeline_evaluate(pipeline, 0, &data, NULL))		\
	X(polar_pipeline_get_result, "r", WANT_EINVAL,			\
	  polar_pipeline_get_result(pipeline, POLAR_METHOD_FP32, NULL))	\
	X(polar_pipeline_get_result, "me", WANT_EINVAL,			\
	  polar_pipeline_get_result(pipeline, POLAR_METHOD_COUNT, &pres))	\
	X(polar_pipeline_get_layer, "li", WANT_EINVAL,			\
	  polar_pipeline_get_layer(pipeline, 0, NULL))			\
	X(polar_pipeline_get_layer, "layer", WANT_EINVAL,		\
	  polar_pipeline_get_layer(pipeline, POLAR_MODEL_MAX_LAYERS, &pli))	\
	X(polar_pipeline_get_timing, "t", WANT_EINVAL,			\
	  polar_pipeline_get_timing(pipeline, NULL))			\
	X(polar_pipeline_read_energy, "e", WANT_EINVAL,			\
	  polar_pipeline_read_energy(pipeline, NULL))			\
	X(polar_model_train, "m", WANT_EINVAL,				\
	  polar_model_train(NULL, &data, &opts))			\
	X(polar_model_train, "d", WANT_EINVAL,				\
	  polar_model_train(&model, NULL, &opts))			\
	X(polar_model_train, "opts", WANT_EINVAL,			\
	  polar_model_train(&model, &data, NULL))

static struct polar_model model_cnn;

struct arg_case {
	const char *fn, *arg;
	enum want want;
};

#define X_TABLE(fn, arg, want, call) { #fn, arg, want },
static const struct arg_case cases[] = { CASES(X_TABLE) };
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static const int counter_base = __COUNTER__;

/* Case i's call; __COUNTER__ numbers the cases in table order. */
static long call_case(unsigned int i)
{
	switch (i + counter_base + 1) {
#define X_CALL(fn, arg, want, call) case __COUNTER__: return (long)(call);
	CASES(X_CALL)
	}
	return -ENOSYS;
}

/* Does msg name arg as a word ("x is NULL", "batch 0")? */
static int names_arg(const char *msg, const char *arg)
{
	size_t n = strlen(arg);
	const char *p;

	for (p = strstr(msg, arg); p; p = strstr(p + 1, arg)) {
		int before = p == msg || !(p[-1] == '_' || isalnum((unsigned char)p[-1]));
		int after = !(p[n] == '_' || isalnum((unsigned char)p[n]));

		if (before && after)
			return 1;
	}
	return 0;
}

/* Runs case i in a child: 0 when it behaved, else a reason on stderr. */
static int run_case(unsigned int i)
{
	const struct arg_case *c = &cases[i];
	int status, p[2];
	char msg[600] = "";
	ssize_t got;
	pid_t pid;

	if (pipe(p))
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		long r;
		int bad;

		close(p[0]);
		alarm(20);
		polar_get_caps(dev, &caps);	/* clears polar_errmsg() */
		r = call_case(i);
		switch (c->want) {
		case WANT_EINVAL:
			bad = r != -EINVAL;
			break;
		case WANT_ZERO:
			bad = r != 0;
			break;
		default:
			bad = 0;
		}
		if (c->want != WANT_NOCRASH && !names_arg(polar_errmsg(), c->arg))
			bad |= 2;
		snprintf(msg, sizeof(msg), "returned %ld, polar_errmsg \"%s\"",
			 r, polar_errmsg());
		if (write(p[1], msg, strlen(msg)) < 0)
			_exit(3);
		_exit(bad);
	}
	close(p[1]);
	got = read(p[0], msg, sizeof(msg) - 1);
	msg[got > 0 ? got : 0] = '\0';
	close(p[0]);
	waitpid(pid, &status, 0);
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "  %s(%s): killed by signal %d\n", c->fn, c->arg,
			WTERMSIG(status));
		return 1;
	}
	if (WEXITSTATUS(status)) {
		fprintf(stderr, "  %s(%s): %s%s\n", c->fn, c->arg, msg,
			WEXITSTATUS(status) & 2 ? " (does not name the argument)"
			: "");
		return 1;
	}
	return 0;
}

/* The valid objects the cases pass besides their bad argument. */
static void setup(void)
{
	static float img[784];
	unsigned int i;

	setenv("POLAR_FIRMWARE", "build/firmware/polar_cim.fw", 0);
	if (polar_open("sim", &dev) || polar_get_caps(dev, &caps) ||
	    polar_buffer_create(dev, 4096, &buf)) {
		fprintf(stderr, "setup: %s\n", polar_errmsg());
		exit(1);
	}
	devs[0] = dev;
	for (i = 0; i < OUT * IN; i++)
		w[i] = E[i] = (float)((i * 37) % 17) / 17.0f - 0.5f;
	for (i = 0; i < sizeof(x) / sizeof(x[0]); i++)
		x[i] = (float)((i * 11) % 13) / 13.0f;
	for (i = 0; i < RANK * IN; i++)
		A[i] = 0.01f * (float)(i % 7);
	for (i = 0; i < OUT * RANK; i++)
		B[i] = 0.01f * (float)(i % 5);
	for (i = 0; i < OUT; i++)
		metric[i * OUT + i] = 1.0;
	for (i = 0; i < 4; i++)
		S[i * 4 + i] = 1.0 + i;
	for (i = 0; i < 16; i++)
		cb[i] = polar_nf4_codebook_i8[i];
	desc.in_dim = IN;
	desc.out_dim = OUT;
	desc.weight = w;
	desc.wfmt = POLAR_WFMT_INT4;
	desc.xfmt = POLAR_XFMT_INT4;
	desc.x_scale = 0.1f;
	data.count = 1;
	data.channels = 1;
	data.rows = data.cols = 28;
	data.images = img;
	data.labels = labels;
	data.classes = 10;
	opts.epochs = 1;
	opts.threads = 1;
	snprintf(path, sizeof(path), "/nonexistent/polar-test-args");
	if (polar_quantize_weights(w, OUT, IN, POLAR_WFMT_INT4, 0, &q) ||
	    polar_qlayer_create(devs, 1, &desc, &layer) ||
	    polar_lowrank_pack(A, B, RANK, IN, OUT, Ap, Bp) ||
	    polar_model_create(&model, "mlp", 1) ||
	    polar_model_create(&model_cnn, "cnn", 1) ||
	    polar_tensors_add(&ts, "t", POLAR_DTYPE_F32, 1, shape, NULL) ||
	    polar_pipeline_create(&model, &pipeline)) {
		fprintf(stderr, "setup: %s\n", polar_errmsg());
		exit(1);
	}
	lin = &model.layers[0];
	(void)lin;
	grad_big = calloc(model.nparams, sizeof(float));
	(void)gram_d;
	(void)buf_out;
	(void)dev_out;
	(void)pipeline_out;
}

int main(void)
{
	unsigned int i;

	setup();
	for (i = 0; i < NCASES; i++) {
		if (run_case(i)) {
			unit_failed++;
			printf("not ok %d %s(%s)\n", unit_passed + unit_failed,
			       cases[i].fn, cases[i].arg);
		} else {
			unit_passed++;
			printf("ok %d %s(%s)\n", unit_passed + unit_failed,
			       cases[i].fn, cases[i].arg);
		}
		fflush(stdout);
	}
	polar_qlayer_destroy(layer);
	polar_qweights_free(&q);
	polar_buffer_free(buf);
	polar_close(dev);
	polar_pipeline_destroy(pipeline);
	polar_model_free(&model);
	polar_model_free(&model_cnn);
	polar_tensors_free(&ts);
	free(grad_big);
	(void)unit_test_failed;
	(void)unit_skip_reason;
	return unit_summary();
}
