/* SPDX-License-Identifier: MIT */
/*
 * libpolar-accel: the polarization pipeline. A trained fp32 model (ONNX or
 * safetensors, <polar/model.h>, <polar/onnx.h>) is quantized onto a device
 * (or the software backend "sim"), each layer's ADC range is chosen from
 * calibration images, the rank-r host paths are fitted with every method,
 * and the polarized model classifies batches of images; the per-chip
 * calibration can be saved and loaded again (safetensors).
 *
 *	struct polar_pipeline *p;
 *
 *	polar_pipeline_create(&model, &p);
 *	polar_pipeline_open(p, "sim");			(or "/dev/accel/accel0")
 *	polar_pipeline_polarize(p, &calib_images, POLAR_METHOD_MASK_DEFAULT);
 *	polar_pipeline_infer(p, POLAR_METHOD_SENSITIVITY, n, images, NULL, classes);
 *	polar_pipeline_save(p, POLAR_METHOD_SENSITIVITY, "chip7.safetensors");
 *	polar_pipeline_destroy(p);
 *
 * The pipeline is an opaque object configured through setters, and what it
 * reports comes in structs whose first field is their size (libbpf's OPTS
 * convention): both can grow without breaking applications built against
 * an older header. One pipeline is used by one thread at a time (it runs
 * its own evaluation threads, polar_pipeline_set_threads()).
 */
