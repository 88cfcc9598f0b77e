// SPDX-License-Identifier: MIT
/*
 * onnx_predict: an ONNX model to predictions on a polar accelerator (the
 * first /dev/accel node of polar_accel, else the software backend):
 *   cc onnx_predict.c $(pkg-config --cflags --libs polar-accel) -o onnx_predict
 *   ./onnx_predict model.onnx t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz [DEVICE [N]]
 * The first 100 images calibrate the chip, the next N (default 1000) are classified.
 */
#include <stdio.h>
#include <stdlib.h>

#include <polar/onnx.h>
#include <polar/pipeline.h>

#define NCAL 100

int main(int argc, char **argv)
{
	struct polar_model m = { 0 };
	struct polar_dataset d = { 0 }, cal;
	struct polar_pipeline *p = NULL;
	char dev[64] = "sim";
	size_t n, k, right = 0, isz;
	uint8_t *cls = NULL;
	int me;

	if (argc < 4)
		return fprintf(stderr, "usage: %s MODEL.onnx IMAGES LABELS [DEVICE [N]]\n", argv[0]), 2;
	if (argc > 4)
		snprintf(dev, sizeof(dev), "%s", argv[4]);
	else if (polar_find_device(NULL, 0, dev, sizeof(dev)))
		snprintf(dev, sizeof(dev), "sim");
	if (polar_model_load_onnx(&m, argv[1], NULL) ||
	    polar_dataset_load_idx(argv[2], argv[3], m.classes, &d) ||
	    polar_dataset_preprocess(&d, &m.pre) || d.count <= NCAL)
		goto fail;
	n = argc > 5 ? strtoul(argv[5], NULL, 10) : 1000;
	n = n < d.count - NCAL ? n : d.count - NCAL;
	cal = d;		/* the first NCAL images calibrate */
	cal.count = NCAL;
	isz = (size_t)d.channels * d.rows * d.cols;
	me = polar_model_is_chain(&m) ? POLAR_METHOD_SENSITIVITY : POLAR_METHOD_ACT_DEVICE;
	if (!(cls = malloc(n)) || polar_pipeline_create(&m, &p) ||
	    polar_pipeline_open(p, dev) || polar_pipeline_polarize(p, &cal, 0) ||
	    polar_pipeline_infer(p, me, n, d.images + NCAL * isz, NULL, cls))
		goto fail;
	for (k = 0; k < n; k++)
		right += cls[k] == d.labels[NCAL + k];
	printf("%s on %s, %s: %zu images, first predictions %u %u %u, accuracy %.2f%%\n",
	       argv[1], dev, polar_method_name(me), n, cls[0], cls[1 % n], cls[2 % n],
	       100.0 * right / n);
	return polar_pipeline_destroy(p), polar_dataset_free(&d), polar_model_free(&m), 0;
fail:
	fprintf(stderr, "%s: %s\n", argv[0], polar_errmsg());
	return 1;
}
