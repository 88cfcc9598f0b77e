// SPDX-License-Identifier: MIT
/*
 * bench_submit: NOP jobs per second on queue 0 of a polar accel device,
 * through DRM_IOCTL_POLAR_ACCEL_SUBMIT + WAIT and through io_uring
 * (IORING_OP_URING_CMD, DRM_POLAR_ACCEL_URING_SUBMIT), at queue depths 1,
 * 8, 32 and 128. The ioctl path keeps qd jobs in flight and WAITs the
 * oldest; the io_uring path keeps qd SQEs in flight, submitting and
 * reaping in batches. Prints one line per depth:
 *   qd=<n> ioctl_jobs_s=<a> uring_jobs_s=<b> ratio=<b/a>
 * Usage: bench_submit [/dev/accel/accelN] [jobs per run]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xf86drm.h>

#include "drm/polar_accel.h"
#include "polar_cim_hw.h"

#define MAX_QD 128
#define MAX_SECONDS 2.0	/* a run stops early after this long */

static struct drm_polar_accel_cmd nop = { .opcode = POLAR_CIM_OP_NOP };

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int submit_nop(int fd, uint64_t *seqno)
{
	struct drm_polar_accel_submit s = {
		.queue = 0,
		.num_cmds = 1,
		.cmds = (uintptr_t)&nop,
	};

	if (drmIoctl(fd, DRM_IOCTL_POLAR_ACCEL_SUBMIT, &s))
		return -errno;
	*seqno = s.seqno;
	return 0;
}

static int wait_nop(int fd, uint64_t seqno)
{
	struct drm_polar_accel_wait w = {
		.seqno = seqno,
		.timeout_ns = 10ll * 1000 * 1000 * 1000,
	};

	if (drmIoctl(fd, DRM_IOCTL_POLAR_ACCEL_WAIT, &w))
		return -errno;
	return w.status;
}

/* Jobs per second through SUBMIT + WAIT with qd in flight; < 0 on error. */
static double bench_ioctl(int fd, unsigned int qd, unsigned int jobs)
{
	uint64_t seq[MAX_QD];
	unsigned int head = 0, inflight = 0, submitted = 0, done = 0;
	double t0 = now(), t;
	int ret;

	while (done < jobs) {
		while (inflight < qd && submitted < jobs) {
			ret = submit_nop(fd, &seq[(head + inflight) % qd]);
			if (ret) {
				fprintf(stderr, "SUBMIT: %s\n", strerror(-ret));
				return -1;
			}
			inflight++;
			submitted++;
		}
		ret = wait_nop(fd, seq[head]);
		if (ret) {
			fprintf(stderr, "WAIT: %d\n", ret);
			return -1;
		}
		head = (head + 1) % qd;
		inflight--;
		done++;
		/* Out of time: stop submitting, drain what is in flight. */
		if (submitted == done + inflight && now() - t0 > MAX_SECONDS)
			jobs = submitted;
	}
	t = now() - t0;
	return done / t;
}

/* Jobs per second through io_uring with qd SQEs in flight. */
static double bench_uring(int fd, unsigned int qd, unsigned int jobs)
{
	struct drm_polar_accel_uring_submit p = {
		.queue = 0,
		.num_cmds = 1,
		.cmds = (uintptr_t)&nop,
	};
	struct io_uring_cqe *cqes[MAX_QD];
	unsigned int inflight = 0, submitted = 0, done = 0, n, i;
	struct io_uring ring;
	double t0, t;
	int ret;

	ret = io_uring_queue_init(qd, &ring, IORING_SETUP_SQE128);
	if (ret) {
		fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-ret));
		return -1;
	}
	t0 = now();
	while (done < jobs) {
		while (inflight < qd && submitted < jobs) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

			if (!sqe)
				break;
			io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fd, NULL, 0,
					 0);
			sqe->cmd_op = DRM_POLAR_ACCEL_URING_SUBMIT;
			memset(sqe->cmd, 0, 80);
			memcpy(sqe->cmd, &p, sizeof(p));
			io_uring_sqe_set_data64(sqe, submitted);
			inflight++;
			submitted++;
		}
		ret = io_uring_submit_and_wait(&ring, 1);
		if (ret < 0 && ret != -EINTR) {
			fprintf(stderr, "io_uring_submit_and_wait: %s\n",
				strerror(-ret));
			io_uring_queue_exit(&ring);
			return -1;
		}
		n = io_uring_peek_batch_cqe(&ring, cqes, MAX_QD);
		for (i = 0; i < n; i++) {
			if (cqes[i]->res) {
				fprintf(stderr, "CQE res %d\n", cqes[i]->res);
				io_uring_queue_exit(&ring);
				return -1;
			}
		}
		io_uring_cq_advance(&ring, n);
		inflight -= n;
		done += n;
		if (submitted == done + inflight && now() - t0 > MAX_SECONDS)
			jobs = submitted;
	}
	t = now() - t0;
	io_uring_queue_exit(&ring);
	return done / t;
}

static int uring_supported(int fd)
{
	struct drm_polar_accel_get_param a = {
		.param = DRM_POLAR_ACCEL_PARAM_FEATURES,
	};

	if (drmIoctl(fd, DRM_IOCTL_POLAR_ACCEL_GET_PARAM, &a))
		return 0;
	return !!(a.value & DRM_POLAR_ACCEL_FEATURE_URING_CMD);
}

int main(int argc, char **argv)
{
	static const unsigned int depths[] = { 1, 8, 32, 128 };
	const char *path = argc > 1 ? argv[1] : "/dev/accel/accel0";
	unsigned int jobs = argc > 2 ? strtoul(argv[2], NULL, 0) : 2000;
	int fd, uring, status = 0;
	size_t k;

	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "bench_submit: %s: %s\n", path,
			strerror(errno));
		return 1;
	}
	uring = uring_supported(fd);
	if (!uring)
		printf("# the driver lacks FEATURE_URING_CMD: uring_jobs_s=0\n");
	printf("# %u NOP jobs (or %.0f s) per run on queue 0 of %s\n", jobs,
	       MAX_SECONDS, path);
	for (k = 0; k < sizeof(depths) / sizeof(depths[0]); k++) {
		unsigned int qd = depths[k];
		double a = bench_ioctl(fd, qd, jobs);
		double b = uring ? bench_uring(fd, qd, jobs) : 0;

		if (a < 0 || b < 0) {
			status = 1;
			a = a < 0 ? 0 : a;
			b = b < 0 ? 0 : b;
		}
		printf("qd=%u ioctl_jobs_s=%.0f uring_jobs_s=%.0f ratio=%.2f\n",
		       qd, a, b, a > 0 ? b / a : 0.0);
		fflush(stdout);
	}
	close(fd);
	return status;
}
