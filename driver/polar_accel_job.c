// SPDX-License-Identifier: GPL-2.0-only
/*
 * polar_accel: command queues, job submission and completion.
 *
 * A job is a list of device commands on one queue. Submission checks every
 * field and every buffer range against the submitter's BOs, builds the
 * device's scatter-gather lists from the BOs' pinned pages, and writes the
 * commands to the queue's ring. The device completes the commands of a
 * queue in order; the interrupt handler defers to a work item that reaps
 * the completion ring, and a job ends when its last command completes.
 * An ioctl job's status waits in @jobs until its submitter collects it with
 * WAIT; an io_uring job's status goes to its CQE.
 *
 * DMA: a BO is mapped once, at its first use, and stays mapped, so each job
 * syncs what its commands touch (the command's byte ranges, not the whole
 * BO: jobs on other queues may use other parts of the same BO at the same
 * time, and a bounce buffer (swiotlb) synced as a whole would overwrite
 * what the device is writing there). Before the doorbell the inputs and
 * outputs go to the device (outputs too, so that a command that fails half
 * way does not hand back stale bounce memory); when the job ends its
 * outputs come back to the CPU, before anyone is told. The rings, SG lists
 * and firmware copy are coherent allocations and need no syncs.
 *
 * Fences: every job has a dma_fence on the timeline of its queue (our own,
 * not drm_sched's: the device already schedules, runs each queue in order
 * and a reset re-runs jobs from their saved entries, so all a fence needs
 * is a seqno in ring order, handed out under the queue lock). The fence
 * goes into each BO's reservation, write usage for BOs the job writes and
 * read usage for the others, and is signalled when the job ends, with the
 * job's error if it failed (a reset, a cancel or an unbind included), so
 * that no fence is left unsignalled. Before the doorbell a job waits for
 * the fences of other devices and drivers it must honour (implicit sync: a
 * BO it reads waits for their writers, one it writes for everyone), but
 * not for this device's own: commands on one queue run in order, and
 * between queues the submitter orders its jobs itself (WAIT, CQEs), as it
 * always has, so that jobs writing disjoint parts of one BO on several
 * queues still run side by side.
 */

#include <drm/drm_drv.h>
#include <drm/drm_file.h>
#include <drm/drm_gem.h>
#include <drm/drm_gem_shmem_helper.h>
#include <drm/drm_utils.h>
#include <linux/dma-fence.h>
#include <linux/dma-mapping.h>
#include <linux/dma-resv.h>
#include <linux/interrupt.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "polar_accel_drv.h"
#include "polar_cim_cmd.h"
#include "polar_accel_trace.h"

/* Jobs a file may leave uncollected before SUBMIT says -EBUSY. */
#define POLAR_MAX_OUTSTANDING	4096

static void polar_job_release_resources(struct polar_device *pdev,
					struct polar_job *job)
{
	u32 i;

	/* The device may still write there (polar_hw_reset()): leak it. */
	if (READ_ONCE(pdev->dma_unsafe) && (job->sgl || job->num_bos)) {
		job->sgl = NULL;
		job->num_bos = 0;
	}
	for (i = 0; i < job->num_bos; i++)
		drm_gem_object_put(job->bos[i]);
	job->num_bos = 0;
	if (job->sgl)
		dma_free_coherent(pdev->drm.dev, job->sgl_size, job->sgl,
				  job->sgl_dma);
	job->sgl = NULL;
	kfree(job->sqes);
	job->sqes = NULL;
}

static void polar_job_free(struct kref *kref)
{
	struct polar_job *job = container_of(kref, struct polar_job, refcount);

	/* A fence never committed is plain memory; a committed one is shared. */
	if (job->fence && job->fence->base.ops)
		dma_fence_put(&job->fence->base);
	else
		kfree(job->fence);
	kfree(job);
}

/* ---- fences and DMA syncs -------------------------------------------------- */

static const char *polar_fence_driver_name(struct dma_fence *fence)
{
	return DRIVER_NAME;
}

static const char *polar_fence_timeline_name(struct dma_fence *fence)
{
	/* Not the device's: the fence may outlive it. */
	return "polar_accel-queue";
}

static const struct dma_fence_ops polar_fence_ops = {
	.get_driver_name = polar_fence_driver_name,
	.get_timeline_name = polar_fence_timeline_name,
};

static bool polar_fence_is_ours(struct polar_device *pdev,
				struct dma_fence *fence)
{
	return fence->ops == &polar_fence_ops &&
	       fence->context - pdev->fence_context < pdev->num_queues;
}

/*
 * Syncs the byte ranges of the job's commands (their SG entries): to the
 * device, inputs and outputs, before the doorbell; to the CPU, outputs,
 * when the job has ended.
 */
static void polar_job_sync(struct polar_device *pdev, struct polar_job *job,
			   bool for_cpu)
{
	struct device *dev = pdev->drm.dev;
	u32 i, b, e;

	if (!job->sgl || !job->sqes)
		return;
	for (i = 0; i < job->num_cmds; i++) {
		const struct polar_cim_sqe *sqe = &job->sqes[i];
		const u64 sgl[2] = { le64_to_cpu(sqe->src_sgl),
				     le64_to_cpu(sqe->dst_sgl) };
		const u32 nsge[2] = { le16_to_cpu(sqe->src_nsge),
				      le16_to_cpu(sqe->dst_nsge) };

		for (b = 0; b < 2; b++) {
			const struct polar_cim_sge *sge;

			/* The CPU gets back only what the device wrote. */
			if (!nsge[b] || (for_cpu && !b))
				continue;
			sge = job->sgl + (sgl[b] - job->sgl_dma) / sizeof(*sge);
			for (e = 0; e < nsge[b]; e++) {
				dma_addr_t addr = le64_to_cpu(sge[e].addr);
				size_t len = le32_to_cpu(sge[e].len);

				if (for_cpu)
					dma_sync_single_for_cpu(dev, addr, len,
								DMA_FROM_DEVICE);
				else
					dma_sync_single_for_device(dev, addr, len,
								   b ? DMA_BIDIRECTIONAL :
								   DMA_TO_DEVICE);
			}
		}
	}
}

