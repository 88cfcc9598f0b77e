// SPDX-License-Identifier: MIT
/*
 * bench_overlap: does the host's rank-8 path hide behind the device job?
 * Runs one polarized layer on the device (in the VM) and times, in the
 * same run, the layer with the host path overlapped, serial, the device
 * job alone and the host path alone, ending with
 *   overlap_ratio=<overlapped / max(device, host)>   (goal: <= 1.10)
 * Medians of repeated runs, one thread, the first /dev/accel node.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "polar/polar.h"
#include "polar/qlayer.h"

#define REPS 41

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median seconds of one forward with these flags. */
static double time_forward(struct polar_qlayer *l, uint32_t batch,
			   const float *x, float *y, unsigned int flags)
{
	double t[REPS];
	int r;

	for (r = 0; r < REPS; r++) {
		double t0 = now_s();

		if (polar_qlayer_forward(l, batch, x, y, flags)) {
			fprintf(stderr, "bench_overlap: %s\n", polar_errmsg());
			exit(1);
		}
		t[r] = now_s() - t0;
	}
	qsort(t, REPS, sizeof(t[0]), cmp_double);
	return t[REPS / 2];
}

int main(int argc, char **argv)
{
	uint32_t in = 1024, out = 512, batch = 64, rank = 8, i;
	struct polar_qlayer_desc d = { 0 };
	struct polar_device *dev;
	struct polar_qlayer *l;
	double ov, ser, dev_t, host_t, longest;
	float *w, *x, *y, *A, *B;

	if (argc > 1)
		batch = (uint32_t)atoi(argv[1]);
	if (polar_open(getenv("POLAR_DEVICE"), &dev)) {
		fprintf(stderr, "bench_overlap: %s\n", polar_errmsg());
		return 1;
	}
	w = malloc(sizeof(float) * in * out);
	x = malloc(sizeof(float) * batch * in);
	y = malloc(sizeof(float) * batch * out);
	A = malloc(sizeof(float) * rank * in);
	B = malloc(sizeof(float) * out * rank);
	srand(1);
	for (i = 0; i < in * out; i++)
		w[i] = (float)rand() / RAND_MAX - 0.5f;
	for (i = 0; i < batch * in; i++)
		x[i] = (float)rand() / RAND_MAX;
	for (i = 0; i < rank * in; i++)
		A[i] = (float)rand() / RAND_MAX - 0.5f;
	for (i = 0; i < out * rank; i++)
		B[i] = (float)rand() / RAND_MAX - 0.5f;

	d.in_dim = in;
	d.out_dim = out;
	d.weight = w;
	d.wfmt = POLAR_WFMT_INT4;
	d.xfmt = POLAR_XFMT_UINT4;
	d.x_scale = 1.0f / 15;
	d.rank = rank;
	d.A = A;
	d.B = B;
	if (polar_qlayer_create(&dev, 1, &d, &l)) {
		fprintf(stderr, "bench_overlap: %s\n", polar_errmsg());
		return 1;
	}
	/* Warm up buffers and caches. */
	time_forward(l, batch, x, y, POLAR_FWD_OVERLAP);

	ov = time_forward(l, batch, x, y, POLAR_FWD_OVERLAP);
	ser = time_forward(l, batch, x, y, POLAR_FWD_SERIAL);
	dev_t = time_forward(l, batch, x, y, POLAR_FWD_DEVICE_ONLY);
	host_t = time_forward(l, batch, x, y, POLAR_FWD_HOST_ONLY);
	longest = dev_t > host_t ? dev_t : host_t;

	printf("layer %ux%u INT4, rank %u, batch %u, %u tiles, %s, median of %d\n",
	       out, in, rank, batch, polar_qlayer_tiles(l),
	       polar_submit_path(dev) == POLAR_PATH_URING ? "io_uring" : "ioctl",
	       REPS);
	printf("overlapped_ms=%.3f\n", ov * 1e3);
	printf("serial_ms=%.3f\n", ser * 1e3);
	printf("device_only_ms=%.3f\n", dev_t * 1e3);
	printf("host_only_ms=%.3f\n", host_t * 1e3);
	printf("overlap_ratio=%.2f\n", ov / longest);
	polar_qlayer_destroy(l);
	polar_close(dev);
	free(w);
	free(x);
	free(y);
	free(A);
	free(B);
	return 0;
}
