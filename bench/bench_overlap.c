// SPDX-License-Identifier: MIT
/*
 * bench_overlap: does a polarized layer's host path (rank-r B(A x) on the
 * CPU) hide behind its device jobs? One layer on the first /dev/accel node
 * (or POLAR_DEVICE), one thread. Each round times one forward in each of
 * five modes, in a random order drawn anew each round (fixed seed), so
 * that drift, cache state and the mode run just before fall on every mode
 * alike:
 *   overlapped   POLAR_FWD_OVERLAP
 *   serial       POLAR_FWD_SERIAL (each chunk's host path after its jobs)
 *   device       POLAR_FWD_DEVICE_ONLY
 *   host         POLAR_FWD_HOST_ONLY
 *   control      POLAR_FWD_SERIAL again, standing in for "overlapped"
 * and prints the median time of each mode and the median over the rounds
 * of each round's
 *   overlap_efficiency = (serial - overlapped) / min(device, host)
 * the fraction of the shorter path that overlapping hid: 1 when it is
 * hidden whole, 0 when nothing overlaps. A round's modes run back to back,
 * so the per-round figure compares times taken moments apart. The control,
 * serial timed against serial, shows what the metric reads with no overlap
 * at all (near 0, within the timing noise).
 *
 * The metric means something only when the host path is a real part of the
 * layer's time; the rank is chosen, before the timed rounds, so that the
 * host path takes about 45 % of the device's time (at least a third is the
 * bar), and the ratio measured in the timed rounds is printed. --rank R
 * fixes it instead.
 *
 * Every overlapped and control output must equal the serial output of its
 * round bit for bit (the same device sums, from the same inputs and job
 * seed, and the same host rows, whether overlapped or not); all of them must
 * match device + host within 1e-5 relative (the same two terms, added in
 * another order, so only float rounding may differ). A mismatch ends the
 * bench with status 1.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "polar/polar.h"
#include "polar/qlayer.h"
#include "polar/lowrank.h"

#define ROUNDS 51
#define PROBE_REPS 7
#define MAX_RANK POLAR_LOWRANK_MAX_RANK
/* Host path time / device time the rank is chosen for. */
#define TARGET_RATIO 0.45

enum { M_OVERLAP, M_SERIAL, M_DEVICE, M_HOST, M_CONTROL, NMODES };

static const char *const mode_name[NMODES] = {
	"overlapped", "serial", "device_only", "host_only", "control",
};

static const unsigned int mode_flags[NMODES] = {
	POLAR_FWD_OVERLAP, POLAR_FWD_SERIAL, POLAR_FWD_DEVICE_ONLY,
	POLAR_FWD_HOST_ONLY, POLAR_FWD_SERIAL,
};

struct bench {
	struct polar_qlayer *l;
	uint32_t in, out, batch;
	const float *x;
	float *y[NMODES];
};

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