/* Locks the reservations of the job's BOs; a non-blocking caller tries. */
static int polar_job_lock_bos(struct polar_job *job, bool nonblock)
{
	u32 i;
	int ret;

	if (!job->num_bos)
		return 0;
	if (!nonblock) {
		ret = drm_gem_lock_reservations(job->bos, job->num_bos,
						&job->acquire);
		if (ret)
			return ret;
		job->bos_ww = true;
		job->bos_locked = true;
		return 0;
	}
	for (i = 0; i < job->num_bos; i++) {
		if (!dma_resv_trylock(job->bos[i]->resv)) {
			while (i--)
				dma_resv_unlock(job->bos[i]->resv);
			return -EAGAIN;
		}
	}
	job->bos_ww = false;
	job->bos_locked = true;
	return 0;
}

static void polar_job_unlock_bos(struct polar_job *job)
{
	u32 i;

	if (!job->bos_locked)
		return;
	job->bos_locked = false;
	if (job->bos_ww) {
		drm_gem_unlock_reservations(job->bos, job->num_bos,
					    &job->acquire);
		return;
	}
	for (i = 0; i < job->num_bos; i++)
		dma_resv_unlock(job->bos[i]->resv);
}

/*
 * With the BOs locked: makes room for the job's fence in every
 * reservation and looks for a fence of another device or driver the job
 * must wait for (implicit sync). Returns 0, a -errno, or 1 with a
 * reference to that fence in @dep.
 */
static int polar_job_prepare_bos(struct polar_device *pdev,
				 struct polar_job *job, struct dma_fence **dep)
{
	struct dma_resv_iter cursor;
	struct dma_fence *fence;
	u32 i;
	int ret;

	for (i = 0; i < job->num_bos; i++) {
		struct dma_resv *resv = job->bos[i]->resv;

		ret = dma_resv_reserve_fences(resv, 1);
		if (ret)
			return ret;
		dma_resv_for_each_fence(&cursor, resv,
					dma_resv_usage_rw(job->bo_written[i]),
					fence) {
			if (polar_fence_is_ours(pdev, fence) ||
			    dma_fence_is_signaled(fence))
				continue;
			*dep = dma_fence_get(fence);
			return 1;
		}
	}
	return 0;
}

void polar_job_put(struct polar_job *job)
{
	kref_put(&job->refcount, polar_job_free);
}

static int polar_status_to_errno(u16 status)
{
	switch (status) {
	case POLAR_CIM_ST_OK:
		return 0;
	case POLAR_CIM_ST_TILE_RANGE:
		return -ERANGE;
	case POLAR_CIM_ST_NOT_PROGRAMMED:
		return -ENOENT;
	case POLAR_CIM_ST_NO_FIRMWARE:
		return -ENODEV;
	case POLAR_CIM_ST_BAD_OPCODE:
	case POLAR_CIM_ST_BAD_FIELD:
		return -EINVAL;
	default:
		return -EIO;
	}
}

/*
 * Ends a job that is on no queue any more: releases what it holds, records
 * its status and tells its submitter, then drops the queue's reference (the
 * one polar_job_create() returned). A job whose file is gone is dropped
 * from @jobs here. The caller must not touch the job afterwards.
 */
void polar_job_finish(struct polar_device *pdev, struct polar_job *job,
		      int status)
{
	bool orphan = false;

	trace_polar_job_complete(job->seqno, job->queue, status,
				 job->cmd_status);
	/* The outputs are the CPU's before anyone learns the job ended. */
	polar_job_sync(pdev, job, true);
	if (job->fence && job->fence->base.ops) {
		if (status)
			dma_fence_set_error(&job->fence->base, status);
		dma_fence_signal(&job->fence->base);
	}
	polar_job_release_resources(pdev, job);
	xa_lock(&pdev->jobs);
	job->status = status;
	WRITE_ONCE(job->done, true);
	if (job->in_xa && !job->owner) {
		__xa_erase(&pdev->jobs, job->seqno);
		orphan = true;
	}
	xa_unlock(&pdev->jobs);
	polar_uring_complete(job, status);
	wake_up_all(&pdev->job_wq);
	if (orphan)
		polar_job_put(job);
	polar_job_put(job);
}

/* ---- completion ------------------------------------------------------- */

static struct polar_job *polar_queue_find(struct polar_queue *q, u32 tag)
{
	struct polar_job *job;

	list_for_each_entry(job, &q->pending, node)
		if (lower_32_bits(job->seqno) == tag)
			return job;
	return NULL;
}

/* Called with q->lock held, for each completion read from the ring. */
static void polar_queue_complete_one(struct polar_device *pdev, u32 qid,
				     u32 tag, u16 status)
{
	struct polar_queue *q = &pdev->queues[qid];
	struct polar_job *job, *head;

	job = polar_queue_find(q, tag);
	if (!job) {
		/* A corrupted completion: its job is lost (see below). */
		atomic_inc(&pdev->lost_completions);
		drm_err(&pdev->drm, "queue %u: completion tag %#x matches no job\n",
			qid, tag);
		return;
	}
	/*
	 * The device runs a queue's commands in order, so a completion for a
	 * later job means the commands of the jobs before it will never
	 * complete: their completions were lost.
	 */
	while ((head = list_first_entry(&q->pending, struct polar_job, node)) !=
	       job) {
		drm_err(&pdev->drm, "queue %u: job %llu lost its completion\n",
			qid, head->seqno);
		q->inflight_cmds -= head->remaining;
		list_del(&head->node);
		polar_job_finish(pdev, head, -EIO);
	}
	if (status && !job->cmd_status)
		job->cmd_status = status;
	q->inflight_cmds--;
	if (--job->remaining)
		return;
	list_del(&job->node);
	polar_job_finish(pdev, job, polar_status_to_errno(job->cmd_status));
}

