/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * polar_accel: driver state shared by the driver's files.
 */
#ifndef __POLAR_ACCEL_DRV_H__
#define __POLAR_ACCEL_DRV_H__

#include <drm/drm_device.h>
#include <linux/dma-fence.h>
#include <linux/io.h>
#include <linux/kref.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/ww_mutex.h>
#include <linux/xarray.h>

#include "polar_cim_hw.h"
#include "drm/polar_accel.h"

#define DRIVER_NAME	"polar_accel"
#define DRIVER_DESC	"polar-cim bit-plane compute-in-memory accelerator"

#define POLAR_QUEUE_ENTRIES	256
#define POLAR_MAX_CMDS		64

struct io_uring_cmd;
struct polar_device;
struct polar_file;

/**
 * struct polar_fence - a job's dma_fence
 * @base: the fence; first, so that the core's default release (kfree_rcu
 *	of the fence) frees the whole struct
 * @lock: the fence's lock. Per fence, not per queue: an importer may hold
 *	the fence (and take its lock) after the device and its queues are
 *	gone.
 */
struct polar_fence {
	struct dma_fence base;
	spinlock_t lock;	/* see @lock above */
};

/**
 * struct polar_job - a submitted job: commands that run in order on a queue
 * @refcount: held by @jobs (ioctl jobs, until collected), by a pending
 *	io_uring command, and by each waiter
 * @seqno: the job's number, unique per device
 * @owner: the submitting file (ioctl jobs); NULL once that file is closed
 * @in_xa: the job waits in polar_device.jobs for WAIT
 * @queue: queue index
 * @node: in the queue's pending list while the device works on it
 * @remaining: commands not yet completed
 * @num_cmds: commands of the job
 * @cmd_status: device status of the first failing command
 * @status: 0 or -errno once @done
 * @done: the job has ended
 * @ucmd: the io_uring command to complete, taken with xchg() by whoever
 *	completes or cancels it
 * @sqes: the job's submission entries, kept to re-run it after a reset
 * @bos: the BOs the job references, each once, one reference each
 * @bo_written: a command of the job writes @bos[i]
 * @num_bos: entries in @bos
 * @bos_locked: @bos' reservations are locked (polar_job_reserve() to
 *	polar_job_commit()); @bos_ww says whether with @acquire (blocking)
 *	or by trylock (non-blocking submission)
 * @acquire: the ww context that locks @bos' reservations
 * @fence: signalled (with an error if the job failed) when the job ends;
 *	added to every BO's reservation at commit. Allocated with the job,
 *	initialised (a seqno of its queue's timeline) only at commit.
 * @sgl: the job's scatter-gather lists (device memory)
 * @sgl_dma: their device address
 * @sgl_size: their size in bytes
 */
struct polar_job {
	struct kref refcount;
	u64 seqno;
	struct polar_file *owner;
	bool in_xa;
	u32 queue;
	struct list_head node;
	u32 remaining;
	u32 num_cmds;
	u16 cmd_status;
	int status;
	bool done;
	struct io_uring_cmd *ucmd;
	struct polar_cim_sqe *sqes;
	struct drm_gem_object *bos[2 * POLAR_MAX_CMDS];
	bool bo_written[2 * POLAR_MAX_CMDS];
	u32 num_bos;
	bool bos_locked;
	bool bos_ww;
	struct ww_acquire_ctx acquire;
	struct polar_fence *fence;
	struct polar_cim_sge *sgl;
	dma_addr_t sgl_dma;
	size_t sgl_size;
};

/**
 * struct polar_queue - one submission/completion ring pair
 * @pdev: the device (for the queue's interrupt handler)
 * @qid: the queue's index, its INT_STATUS bit and MSI-X vector
 * @lock: guards the rings, @pending, @inflight_cmds and @last_activity
 * @sq: submission ring (CPU address); @sq_dma its device address
 * @cq: completion ring; @cq_dma its device address
 * @sq_tail: next free SQ slot
 * @cq_head: next CQ slot to read
 * @phase: the phase bit a new CQE carries
 * @inflight_cmds: SQ slots in use
 * @pending: jobs submitted and not completed, oldest first
 * @last_activity: jiffies of the last completion, or of the submission
 *	that made the queue busy; the watchdog measures hangs from here
 * @fence_seqno: the last seqno of the queue's fence timeline, handed out
 *	under @lock in ring order, which is the order jobs end in
 */
