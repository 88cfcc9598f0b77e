// SPDX-License-Identifier: MIT
/*
 * layer_demo: one polarized layer y = deq(Q(W) q(x)) + B(A x) + b on a
 * polar accelerator, or on the software backend:
 *
 *   cc layer_demo.c $(pkg-config --cflags --libs polar-accel) -o layer_demo
 *   ./layer_demo            # the first /dev/accel/accelN of polar_accel
 *   POLAR_FIRMWARE=polar_cim.fw ./layer_demo sim:sigma-static=6554
 *
 * It compares the INT4 layer with the fp32 one it approximates.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <polar/polar.h>
#include <polar/qlayer.h>
#include <polar/quant.h>

#define IN 256
#define OUT 64
#define BATCH 8

int main(int argc, char **argv)
{
	static float w[OUT * IN], x[BATCH * IN], y[BATCH * OUT];
	struct polar_qlayer_desc d = { 0 };
	struct polar_device *dev;
	struct polar_qlayer *layer;
	struct polar_act_quant aq;
	double err = 0, norm = 0;
	int i, k, o;

	if (polar_open(argc > 1 ? argv[1] : NULL, &dev)) {
		fprintf(stderr, "layer_demo: %s\n", polar_errmsg());
		return 1;
	}
	srand(1);
	for (i = 0; i < OUT * IN; i++)
		w[i] = (float)rand() / RAND_MAX - 0.5f;
	for (i = 0; i < BATCH * IN; i++)
		x[i] = (float)rand() / RAND_MAX;

	/* Inputs are >= 0 here (as after a ReLU): unsigned 4-bit codes. */
	polar_act_calibrate(x, BATCH * IN, POLAR_XFMT_UINT4, 0, &aq);
	d.in_dim = IN;
	d.out_dim = OUT;
	d.weight = w;
	d.wfmt = POLAR_WFMT_INT4;
	d.xfmt = POLAR_XFMT_UINT4;
	d.x_scale = aq.scale;
	if (polar_qlayer_create(&dev, 1, &d, &layer) ||
	    polar_qlayer_forward(layer, BATCH, x, y, POLAR_FWD_OVERLAP)) {
		fprintf(stderr, "layer_demo: %s\n", polar_errmsg());
		polar_close(dev);
		return 1;
	}
	for (k = 0; k < BATCH; k++)
		for (o = 0; o < OUT; o++) {
			double ref = 0;

			for (i = 0; i < IN; i++)
				ref += (double)w[o * IN + i] * x[k * IN + i];
			err += (y[k * OUT + o] - ref) * (y[k * OUT + o] - ref);
			norm += ref * ref;
		}
	printf("%s: %ux%u INT4 layer on %u tiles, relative error %.4f\n",
	       polar_device_path(dev), OUT, IN, polar_qlayer_tiles(layer),
	       sqrt(err / norm));
	polar_qlayer_destroy(layer);
	polar_close(dev);
	return 0;
}