/* Consumes the completions the device posted; the caller holds q->lock. */
bool polar_queue_reap_locked(struct polar_device *pdev, u32 qid)
{
	struct polar_queue *q = &pdev->queues[qid];
	bool reaped = false;

	for (;;) {
		struct polar_cim_cqe *cqe = &q->cq[q->cq_head];

		if ((le16_to_cpu(READ_ONCE(cqe->phase)) & 1) != q->phase)
			break;
		dma_rmb();
		q->cq_head = (q->cq_head + 1) % POLAR_QUEUE_ENTRIES;
		if (!q->cq_head)
			q->phase ^= 1;
		reaped = true;
		polar_queue_complete_one(pdev, qid, le32_to_cpu(cqe->tag),
					 le16_to_cpu(cqe->status));
	}
	if (reaped) {
		q->last_activity = jiffies;
		polar_reg_write(pdev, POLAR_CIM_REG_Q(qid, POLAR_CIM_Q_CQ_HEAD),
				q->cq_head);
	}
	return reaped;
}

static void polar_queue_reap(struct polar_device *pdev, u32 qid)
{
	struct polar_queue *q = &pdev->queues[qid];
	bool reaped;

	mutex_lock(&q->lock);
	reaped = polar_queue_reap_locked(pdev, qid);
	mutex_unlock(&q->lock);
	if (reaped)
		wake_up_all(&pdev->job_wq);
}

static void polar_complete_work(struct work_struct *work)
{
	struct polar_device *pdev = container_of(work, struct polar_device,
						 complete_work);
	u32 qid;

	for (qid = 0; qid < pdev->num_queues; qid++)
		polar_queue_reap(pdev, qid);
}

/* An error event (INT_ERROR), already acknowledged. */
static void polar_irq_error(struct polar_device *pdev)
{
	u32 code, queue;

	code = polar_reg_read(pdev, POLAR_CIM_REG_ERROR_CODE);
	queue = polar_reg_read(pdev, POLAR_CIM_REG_ERROR_QUEUE);
	drm_err(&pdev->drm, "device error %u on queue %u\n", code, queue);
	/* A stopped sequencer needs a reset; its current job is guilty. */
	if (polar_reg_read(pdev, POLAR_CIM_REG_STATUS) & POLAR_CIM_STATUS_FATAL)
		polar_recovery_schedule(pdev, queue, -EIO);
}

/*
 * MSI-X vector q: queue q posted a completion. Only bit q is the vector's
 * to acknowledge (hw/README.md section 7.5), before the reap, so that a
 * completion posted meanwhile raises the vector again rather than being
 * lost; another queue's bit is its own vector's. The vector is ours alone:
 * a message whose completions an earlier reap took is not spurious.
 */
static irqreturn_t polar_queue_irq(int irq, void *arg)
{
	struct polar_queue *q = arg;

	polar_reg_write(q->pdev, POLAR_CIM_REG_INT_STATUS, BIT(q->qid));
	queue_work(system_highpri_wq, &q->pdev->complete_work);
	return IRQ_HANDLED;
}

/* MSI-X vector NUM_QUEUES: an error, or the end of a firmware boot. */
static irqreturn_t polar_misc_irq(int irq, void *arg)
{
	struct polar_device *pdev = arg;
	u32 status;

	status = polar_reg_read(pdev, POLAR_CIM_REG_INT_STATUS);
	if (status == U32_MAX)
		return IRQ_NONE;
	status &= POLAR_CIM_INT_FW | POLAR_CIM_INT_ERROR;
	if (!status)
		return IRQ_NONE;
	polar_reg_write(pdev, POLAR_CIM_REG_INT_STATUS, status);
	if (status & POLAR_CIM_INT_ERROR) {
		polar_irq_error(pdev);
		/* The failed command's completion, if it posted one. */
		queue_work(system_highpri_wq, &pdev->complete_work);
	}
	return IRQ_HANDLED;
}

/*
 * INTx, maybe shared with other devices: ours are the unmasked events
 * (hw/README.md section 7.1), all acknowledged here.
 */
static irqreturn_t polar_intx_irq(int irq, void *arg)
{
	struct polar_device *pdev = arg;
	u32 status;

	status = polar_reg_read(pdev, POLAR_CIM_REG_INT_STATUS);
	if (status == U32_MAX)
		return IRQ_NONE;
	status &= ~polar_reg_read(pdev, POLAR_CIM_REG_INT_MASK);
	if (!status)
		return IRQ_NONE;
	polar_reg_write(pdev, POLAR_CIM_REG_INT_STATUS, status);
	if (status & POLAR_CIM_INT_ERROR)
		polar_irq_error(pdev);
	if (status & ~POLAR_CIM_INT_FW)
		queue_work(system_highpri_wq, &pdev->complete_work);
	return IRQ_HANDLED;
}

/* ---- setup ------------------------------------------------------------- */