static double median(const double *v, int n)
{
	double s[ROUNDS > PROBE_REPS ? ROUNDS : PROBE_REPS];

	memcpy(s, v, sizeof(double) * n);
	qsort(s, n, sizeof(double), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* The q-th quartile (1 or 3) of v[0..n), by rank. */
static double quartile(const double *v, int n, int q)
{
	double s[ROUNDS > PROBE_REPS ? ROUNDS : PROBE_REPS];

	memcpy(s, v, sizeof(double) * n);
	qsort(s, n, sizeof(double), cmp_double);
	return s[(n - 1) * q / 4];
}

static void die(const char *what)
{
	fprintf(stderr, "bench_overlap: %s: %s\n", what, polar_errmsg());
	exit(1);
}

/* Seconds of one forward in mode m, its output in b->y[m]. */
static double run_mode(struct bench *b, int m)
{
	double t0 = now_s();

	if (polar_qlayer_forward(b->l, b->batch, b->x, b->y[m], mode_flags[m]))
		die(mode_name[m]);
	return now_s() - t0;
}

/* A random order of the modes (Fisher-Yates, xorshift32 from *seed). */
static void shuffle(int *order, uint32_t *seed)
{
	int i;

	for (i = 0; i < NMODES; i++)
		order[i] = i;
	for (i = NMODES - 1; i > 0; i--) {
		int j, tmp;

		*seed ^= *seed << 13;
		*seed ^= *seed >> 17;
		*seed ^= *seed << 5;
		j = (int)(*seed % (uint32_t)(i + 1));
		tmp = order[i];
		order[i] = order[j];
		order[j] = tmp;
	}
}

/* Median host-only / device-only time over a few alternating runs. */
static double probe_ratio(struct bench *b)
{
	double h[PROBE_REPS], d[PROBE_REPS];
	int r;

	run_mode(b, M_DEVICE);
	run_mode(b, M_HOST);
	for (r = 0; r < PROBE_REPS; r++) {
		d[r] = run_mode(b, M_DEVICE);
		h[r] = run_mode(b, M_HOST);
	}
	return median(h, PROBE_REPS) / median(d, PROBE_REPS);
}

static void set_rank(struct bench *b, uint32_t rank, const float *A,
		     const float *B)
{
	float *Br = malloc(sizeof(float) * b->out * rank);
	uint32_t o;

	if (!Br) {
		fprintf(stderr, "bench_overlap: out of memory\n");
		exit(1);
	}
	/* The first rank rows of A and columns of B. */
	for (o = 0; o < b->out; o++)
		memcpy(Br + (size_t)o * rank, B + (size_t)o * MAX_RANK,
		       sizeof(float) * rank);
	if (polar_qlayer_set_lowrank(b->l, rank, A, Br))
		die("set_lowrank");
	free(Br);
}

/*
 * The host path's time grows with the rank: bisect 1..MAX_RANK for the
 * smallest rank whose host path takes TARGET_RATIO of the device's time.
 * Probes on a busy machine are noisy, so the ratio that counts is the one
 * measured again in the timed rounds.
 */
static uint32_t choose_rank(struct bench *b, const float *A, const float *B)
{
	uint32_t lo = 1, hi = MAX_RANK;

	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		double ratio;

		set_rank(b, mid, A, B);
		ratio = probe_ratio(b);
		printf("probe: rank %u host/device %.3f\n", mid, ratio);
		if (ratio < TARGET_RATIO)
			lo = mid + 1;
		else
			hi = mid;
	}
	set_rank(b, lo, A, B);
	return lo;
}

/* Outputs of the round: bit-equal where they must be, else close. */
static void check_outputs(const struct bench *b, int round)
{
	size_t n = (size_t)b->batch * b->out, i;
	double maxref = 0, maxdiff = 0;

	if (memcmp(b->y[M_OVERLAP], b->y[M_SERIAL], sizeof(float) * n) ||
	    memcmp(b->y[M_CONTROL], b->y[M_SERIAL], sizeof(float) * n)) {
		fprintf(stderr, "bench_overlap: round %d: overlapped and serial "
			"outputs differ\n", round);
		exit(1);
	}
	for (i = 0; i < n; i++) {
		double sum = (double)b->y[M_DEVICE][i] + b->y[M_HOST][i];

		maxref = fmax(maxref, fabs(sum));
		maxdiff = fmax(maxdiff, fabs(b->y[M_OVERLAP][i] - sum));
	}
	if (maxdiff > 1e-5 * maxref) {
		fprintf(stderr, "bench_overlap: round %d: overlapped output is "
			"off device + host by %g (largest value %g)\n", round,
			maxdiff, maxref);
		exit(1);
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_overlap [--batch N] [--rank R]\n"
		"  --batch N  input vectors per forward (default 64)\n"
		"  --rank R   host path rank 1..%d (default: chosen so that the "
		"host path takes about %.0f%% of the device's time)\n",
		MAX_RANK, TARGET_RATIO * 100);
	exit(2);
}

static uint32_t parse_u32(const char *s, uint32_t lo, uint32_t hi)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (!*s || *end || v < lo || v > hi) {
		fprintf(stderr, "bench_overlap: '%s' is not a number in %u..%u\n",
			s, lo, hi);
		usage();
	}
	return (uint32_t)v;
}

