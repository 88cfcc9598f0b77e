// SPDX-License-Identifier: MIT
/*
 * bench_submit: jobs per second through libpolar-accel's public submit
 * and reap calls (polar_submit, polar_reap), on the ioctl path and on the
 * io_uring path of one handle, for NOP jobs and for MATMUL jobs on a
 * small programmed layer, at queue depths 1, 8, 32 and 128.
 *
 * Both paths run the same loop: keep qd jobs in flight on queue 0, reap
 * with polar_reap(max qd, min_wait 1); a run ends after `jobs` jobs or
 * MAX_SECONDS. Per kind and depth: one warm-up run per path, then `reps`
 * (9) runs of each path, interleaved (ioctl, io_uring, ioctl, ...) so that
 * load on the machine falls on both alike; the medians are compared. Every completion must be status 0 and every
 * MATMUL output equal to the first (identical jobs), else the bench fails.
 * Prints per kind and depth:
 *   kind=<nop|matmul> qd=<n> ioctl_jobs_s=<a> uring_jobs_s=<b> ratio=<b/a>
 * preceded by a "#" line with every run's figure.
 * Usage: bench_submit [device|-] [jobs per run] [reps]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "polar/polar.h"
#include "polar_cim_hw.h"

#define MAX_QD 128
#define MAX_REPS 15
#define MAX_SECONDS 0.3	/* a run stops early after this long */

/* The MATMUL layer: one tile's worth, INT4 weights and inputs. */
#define MM_IN 128
#define MM_OUT 64
#define MM_BATCH 4
#define MM_YSZ (MM_BATCH * MM_OUT * 4)

struct kind {
	const char *name;
	struct polar_cmd cmd;
	struct polar_buffer *y;	/* MATMUL: a slot of outputs per depth */
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Identical MATMUL jobs give identical sums, and not all zero. */
static int check_outputs(const struct kind *k, unsigned int slots)
{
	const uint8_t *y = polar_buffer_map(k->y);
	static const uint8_t zero[MM_YSZ];
	unsigned int s;

	if (!memcmp(y, zero, MM_YSZ)) {
		fprintf(stderr, "bench_submit: MATMUL wrote no sums\n");
		return -1;
	}
	for (s = 1; s < slots; s++)
		if (memcmp(y, y + s * MM_YSZ, MM_YSZ)) {
			fprintf(stderr, "bench_submit: MATMUL slot %u differs "
				"from slot 0\n", s);
			return -1;
		}
	return 0;
}

/*
 * One run: jobs of kind k through path p with qd in flight; returns jobs
 * per second, or < 0 on an error (reported).
 */
static double run(struct polar_device *dev, enum polar_submit_path p,
		  struct kind *k, unsigned int qd, unsigned int jobs)
{
	struct polar_completion c[MAX_QD];
	unsigned int submitted = 0, done = 0, i;
	struct polar_cmd cmd = k->cmd;
	double t0, t;
	int n, ret;

	ret = polar_set_submit_path(dev, p);
	if (ret) {
		fprintf(stderr, "bench_submit: set path: %s\n", polar_errmsg());
		return -1;
	}
	if (k->y)
		memset(polar_buffer_map(k->y), 0, polar_buffer_size(k->y));
	t0 = now();
	while (done < jobs) {
		while (submitted - done < qd && submitted < jobs) {
			if (k->y)
				cmd.dst.offset = (uint64_t)(submitted % qd) *
						 MM_YSZ;
			ret = polar_submit(dev, 0, &cmd, 1, submitted);
			if (ret) {
				fprintf(stderr, "bench_submit: submit: %s\n",
					polar_errmsg());
				return -1;
			}
			submitted++;
		}
		n = polar_reap(dev, c, qd, 1);
		if (n < 0) {
			fprintf(stderr, "bench_submit: reap: %s\n",
				polar_errmsg());
			return -1;
		}
		for (i = 0; i < (unsigned int)n; i++)
			if (c[i].status) {
				fprintf(stderr, "bench_submit: job %llu: %s "
					"(device status %u)\n",
					(unsigned long long)c[i].user_data,
					strerror(-c[i].status), c[i].cmd_status);
				return -1;
			}
		done += n;
		/* Out of time: submit no more, collect what is in flight. */
		if (now() - t0 > MAX_SECONDS)
			jobs = submitted;
	}
	t = now() - t0;
	if (k->y && check_outputs(k, submitted < qd ? submitted : qd))
		return -1;
	return done / t;
}

/* Programs the layer's tile and sets up its MATMUL job. */
static int matmul_setup(struct polar_device *dev, struct kind *k,
			struct polar_buffer **w, struct polar_buffer **x)
{
	struct polar_cmd prog = {
		.opcode = POLAR_CIM_OP_PROGRAM_TILES,
		.wfmt = POLAR_CIM_WFMT_INT4, .tile0 = 0,
		.in_dim = MM_IN, .out_dim = MM_OUT,
	};
	struct polar_completion c;
	int8_t *p;
	int i;

