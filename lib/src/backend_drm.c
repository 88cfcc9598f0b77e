// SPDX-License-Identifier: MIT
/*
 * The device backend: buffers are GEM buffer objects of the accel file,
 * jobs go to the driver through io_uring (IORING_OP_URING_CMD on a ring
 * with 128-byte SQEs, one ring per struct polar_device) or, as the
 * fallback and the benchmark baseline, through the SUBMIT and WAIT ioctls.
 *
 * The ring is set up for one thread that submits and reaps
 * (IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN: completions
 * are posted when that thread asks for them, not by interrupting it), with
 * its fd registered, so that one io_uring_enter() hands over every queued
 * job and waits for completions. Jobs that the kernel did not take (a
 * short submit) stay queued in the SQ ring and are handed over by the next
 * flush or reap; io_uring_enter() does not wait after a short submit, so
 * a reap never waits for a job the kernel does not hold.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <liburing.h>
#include <xf86drm.h>

#include "drm/polar_accel.h"
#include "polar_internal.h"

/* Commands per job this library sends (the driver's MAX_CMDS is 64). */
#define POLAR_JOB_CMDS 64
/* Commands a job slot holds without an allocation. */
#define POLAR_SLOT_CMDS 4

/*
 * An io_uring job's commands must stay readable until its CQE: when the
 * driver cannot issue without blocking, io_uring issues again later from
 * a worker, which reads the commands then. A job lives in one of
 * POLAR_MAX_INFLIGHT slots, whose index rides in the SQE's user_data.
 */
struct drm_uring_job {
	uint64_t user_data;
	struct drm_polar_accel_cmd *cmds;	/* inline, or allocated */
	struct drm_polar_accel_cmd inline_cmds[POLAR_SLOT_CMDS];
};

struct polar_uring_jobs {
	struct drm_uring_job slot[POLAR_MAX_INFLIGHT];
	uint32_t free[POLAR_MAX_INFLIGHT];	/* a stack of free slots */
	uint32_t nfree;
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
	uint64_t recon, design;