/* Points the device at the rings, empty; callers hold every queue lock. */
void polar_queues_hw_init(struct polar_device *pdev)
{
	u32 qid;

	for (qid = 0; qid < pdev->num_queues; qid++) {
		struct polar_queue *q = &pdev->queues[qid];

		memset(q->cq, 0, POLAR_QUEUE_ENTRIES * sizeof(*q->cq));
		q->sq_tail = 0;
		q->cq_head = 0;
		q->phase = 1;
		q->inflight_cmds = 0;
		polar_reg_write(pdev, POLAR_CIM_REG_Q(qid, POLAR_CIM_Q_SQ_BASE_LO),
				lower_32_bits(q->sq_dma));
		polar_reg_write(pdev, POLAR_CIM_REG_Q(qid, POLAR_CIM_Q_SQ_BASE_HI),
				upper_32_bits(q->sq_dma));
		polar_reg_write(pdev, POLAR_CIM_REG_Q(qid, POLAR_CIM_Q_CQ_BASE_LO),
				lower_32_bits(q->cq_dma));
		polar_reg_write(pdev, POLAR_CIM_REG_Q(qid, POLAR_CIM_Q_CQ_BASE_HI),
				upper_32_bits(q->cq_dma));
		polar_reg_write(pdev, POLAR_CIM_REG_Q(qid, POLAR_CIM_Q_SIZE),
				POLAR_QUEUE_ENTRIES);
		polar_reg_write(pdev, POLAR_CIM_REG_Q(qid, POLAR_CIM_Q_CTRL),
				POLAR_CIM_Q_CTRL_ENABLE);
	}
	polar_reg_write(pdev, POLAR_CIM_REG_INT_MASK, 0);
}

/*
 * One lockdep class per queue index: the recovery holds every queue lock
 * at once, always in index order, which lockdep would otherwise report as
 * recursive locking of one class.
 */
static struct lock_class_key polar_queue_lock_keys[POLAR_CIM_MAX_QUEUES];

int polar_queues_init(struct polar_device *pdev)
{
	struct device *dev = pdev->drm.dev;
	u32 qid;

	xa_init(&pdev->jobs);
	init_waitqueue_head(&pdev->job_wq);
	pdev->fence_context = dma_fence_context_alloc(pdev->num_queues);
	INIT_WORK(&pdev->complete_work, polar_complete_work);

	for (qid = 0; qid < pdev->num_queues; qid++) {
		struct polar_queue *q = &pdev->queues[qid];

		q->pdev = pdev;
		q->qid = qid;
		mutex_init(&q->lock);
		lockdep_set_class(&q->lock, &polar_queue_lock_keys[qid]);
		INIT_LIST_HEAD(&q->pending);
		q->sq = dmam_alloc_coherent(dev, POLAR_QUEUE_ENTRIES *
					    sizeof(*q->sq), &q->sq_dma,
					    GFP_KERNEL);
		q->cq = dmam_alloc_coherent(dev, POLAR_QUEUE_ENTRIES *
					    sizeof(*q->cq), &q->cq_dma,
					    GFP_KERNEL);
		if (!q->sq || !q->cq)
			return -ENOMEM;
	}
	polar_queues_hw_init(pdev);
	for (qid = 0; qid < pdev->num_queues; qid++) {
		if (!(polar_reg_read(pdev, POLAR_CIM_REG_Q(qid, POLAR_CIM_Q_STATUS)) &
		      POLAR_CIM_Q_STATUS_ENABLED)) {
			drm_err(&pdev->drm, "queue %u did not enable\n", qid);
			return -EIO;
		}
	}
	return 0;
}

/* What vector @i's handler gets: its queue, or the device. */
static void *polar_irq_arg(struct polar_device *pdev, int i)
{
	struct pci_dev *pci = to_pci_dev(pdev->drm.dev);

	return pci->msix_enabled && i < pdev->num_queues ?
	       (void *)&pdev->queues[i] : (void *)pdev;
}

int polar_irqs_init(struct polar_device *pdev)
{
	struct pci_dev *pci = to_pci_dev(pdev->drm.dev);
	int nvec = pdev->num_queues + 1;
	irq_handler_t handler;
	int i, ret;

	/*
	 * Queue q signals on MSI-X vector q, errors on vector NUM_QUEUES
	 * (hw/README.md section 6): with fewer vectors some queues' messages
	 * would go nowhere. So all of them, or a single INTx.
	 */
	ret = pci_alloc_irq_vectors(pci, nvec, nvec, PCI_IRQ_MSIX);
	if (ret < 0)
		ret = pci_alloc_irq_vectors(pci, 1, 1, PCI_IRQ_INTX);
	if (ret < 0)
		return ret;
	pdev->num_irqs = ret;
	for (i = 0; i < pdev->num_irqs; i++) {
		if (!pci->msix_enabled)
			handler = polar_intx_irq;
		else if (i < pdev->num_queues)
			handler = polar_queue_irq;
		else
			handler = polar_misc_irq;
		ret = request_irq(pci_irq_vector(pci, i), handler,
				  pci->msix_enabled ? 0 : IRQF_SHARED,
				  DRIVER_NAME, polar_irq_arg(pdev, i));
		if (ret) {
			while (--i >= 0)
				free_irq(pci_irq_vector(pci, i),
					 polar_irq_arg(pdev, i));
			pci_free_irq_vectors(pci);
			pdev->num_irqs = 0;
			return ret;
		}
	}
	drm_info(&pdev->drm, "%d %s interrupt vector(s)\n", pdev->num_irqs,
		 pci->msix_enabled ? "MSI-X" : "INTx");
	return 0;
}

void polar_irqs_fini(struct polar_device *pdev)
{
	struct pci_dev *pci = to_pci_dev(pdev->drm.dev);
	int i;

	polar_reg_write(pdev, POLAR_CIM_REG_INT_MASK, U32_MAX);
	for (i = 0; i < pdev->num_irqs; i++)
		free_irq(pci_irq_vector(pci, i), polar_irq_arg(pdev, i));
	if (pdev->num_irqs)
		pci_free_irq_vectors(pci);
	pdev->num_irqs = 0;
	cancel_work_sync(&pdev->complete_work);
}

/* Fails every job still on a queue; the device must be quiet (reset). */
void polar_jobs_abort_all(struct polar_device *pdev, int err)
{
	struct polar_job *job, *tmp;
	u32 qid;

	for (qid = 0; qid < pdev->num_queues; qid++) {
		struct polar_queue *q = &pdev->queues[qid];

		mutex_lock(&q->lock);
		list_for_each_entry_safe(job, tmp, &q->pending, node) {
			list_del(&job->node);
			polar_job_finish(pdev, job, err);
		}
		q->inflight_cmds = 0;
		mutex_unlock(&q->lock);
	}
}

