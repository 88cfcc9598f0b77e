// SPDX-License-Identifier: GPL-2.0-only
/*
 * polar_accel: job submission through io_uring (IORING_OP_URING_CMD).
 *
 * The issue path copies the payload out of the SQE (it may live in the
 * ring shared with userspace), builds the job and pushes it without
 * sleeping when io_uring asks for IO_URING_F_NONBLOCK: anything that would
 * sleep returns -EAGAIN and io_uring issues again from a worker that may
 * block. The CQE is posted when the job ends. Completion and cancellation
 * (ring exit) race for the command; whoever takes job->ucmd with xchg()
 * completes it, and the job keeps a reference for the command until then.
 */

#include <drm/drm_drv.h>
#include <drm/drm_file.h>
#include <linux/io_uring/cmd.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "polar_accel_drv.h"

/* What the command's inline pdu carries between issue and completion. */
struct polar_uring_pdu {
	struct polar_job *job;
	int status;
	u16 cmd_status;
};

static struct polar_uring_pdu *polar_pdu(struct io_uring_cmd *ioucmd)
{
	return io_uring_cmd_to_pdu(ioucmd, struct polar_uring_pdu);
}

static void polar_uring_task_done(struct io_uring_cmd *ioucmd,
				  unsigned int issue_flags)
{
	struct polar_uring_pdu *pdu = polar_pdu(ioucmd);
	struct polar_job *job = pdu->job;

	/* res2 reaches rings made with IORING_SETUP_CQE32 (big_cqe[0]). */
	io_uring_cmd_done(ioucmd, pdu->status, pdu->cmd_status, issue_flags);
	polar_job_put(job);
}

/* Called when a job ends: posts its CQE unless the ring cancelled it. */
void polar_uring_complete(struct polar_job *job, int status)
{
	struct io_uring_cmd *ioucmd = xchg(&job->ucmd, NULL);

	if (!ioucmd)
		return;
	polar_pdu(ioucmd)->status = status;
	polar_pdu(ioucmd)->cmd_status = job->cmd_status;
	io_uring_cmd_complete_in_task(ioucmd, polar_uring_task_done);
}

static int polar_uring_cancel(struct io_uring_cmd *ioucmd,
			      unsigned int issue_flags)
{
	struct polar_job *job = polar_pdu(ioucmd)->job;

	/* The job goes on; only its CQE is given up. */
	if (xchg(&job->ucmd, NULL) != ioucmd)
		return 0;
	io_uring_cmd_done(ioucmd, -ECANCELED, 0, issue_flags);
	polar_job_put(job);
	return 0;
}

static int polar_uring_submit(struct io_uring_cmd *ioucmd,
			      unsigned int issue_flags)
{
	struct drm_file *file = ioucmd->file->private_data;
	struct polar_device *pdev = to_polar_device(file->minor->dev);
	bool nonblock = issue_flags & IO_URING_F_NONBLOCK;
	struct drm_polar_accel_uring_submit args;
	struct drm_polar_accel_cmd *cmds;
	struct polar_job *job;
	u32 i;
	int ret, idx;

	/* The payload fills the 80-byte command area of a 128-byte SQE. */
	if (!(issue_flags & IO_URING_F_SQE128))
		return -EINVAL;
	/* Copy once: userspace may rewrite the shared SQE meanwhile. */
	memcpy(&args, io_uring_sqe_cmd(ioucmd->sqe), sizeof(args));
	if (args.flags || args.queue >= pdev->num_queues ||
	    !args.num_cmds || args.num_cmds > POLAR_MAX_CMDS)
		return -EINVAL;
	for (i = 0; i < ARRAY_SIZE(args.rsvd); i++)
		if (args.rsvd[i])
			return -EINVAL;

	cmds = polar_cmds_from_user(args.cmds, args.num_cmds, args.cmd_stride,
				    nonblock);
	if (IS_ERR(cmds))
		return PTR_ERR(cmds);
	job = polar_job_create(pdev, file, args.queue, cmds, args.num_cmds,
			       nonblock);
	kfree(cmds);
	if (IS_ERR(job))
		return PTR_ERR(job);

	/* One reference for the command, dropped by whoever completes it. */
	kref_get(&job->refcount);
	polar_pdu(ioucmd)->job = job;
	job->ucmd = ioucmd;

	ret = polar_job_reserve(pdev, job, nonblock, &idx);
	if (ret)
		goto err;
	polar_job_publish(pdev, job);
	/*
	 * Cancelable before the device can complete it: io_uring_cmd_done()
	 * takes the command off the cancelable list, so marking it after a
	 * fast completion would leave a finished request there. Not with the
	 * BOs' reservations locked: from an io-wq worker this takes the
	 * ring's lock, under which io_uring copies from user memory
	 * (mmap_lock), and mmap of a BO takes its reservation under mmap_lock
	 * (lockdep: a circular dependency).
	 */
	io_uring_cmd_mark_cancelable(ioucmd, issue_flags);
	polar_job_commit(pdev, job, idx);
	return -EIOCBQUEUED;

err:
	job->ucmd = NULL;
	polar_job_put(job);
	polar_job_discard(pdev, job);
	/*
	 * A signal while waiting for ring space: nothing restarts a uring
	 * command, so the CQE must carry an errno userspace knows.
	 */
	return ret == -ERESTARTSYS ? -EINTR : ret;
}

int polar_uring_cmd(struct io_uring_cmd *ioucmd, unsigned int issue_flags)
{
	if (issue_flags & IO_URING_F_CANCEL)
		return polar_uring_cancel(ioucmd, issue_flags);

	switch (ioucmd->cmd_op) {
	case DRM_POLAR_ACCEL_URING_SUBMIT:
		return polar_uring_submit(ioucmd, issue_flags);
	default:
		return -ENOTTY;
	}
}