	c->rows = drm_param(dev, DRM_POLAR_ACCEL_PARAM_TILE_ROWS);
	c->cols = drm_param(dev, DRM_POLAR_ACCEL_PARAM_TILE_COLS);
	c->tiles = drm_param(dev, DRM_POLAR_ACCEL_PARAM_NUM_TILES);
	c->adc_bits = drm_param(dev, DRM_POLAR_ACCEL_PARAM_ADC_BITS);
	c->rows_per_conv = drm_param(dev, DRM_POLAR_ACCEL_PARAM_ROWS_PER_CONV);
	recon = drm_param(dev, DRM_POLAR_ACCEL_PARAM_RECON);
	c->recon = recon & POLAR_CIM_RECON_MODE_MASK;
	c->recon_frac_bits = (recon & POLAR_CIM_RECON_FRAC_MASK) >>
			     POLAR_CIM_RECON_FRAC_SHIFT;
	/* a driver before uapi 5 has no DESIGN: 0, the all-analog chip */
	design = drm_param(dev, DRM_POLAR_ACCEL_PARAM_DESIGN);
	dev->design.digital_planes = design & POLAR_CIM_DESIGN_DIGITAL_MASK;
	dev->design.adc_bits_msb = (design & POLAR_CIM_DESIGN_MSB_BITS_MASK) >>
				   POLAR_CIM_DESIGN_MSB_BITS_SHIFT;
	dev->design.adc_msb_levels = (design &
				      POLAR_CIM_DESIGN_MSB_LEVELS_MASK) >>
				     POLAR_CIM_DESIGN_MSB_LEVELS_SHIFT;
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

/*
 * A number that names the calling thread and no other thread of the
 * process, ever. pthread_t values and tids are reused once a thread ends
 * (glibc hands a joined thread's stack, and with it its pthread_t, to the
 * next thread it creates), and a ring set up by an ended thread answers
 * no other thread: its registered fd exists only in the ended task.
 */
static uint64_t thread_token(void)
{
	static _Atomic uint64_t last;
	static _Thread_local uint64_t token;

	if (!token)
		token = atomic_fetch_add(&last, 1) + 1;
	return token;
}

/*
 * Sets up dev's ring for the calling thread: the setup flags this pattern
 * wants when the kernel has them (SINGLE_ISSUER 6.0, DEFER_TASKRUN 6.1,
 * SUBMIT_ALL 5.18), else fewer; uring_cmd itself needs 5.19 and SQE128.
 * Registering the ring fd saves a file lookup per system call; a kernel
 * without it (before 5.18) still works through the plain fd.
 */
static int drm_ring_init(struct polar_device *dev)
{
	static const uint32_t tries[] = {
		IORING_SETUP_SQE128 | IORING_SETUP_SUBMIT_ALL |
			IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_SQE128 | IORING_SETUP_SUBMIT_ALL,
		IORING_SETUP_SQE128,
	};
	struct io_uring_params p;
	struct polar_uring_jobs *uj;
	size_t i;
	int ret = -EINVAL;

	if (!dev->ring)
		dev->ring = calloc(1, sizeof(*dev->ring));
	if (!dev->ujobs)
		dev->ujobs = calloc(1, sizeof(*dev->ujobs));
	if (!dev->ring || !dev->ujobs)
		return -ENOMEM;
	for (i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		memset(&p, 0, sizeof(p));
		p.flags = tries[i];
		ret = io_uring_queue_init_params(POLAR_MAX_INFLIGHT, dev->ring, &p);
		if (ret != -EINVAL)
			break;
	}
	if (ret)
		return ret;
	if (p.sq_entries < POLAR_MAX_INFLIGHT ||
	    p.cq_entries < POLAR_MAX_INFLIGHT) {
		io_uring_queue_exit(dev->ring);
		return -ENOSPC;
	}
	dev->ring_flags = p.flags;
	dev->ring_owner = thread_token();
	io_uring_register_ring_fd(dev->ring);
	uj = dev->ujobs;
	for (i = 0; i < POLAR_MAX_INFLIGHT; i++)
		uj->free[i] = POLAR_MAX_INFLIGHT - 1 - i;
	uj->nfree = POLAR_MAX_INFLIGHT;
	return 0;
}

/*
 * A ring with a registered fd, SINGLE_ISSUER or DEFER_TASKRUN answers only
 * the thread that set it up. A handle moves between threads (one at a
 * time) while nothing is in flight: the new thread gets a ring of its own.
 */
static int drm_ring_claim(struct polar_device *dev)
{
	int ret;

	if (dev->ring_owner == thread_token())
		return 0;
	if (dev->inflight)
		return polar_fail(-EBUSY, "%s: %u io_uring jobs in flight were "
				  "submitted by another thread; reap them there",
				  dev->path, dev->inflight);
	io_uring_queue_exit(dev->ring);
	ret = drm_ring_init(dev);
	if (ret) {
		free(dev->ring);
		dev->ring = NULL;
		dev->has_ring = 0;
		dev->submit_path = POLAR_PATH_IOCTL;
		return polar_fail(ret, "%s: io_uring setup for this thread: %s "
				  "(now on the ioctl path)", dev->path,
				  strerror(-ret));
	}
	return 0;
}

int polar_drm_open(struct polar_device *dev)
{
	drmVersionPtr ver;

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
	if ((dev->caps.features & DRM_POLAR_ACCEL_FEATURE_URING_CMD) &&
	    drm_ring_init(dev) == 0) {
		dev->has_ring = 1;
		dev->submit_path = POLAR_PATH_URING;
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
	if (dev->has_ring)
		io_uring_queue_exit(dev->ring);
	free(dev->ring);
	free(dev->ujobs);
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

/*
 * One io_uring_enter(): hands the kernel every queued SQE and, with
 * wait_nr, waits until that many CQEs are in the ring (a DEFER_TASKRUN
 * ring posts them during this call). Returns the SQEs the kernel took or
 * -errno. After a short submit the kernel returns without waiting.
 */
static int drm_ring_enter(struct polar_device *dev, uint32_t wait_nr)
{
	if (wait_nr)
		return io_uring_submit_and_wait(dev->ring, wait_nr);
	if (dev->ring_flags & IORING_SETUP_DEFER_TASKRUN)
		return io_uring_submit_and_get_events(dev->ring);
	return io_uring_submit(dev->ring);
}

/*
 * Hands every queued job to the kernel. A short submit is retried while
 * the kernel takes some; when it takes none (-EAGAIN, -EBUSY: no memory
 * for requests) the rest stay queued for a later flush or reap.
 */
static int drm_flush(struct polar_device *dev)
{
	uint32_t queued;
	int ret;

	if (dev->submit_path != POLAR_PATH_URING)
		return 0;
	ret = drm_ring_claim(dev);
	while (!ret && (queued = io_uring_sq_ready(dev->ring))) {
		ret = drm_ring_enter(dev, 0);
		if (ret == -EINTR)
			ret = 0;
		else if (ret == 0)
			ret = -EAGAIN;
		if (ret < 0)
			return polar_fail(ret, "%s: io_uring_enter took none of "
					  "%u queued jobs: %s", dev->path, queued,
					  strerror(-ret));
		ret = 0;
	}
	return ret;
}

/* One SQE per job; the kernel copies the payload when it takes the SQE. */
static int drm_submit_uring(struct polar_device *dev, uint32_t queue,
			    const struct polar_cmd *cmds, uint32_t n,
			    uint64_t user_data)
{
	struct drm_polar_accel_uring_submit p = {
		.queue = queue,
		.num_cmds = n,
	};
	struct polar_uring_jobs *uj = dev->ujobs;
	struct io_uring_sqe *sqe;
	struct drm_uring_job *job;
	uint32_t slot;
	int ret;

	ret = drm_ring_claim(dev);
	if (ret)
		return ret;
	/*
	 * polar_submit() keeps inflight below POLAR_MAX_INFLIGHT, so a slot
	 * and an SQE are free: the SQ ring holds no more jobs than are in
	 * flight.
	 */
	if (!uj->nfree)
		return polar_fail(-EBUSY, "%s: %u io_uring jobs in flight",
				  dev->path, dev->inflight);
	slot = uj->free[uj->nfree - 1];
	job = &uj->slot[slot];
	job->cmds = job->inline_cmds;
	if (n > POLAR_SLOT_CMDS) {
		job->cmds = malloc(n * sizeof(job->cmds[0]));
		if (!job->cmds)
			return polar_fail(-ENOMEM, "out of memory");
	}
	sqe = io_uring_get_sqe(dev->ring);
	if (!sqe) {
		if (job->cmds != job->inline_cmds)
			free(job->cmds);
		return polar_fail(-EBUSY, "%s: io_uring submission ring full",
				  dev->path);
	}
	uj->nfree--;
	job->user_data = user_data;
	drm_cmds(cmds, n, job->cmds);
	p.cmds = (uintptr_t)job->cmds;

	io_uring_prep_rw(IORING_OP_URING_CMD, sqe, dev->fd, NULL, 0, 0);
	sqe->cmd_op = DRM_POLAR_ACCEL_URING_SUBMIT;
	memcpy(sqe->cmd, &p, sizeof(p));
	io_uring_sqe_set_data64(sqe, slot);
	/* Handed to the kernel in batches: at polar_flush() or polar_reap(). */
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

/* Takes up to max CQEs already in the ring, without a system call. */
static uint32_t drm_take_cqes(struct polar_device *dev,
			      struct polar_completion *out, uint32_t max)
{
	struct polar_uring_jobs *uj = dev->ujobs;
	struct io_uring_cqe *cqes[32];
	uint32_t n = 0, got, i;

	while (n < max) {
		got = io_uring_peek_batch_cqe(dev->ring, cqes,
					      max - n < 32 ? max - n : 32);
		for (i = 0; i < got; i++, n++) {
			uint64_t slot = io_uring_cqe_get_data64(cqes[i]);
			struct drm_uring_job *job = &uj->slot[slot];

			out[n].user_data = job->user_data;
			out[n].status = cqes[i]->res;
			out[n].cmd_status = 0;
			if (job->cmds != job->inline_cmds)
				free(job->cmds);
			uj->free[uj->nfree++] = (uint32_t)slot;
		}
		io_uring_cq_advance(dev->ring, got);
		if (got < 32)
			break;
	}
	return n;
}

/*
 * Queued jobs go to the kernel and completions come back in one
 * io_uring_enter() per round: it takes the queued SQEs and waits for the
 * completions still missing. The wait covers queued jobs too, which is
 * safe because the kernel waits only when it took every SQE offered;
 * after a short submit it returns at once and the next round offers the
 * rest again. When it takes none (-EAGAIN, -EBUSY) the round waits only
 * for the jobs it holds. Rounds go on until min_wait completions are in
 * and at least one round has entered the kernel, so that the call flushes
 * (and, on a DEFER_TASKRUN ring, gathers what has completed).
 */
/*
 * Rounds in a row that a reap offers the queued jobs again when the
 * kernel took none of them and holds none. The first covers the race in
 * which everything the kernel held completed before the reap looked (a
 * second CPU); a kernel that keeps refusing is out of memory for requests,
 * and the reap says so instead of spinning.
 */
#define POLAR_REAP_REOFFERS 4

static int drm_reap_uring(struct polar_device *dev,
			  struct polar_completion *out, uint32_t max,
			  uint32_t min_wait)
{
	uint32_t n = 0, queued = 0, held, want, reoffers = 0;
	struct io_uring_cqe *cqe;
	int entered = 0, ret;

	ret = drm_ring_claim(dev);
	if (ret)
		return ret;
	for (;;) {
		n += drm_take_cqes(dev, out + n, max - n);
		if (n == max || (n >= min_wait && entered))
			return n;
		/* polar_reap() checked min_wait <= inflight. */
		want = n < min_wait ? min_wait - n : 0;
		ret = drm_ring_enter(dev, want);
		entered = 1;
		if (ret == -EINTR)
			continue;
		if (ret > 0)
			reoffers = 0;
		if (ret == -EAGAIN || ret == -EBUSY) {
			/* The kernel took no job: wait for those it has. */
			queued = io_uring_sq_ready(dev->ring);
			held = dev->inflight - n - queued;
			if (want > held)
				want = held;
			if (want) {
				ret = io_uring_wait_cqe_nr(dev->ring, &cqe, want);
				if (ret == -EINTR)
					continue;
			} else if (n >= min_wait) {
				ret = 0;	/* the jobs stay queued */
			} else if (!held && n + queued >= min_wait) {
				/*
				 * Every job the kernel held has completed (on
				 * a second CPU that happens before this call
				 * looks): offer the queued ones again rather
				 * than return fewer than min_wait.
				 */
				if (++reoffers <= POLAR_REAP_REOFFERS)
					continue;
				if (n)
					return n;
				return polar_fail(ret, "%s: io_uring_enter "
						  "took none of %u queued jobs "
						  "in %u rounds, and the kernel "
						  "holds none: %s", dev->path,
						  queued, reoffers,
						  strerror(-ret));
			}
		}
		if (ret < 0) {
			/* What was taken is returned; the error comes next time. */
			if (n)
				return n;
			return polar_fail(ret, "%s: io_uring_enter (%u jobs "
					  "queued): %s", dev->path, queued,
					  strerror(-ret));
		}
	}
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