void polar_jobs_file_close(struct polar_device *pdev, struct polar_file *pfile)
{
	struct polar_job *job;
	unsigned long index;

	xa_lock(&pdev->jobs);
	xa_for_each(&pdev->jobs, index, job) {
		if (job->owner != pfile)
			continue;
		job->owner = NULL;
		/* A finished job dies here; a running one when it ends. */
		if (job->done) {
			__xa_erase(&pdev->jobs, index);
			polar_job_put(job);
		}
	}
	xa_unlock(&pdev->jobs);
}

/* ---- building a job ---------------------------------------------------- */

static bool polar_buf_is_zero(const struct drm_polar_accel_buf *buf)
{
	return !buf->handle && !buf->pad && !buf->offset && !buf->size;
}

/*
 * Bytes a command reads from src and writes to dst; -errno if invalid. The
 * rules are the ABI's, shared with the library's software backend.
 */
static int polar_cmd_check(struct polar_device *pdev,
			   const struct drm_polar_accel_cmd *cmd,
			   u64 *src_len, u64 *dst_len)
{
	const struct polar_cim_cmd_limits lim = {
		.rows = pdev->rows, .cols = pdev->cols, .tiles = pdev->tiles,
		.max_batch = pdev->max_batch,
		.rows_per_conv = pdev->rows_per_conv,
	};
	const struct polar_cim_cmd_fields f = {
		.opcode = cmd->opcode, .wfmt = cmd->wfmt, .xfmt = cmd->xfmt,
		.src_empty = polar_buf_is_zero(&cmd->src),
		.dst_empty = polar_buf_is_zero(&cmd->dst),
		.tile0 = cmd->tile0, .rows_per_conv = cmd->rows_per_conv,
		.in_dim = cmd->in_dim, .out_dim = cmd->out_dim,
		.batch = cmd->batch, .adc_fs_q8 = cmd->adc_fs_q8,
		.job_seed = cmd->job_seed,
	};
	const char *why = NULL;
	int ret;

	*src_len = 0;
	*dst_len = 0;
	if (cmd->pad0 || cmd->pad1 || cmd->src.pad || cmd->dst.pad)
		return -EINVAL;
	ret = polar_cim_cmd_check(&f, &lim, src_len, dst_len, &why);
	if (ret)
		drm_dbg_driver(&pdev->drm, "command refused: %s\n", why);
	return ret;
}

/*
 * Looks up a buffer's BO for the job (one reference, kept until the job
 * ends), checks the range and pins and maps its pages. Mapping may sleep,
 * so a non-blocking caller gets -EAGAIN for a BO no job has used yet.
 */
static int polar_job_add_buf(struct drm_file *file, struct polar_job *job,
			     const struct drm_polar_accel_buf *buf, u64 need,
			     bool written, bool nonblock, struct sg_table **sgt)
{
	struct drm_gem_shmem_object *shmem;
	struct drm_gem_object *obj;
	u32 i;

	if (buf->size < need || !buf->size)
		return -EINVAL;
	obj = drm_gem_object_lookup(file, buf->handle);
	if (!obj)
		return -ENOENT;
	/* Once each: a reservation is locked once, and gets one fence. */
	for (i = 0; i < job->num_bos && job->bos[i] != obj; i++)
		;
	if (i < job->num_bos)
		drm_gem_object_put(obj);
	else
		job->bos[job->num_bos++] = obj;
	job->bo_written[i] |= written;
	if (buf->offset >= obj->size || buf->size > obj->size - buf->offset)
		return -ERANGE;
	shmem = to_drm_gem_shmem_obj(obj);
	if (nonblock) {
		*sgt = READ_ONCE(shmem->sgt);
		return *sgt ? 0 : -EAGAIN;
	}
	*sgt = drm_gem_shmem_get_pages_sgt(shmem);
	if (IS_ERR(*sgt))
		return PTR_ERR(*sgt);
	return 0;
}

/* Entries describing [offset, offset + size) of a mapped sg_table. */
static u32 polar_sgl_fill(struct sg_table *sgt, u64 offset, u64 size,
			  struct polar_cim_sge *out)
{
	struct scatterlist *sg;
	u32 n = 0;
	int i;

	for_each_sgtable_dma_sg(sgt, sg, i) {
		u64 len = sg_dma_len(sg);
		u64 chunk;

		if (offset >= len) {
			offset -= len;
			continue;
		}
		chunk = min(len - offset, size);
		if (out) {
			out[n].addr = cpu_to_le64(sg_dma_address(sg) + offset);
			out[n].len = cpu_to_le32(chunk);
			out[n].rsvd = 0;
		}
		n++;
		size -= chunk;
		offset = 0;
		if (!size)
			break;
	}
	return n;
}

/*
 * @len: bytes the command touches, from the buffer's offset: the SG list
 * covers those, not the whole range the user named (which may be larger,
 * and then cost entries, memory and -E2BIG for nothing).
 */
struct polar_cmd_bufs {
	struct sg_table *sgt[2];
	u64 len[2];
	u32 nsge[2];
	u32 first[2];
};

