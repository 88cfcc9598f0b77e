// SPDX-License-Identifier: GPL-2.0-only
/*
 * polar_accel: debugfs, under /sys/kernel/debug/accel/<PCI address>/:
 *   queues       per-queue ring state and pending jobs
 *   counters     the device's operation and energy counters
 *   fault        write "<mode> <queue> <count> [delay_us]" to arm the
 *                device's fault injection (tests only)
 *   reset        write 1 to reset the device; pending jobs re-run
 *   reset_count  resets since probe
 *   fw_corrupt_next_boot  write 1: the next firmware boot (a reset's) hands
 *                the device a corrupted image, so that the recovery fails
 *                (tests only)
 */

#include <drm/drm_drv.h>
#include <drm/drm_file.h>
#include <linux/debugfs.h>
#include <linux/seq_file.h>
#include <linux/uaccess.h>

#include "polar_accel_drv.h"

static int polar_queues_show(struct seq_file *m, void *unused)
{
	struct polar_device *pdev = m->private;
	struct polar_job *job;
	u32 qid;
	int idx;

	if (!drm_dev_enter(&pdev->drm, &idx))
		return -ENODEV;
	for (qid = 0; qid < pdev->num_queues; qid++) {
		struct polar_queue *q = &pdev->queues[qid];

		mutex_lock(&q->lock);
		seq_printf(m, "queue %u: sq_tail %u cq_head %u phase %u inflight %u device_sq_head %u device_cq_tail %u\n",
			   qid, q->sq_tail, q->cq_head, q->phase,
			   q->inflight_cmds,
			   polar_reg_read(pdev, POLAR_CIM_REG_Q(qid, POLAR_CIM_Q_SQ_HEAD)),
			   polar_reg_read(pdev, POLAR_CIM_REG_Q(qid, POLAR_CIM_Q_CQ_TAIL)));
		list_for_each_entry(job, &q->pending, node)
			seq_printf(m, "  job %llu: %u/%u commands pending\n",
				   job->seqno, job->remaining, job->num_cmds);
		mutex_unlock(&q->lock);
	}
	seq_printf(m, "lost_completions %d\n",
		   atomic_read(&pdev->lost_completions));
	drm_dev_exit(idx);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(polar_queues);

static int polar_counters_show(struct seq_file *m, void *unused)
{
	static const char * const names[POLAR_CIM_NUM_COUNTERS] = {
		"commands", "macs", "array_activations", "adc_conversions",
		"shift_adds", "bytes_moved", "cycles", "energy_fj",
	};
	struct polar_device *pdev = m->private;
	int i, idx;

	if (!drm_dev_enter(&pdev->drm, &idx))
		return -ENODEV;
	polar_reg_write(pdev, POLAR_CIM_REG_COUNTERS_LATCH, 1);
	for (i = 0; i < POLAR_CIM_NUM_COUNTERS; i++)
		seq_printf(m, "%s %llu\n", names[i],
			   (u64)polar_reg_read(pdev, POLAR_CIM_REG_COUNTER_HI(i)) << 32 |
			   polar_reg_read(pdev, POLAR_CIM_REG_COUNTER_LO(i)));
	drm_dev_exit(idx);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(polar_counters);

static const char * const polar_fault_names[] = {
	[POLAR_CIM_FAULT_NONE] = "none",
	[POLAR_CIM_FAULT_DROP] = "drop",
	[POLAR_CIM_FAULT_DELAY] = "delay",
	[POLAR_CIM_FAULT_CORRUPT_CQE] = "corrupt",
	[POLAR_CIM_FAULT_ERROR_IRQ] = "error_irq",
	[POLAR_CIM_FAULT_DMA_ERROR] = "dma_error",
	[POLAR_CIM_FAULT_FW_CRASH] = "fw_crash",
	[POLAR_CIM_FAULT_STRAY_DMA] = "stray_dma",
};

static ssize_t polar_fault_write(struct file *f, const char __user *ubuf,
				 size_t len, loff_t *off)
{
	struct polar_device *pdev = file_inode(f)->i_private;
	u32 queue, count, delay_us = 0;
	char buf[64], mode[16];
	int i, n, idx;

	if (len >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = '\0';
	n = sscanf(buf, "%15s %u %u %u", mode, &queue, &count, &delay_us);
	if (n < 3 || queue >= pdev->num_queues)
		return -EINVAL;
	i = match_string(polar_fault_names, ARRAY_SIZE(polar_fault_names),
			 mode);
	if (i < 0)
		return -EINVAL;
	if (!drm_dev_enter(&pdev->drm, &idx))
		return -ENODEV;
	polar_reg_write(pdev, POLAR_CIM_REG_FAULT_QUEUE, queue);
	polar_reg_write(pdev, POLAR_CIM_REG_FAULT_COUNT, count);
	polar_reg_write(pdev, POLAR_CIM_REG_FAULT_DELAY_US, delay_us);
	polar_reg_write(pdev, POLAR_CIM_REG_FAULT_MODE, i);
	drm_dev_exit(idx);
	return len;
}

static const struct file_operations polar_fault_fops = {
	.owner = THIS_MODULE,
	.write = polar_fault_write,
};

static ssize_t polar_reset_write(struct file *f, const char __user *ubuf,
				 size_t len, loff_t *off)
{
	struct polar_device *pdev = file_inode(f)->i_private;
	bool reset;
	int ret;

	ret = kstrtobool_from_user(ubuf, len, &reset);
	if (ret)
		return ret;
	if (reset) {
		polar_recovery_schedule(pdev, -1, 0);
		flush_work(&pdev->recover_work);
	}
	return len;
}

static const struct file_operations polar_reset_fops = {
	.owner = THIS_MODULE,
	.write = polar_reset_write,
};

void polar_debugfs_init(struct polar_device *pdev)
{
	struct dentry *root = pdev->drm.debugfs_root;

	if (IS_ERR_OR_NULL(root))
		return;
	debugfs_create_file("queues", 0444, root, pdev, &polar_queues_fops);
	debugfs_create_file("counters", 0444, root, pdev,
			    &polar_counters_fops);
	debugfs_create_file("fault", 0200, root, pdev, &polar_fault_fops);
	debugfs_create_file("reset", 0200, root, pdev, &polar_reset_fops);
	debugfs_create_atomic_t("reset_count", 0444, root, &pdev->reset_count);
	debugfs_create_bool("fw_corrupt_next_boot", 0600, root,
			    &pdev->fw_corrupt_next_boot);
}
