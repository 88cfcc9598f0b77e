// SPDX-License-Identifier: MIT
/*
 * The device backend: buffers are GEM buffer objects of the accel file,
 * jobs go to the driver through io_uring (IORING_OP_URING_CMD on a ring
 * with 128-byte SQEs, one ring per struct polar_device) or, as the
 * fallback and the benchmark baseline, through the SUBMIT and WAIT ioctls.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <liburing.h>
#include <xf86drm.h>

#include "drm/polar_accel.h"
#include "polar_internal.h"

/* SQEs in the ring: jobs that can wait for a CQE at once. */
#define POLAR_RING_ENTRIES 256
/* Commands per job this library sends (the driver's MAX_CMDS is 64). */
#define POLAR_JOB_CMDS 64

/*
 * An io_uring job's commands must stay readable until its CQE: when the
 * driver cannot issue without blocking, io_uring issues again later from
 * a worker, which reads the commands then. The job rides in user_data.
 */
struct drm_uring_job {
	uint64_t user_data;
	struct drm_polar_accel_cmd cmds[];
};

static uint64_t drm_param(struct polar_device *dev, uint32_t param)
{
	struct drm_polar_accel_get_param a = { .param = param };

	return drmIoctl(dev->fd, DRM_IOCTL_POLAR_ACCEL_GET_PARAM, &a) ? 0 :
	       a.value;
}

static void drm_read_caps(struct polar_device *dev)
{
	struct polar_caps *c = &dev->caps;

	c->rows = drm_param(dev, DRM_POLAR_ACCEL_PARAM_TILE_ROWS);
	c->cols = drm_param(dev, DRM_POLAR_ACCEL_PARAM_TILE_COLS);
	c->tiles = drm_param(dev, DRM_POLAR_ACCEL_PARAM_NUM_TILES);
	c->adc_bits = drm_param(dev, DRM_POLAR_ACCEL_PARAM_ADC_BITS);
	c->rows_per_conv = drm_param(dev, DRM_POLAR_ACCEL_PARAM_ROWS_PER_CONV);
	c->num_queues = drm_param(dev, DRM_POLAR_ACCEL_PARAM_NUM_QUEUES);
	c->max_batch = drm_param(dev, DRM_POLAR_ACCEL_PARAM_MAX_BATCH);
	c->max_cmds = drm_param(dev, DRM_POLAR_ACCEL_PARAM_MAX_CMDS);
	c->sigma_static = drm_param(dev, DRM_POLAR_ACCEL_PARAM_SIGMA_STATIC);
	c->sigma_dynamic = drm_param(dev, DRM_POLAR_ACCEL_PARAM_SIGMA_DYNAMIC);
	c->adc_offset_sigma =
		drm_param(dev, DRM_POLAR_ACCEL_PARAM_ADC_OFFSET_SIGMA);
	c->adc_gain_sigma = drm_param(dev, DRM_POLAR_ACCEL_PARAM_ADC_GAIN_SIGMA);
	c->stuck_ppm = drm_param(dev, DRM_POLAR_ACCEL_PARAM_STUCK_PPM);
	c->seed = drm_param(dev, DRM_POLAR_ACCEL_PARAM_SEED);
	c->fw_version = drm_param(dev, DRM_POLAR_ACCEL_PARAM_FW_VERSION);
	c->features = drm_param(dev, DRM_POLAR_ACCEL_PARAM_FEATURES);
	c->sim = 0;
}

int polar_drm_open(struct polar_device *dev)
{
	drmVersionPtr ver;
	int ret;

	dev->fd = open(dev->path, O_RDWR | O_CLOEXEC);
	if (dev->fd < 0)
		return polar_fail(-errno, "%s: cannot open: %s", dev->path,
				  strerror(errno));
	ver = drmGetVersion(dev->fd);
	if (!ver || strcmp(ver->name, POLAR_DRIVER_NAME) != 0) {
		polar_fail(-ENODEV, "%s: driver is %s, not %s", dev->path,
			   ver ? ver->name : "unknown", POLAR_DRIVER_NAME);
		drmFreeVersion(ver);
		close(dev->fd);
		return -ENODEV;
	}
	drmFreeVersion(ver);
	dev->ops = &polar_drm_ops;
	drm_read_caps(dev);
	polar_load_firmware(dev, 0);
	if (!dev->caps.num_queues || !dev->caps.max_cmds) {
		close(dev->fd);
		return polar_fail(-ENODEV, "%s: the driver reports no queues "
				  "(too old?)", dev->path);
	}
	dev->submit_path = POLAR_PATH_IOCTL;
	if (dev->caps.features & DRM_POLAR_ACCEL_FEATURE_URING_CMD) {
		dev->ring = calloc(1, sizeof(*dev->ring));
		ret = dev->ring ? io_uring_queue_init(POLAR_RING_ENTRIES,
						      dev->ring,
						      IORING_SETUP_SQE128) : -1;
		if (ret == 0) {
			dev->has_ring = 1;
			dev->submit_path = POLAR_PATH_URING;
		} else {
			free(dev->ring);
			dev->ring = NULL;
		}
	}
	return 0;
}