int main(int argc, char **argv)
{
	struct bench b = { .in = 1024, .out = 512, .batch = 64 };
	double t[NMODES][ROUNDS], med[NMODES], eff[ROUNDS], ctl[ROUNDS];
	struct polar_qlayer_desc d = { 0 };
	struct polar_caps caps;
	uint32_t rank = 0, i, seed = 12345;
	struct polar_device *dev;
	float *w, *x, *A, *B;
	double shorter;
	int a, r, m;

	for (a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--batch") && a + 1 < argc)
			b.batch = parse_u32(argv[++a], 1, 1u << 16);
		else if (!strcmp(argv[a], "--rank") && a + 1 < argc)
			rank = parse_u32(argv[++a], 1, MAX_RANK);
		else
			usage();
	}
	if (polar_open(getenv("POLAR_DEVICE"), &dev))
		die("open");
	w = malloc(sizeof(float) * b.in * b.out);
	x = malloc(sizeof(float) * b.batch * b.in);
	A = malloc(sizeof(float) * MAX_RANK * b.in);
	B = malloc(sizeof(float) * b.out * MAX_RANK);
	for (m = 0; m < NMODES; m++)
		b.y[m] = malloc(sizeof(float) * b.batch * b.out);
	if (!w || !x || !A || !B || !b.y[NMODES - 1]) {
		fprintf(stderr, "bench_overlap: out of memory\n");
		return 1;
	}
	b.x = x;
	srand(1);
	for (i = 0; i < b.in * b.out; i++)
		w[i] = (float)rand() / RAND_MAX - 0.5f;
	for (i = 0; i < b.batch * b.in; i++)
		x[i] = (float)rand() / RAND_MAX;
	for (i = 0; i < MAX_RANK * b.in; i++)
		A[i] = (float)rand() / RAND_MAX - 0.5f;
	for (i = 0; i < b.out * MAX_RANK; i++)
		B[i] = (float)rand() / RAND_MAX - 0.5f;

	d.in_dim = b.in;
	d.out_dim = b.out;
	d.weight = w;
	d.wfmt = POLAR_WFMT_INT4;
	d.xfmt = POLAR_XFMT_UINT4;
	d.x_scale = 1.0f / 15;
	if (polar_qlayer_create(&dev, 1, &d, &b.l))
		die("layer");
	if (rank)
		set_rank(&b, rank, A, B);
	else
		rank = choose_rank(&b, A, B);

	/* One untimed round warms buffers and caches in every mode. */
	for (m = 0; m < NMODES; m++)
		run_mode(&b, m);
	for (r = 0; r < ROUNDS; r++) {
		int order[NMODES];

		shuffle(order, &seed);
		for (i = 0; i < NMODES; i++) {
			m = order[i];
			t[m][r] = run_mode(&b, m);
		}
		check_outputs(&b, r);
		shorter = fmin(t[M_DEVICE][r], t[M_HOST][r]);
		eff[r] = (t[M_SERIAL][r] - t[M_OVERLAP][r]) / shorter;
		ctl[r] = (t[M_SERIAL][r] - t[M_CONTROL][r]) / shorter;
	}
	for (m = 0; m < NMODES; m++)
		med[m] = median(t[m], ROUNDS);
	shorter = fmin(med[M_DEVICE], med[M_HOST]);

	if (polar_get_caps(dev, &caps))
		die("caps");
	printf("layer %ux%u INT4 x UINT4, rank %u, batch %u, %u tiles, %s, "
	       "%s kernels, median of %d interleaved rounds\n",
	       b.out, b.in, rank, b.batch, polar_qlayer_tiles(b.l),
	       caps.sim ? "sim (jobs run at submission: nothing can overlap)" :
	       polar_submit_path(dev) == POLAR_PATH_URING ? "io_uring" : "ioctl",
	       polar_lowrank_kernel_name(), ROUNDS);
	for (m = 0; m < NMODES; m++)
		printf("%s_ms=%.3f\n", mode_name[m], med[m] * 1e3);
	printf("outputs: overlapped == serial == control bit for bit, "
	       "== device + host within 1e-5, every round\n");
	printf("host_device_ratio=%.3f (host path / device; the metric needs "
	       ">= 0.333)%s\n", med[M_HOST] / med[M_DEVICE],
	       med[M_HOST] * 3 >= med[M_DEVICE] ? "" : " BELOW: not meaningful");
	printf("control_efficiency=%.3f (serial timed against serial: what "
	       "no overlap reads; quartiles %.3f..%.3f)\n", median(ctl, ROUNDS),
	       quartile(ctl, ROUNDS, 1), quartile(ctl, ROUNDS, 3));
	printf("overlap_efficiency=%.3f ((serial - overlapped) / min(device, "
	       "host) per round; quartiles %.3f..%.3f; from the median times "
	       "%.3f; goal >= 0.9)\n", median(eff, ROUNDS),
	       quartile(eff, ROUNDS, 1), quartile(eff, ROUNDS, 3),
	       (med[M_SERIAL] - med[M_OVERLAP]) / shorter);
	polar_qlayer_destroy(b.l);
	polar_close(dev);
	free(w);
	free(x);
	free(A);
	free(B);
	for (m = 0; m < NMODES; m++)
		free(b.y[m]);
	return 0;
}