struct polar_queue {
	struct polar_device *pdev;
	u32 qid;
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
	unsigned long last_activity;
	u64 fence_seqno;
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
 * @fw_image: a copy of the firmware image in DMA memory, kept while the
 *	driver is bound: every boot reads it, and a boot that times out may
 *	still be reading it
 * @fw_dma: its device address
 * @fw_size: its size
 * @fw_corrupt_next_boot: debugfs fault injection: the next boot hands the
 *	device an image with one byte flipped, which it must reject
 * @queues: the ring pairs
 * @jobs: ioctl jobs by seqno until their submitter collects them (WAIT)
 *	or closes its file
 * @next_seqno: the last seqno handed out
 * @fence_context: the first of @num_queues fence contexts, one per queue
 * @job_wq: waiters for job completion and for ring space
 * @complete_work: reaps completions outside the hard IRQ handler
 * @num_irqs: interrupt vectors allocated
 * @recover_work: resets the device and re-runs the innocent jobs
 * @recover_lock: guards @recover_queue and @recover_fatal
 * @recover_queue: queue whose oldest job is guilty, or -1 for none
 * @recover_err: the errno the guilty job fails with
 * @watchdog: looks for queues that make no progress
 * @wd_heartbeat: HEARTBEAT at the watchdog's last look
 * @wd_progress: PROGRESS at the watchdog's last look
 * @reset_count: resets since probe
 * @dead: the last recovery failed; jobs fail with -EIO, and each new
 *	submission asks for another recovery, which clears it on success
 * @dma_unsafe: a reset did not end the running command; memory the device
 *	was given is never freed (leaked rather than handed back while the
 *	device may still write it)
 * @lost_completions: completions that matched no job (corrupted)
 * @debugfs_fault: the fault-injection arguments last written to debugfs
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
	void *fw_image;
	dma_addr_t fw_dma;
	size_t fw_size;
	bool fw_corrupt_next_boot;
	struct polar_queue queues[POLAR_CIM_MAX_QUEUES];
	struct xarray jobs;
	atomic64_t next_seqno;
	u64 fence_context;
	wait_queue_head_t job_wq;
	struct work_struct complete_work;
	int num_irqs;
	struct work_struct recover_work;
	spinlock_t recover_lock;	/* see @recover_lock above */
	int recover_queue;
	int recover_err;
	struct delayed_work watchdog;
	u32 wd_heartbeat;
	u32 wd_progress;
	atomic_t reset_count;
	bool dead;
	bool dma_unsafe;
	atomic_t lost_completions;
};

/**
 * struct polar_file - per-open-file state
 * @pdev: the device
 * @outstanding: ioctl jobs submitted and not yet collected
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

extern unsigned int polar_job_timeout_ms;

/* polar_accel_drv.c */
int polar_hw_reset(struct polar_device *pdev);

/* polar_accel_fw.c */
int polar_fw_load(struct polar_device *pdev);
int polar_fw_boot(struct polar_device *pdev);

/* polar_accel_gem.c */
int polar_bo_create_ioctl(struct drm_device *drm, void *data,
			  struct drm_file *file);
int polar_bo_info_ioctl(struct drm_device *drm, void *data,
			struct drm_file *file);

/* polar_accel_job.c */
int polar_queues_init(struct polar_device *pdev);
bool polar_queue_reap_locked(struct polar_device *pdev, u32 qid);
void polar_queues_hw_init(struct polar_device *pdev);
int polar_irqs_init(struct polar_device *pdev);
void polar_irqs_fini(struct polar_device *pdev);
void polar_jobs_abort_all(struct polar_device *pdev, int err);
void polar_jobs_file_close(struct polar_device *pdev, struct polar_file *pfile);
void polar_job_put(struct polar_job *job);
void polar_job_finish(struct polar_device *pdev, struct polar_job *job,
		      int status);
struct drm_polar_accel_cmd *polar_cmds_from_user(u64 uptr, u32 num,
						 u32 stride, bool nonblock);
struct polar_job *polar_job_create(struct polar_device *pdev,
				   struct drm_file *file, u32 queue,
				   const struct drm_polar_accel_cmd *cmds,
				   u32 num_cmds, bool nonblock);
int polar_job_reserve(struct polar_device *pdev, struct polar_job *job,
		      bool nonblock, int *idx);
void polar_job_publish(struct polar_device *pdev, struct polar_job *job);
void polar_job_commit(struct polar_device *pdev, struct polar_job *job,
		      int idx);
void polar_job_discard(struct polar_device *pdev, struct polar_job *job);
void polar_queue_write_job(struct polar_device *pdev, struct polar_queue *q,
			   struct polar_job *job);
int polar_submit_ioctl(struct drm_device *drm, void *data,
		       struct drm_file *file);
int polar_wait_ioctl(struct drm_device *drm, void *data,
		     struct drm_file *file);

/* polar_accel_reset.c */
void polar_recovery_init(struct polar_device *pdev);
void polar_recovery_fini(struct polar_device *pdev);
void polar_recovery_schedule(struct polar_device *pdev, int queue, int err);
void polar_watchdog_kick(struct polar_device *pdev);

/* polar_accel_uring.c */
int polar_uring_cmd(struct io_uring_cmd *ioucmd, unsigned int issue_flags);
void polar_uring_complete(struct polar_job *job, int status);

/* polar_accel_debugfs.c */
void polar_debugfs_init(struct polar_device *pdev);

#endif /* __POLAR_ACCEL_DRV_H__ */