	if (polar_buffer_create(dev, MM_IN * MM_OUT, w) ||
	    polar_buffer_create(dev, MM_BATCH * MM_IN, x) ||
	    polar_buffer_create(dev, MAX_QD * MM_YSZ, &k->y))
		return -1;
	p = polar_buffer_map(*w);
	for (i = 0; i < MM_IN * MM_OUT; i++)
		p[i] = (int8_t)((i * 7 + 3) % 16 - 8);
	p = polar_buffer_map(*x);
	for (i = 0; i < MM_BATCH * MM_IN; i++)
		p[i] = (int8_t)((i * 5 + 1) % 16 - 8);
	prog.src = (struct polar_buf_ref){ *w, 0, MM_IN * MM_OUT };
	if (polar_submit(dev, 0, &prog, 1, 0) || polar_reap(dev, &c, 1, 1) != 1)
		return -1;
	if (c.status) {
		fprintf(stderr, "bench_submit: PROGRAM_TILES: %s\n",
			strerror(-c.status));
		return -1;
	}
	k->cmd = (struct polar_cmd){
		.opcode = POLAR_CIM_OP_MATMUL,
		.wfmt = POLAR_CIM_WFMT_INT4, .xfmt = POLAR_CIM_XFMT_INT4,
		.tile0 = 0, .in_dim = MM_IN, .out_dim = MM_OUT,
		.batch = MM_BATCH, .job_seed = 1,
		.src = { *x, 0, MM_BATCH * MM_IN },
		.dst = { k->y, 0, MM_YSZ },
	};
	return 0;
}

int main(int argc, char **argv)
{
	static const unsigned int depths[] = { 1, 8, 32, 128 };
	const char *path = argc > 1 && strcmp(argv[1], "-") ? argv[1] : NULL;
	unsigned int jobs = argc > 2 ? strtoul(argv[2], NULL, 0) : 20000;
	int reps = argc > 3 ? atoi(argv[3]) : 9;
	struct kind kinds[2] = {
		{ .name = "nop", .cmd = { .opcode = POLAR_CIM_OP_NOP } },
		{ .name = "matmul" },
	};
	struct polar_buffer *w = NULL, *x = NULL;
	struct polar_device *dev;
	size_t d, ki;
	int status = 0, r;

	if (!jobs || reps < 1 || reps > MAX_REPS) {
		fprintf(stderr, "usage: bench_submit [device|-] [jobs per run "
			"> 0] [runs 1..%d]\n", MAX_REPS);
		return 2;
	}
	if (polar_open(path, &dev)) {
		fprintf(stderr, "bench_submit: %s\n", polar_errmsg());
		return 1;
	}
	if (polar_set_submit_path(dev, POLAR_PATH_URING)) {
		fprintf(stderr, "bench_submit: %s\n", polar_errmsg());
		polar_close(dev);
		return 1;
	}
	if (matmul_setup(dev, &kinds[1], &w, &x)) {
		fprintf(stderr, "bench_submit: MATMUL setup: %s\n",
			polar_errmsg());
		status = 1;
		goto out;
	}
	printf("# libpolar-accel on %s, queue 0: %u jobs (or %.1f s) per run, "
	       "median of %d runs per path after one warm-up, paths "
	       "interleaved; MATMUL %ux%u INT4 x INT4, batch %u\n",
	       polar_device_path(dev), jobs, MAX_SECONDS, reps, MM_OUT, MM_IN,
	       MM_BATCH);
	for (ki = 0; ki < 2; ki++) {
		struct kind *k = &kinds[ki];

		for (d = 0; d < sizeof(depths) / sizeof(depths[0]); d++) {
			unsigned int qd = depths[d];
			double a[MAX_REPS], b[MAX_REPS], ma, mb;
			char line[1024];
			int len;

			if (run(dev, POLAR_PATH_IOCTL, k, qd, jobs / 4 + 1) < 0 ||
			    run(dev, POLAR_PATH_URING, k, qd, jobs / 4 + 1) < 0) {
				status = 1;
				goto out;
			}
			len = snprintf(line, sizeof(line), "# kind=%s qd=%u runs "
				       "ioctl/uring:", k->name, qd);
			for (r = 0; r < reps; r++) {
				a[r] = run(dev, POLAR_PATH_IOCTL, k, qd, jobs);
				b[r] = run(dev, POLAR_PATH_URING, k, qd, jobs);
				if (a[r] < 0 || b[r] < 0) {
					status = 1;
					goto out;
				}
				if (len < (int)sizeof(line))
					len += snprintf(line + len,
							sizeof(line) - len,
							" %.0f/%.0f", a[r], b[r]);
			}
			ma = median(a, reps);
			mb = median(b, reps);
			printf("%s\n", line);
			printf("kind=%s qd=%u ioctl_jobs_s=%.0f uring_jobs_s=%.0f "
			       "ratio=%.2f\n", k->name, qd, ma, mb, mb / ma);
			fflush(stdout);
		}
	}
out:
	polar_buffer_free(w);
	polar_buffer_free(x);
	polar_buffer_free(kinds[1].y);
	polar_close(dev);
	return status;
}
