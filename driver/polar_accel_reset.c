// SPDX-License-Identifier: GPL-2.0-only
/*
 * polar_accel: hang detection and recovery.
 *
 * The watchdog looks at every queue with pending jobs. A queue is hung when
 * it has completed nothing for job_timeout_ms and the device shows no
 * progress it could be making on it: a queue that still waits for its turn
 * while the device completes other work is starved, not hung, and a long
 * command whose HEARTBEAT moves is working. The device runs one command at
 * a time, so once a queue's commands have all been fetched, completions on
 * other queues (PROGRESS moving) mean its last command finished and its
 * completion went missing: that queue is hung even though the device is
 * busy with others' work. A hung queue, or a device that
 * reports a fatal error, gets a recovery: a device coredump, a reset, the
 * firmware booted again, the guilty job (the oldest of the hung queue)
 * failed, and every other pending job re-run from its saved entries. Tiles
 * keep their weights across the reset, so re-run MATMULs see them.
 */

#include <drm/drm_drv.h>
#include <drm/drm_print.h>
#include <linux/devcoredump.h>
#include <linux/jiffies.h>
#include <linux/moduleparam.h>
#include <linux/vmalloc.h>

#include "polar_accel_drv.h"

unsigned int polar_job_timeout_ms = 1000;
module_param_named(job_timeout_ms, polar_job_timeout_ms, uint, 0644);
MODULE_PARM_DESC(job_timeout_ms,
		 "ms without device progress after which a queue is hung (default 1000)");

#define POLAR_COREDUMP_SIZE	(16 * 1024)

static unsigned long polar_timeout_jiffies(void)
{
	return msecs_to_jiffies(max(READ_ONCE(polar_job_timeout_ms), 10u));
}

void polar_watchdog_kick(struct polar_device *pdev)
{
	/*
	 * Four looks per timeout: a hang is found within 1.25 timeouts. An
	 * armed watchdog keeps its time: re-arming on every submission would
	 * let a steady stream of other work postpone it forever.
	 */
	queue_delayed_work(system_wq, &pdev->watchdog,
			   max(polar_timeout_jiffies() / 4, 1ul));
}

/* ---- coredump ------------------------------------------------------------ */

static void polar_coredump(struct polar_device *pdev, int guilty_queue)
{
	static const struct {
		u32 reg;
		const char *name;
	} regs[] = {
		{ POLAR_CIM_REG_STATUS, "STATUS" },
		{ POLAR_CIM_REG_PROGRESS, "PROGRESS" },
		{ POLAR_CIM_REG_HEARTBEAT, "HEARTBEAT" },
		{ POLAR_CIM_REG_FW_STATUS, "FW_STATUS" },
		{ POLAR_CIM_REG_INT_STATUS, "INT_STATUS" },
		{ POLAR_CIM_REG_INT_MASK, "INT_MASK" },
		{ POLAR_CIM_REG_ERROR_CODE, "ERROR_CODE" },
		{ POLAR_CIM_REG_ERROR_QUEUE, "ERROR_QUEUE" },
		{ POLAR_CIM_REG_FAULT_MODE, "FAULT_MODE" },
	};
	struct drm_printer p;
	struct drm_print_iterator iter = { 0 };
	struct polar_job *job;
	u32 i, qid;
	char *buf;

	buf = vzalloc(POLAR_COREDUMP_SIZE);
	if (!buf)
		return;
	iter.data = buf;
	iter.remain = POLAR_COREDUMP_SIZE - 1;
	p = drm_coredump_printer(&iter);

	drm_printf(&p, "polar_accel coredump: reset %d, guilty queue %d\n",
		   atomic_read(&pdev->reset_count) + 1, guilty_queue);
	for (i = 0; i < ARRAY_SIZE(regs); i++)
		drm_printf(&p, "%-12s 0x%08x\n", regs[i].name,
			   polar_reg_read(pdev, regs[i].reg));
	for (qid = 0; qid < pdev->num_queues; qid++) {
		struct polar_queue *q = &pdev->queues[qid];

		drm_printf(&p, "queue %u: sq_tail %u cq_head %u phase %u ",
			   qid, q->sq_tail, q->cq_head, q->phase);
		drm_printf(&p, "inflight %u device sq_head %u cq_tail %u status 0x%x\n",
			   q->inflight_cmds,
			   polar_reg_read(pdev, POLAR_CIM_REG_Q(qid, POLAR_CIM_Q_SQ_HEAD)),
			   polar_reg_read(pdev, POLAR_CIM_REG_Q(qid, POLAR_CIM_Q_CQ_TAIL)),
			   polar_reg_read(pdev, POLAR_CIM_REG_Q(qid, POLAR_CIM_Q_STATUS)));
		list_for_each_entry(job, &q->pending, node)
			drm_printf(&p, "  job %llu: %u of %u commands pending\n",
				   job->seqno, job->remaining, job->num_cmds);
	}
	/* devcoredump owns the buffer from here on. */
	dev_coredumpv(pdev->drm.dev, buf, iter.offset, GFP_KERNEL);
}