static void polar_sqe_fill(struct polar_job *job,
			   const struct drm_polar_accel_cmd *cmd,
			   const struct polar_cmd_bufs *bufs,
			   struct polar_cim_sqe *sqe)
{
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = cmd->opcode;
	sqe->tag = cpu_to_le32(lower_32_bits(job->seqno));
	sqe->tile0 = cpu_to_le16(cmd->tile0);
	sqe->wfmt = cmd->wfmt;
	sqe->xfmt = cmd->xfmt;
	sqe->in_dim = cpu_to_le32(cmd->in_dim);
	sqe->out_dim = cpu_to_le32(cmd->out_dim);
	sqe->batch = cpu_to_le32(cmd->batch);
	sqe->adc_fs_q8 = cpu_to_le32(cmd->adc_fs_q8);
	sqe->rows_per_conv = cpu_to_le16(cmd->rows_per_conv);
	sqe->job_seed = cpu_to_le32(cmd->job_seed);
	if (bufs->sgt[0]) {
		sqe->src_sgl = cpu_to_le64(job->sgl_dma + bufs->first[0] *
					   sizeof(*job->sgl));
		sqe->src_nsge = cpu_to_le16(bufs->nsge[0]);
	}
	if (bufs->sgt[1]) {
		sqe->dst_sgl = cpu_to_le64(job->sgl_dma + bufs->first[1] *
					   sizeof(*job->sgl));
		sqe->dst_nsge = cpu_to_le16(bufs->nsge[1]);
	}
}

static int polar_job_build(struct polar_device *pdev, struct drm_file *file,
			   struct polar_job *job,
			   const struct drm_polar_accel_cmd *cmds,
			   struct polar_cmd_bufs *bufs, bool nonblock)
{
	gfp_t gfp = nonblock ? GFP_NOWAIT : GFP_KERNEL;
	u32 i, b, total = 0;
	int ret;

	for (i = 0; i < job->num_cmds; i++) {
		const struct drm_polar_accel_buf *buf[2] = {
			&cmds[i].src, &cmds[i].dst };
		u64 len[2];

		ret = polar_cmd_check(pdev, &cmds[i], &len[0], &len[1]);
		if (ret)
			return ret;
		for (b = 0; b < 2; b++) {
			bufs[i].sgt[b] = NULL;
			bufs[i].nsge[b] = 0;
			if (!len[b])
				continue;
			ret = polar_job_add_buf(file, job, buf[b], len[b],
						b == 1, nonblock,
						&bufs[i].sgt[b]);
			if (ret)
				return ret;
			bufs[i].len[b] = len[b];
			bufs[i].nsge[b] = polar_sgl_fill(bufs[i].sgt[b],
							 buf[b]->offset,
							 len[b], NULL);
			if (!bufs[i].nsge[b] ||
			    bufs[i].nsge[b] > POLAR_CIM_MAX_SGE)
				return -E2BIG;
			bufs[i].first[b] = total;
			total += bufs[i].nsge[b];
		}
	}
	if (total) {
		job->sgl_size = total * sizeof(*job->sgl);
		job->sgl = dma_alloc_coherent(pdev->drm.dev, job->sgl_size,
					      &job->sgl_dma, gfp);
		if (!job->sgl)
			return nonblock ? -EAGAIN : -ENOMEM;
	}
	job->sqes = kmalloc_array(job->num_cmds, sizeof(*job->sqes),
				  gfp | __GFP_ACCOUNT);
	if (!job->sqes)
		return nonblock ? -EAGAIN : -ENOMEM;
	for (i = 0; i < job->num_cmds; i++) {
		const struct drm_polar_accel_buf *buf[2] = {
			&cmds[i].src, &cmds[i].dst };

		for (b = 0; b < 2; b++)
			if (bufs[i].sgt[b])
				polar_sgl_fill(bufs[i].sgt[b], buf[b]->offset,
					       bufs[i].len[b],
					       job->sgl + bufs[i].first[b]);
		polar_sqe_fill(job, &cmds[i], &bufs[i], &job->sqes[i]);
	}
	return 0;
}

/*
 * Copies @num commands, @stride bytes apart, from userspace (SUBMIT, the
 * io_uring payload), or returns ERR_PTR(-errno). A stride larger than our
 * struct is a newer caller's: its tail must be zero (-EINVAL otherwise, a
 * field we do not know). With @nonblock nothing sleeps: what would (a
 * fault, a newer caller's tail) returns -EAGAIN.
 */
struct drm_polar_accel_cmd *polar_cmds_from_user(u64 uptr, u32 num,
						 u32 stride, bool nonblock)
{
	struct drm_polar_accel_cmd *cmds;
	u32 i;
	int ret = 0;

	BUILD_BUG_ON(sizeof(*cmds) != DRM_POLAR_ACCEL_CMD_SIZE_V1);
	if (!stride)
		stride = DRM_POLAR_ACCEL_CMD_SIZE_V1;
	if (stride < sizeof(*cmds) || stride > DRM_POLAR_ACCEL_MAX_CMD_STRIDE)
		return ERR_PTR(-EINVAL);
	if (nonblock && stride > sizeof(*cmds))
		return ERR_PTR(-EAGAIN);
	cmds = kmalloc_array(num, sizeof(*cmds),
			     nonblock ? GFP_NOWAIT : GFP_KERNEL);
	if (!cmds)
		return ERR_PTR(nonblock ? -EAGAIN : -ENOMEM);
	for (i = 0; i < num && !ret; i++) {
		void __user *src = u64_to_user_ptr(uptr + (u64)i * stride);

		if (nonblock) {
			ret = copy_from_user_nofault(&cmds[i], src,
						     sizeof(*cmds)) ? -EAGAIN : 0;
			continue;
		}
		if (copy_from_user(&cmds[i], src, sizeof(*cmds))) {
			ret = -EFAULT;
		} else if (stride > sizeof(*cmds)) {
			ret = check_zeroed_user(src + sizeof(*cmds),
						stride - sizeof(*cmds));
			ret = ret < 0 ? ret : ret ? 0 : -EINVAL;
		}
	}
	if (ret) {
		kfree(cmds);
		return ERR_PTR(ret);
	}
	return cmds;
}

/*
 * Makes a job from validated user commands, or returns ERR_PTR(-errno).
 * With @nonblock nothing sleeps: whatever would returns -EAGAIN.
 */