static void drm_close(struct polar_device *dev)
{
	struct polar_completion c[64];

	/* Collect what is still running so no job outlives its buffers. */
	while (dev->inflight) {
		int n = dev->ops->reap(dev, c, 64, dev->inflight < 64 ?
				       dev->inflight : 64);

		if (n <= 0)
			break;
		dev->inflight -= n;
	}
	if (dev->has_ring) {
		io_uring_queue_exit(dev->ring);
		free(dev->ring);
	}
	polar_fifo_free(&dev->ioctl_jobs);
	close(dev->fd);
}

static int drm_buffer_create(struct polar_device *dev, struct polar_buffer *buf)
{
	struct drm_polar_accel_bo_create c = { .size = buf->size };
	struct drm_polar_accel_bo_info i = { 0 };
	struct drm_gem_close gc = { 0 };
	int err;

	if (drmIoctl(dev->fd, DRM_IOCTL_POLAR_ACCEL_BO_CREATE, &c))
		return polar_fail(-errno, "%s: BO_CREATE of %zu bytes: %s",
				  dev->path, buf->size, strerror(errno));
	i.handle = c.handle;
	if (drmIoctl(dev->fd, DRM_IOCTL_POLAR_ACCEL_BO_INFO, &i))
		goto err;
	buf->map = mmap(NULL, i.size, PROT_READ | PROT_WRITE, MAP_SHARED,
			dev->fd, i.mmap_offset);
	if (buf->map == MAP_FAILED)
		goto err;
	buf->handle = c.handle;
	return 0;
err:
	err = errno;
	gc.handle = c.handle;
	drmIoctl(dev->fd, DRM_IOCTL_GEM_CLOSE, &gc);
	return polar_fail(-err, "%s: mapping a %zu-byte buffer: %s",
			  dev->path, buf->size, strerror(err));
}

static void drm_buffer_free(struct polar_device *dev, struct polar_buffer *buf)
{
	struct drm_gem_close gc = { .handle = buf->handle };

	munmap(buf->map, buf->size);
	drmIoctl(dev->fd, DRM_IOCTL_GEM_CLOSE, &gc);
}

static void drm_buf(const struct polar_buf_ref *r, struct drm_polar_accel_buf *b)
{
	memset(b, 0, sizeof(*b));
	if (!r->buf)
		return;
	b->handle = r->buf->handle;
	b->offset = r->offset;
	b->size = r->size;
}

static void drm_cmds(const struct polar_cmd *cmds, uint32_t n,
		     struct drm_polar_accel_cmd *out)
{
	uint32_t i;

	memset(out, 0, n * sizeof(*out));
	for (i = 0; i < n; i++) {
		out[i].opcode = cmds[i].opcode;
		out[i].wfmt = cmds[i].wfmt;
		out[i].xfmt = cmds[i].xfmt;
		out[i].tile0 = cmds[i].tile0;
		out[i].in_dim = cmds[i].in_dim;
		out[i].out_dim = cmds[i].out_dim;
		out[i].batch = cmds[i].batch;
		out[i].adc_fs_q8 = cmds[i].adc_fs_q8;
		out[i].job_seed = cmds[i].job_seed;
		drm_buf(&cmds[i].src, &out[i].src);
		drm_buf(&cmds[i].dst, &out[i].dst);
	}
}

static const char *drm_errno_hint(int err)
{
	switch (err) {
	case ENOENT:
		return "a buffer handle is not this device's";
	case ERANGE:
		return "a range lies outside its buffer or the tiles outside "
		       "the chip";
	case EINVAL:
		return "a field is invalid";
	default:
		return strerror(err);
	}
}

static int drm_flush(struct polar_device *dev)
{
	int ret;

	if (!dev->unsubmitted)
		return 0;
	ret = io_uring_submit(dev->ring);
	if (ret < 0)
		return polar_fail(ret, "%s: io_uring_submit: %s", dev->path,
				  strerror(-ret));
	dev->unsubmitted = 0;
	return 0;
}