/* ---- recovery -------------------------------------------------------------- */

void polar_recovery_schedule(struct polar_device *pdev, int queue, int err)
{
	unsigned long flags;

	spin_lock_irqsave(&pdev->recover_lock, flags);
	/* The first reason wins until the recovery runs. */
	if (pdev->recover_queue == -2) {
		pdev->recover_queue = queue;
		pdev->recover_err = err;
	}
	spin_unlock_irqrestore(&pdev->recover_lock, flags);
	queue_work(system_unbound_wq, &pdev->recover_work);
}

static void polar_recover_work(struct work_struct *work)
{
	struct polar_device *pdev = container_of(work, struct polar_device,
						 recover_work);
	struct polar_job *job, *tmp;
	LIST_HEAD(rerun);
	unsigned long flags;
	int guilty_queue, err, ret, idx;
	u32 qid;

	spin_lock_irqsave(&pdev->recover_lock, flags);
	guilty_queue = pdev->recover_queue;
	err = pdev->recover_err;
	pdev->recover_queue = -2;
	spin_unlock_irqrestore(&pdev->recover_lock, flags);
	if (guilty_queue == -2)
		return;
	if (!drm_dev_enter(&pdev->drm, &idx))
		return;

	for (qid = 0; qid < pdev->num_queues; qid++)
		mutex_lock(&pdev->queues[qid].lock);

	/*
	 * Completions already posted belong to finished jobs: take them
	 * first, so the oldest job left is the one the device was on.
	 */
	for (qid = 0; qid < pdev->num_queues; qid++)
		polar_queue_reap_locked(pdev, qid);
	polar_coredump(pdev, guilty_queue);
	ret = polar_hw_reset(pdev);
	if (!ret)
		ret = polar_fw_boot(pdev);
	if (!ret)
		polar_queues_hw_init(pdev);
	atomic_inc(&pdev->reset_count);

	for (qid = 0; qid < pdev->num_queues; qid++) {
		struct polar_queue *q = &pdev->queues[qid];

		struct polar_job *culprit = (int)qid == guilty_queue ?
			list_first_entry_or_null(&q->pending, struct polar_job,
						 node) : NULL;

		list_for_each_entry_safe(job, tmp, &q->pending, node) {
			bool guilty = job == culprit;

			if (!guilty && !ret)
				continue;
			list_del(&job->node);
			if (guilty)
				drm_err(&pdev->drm, "queue %u: job %llu failed (%d), device reset\n",
					qid, job->seqno, err);
			polar_job_finish(pdev, job, guilty ? err : -EIO);
		}
		if (ret)
			continue;
		/* The innocent re-run in their order, from a fresh ring. */
		list_for_each_entry(job, &q->pending, node)
			polar_queue_write_job(pdev, q, job);
		q->last_activity = jiffies;
		if (q->sq_tail) {
			dma_wmb();
			polar_reg_write(pdev,
					POLAR_CIM_REG_Q(qid, POLAR_CIM_Q_SQ_TAIL),
					q->sq_tail);
		}
	}
	/*
	 * A failed reset is not the end: the next submission asks for
	 * another (polar_job_reserve()), and one that works revives it.
	 */
	if (ret) {
		drm_err(&pdev->drm, "reset failed (%d): jobs fail with -EIO until a reset works\n",
			ret);
	} else {
		drm_info(&pdev->drm, "device reset %d done\n",
			 atomic_read(&pdev->reset_count));
	}
	WRITE_ONCE(pdev->dead, !!ret);
	pdev->wd_heartbeat = polar_reg_read(pdev, POLAR_CIM_REG_HEARTBEAT);
	pdev->wd_progress = polar_reg_read(pdev, POLAR_CIM_REG_PROGRESS);

	for (qid = pdev->num_queues; qid-- > 0;)
		mutex_unlock(&pdev->queues[qid].lock);
	drm_dev_exit(idx);
	wake_up_all(&pdev->job_wq);
	polar_watchdog_kick(pdev);
}