struct polar_job *polar_job_create(struct polar_device *pdev,
				   struct drm_file *file, u32 queue,
				   const struct drm_polar_accel_cmd *cmds,
				   u32 num_cmds, bool nonblock)
{
	gfp_t gfp = nonblock ? GFP_NOWAIT : GFP_KERNEL;
	struct polar_cmd_bufs *bufs;
	struct polar_job *job;
	int ret;

	if (queue >= pdev->num_queues || !num_cmds || num_cmds > POLAR_MAX_CMDS)
		return ERR_PTR(-EINVAL);
	bufs = kcalloc(num_cmds, sizeof(*bufs), gfp);
	/*
	 * A job lives until collected, and a file may keep 4096: charge it
	 * to the submitter's memory cgroup. (Its SG list comes from
	 * dma_alloc_coherent(), which cgroups do not account.)
	 */
	job = kzalloc(sizeof(*job), gfp | __GFP_ACCOUNT);
	if (job)
		job->fence = kzalloc(sizeof(*job->fence), gfp | __GFP_ACCOUNT);
	if (!bufs || !job || !job->fence) {
		ret = nonblock ? -EAGAIN : -ENOMEM;
		goto err;
	}
	kref_init(&job->refcount);
	INIT_LIST_HEAD(&job->node);
	job->queue = queue;
	job->num_cmds = num_cmds;
	job->remaining = num_cmds;
	job->seqno = atomic64_inc_return(&pdev->next_seqno);
	ret = polar_job_build(pdev, file, job, cmds, bufs, nonblock);
	if (ret)
		goto err;
	kfree(bufs);
	return job;
err:
	if (job) {
		polar_job_release_resources(pdev, job);
		kfree(job->fence);
		kfree(job);
	}
	kfree(bufs);
	return ERR_PTR(ret);
}

/* Drops a job that never reached the device: its queue reference. */
void polar_job_discard(struct polar_device *pdev, struct polar_job *job)
{
	polar_job_release_resources(pdev, job);
	polar_job_put(job);
}

/* ---- pushing to the rings ------------------------------------------------ */

/* Writes a job's entries at the SQ tail; the caller holds q->lock. */
void polar_queue_write_job(struct polar_device *pdev, struct polar_queue *q,
			   struct polar_job *job)
{
	u32 i;

	for (i = 0; i < job->num_cmds; i++) {
		q->sq[q->sq_tail] = job->sqes[i];
		q->sq_tail = (q->sq_tail + 1) % POLAR_QUEUE_ENTRIES;
	}
	if (list_empty(&q->pending))
		q->last_activity = jiffies;
	q->inflight_cmds += job->num_cmds;
	job->remaining = job->num_cmds;
	job->cmd_status = 0;
}

/*
 * Ring space, unplug or a dead device: a hint only, read without q->lock,
 * because a mutex may not be taken inside a wait_event() condition (the
 * task is no longer TASK_RUNNING there). polar_job_reserve() checks again
 * under the lock.
 */
static bool polar_reserve_may_go(struct polar_device *pdev,
				 struct polar_job *job)
{
	struct polar_queue *q = &pdev->queues[job->queue];

	return READ_ONCE(q->inflight_cmds) + job->num_cmds <
	       POLAR_QUEUE_ENTRIES || drm_dev_is_unplugged(&pdev->drm) ||
	       READ_ONCE(pdev->dead);
}

/*
 * Waits for ring space for the job, unless @nonblock (then -EAGAIN), then
 * enters the device (drm_dev_enter(), its index in @idx), takes the job's
 * queue lock and locks its BOs' reservations, once no fence of another
 * device the job must honour is pending on them. Every wait (ring space,
 * such a fence) happens outside drm_dev_enter() and the locks: unbind's
 * drm_dev_unplug() waits for every entered section, and a ring that can
 * only drain through a recovery (which does not run after unplug) would
 * hang it. polar_remove() wakes the waiters, which then see -ENODEV.
 * polar_job_publish() and polar_job_commit() hand the job over, unlock and
 * exit; in between the caller may prepare for its completion.
 */
int polar_job_reserve(struct polar_device *pdev, struct polar_job *job,
		      bool nonblock, int *idx)
{
	struct polar_queue *q = &pdev->queues[job->queue];
	struct dma_fence *dep;
	long waited;
	int ret;

	for (;;) {
		if (!nonblock) {
			ret = wait_event_interruptible(pdev->job_wq,
						       polar_reserve_may_go(pdev, job));
			if (ret)
				return ret;
		}
		if (!drm_dev_enter(&pdev->drm, idx))
			return -ENODEV;
		if (nonblock) {
			if (!mutex_trylock(&q->lock)) {
				drm_dev_exit(*idx);
				return -EAGAIN;
			}
		} else {
			mutex_lock(&q->lock);
		}
		if (READ_ONCE(pdev->dead)) {
			mutex_unlock(&q->lock);
			drm_dev_exit(*idx);
			/* A dead device gets another chance to come back. */
			polar_recovery_schedule(pdev, -1, 0);
			return -EIO;
		}
		if (q->inflight_cmds + job->num_cmds >= POLAR_QUEUE_ENTRIES) {
			mutex_unlock(&q->lock);
			drm_dev_exit(*idx);
			if (nonblock)
				return -EAGAIN;
			continue;
		}
		dep = NULL;
		ret = polar_job_lock_bos(job, nonblock);
		if (!ret) {
			ret = polar_job_prepare_bos(pdev, job, &dep);
			if (ret)
				polar_job_unlock_bos(job);
		}
		if (!ret)
			return 0;
		mutex_unlock(&q->lock);
		drm_dev_exit(*idx);
		if (ret < 0)
			return ret;
		/* Another device's fence: wait with nothing held, then retry. */
		waited = nonblock ? -EAGAIN :
			 dma_fence_wait_timeout(dep, true, MAX_SCHEDULE_TIMEOUT);
		dma_fence_put(dep);
		if (waited < 0)
			return waited;
	}
}