/* One SQE per job; the kernel copies the payload during the call. */
static int drm_submit_uring(struct polar_device *dev, uint32_t queue,
			    const struct polar_cmd *cmds, uint32_t n,
			    uint64_t user_data)
{
	struct drm_polar_accel_uring_submit p = {
		.queue = queue,
		.num_cmds = n,
	};
	struct io_uring_sqe *sqe;
	struct drm_uring_job *job;

	job = malloc(sizeof(*job) + n * sizeof(job->cmds[0]));
	if (!job)
		return polar_fail(-ENOMEM, "out of memory");
	job->user_data = user_data;
	drm_cmds(cmds, n, job->cmds);
	p.cmds = (uintptr_t)job->cmds;

	sqe = io_uring_get_sqe(dev->ring);
	if (!sqe) {
		/* Full: hand the queued SQEs to the kernel and retry. */
		drm_flush(dev);
		sqe = io_uring_get_sqe(dev->ring);
		if (!sqe) {
			free(job);
			return polar_fail(-EBUSY, "%s: io_uring submission "
					  "ring full", dev->path);
		}
	}
	io_uring_prep_rw(IORING_OP_URING_CMD, sqe, dev->fd, NULL, 0, 0);
	sqe->cmd_op = DRM_POLAR_ACCEL_URING_SUBMIT;
	memcpy(sqe->cmd, &p, sizeof(p));
	io_uring_sqe_set_data(sqe, job);
	/* Handed to the kernel in batches: at polar_flush() or polar_reap(). */
	dev->unsubmitted++;
	return 0;
}


static int drm_submit(struct polar_device *dev, uint32_t queue,
		      const struct polar_cmd *cmds, uint32_t n,
		      uint64_t user_data)
{
	struct drm_polar_accel_cmd dcmds[POLAR_JOB_CMDS];
	struct drm_polar_accel_submit s = {
		.queue = queue,
		.num_cmds = n,
		.cmds = (uintptr_t)dcmds,
	};
	struct polar_fifo_entry e = { .user_data = user_data };

	if (n > POLAR_JOB_CMDS)
		return polar_fail(-EINVAL, "%s: %u commands in a job, at most "
				  "%u", dev->path, n, POLAR_JOB_CMDS);
	if (dev->submit_path == POLAR_PATH_URING)
		return drm_submit_uring(dev, queue, cmds, n, user_data);

	drm_cmds(cmds, n, dcmds);
	if (drmIoctl(dev->fd, DRM_IOCTL_POLAR_ACCEL_SUBMIT, &s))
		return polar_fail(-errno, "%s: SUBMIT to queue %u: %s",
				  dev->path, queue, drm_errno_hint(errno));
	e.seqno = s.seqno;
	if (polar_fifo_push(&dev->ioctl_jobs, &e))
		return polar_fail(-ENOMEM, "out of memory");
	return 0;
}

static int drm_reap_uring(struct polar_device *dev,
			  struct polar_completion *out, uint32_t max,
			  uint32_t min_wait)
{
	struct io_uring_cqe *cqe;
	uint32_t n = 0;
	int ret;

	ret = drm_flush(dev);
	if (ret)
		return ret;
	while (n < max) {
		if (n < min_wait)
			ret = io_uring_wait_cqe(dev->ring, &cqe);
		else
			ret = io_uring_peek_cqe(dev->ring, &cqe);
		if (ret == -EAGAIN)
			break;
		if (ret == -EINTR)
			continue;
		if (ret < 0) {
			/* What was collected is returned; the error comes next time. */
			if (n)
				break;
			return polar_fail(ret, "%s: io_uring: %s", dev->path,
					  strerror(-ret));
		}
		struct drm_uring_job *job = io_uring_cqe_get_data(cqe);

		out[n].user_data = job->user_data;
		out[n].status = cqe->res;
		free(job);
		out[n].cmd_status = 0;
		io_uring_cqe_seen(dev->ring, cqe);
		n++;
	}
	return n;
}

static int drm_reap_ioctl(struct polar_device *dev,
			  struct polar_completion *out, uint32_t max,
			  uint32_t min_wait)
{
	struct polar_fifo_entry *e;
	uint32_t n = 0;

	/* The driver completes a queue's jobs in order; wait oldest first. */
	while (n < max && (e = polar_fifo_peek(&dev->ioctl_jobs))) {
		struct drm_polar_accel_wait w = {
			.seqno = e->seqno,
			.timeout_ns = n < min_wait ? INT64_MAX : 0,
		};

		if (drmIoctl(dev->fd, DRM_IOCTL_POLAR_ACCEL_WAIT, &w)) {
			if (errno == ETIME || n)
				break;
			return polar_fail(-errno, "%s: WAIT for job %llu: %s",
					  dev->path,
					  (unsigned long long)e->seqno,
					  strerror(errno));
		}
		out[n].user_data = e->user_data;
		out[n].status = w.status;
		out[n].cmd_status = w.cmd_status;
		polar_fifo_pop(&dev->ioctl_jobs);
		n++;
	}
	return n;
}

static int drm_reap(struct polar_device *dev, struct polar_completion *out,
		    uint32_t max, uint32_t min_wait)
{
	if (dev->submit_path == POLAR_PATH_URING)
		return drm_reap_uring(dev, out, max, min_wait);
	return drm_reap_ioctl(dev, out, max, min_wait);
}

const struct polar_backend_ops polar_drm_ops = {
	.flush = drm_flush,
	.buffer_create = drm_buffer_create,
	.buffer_free = drm_buffer_free,
	.submit = drm_submit,
	.reap = drm_reap,
	.close = drm_close,
};
