/* SPDX-License-Identifier: GPL-2.0 */
/*
 * io_uring helpers shared by the kselftests that submit polar_accel jobs
 * as IORING_OP_URING_CMD (DRM_POLAR_ACCEL_URING_SUBMIT on an
 * IORING_SETUP_SQE128 ring). Include after polar_selftest.h.
 */
#ifndef POLAR_SELFTEST_URING_H
#define POLAR_SELFTEST_URING_H

#include <errno.h>
#include <liburing.h>
#include <stdint.h>
#include <string.h>

#include "drm/polar_accel.h"

static inline int ring_init(struct io_uring *ring, unsigned int entries)
{
	return io_uring_queue_init(entries, ring, IORING_SETUP_SQE128);
}

/* Queues one URING_CMD SQE; -EBUSY when the SQ ring is full. */
static inline int uring_prep(struct io_uring *ring, int fd,
			     const struct drm_polar_accel_uring_submit *payload,
			     uint64_t user_data)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fd, NULL, 0, 0);
	sqe->cmd_op = DRM_POLAR_ACCEL_URING_SUBMIT;
	memset(sqe->cmd, 0, 80);
	memcpy(sqe->cmd, payload, sizeof(*payload));
	io_uring_sqe_set_data64(sqe, user_data);
	return 0;
}

static inline int uring_prep_job(struct io_uring *ring, int fd, uint32_t queue,
				 struct drm_polar_accel_cmd *cmds, uint32_t n,
				 uint64_t user_data)
{
	struct drm_polar_accel_uring_submit p = {
		.queue = queue,
		.num_cmds = n,
		.cmds = (uintptr_t)cmds,
	};

	return uring_prep(ring, fd, &p, user_data);
}

/* Waits for one CQE (@wait_s at most): 0 with its res and user_data. */
static inline int uring_reap(struct io_uring *ring, int *res,
			     uint64_t *user_data, long wait_s)
{
	struct __kernel_timespec ts = { .tv_sec = wait_s };
	struct io_uring_cqe *cqe;
	int ret;

	do
		ret = io_uring_wait_cqe_timeout(ring, &cqe, &ts);
	while (ret == -EINTR);
	if (ret)
		return ret;
	*res = cqe->res;
	*user_data = cqe->user_data;
	io_uring_cqe_seen(ring, cqe);
	return 0;
}

#endif /* POLAR_SELFTEST_URING_H */