/* ---- the watchdog ---------------------------------------------------------- */

static void polar_watchdog_work(struct work_struct *work)
{
	struct polar_device *pdev = container_of(to_delayed_work(work),
						 struct polar_device, watchdog);
	unsigned long timeout = polar_timeout_jiffies();
	bool busy, beating, completing, pending = false;
	u32 heartbeat, progress, qid;
	int idx;

	if (!drm_dev_enter(&pdev->drm, &idx))
		return;
	heartbeat = polar_reg_read(pdev, POLAR_CIM_REG_HEARTBEAT);
	progress = polar_reg_read(pdev, POLAR_CIM_REG_PROGRESS);
	busy = polar_reg_read(pdev, POLAR_CIM_REG_STATUS) &
	       POLAR_CIM_STATUS_BUSY;
	beating = heartbeat != pdev->wd_heartbeat;
	completing = progress != pdev->wd_progress;
	pdev->wd_heartbeat = heartbeat;
	pdev->wd_progress = progress;

	for (qid = 0; qid < pdev->num_queues; qid++) {
		struct polar_queue *q = &pdev->queues[qid];
		bool hung = false;
		u32 sq_head;

		mutex_lock(&q->lock);
		if (!list_empty(&q->pending)) {
			pending = true;
			sq_head = polar_reg_read(pdev, POLAR_CIM_REG_Q(qid, POLAR_CIM_Q_SQ_HEAD));
			/*
			 * Waiting its turn on a working device, or its last
			 * command still running: a long one (heartbeat, no
			 * other completions in between).
			 */
			if (sq_head != q->sq_tail ? beating || completing :
			    busy && beating && !completing)
				q->last_activity = jiffies;
			hung = time_after(jiffies, q->last_activity + timeout);
		}
		mutex_unlock(&q->lock);
		if (hung) {
			drm_err(&pdev->drm, "queue %u made no progress for %u ms\n",
				qid, jiffies_to_msecs(timeout));
			polar_recovery_schedule(pdev, qid, -ETIMEDOUT);
			pending = false;	/* the recovery kicks us again */
			break;
		}
	}
	if (pending)
		polar_watchdog_kick(pdev);
	drm_dev_exit(idx);
}

void polar_recovery_init(struct polar_device *pdev)
{
	spin_lock_init(&pdev->recover_lock);
	pdev->recover_queue = -2;
	INIT_WORK(&pdev->recover_work, polar_recover_work);
	INIT_DELAYED_WORK(&pdev->watchdog, polar_watchdog_work);
}

/*
 * Interrupts must be off already. The recovery kicks the watchdog and the
 * watchdog schedules the recovery: disabling (not cancelling) each, the
 * recovery first, keeps either from being queued again afterwards.
 */
void polar_recovery_fini(struct polar_device *pdev)
{
	disable_work_sync(&pdev->recover_work);
	disable_delayed_work_sync(&pdev->watchdog);
}