#ifndef POLAR_PIPELINE_H
#define POLAR_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "polar/calib.h"
#include "polar/data.h"
#include "polar/nn.h"
#include "polar/polar.h"
#include "polar/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The host paths a pipeline fits (<polar/calib.h>): fp32 (the model on the
 * host, no chip), quant (the device's main path alone), svd and act (from
 * the weights' quantization error), act-device (each layer on its fp32
 * inputs through the device), sensitivity (layers in order, the chip in
 * the loop, outputs weighted by the Fisher), trained (every layer's path
 * trained jointly through the device from the sensitivity fit) and
 * sens-identity (a control: sensitivity's fit with the identity metric).
 */
enum polar_method {
	POLAR_METHOD_FP32,
	POLAR_METHOD_QUANT,
	POLAR_METHOD_SVD,
	POLAR_METHOD_ACT,
	POLAR_METHOD_ACT_DEVICE,
	POLAR_METHOD_SENSITIVITY,
	POLAR_METHOD_TRAINED,
	POLAR_METHOD_SENS_IDENTITY,
	POLAR_METHOD_COUNT
};

#define POLAR_METHOD_MASK(me) (1u << (me))
/* fp32, quant, svd, act, act-device, sensitivity and trained */
#define POLAR_METHOD_MASK_DEFAULT (POLAR_METHOD_MASK(POLAR_METHOD_TRAINED + 1) - 1)

/*
 * Energy of one fp32 FLOP on the host CPU, joules. M. Horowitz, "Computing's
 * energy problem (and what we can do about it)", ISSCC 2014, 45 nm: fp32
 * multiply 3.7 pJ + add 0.9 pJ = 4.6 pJ per FMA (2 FLOPs) = 2.3 pJ/FLOP,
 * plus about 70 pJ of instruction overhead (fetch, decode, register file)
 * per instruction, amortised over the 16 FLOPs of one AVX2 8-wide FMA:
 * 4.4 pJ/FLOP. Total 6.7 pJ/FLOP. Not tuned: a fixed published figure, and
 * optimistic for a real core (caches, uncore and idle power excluded).
 */
#define POLAR_HOST_J_PER_FLOP 6.7e-12

/*
 * The trained method's defaults. lr was chosen on the held-out images of
 * the default chip (seed 7): 1e-3, 1e-2 and 3e-2 over 6 epochs reached
 * held-out losses of 0.1032, 0.0956 and 0.1031 from the sensitivity fit's
 * 0.1059, 1e-2 the lowest, and already 0.0978 after one epoch. Two epochs
 * of 512 images are what fits the guest's budget of about 90 s
 * (ACCURACY.md, "Trained host paths").
 */
#define POLAR_PIPELINE_TRAIN_EPOCHS 2
#define POLAR_PIPELINE_TRAIN_BATCH 32
#define POLAR_PIPELINE_TRAIN_LR 1e-2
#define POLAR_PIPELINE_TRAIN_PATIENCE 1

/* The most evaluation threads (and device handles) of one pipeline. */
#define POLAR_PIPELINE_MAX_THREADS 16

/* "act-device" for POLAR_METHOD_ACT_DEVICE; NULL past the end. */
const char *polar_method_name(enum polar_method me);
/* The method named name, or -EINVAL naming it. */
int polar_method_parse(const char *name);

struct polar_pipeline;

/*
 * Progress of a long step: stage names it ("calibrate conv1", "eval
 * quant"); a stage starts with done = 0 and total = 0, reports done of
 * total as it goes, and ends with done == total. note, when not NULL, is
 * a line worth keeping (the trained method's epochs and result); the
 * counts then repeat the last ones.
 */
typedef void (*polar_pipeline_progress_fn)(void *ctx, const char *stage,
					   size_t done, size_t total,
					   const char *note);

/*
 * A pipeline for model m, which must outlive it. Defaults: NF4 weights,
 * UINT4 inputs (UINT8 for the layer that reads the images), rank 8, ADC
 * range at the 99.99th percentile, activations clipped at the 99.9th, a
 * bias correction, the ridge chosen per layer on held-out calibration
 * images, the diagonal Fisher, every weighted layer on the device, one
 * thread.
 */
int polar_pipeline_create(const struct polar_model *m,
			  struct polar_pipeline **out);
void polar_pipeline_destroy(struct polar_pipeline *p);

/* --- options, before polar_pipeline_polarize() -------------------------- */

int polar_pipeline_set_formats(struct polar_pipeline *p, enum polar_wfmt wfmt,
			       enum polar_xfmt xfmt, enum polar_xfmt first_xfmt);
/* 1..64; a layer gets at most min(its rows, its columns) */
int polar_pipeline_set_rank(struct polar_pipeline *p, uint32_t rank);
/* each in (0, 100] */
int polar_pipeline_set_percentiles(struct polar_pipeline *p, double act_pct,
				   double adc_pct);
/* the device fits' relative ridge; 0: chosen per layer (the default) */
int polar_pipeline_set_ridge(struct polar_pipeline *p, double lambda);
/* act-device and sensitivity fit a bias correction (1, the default) */
int polar_pipeline_set_intercept(struct polar_pipeline *p, int on);
/* sensitivity in the whole output Fisher (1) or its diagonal (0) */
int polar_pipeline_set_fisher_full(struct polar_pipeline *p, int on);
/*
 * The weighted layers that run on the device, by name ("conv1,fc2"); the
 * others stay fp32 on the host. NULL: all of them.
 */
int polar_pipeline_set_device_layers(struct polar_pipeline *p,
				     const char *names);
/*
 * How the trained method trains (opts->progress is the pipeline's own, see
 * polar_pipeline_set_progress()), and the images, none of them calibration
 * images, that choose the epoch kept; held must outlive the polarization.
 */
int polar_pipeline_set_training(struct polar_pipeline *p,
				const struct polar_calib_train_opts *opts,
				const struct polar_dataset *held);
/* evaluation threads, 1..POLAR_PIPELINE_MAX_THREADS, each its own handle */
int polar_pipeline_set_threads(struct polar_pipeline *p, unsigned int threads);
/* fn NULL: none */
int polar_pipeline_set_progress(struct polar_pipeline *p,
				polar_pipeline_progress_fn fn, void *ctx);
/* The model's name, recorded in saved calibrations ("model"); NULL: none. */
int polar_pipeline_set_model_name(struct polar_pipeline *p, const char *name);

/* --- device, polarization, calibration files ---------------------------- */

/*
 * Opens the device: a /dev/accel node or a "sim:..." spec (polar_open());
 * the evaluation threads open it again.
 */
int polar_pipeline_open(struct polar_pipeline *p, const char *device);
/* The device handle opened, or NULL. */
struct polar_device *polar_pipeline_device(const struct polar_pipeline *p);

/*
 * Quantizes the weights, programs them, chooses each layer's ADC full
 * scale and fits the host paths on the calibration images cal (with
 * labels, preprocessed like the model's inputs), in layer order. methods:
 * POLAR_METHOD_MASK()s; svd, act and act-device are always fitted,
 * sensitivity when the model has gradients (polar_model_is_chain()),
 * trained and sens-identity when asked for (trained needs sensitivity).
 */
int polar_pipeline_polarize(struct polar_pipeline *p,
			    const struct polar_dataset *cal, unsigned int methods);

/*
 * Saves method me's per-chip calibration to path (safetensors): per device
 * layer NAME.lowrank_A, NAME.lowrank_B, NAME.bias_correction (if any),
 * NAME.x_scale, NAME.adc_fs_q8, and metadata: formats, rank, method, chip
 * and device properties, the ridge each device fit used.
 */
int polar_pipeline_save(const struct polar_pipeline *p, enum polar_method me,
			const char *path);
/*
 * Programs the opened device from a file of polar_pipeline_save() for the
 * same model, instead of polar_pipeline_polarize(). Returns the file's
 * method (>= 0) or a -errno naming the file and the tensor or field.
 */
int polar_pipeline_load(struct polar_pipeline *p, const char *path);

/* --- inference and evaluation ------------------------------------------- */

/*
 * n preprocessed images through method me, in batches of 250 on the
 * pipeline's own handle: logits (n x classes) and/or classes (n bytes,
 * the argmax), either may be NULL.
 */
int polar_pipeline_infer(struct polar_pipeline *p, enum polar_method me,
			 size_t n, const float *images, float *logits,
			 uint8_t *classes);

/*
 * Accuracy of each method in methods on the labelled images d, on the
 * pipeline's threads: fp32 alone, quant alone (its device counters are the
 * main path's energy), then every method with a host path in one pass that
 * shares the device sums of the layer reading the images. hit, when not
 * NULL, gets per method with hit[me] not NULL d->count bytes, 1 where
 * right. Results: polar_pipeline_get_result().
 */
int polar_pipeline_evaluate(struct polar_pipeline *p, unsigned int methods,
			    const struct polar_dataset *d,
			    uint8_t *const hit[POLAR_METHOD_COUNT]);

/*
 * What the last evaluation of a method measured. energy: the device's
 * counters over its pass (a method with a host path reports quant's main
 * path when it shared a pass) and the host path's FLOPs.
 */
struct polar_pipeline_result {
	size_t sz;		/* sizeof(struct polar_pipeline_result) */
	double accuracy;	/* percent */
	double seconds, images_per_s;
	int have_energy;
	double device_j, macs;	/* from the device's counters */
	double host_flops, host_j;	/* host_flops x POLAR_HOST_J_PER_FLOP */
	double layers_seconds;	/* inside the polarized layers */
	double layer_seconds[POLAR_MODEL_MAX_LAYERS];	/* per layer */
};
int polar_pipeline_get_result(const struct polar_pipeline *p,
			      enum polar_method me,
			      struct polar_pipeline_result *r);

/* What the calibration chose for one layer. */
struct polar_pipeline_layer_info {
	size_t sz;		/* sizeof(struct polar_pipeline_layer_info) */
	int on_device;		/* the layer is polarized */
	uint32_t rank;		/* of its host path */
	uint32_t adc_fs;	/* ADC full scale, Q8 cells */
	float x_scale;		/* its inputs' quantizer scale */
	double ridge[POLAR_METHOD_COUNT];	/* each device fit's */
};
int polar_pipeline_get_layer(const struct polar_pipeline *p, unsigned int layer,
			     struct polar_pipeline_layer_info *li);

/*
 * Wall-clock seconds of the last polarization's and evaluation's phases:
 * phase_seconds[k] for phase_name[k], k < nphases, and the calibration in
 * all.
 */
#define POLAR_PIPELINE_MAX_PHASES 16
struct polar_pipeline_timing {
	size_t sz;		/* sizeof(struct polar_pipeline_timing) */
	unsigned int nphases;
	const char *phase_name[POLAR_PIPELINE_MAX_PHASES];
	double phase_seconds[POLAR_PIPELINE_MAX_PHASES];
	double calib_seconds;
};
int polar_pipeline_get_timing(const struct polar_pipeline *p,
			      struct polar_pipeline_timing *t);

/*
 * The energy counters of the pipeline's own handle (since it was opened:
 * the calibration's device work included; polar_pipeline_evaluate()'s
 * threads report theirs in polar_pipeline_get_result()) and the host
 * paths' FLOPs of polar_pipeline_infer().
 */
struct polar_pipeline_energy {
	size_t sz;		/* sizeof(struct polar_pipeline_energy) */
	double device_j, macs;
	double host_flops, host_j;
};
int polar_pipeline_read_energy(const struct polar_pipeline *p,
			       struct polar_pipeline_energy *e);

#ifdef __cplusplus
}
#endif

#endif /* POLAR_PIPELINE_H */
