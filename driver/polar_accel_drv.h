/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * polar_accel: driver state shared by the driver's files.
 */
#ifndef __POLAR_ACCEL_DRV_H__
#define __POLAR_ACCEL_DRV_H__

#include <drm/drm_device.h>
#include <linux/io.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>

#include "polar_cim_hw.h"

#define DRIVER_NAME	"polar_accel"
#define DRIVER_DESC	"polar-cim bit-plane compute-in-memory accelerator"

#define POLAR_QUEUE_ENTRIES	256
#define POLAR_MAX_CMDS		64

/**
 * struct polar_queue - one submission/completion ring pair
 * @lock: guards the rings, @pending and @inflight_cmds
 * @sq: submission ring (CPU address); @sq_dma its device address
 * @cq: completion ring; @cq_dma its device address
 * @sq_tail: next free SQ slot
 * @cq_head: next CQ slot to read
 * @phase: the phase bit a new CQE carries
 * @inflight_cmds: SQ slots in use
 * @pending: jobs submitted and not completed, oldest first
 */
struct polar_queue {
	struct mutex lock;	/* see @lock above */
	struct polar_cim_sqe *sq;
	dma_addr_t sq_dma;
	struct polar_cim_cqe *cq;
	dma_addr_t cq_dma;
	u32 sq_tail;
	u32 cq_head;
	u16 phase;
	u32 inflight_cmds;
	struct list_head pending;
};

/**
 * struct polar_device - one polar-cim PCI function
 * @drm: the DRM device; its lifetime owns this struct (devm_drm_dev_alloc)
 * @regs: BAR0, the registers of hw/polar_cim_hw.h
 * @num_queues: ring pairs in use
 * @rows: rows per tile; @cols: columns per tile; @tiles: tile count
 * @rows_per_conv: rows summed per ADC conversion
 * @max_batch: input vectors per MATMUL
 * @fw_version: version of the booted firmware
 * @queues: the ring pairs
 * @jobs: jobs by seqno until their submitter collects them (WAIT) or
 *	closes its file
 * @next_seqno: the last seqno handed out
 * @job_wq: waiters for job completion and for ring space
 * @complete_work: reaps completions outside the hard IRQ handler
 * @num_irqs: interrupt vectors allocated
 */
struct polar_device {
	struct drm_device drm;
	void __iomem *regs;
	u32 num_queues;
	u32 rows;
	u32 cols;
	u32 tiles;
	u32 rows_per_conv;
	u32 max_batch;
	u32 fw_version;
	struct polar_queue queues[POLAR_CIM_MAX_QUEUES];
	struct xarray jobs;
	atomic64_t next_seqno;
	wait_queue_head_t job_wq;
	struct work_struct complete_work;
	int num_irqs;
};

/**
 * struct polar_file - per-open-file state
 * @pdev: the device
 * @outstanding: jobs submitted and not yet collected
 */
struct polar_file {
	struct polar_device *pdev;
	atomic_t outstanding;
};

static inline struct polar_device *to_polar_device(struct drm_device *drm)
{
	return container_of(drm, struct polar_device, drm);
}

static inline u32 polar_reg_read(struct polar_device *pdev, u32 reg)
{
	return readl(pdev->regs + reg);
}

static inline void polar_reg_write(struct polar_device *pdev, u32 reg, u32 val)
{
	writel(val, pdev->regs + reg);
}

/* polar_accel_fw.c */
int polar_fw_boot(struct polar_device *pdev);

/* polar_accel_gem.c */
int polar_bo_create_ioctl(struct drm_device *drm, void *data,
			  struct drm_file *file);
int polar_bo_info_ioctl(struct drm_device *drm, void *data,
			struct drm_file *file);

/* polar_accel_job.c */
int polar_queues_init(struct polar_device *pdev);
int polar_irqs_init(struct polar_device *pdev);
void polar_irqs_fini(struct polar_device *pdev);
void polar_jobs_abort_all(struct polar_device *pdev, int err);
void polar_jobs_file_close(struct polar_device *pdev, struct polar_file *pfile);
int polar_submit_ioctl(struct drm_device *drm, void *data,
		       struct drm_file *file);
int polar_wait_ioctl(struct drm_device *drm, void *data,
		     struct drm_file *file);

#endif /* __POLAR_ACCEL_DRV_H__ */