/*
 * After polar_job_reserve(): gives the job its fence (the next seqno of its
 * queue's timeline, in ring order), publishes it in the BOs' reservations
 * and unlocks them. It cannot fail; polar_job_commit() must follow. In
 * between the caller holds the queue lock but no reservation, so it may
 * take locks ordered before a reservation (io_uring's ring lock, which
 * mmap_lock follows while mmap_lock is taken before a reservation).
 */
void polar_job_publish(struct polar_device *pdev, struct polar_job *job)
{
	struct polar_queue *q = &pdev->queues[job->queue];
	u32 i;

	spin_lock_init(&job->fence->lock);
	dma_fence_init(&job->fence->base, &polar_fence_ops, &job->fence->lock,
		       pdev->fence_context + job->queue, ++q->fence_seqno);
	for (i = 0; i < job->num_bos; i++)
		dma_resv_add_fence(job->bos[i]->resv, &job->fence->base,
				   job->bo_written[i] ? DMA_RESV_USAGE_WRITE :
				   DMA_RESV_USAGE_READ);
	polar_job_unlock_bos(job);
}

/*
 * After polar_job_publish(): syncs the job's buffers for the device,
 * writes the job to its ring, rings the doorbell, then unlocks and exits
 * the device. The job may end and be freed at once: the caller must not
 * touch it afterwards unless it holds a reference of its own.
 */
void polar_job_commit(struct polar_device *pdev, struct polar_job *job,
		      int idx)
{
	struct polar_queue *q = &pdev->queues[job->queue];

	polar_job_sync(pdev, job, false);
	polar_queue_write_job(pdev, q, job);
	list_add_tail(&job->node, &q->pending);
	trace_polar_job_submit(job->seqno, job->queue, job->num_cmds);
	/* The entries must be visible before the device sees the doorbell. */
	dma_wmb();
	polar_reg_write(pdev, POLAR_CIM_REG_Q(job->queue, POLAR_CIM_Q_SQ_TAIL),
			q->sq_tail);
	mutex_unlock(&q->lock);
	polar_watchdog_kick(pdev);
	drm_dev_exit(idx);
}

/* ---- ioctls ---------------------------------------------------------------- */

int polar_submit_ioctl(struct drm_device *drm, void *data,
		       struct drm_file *file)
{
	struct polar_device *pdev = to_polar_device(drm);
	struct polar_file *pfile = file->driver_priv;
	struct drm_polar_accel_submit *args = data;
	struct drm_polar_accel_cmd *cmds;
	struct polar_job *job;
	int ret, idx;
	u64 seqno;

	if (args->flags || args->queue >= pdev->num_queues ||
	    !args->num_cmds || args->num_cmds > POLAR_MAX_CMDS)
		return -EINVAL;
	if (atomic_inc_return(&pfile->outstanding) > POLAR_MAX_OUTSTANDING) {
		atomic_dec(&pfile->outstanding);
		return -EBUSY;
	}

	cmds = polar_cmds_from_user(args->cmds, args->num_cmds,
				    args->cmd_stride, false);
	if (IS_ERR(cmds)) {
		ret = PTR_ERR(cmds);
		goto out_dec;
	}
	job = polar_job_create(pdev, file, args->queue, cmds, args->num_cmds,
			       false);
	kfree(cmds);
	if (IS_ERR(job)) {
		ret = PTR_ERR(job);
		goto out_dec;
	}
	job->owner = pfile;
	job->in_xa = true;
	/* @jobs holds a reference until WAIT collects the job. */
	kref_get(&job->refcount);
	ret = xa_insert(&pdev->jobs, job->seqno, job, GFP_KERNEL_ACCOUNT);
	if (ret)
		goto out_put;

	ret = polar_job_reserve(pdev, job, false, &idx);
	if (ret)
		goto out_erase;
	/*
	 * Once committed, only @jobs holds the job, and a WAIT on this seqno
	 * from another thread of the file may collect and free it at once.
	 */
	seqno = job->seqno;
	polar_job_publish(pdev, job);
	polar_job_commit(pdev, job, idx);
	args->seqno = seqno;
	return 0;

out_erase:
	xa_erase(&pdev->jobs, job->seqno);
out_put:
	polar_job_put(job);
	polar_job_discard(pdev, job);
out_dec:
	atomic_dec(&pfile->outstanding);
	return ret;
}

int polar_wait_ioctl(struct drm_device *drm, void *data,
		     struct drm_file *file)
{
	struct polar_device *pdev = to_polar_device(drm);
	struct polar_file *pfile = file->driver_priv;
	struct drm_polar_accel_wait *args = data;
	struct polar_job *job;
	long timeout;
	int ret = 0;

	if (args->flags || args->pad || args->timeout_ns < 0)
		return -EINVAL;

	xa_lock(&pdev->jobs);
	job = xa_load(&pdev->jobs, args->seqno);
	if (!job || job->owner != pfile) {
		xa_unlock(&pdev->jobs);
		return -ENOENT;
	}
	kref_get(&job->refcount);
	xa_unlock(&pdev->jobs);

	/*
	 * An absolute deadline: a WAIT restarted after a signal keeps it
	 * instead of waiting its whole time again.
	 */
	timeout = drm_timeout_abs_to_jiffies(args->timeout_ns);
	timeout = wait_event_interruptible_timeout(pdev->job_wq,
						   READ_ONCE(job->done),
						   timeout);
	if (timeout < 0) {
		ret = timeout;
	} else if (!READ_ONCE(job->done)) {
		ret = -ETIME;
	} else if (xa_cmpxchg(&pdev->jobs, job->seqno, job, NULL,
			      GFP_KERNEL) == job) {
		/* Only the waiter that takes the job out reports it. */
		args->status = job->status;
		args->cmd_status = job->cmd_status;
		atomic_dec(&pfile->outstanding);
		polar_job_put(job);
	} else {
		ret = -ENOENT;
	}
	polar_job_put(job);
	return ret;
}
