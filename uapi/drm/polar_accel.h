/* SPDX-License-Identifier: MIT */
/*
 * polar_accel: user/kernel ABI of the polar-cim DRM compute accelerator.
 *
 * Every struct uses fixed-width types and explicit padding; padding and
 * reserved fields must be zero and unknown flag bits are rejected with
 * -EINVAL, so the ABI can grow without breaking old binaries.
 */
#ifndef _UAPI_DRM_POLAR_ACCEL_H_
#define _UAPI_DRM_POLAR_ACCEL_H_

#include "drm.h"

#if defined(__cplusplus)
extern "C" {
#endif

/*
 * Bumped when an ioctl, a param or a payload is added or changes.
 * 3: WAIT's timeout_ns is an absolute CLOCK_MONOTONIC deadline; the
 * io_uring cmd_op is _IOWR-encoded; a CQE32 ring gets cmd_status;
 * the RECON param (the device's reconstruction).
 * 4: jobs publish dma_fences in their BOs' reservations and honour other
 * devices' fences there (FEATURE_IMPLICIT_FENCES; see SUBMIT); SUBMIT's
 * and the uring payload's pad became cmd_stride, so that struct
 * drm_polar_accel_cmd can grow.
 * 5: the DESIGN param (digital weight planes, MSB conversions' ADC bits).
 */
#define DRM_POLAR_ACCEL_UAPI_VERSION	5

#define DRM_POLAR_ACCEL_GET_PARAM	0x00
#define DRM_POLAR_ACCEL_BO_CREATE	0x01
#define DRM_POLAR_ACCEL_BO_INFO		0x02
#define DRM_POLAR_ACCEL_SUBMIT		0x03
#define DRM_POLAR_ACCEL_WAIT		0x04

#define DRM_IOCTL_POLAR_ACCEL_GET_PARAM \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_POLAR_ACCEL_GET_PARAM, \
		 struct drm_polar_accel_get_param)
#define DRM_IOCTL_POLAR_ACCEL_BO_CREATE \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_POLAR_ACCEL_BO_CREATE, \
		 struct drm_polar_accel_bo_create)
#define DRM_IOCTL_POLAR_ACCEL_BO_INFO \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_POLAR_ACCEL_BO_INFO, \
		 struct drm_polar_accel_bo_info)
#define DRM_IOCTL_POLAR_ACCEL_SUBMIT \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_POLAR_ACCEL_SUBMIT, \
		 struct drm_polar_accel_submit)
#define DRM_IOCTL_POLAR_ACCEL_WAIT \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_POLAR_ACCEL_WAIT, \
		 struct drm_polar_accel_wait)

/**
 * enum drm_polar_accel_param - what DRM_IOCTL_POLAR_ACCEL_GET_PARAM reads
 * @DRM_POLAR_ACCEL_PARAM_UAPI_VERSION: DRM_POLAR_ACCEL_UAPI_VERSION of the
 *	running driver.
 * @DRM_POLAR_ACCEL_PARAM_DEVICE_ID: the device's ID register
 *	(POLAR_CIM_ID_MAGIC in hw/polar_cim_hw.h).
 * @DRM_POLAR_ACCEL_PARAM_DEVICE_VERSION: the device's VERSION register,
 *	major << 16 | minor.
 * @DRM_POLAR_ACCEL_PARAM_PCI_ID: PCI vendor << 16 | device.
 * @DRM_POLAR_ACCEL_PARAM_TILE_ROWS: rows per CIM tile.
 * @DRM_POLAR_ACCEL_PARAM_TILE_COLS: columns per CIM tile.
 * @DRM_POLAR_ACCEL_PARAM_NUM_TILES: number of tiles.
 * @DRM_POLAR_ACCEL_PARAM_ADC_BITS: ADC resolution in bits.
 * @DRM_POLAR_ACCEL_PARAM_NUM_QUEUES: device queues a job may name.
 * @DRM_POLAR_ACCEL_PARAM_CAPS: the device's CAPS register.
 * @DRM_POLAR_ACCEL_PARAM_FW_VERSION: version of the booted firmware.
 * @DRM_POLAR_ACCEL_PARAM_SIGMA_STATIC: Q16 per-cell conductance spread.
 * @DRM_POLAR_ACCEL_PARAM_SIGMA_DYNAMIC: Q16 read noise.
 * @DRM_POLAR_ACCEL_PARAM_STUCK_PPM: stuck cells per million.
 * @DRM_POLAR_ACCEL_PARAM_SEED: the chip seed (64 bits).
 * @DRM_POLAR_ACCEL_PARAM_ADC_OFFSET_SIGMA: Q16 ADC offset spread (LSB).
 * @DRM_POLAR_ACCEL_PARAM_ADC_GAIN_SIGMA: Q16 ADC gain spread.
 * @DRM_POLAR_ACCEL_PARAM_MAX_BATCH: input vectors per MATMUL command.
 * @DRM_POLAR_ACCEL_PARAM_MAX_CMDS: commands per job.
 * @DRM_POLAR_ACCEL_PARAM_ROWS_PER_CONV: rows summed per ADC conversion.
 * @DRM_POLAR_ACCEL_PARAM_RESET_COUNT: device resets since probe (hang
 *	recovery and requested resets).
 * @DRM_POLAR_ACCEL_PARAM_FEATURES: DRM_POLAR_ACCEL_FEATURE_* bits.
 * @DRM_POLAR_ACCEL_PARAM_RECON: how conversions become outputs, the
 *	device's RECON register: bits 7:0 0 = codes (ADC codes shift-added,
 *	the ADC step applied once per output), 1 = cells (each conversion
 *	rounded to cell currents with bits 11:8 fractional bits).
 * @DRM_POLAR_ACCEL_PARAM_DESIGN: the chip design, the device's DESIGN
 *	register: bits 3:0 the most significant weight planes read
 *	digitally, bits 12:8 the ADC bits of the MSB conversions (0 = none),
 *	bits 19:16 the significance levels that get them.
 */
enum drm_polar_accel_param {
	DRM_POLAR_ACCEL_PARAM_UAPI_VERSION = 0,
	DRM_POLAR_ACCEL_PARAM_DEVICE_ID = 1,
	DRM_POLAR_ACCEL_PARAM_DEVICE_VERSION = 2,
	DRM_POLAR_ACCEL_PARAM_PCI_ID = 3,
	DRM_POLAR_ACCEL_PARAM_TILE_ROWS = 4,
	DRM_POLAR_ACCEL_PARAM_TILE_COLS = 5,
	DRM_POLAR_ACCEL_PARAM_NUM_TILES = 6,
	DRM_POLAR_ACCEL_PARAM_ADC_BITS = 7,
	DRM_POLAR_ACCEL_PARAM_NUM_QUEUES = 8,
	DRM_POLAR_ACCEL_PARAM_CAPS = 9,
	DRM_POLAR_ACCEL_PARAM_FW_VERSION = 10,
	DRM_POLAR_ACCEL_PARAM_SIGMA_STATIC = 11,
	DRM_POLAR_ACCEL_PARAM_SIGMA_DYNAMIC = 12,
	DRM_POLAR_ACCEL_PARAM_STUCK_PPM = 13,
	DRM_POLAR_ACCEL_PARAM_SEED = 14,
	DRM_POLAR_ACCEL_PARAM_ADC_OFFSET_SIGMA = 15,
	DRM_POLAR_ACCEL_PARAM_ADC_GAIN_SIGMA = 16,
	DRM_POLAR_ACCEL_PARAM_MAX_BATCH = 17,
	DRM_POLAR_ACCEL_PARAM_MAX_CMDS = 18,
	DRM_POLAR_ACCEL_PARAM_ROWS_PER_CONV = 19,
	DRM_POLAR_ACCEL_PARAM_RESET_COUNT = 20,
	DRM_POLAR_ACCEL_PARAM_FEATURES = 21,
	DRM_POLAR_ACCEL_PARAM_RECON = 22,
	DRM_POLAR_ACCEL_PARAM_DESIGN = 23,
};

/* Features a driver may have; userspace tests for them, not for versions. */
#define DRM_POLAR_ACCEL_FEATURE_URING_CMD	(1ull << 0)
#define DRM_POLAR_ACCEL_FEATURE_HANG_RECOVERY	(1ull << 1)
#define DRM_POLAR_ACCEL_FEATURE_IMPLICIT_FENCES	(1ull << 2)

/**
 * struct drm_polar_accel_get_param - read one device or driver parameter
 * @param: in, an enum drm_polar_accel_param value; unknown values get
 *	-EINVAL.
 * @pad: must be zero (-EINVAL otherwise).
 * @value: out, the parameter's value.
 */
struct drm_polar_accel_get_param {
	__u32 param;
	__u32 pad;
	__u64 value;
};

/**
 * struct drm_polar_accel_bo_create - create a buffer object
 * @size: in, bytes, 1..DRM_POLAR_ACCEL_MAX_BO_SIZE; rounded up to pages.
 * @flags: in, must be zero.
 * @handle: out, the BO's handle in this file.
 *
 * BOs are shmem-backed; their pages are pinned and mapped for the device
 * from the first job that uses them until the BO is freed. Each job syncs
 * the byte ranges its commands use (to the device at SUBMIT, the outputs
 * back when it ends), so the CPU may read a job's outputs once WAIT or the
 * CQE reports it ended, and must not touch those ranges while it runs.
 * A BO exported with DRM_IOCTL_PRIME_HANDLE_TO_FD carries the fences of
 * the jobs that use it (see SUBMIT).
 */
struct drm_polar_accel_bo_create {
	__u64 size;
	__u32 flags;
	__u32 handle;
};

#define DRM_POLAR_ACCEL_MAX_BO_SIZE	(1ull << 30)

/**
 * struct drm_polar_accel_bo_info - size and mmap offset of a BO
 * @handle: in.
 * @pad: must be zero.
 * @size: out, bytes.
 * @mmap_offset: out, the offset to mmap() the accel fd at.
 */
struct drm_polar_accel_bo_info {
	__u32 handle;
	__u32 pad;
	__u64 size;
	__u64 mmap_offset;
};

/**
 * struct drm_polar_accel_buf - a byte range of one of the caller's BOs
 * @handle: BO handle of the submitting file.
 * @pad: must be zero.
 * @offset: first byte in the BO.
 * @size: bytes; must cover what the command reads or writes, and
 *	offset + size must lie within the BO.
 */
struct drm_polar_accel_buf {
	__u32 handle;
	__u32 pad;
	__u64 offset;
	__u64 size;
};

/**
 * struct drm_polar_accel_cmd - one device command of a job
 * @opcode: POLAR_CIM_OP_* of hw/polar_cim_hw.h.
 * @wfmt: POLAR_CIM_WFMT_* (PROGRAM_TILES, MATMUL); else zero.
 * @xfmt: POLAR_CIM_XFMT_* (MATMUL); else zero.
 * @pad0: must be zero.
 * @tile0: first tile (PROGRAM_TILES, MATMUL).
 * @rows_per_conv: rows per ADC conversion (MATMUL), 0 = the chip's.
 * @in_dim: input length (PROGRAM_TILES, MATMUL).
 * @out_dim: output length (PROGRAM_TILES, MATMUL).
 * @batch: input vectors (MATMUL), 1..MAX_BATCH.
 * @adc_fs_q8: ADC full scale (MATMUL), Q8 cell currents, 0 = firmware's.
 * @job_seed: dynamic-noise seed (MATMUL).
 * @pad1: must be zero.
 * @src: weights (PROGRAM_TILES: out_dim * in_dim bytes) or inputs
 *	(MATMUL: batch * in_dim bytes); unused otherwise (all zero).
 * @dst: outputs (MATMUL: batch * out_dim * 4 bytes; READ_COUNTERS: 64
 *	bytes); unused otherwise (all zero).
 *
 * Fields a command does not use must be zero. The struct may grow at its
 * end: SUBMIT's cmd_stride tells the driver the size the caller knows.
 */
struct drm_polar_accel_cmd {
	__u8 opcode;
	__u8 wfmt;
	__u8 xfmt;
	__u8 pad0;
	__u16 tile0;
	__u16 rows_per_conv;
	__u32 in_dim;
	__u32 out_dim;
	__u32 batch;
	__u32 adc_fs_q8;
	__u32 job_seed;
	__u32 pad1;
	struct drm_polar_accel_buf src;
	struct drm_polar_accel_buf dst;
};

/* sizeof(struct drm_polar_accel_cmd) in uapi 1 to 4. */
#define DRM_POLAR_ACCEL_CMD_SIZE_V1	80
/* The largest command stride SUBMIT accepts. */
#define DRM_POLAR_ACCEL_MAX_CMD_STRIDE	4096

/**
 * struct drm_polar_accel_submit - queue a job: commands run in order
 * @queue: in, 0..NUM_QUEUES-1.
 * @flags: in, must be zero.
 * @num_cmds: in, 1..MAX_CMDS.
 * @cmd_stride: in, bytes from one command to the next in @cmds: the size
 *	of struct drm_polar_accel_cmd the caller was built with. 0 means
 *	DRM_POLAR_ACCEL_CMD_SIZE_V1 (binaries from before the field, which
 *	was zero padding); less than that, or more than
 *	DRM_POLAR_ACCEL_MAX_CMD_STRIDE, gets -EINVAL. A command larger than
 *	the driver's (a newer header) is accepted when its bytes beyond the
 *	driver's struct are all zero, and refused with -EINVAL otherwise,
 *	since it asks for something this driver does not know.
 * @cmds: in, user pointer to num_cmds commands, @cmd_stride bytes apart.
 * @seqno: out, the job's sequence number, for WAIT.
 *
 * Every field and every buffer range is checked against the caller's BOs
 * before the device sees an address.
 *
 * Fences (FEATURE_IMPLICIT_FENCES): each job has a dma_fence, signalled
 * when the job ends, with the job's error if it failed (a hang, a reset's
 * guilty job, a failed recovery, an unbind), so that none stays pending.
 * It is added to the reservation of every BO the job names: as a write for
 * a BO a command writes (dst), as a read otherwise. poll() on an exported
 * dma-buf, DMA_BUF_IOCTL_EXPORT_SYNC_FILE and other drivers importing the
 * BO see it. Before the job reaches the device, SUBMIT (or the io_uring
 * issue) waits, interruptibly, for the fences of other devices or drivers
 * on those BOs (implicit sync: a BO read waits for their writes, a BO
 * written for all their fences). Fences of this device's own jobs are not
 * waited for: a queue runs its jobs in order, and jobs on different queues
 * are ordered by their submitter (WAIT, CQEs), as without fences.
 *
 * SUBMIT returns 0 or:
 *
 * - -EINVAL: a bad field (unknown opcode or flag, nonzero padding, a
 *   dimension or batch out of range).
 * - -ENOENT: a handle the file does not own.
 * - -ERANGE: a buffer range outside its BO, or tiles outside the chip.
 * - -E2BIG: a buffer range spans more than 4096 scatter-gather entries
 *   (POLAR_CIM_MAX_SGE) in its BO's pages.
 * - -EBUSY: the file has 4096 jobs it has not collected with WAIT.
 * - -EIO: the device's last recovery failed; the call asked for another
 *   one, so try again later.
 * - -ENODEV: the device is gone (unbound).
 * - -EFAULT, -ENOMEM: as usual.
 * - -EINTR (or a transparent restart): a signal arrived while the ring
 *   was full or another device's fence was pending, and the job was not
 *   queued.
 */
struct drm_polar_accel_submit {
	__u32 queue;
	__u32 flags;
	__u32 num_cmds;
	__u32 cmd_stride;
	__u64 cmds;
	__u64 seqno;
};

/**
 * struct drm_polar_accel_wait - wait for a job and collect its status
 * @seqno: in, from SUBMIT by this file.
 * @timeout_ns: in, an absolute CLOCK_MONOTONIC deadline in ns (as ivpu's
 *	WAIT): a time already past, 0 included, polls; INT64_MAX waits
 *	forever. Absolute so that a WAIT restarted after a signal keeps its
 *	deadline. Negative values get -EINVAL.
 * @flags: in, must be zero.
 * @status: out, 0 or a negative errno: -EINVAL (the device rejected a
 *	field), -ERANGE (tiles outside the chip), -ENOENT (tiles not
 *	programmed for this shape), -EIO (DMA or device error, a lost
 *	completion, or a failed recovery), -ETIMEDOUT (the job's queue hung
 *	and the device was reset), -ENODEV (firmware not booted or device
 *	gone).
 * @cmd_status: out, the device status (POLAR_CIM_ST_*) of the first
 *	failing command, 0 when all succeeded.
 * @pad: zero.
 *
 * Returns 0 once the job has ended (its status is then reported and the
 * seqno is released), -ETIME if it has not by the deadline, -ENOENT for a
 * seqno this file does not have outstanding (or that another thread has
 * just collected), -EINVAL for a bad field, and -EINTR (or a transparent
 * restart, with the same deadline) when a signal arrived first.
 */
struct drm_polar_accel_wait {
	__u64 seqno;
	__s64 timeout_ns;
	__u32 flags;
	__s32 status;
	__u32 cmd_status;
	__u32 pad;
};

/*
 * io_uring submission. On a ring created with IORING_SETUP_SQE128, an
 * IORING_OP_URING_CMD SQE on the accel fd with cmd_op
 * DRM_POLAR_ACCEL_URING_SUBMIT carries a struct drm_polar_accel_uring_submit
 * in its 80-byte cmd area; the driver copies that payload when the SQE is
 * consumed.
 *
 * The command array it points to (@cmds) is read when the command is
 * issued, which can be later than io_uring_submit() returns: io_uring
 * issues again from a worker when the first, non-blocking attempt would
 * sleep (a BO's first use, a full ring), and an SQPOLL thread issues on
 * its own time. Keep the array valid and unchanged until the CQE arrives.
 *
 * The CQE arrives when the device has completed the job: res is the job's
 * status (0 or a negative errno as for WAIT's status), or the submission's
 * error (as for SUBMIT; -EINTR if a signal ended a wait for ring space).
 * On a ring made with IORING_SETUP_CQE32 as well, big_cqe[0] is the job's
 * cmd_status (as WAIT's). Closing the ring cancels the CQEs of jobs still
 * running (res -ECANCELED); the jobs themselves run to completion.
 *
 * cmd_op is encoded like an ioctl number (direction, size, type, number),
 * as nvme and ublk do, so a payload of another size is refused.
 */
#define DRM_POLAR_ACCEL_URING_SUBMIT \
	DRM_IOWR(DRM_COMMAND_BASE + 0x20, struct drm_polar_accel_uring_submit)

/**
 * struct drm_polar_accel_uring_submit - the uring_cmd payload, 80 bytes
 * @queue: as struct drm_polar_accel_submit.
 * @flags: must be zero.
 * @num_cmds: as struct drm_polar_accel_submit.
 * @cmd_stride: as struct drm_polar_accel_submit.
 * @cmds: user pointer to num_cmds commands, @cmd_stride bytes apart.
 * @rsvd: must be zero.
 */
struct drm_polar_accel_uring_submit {
	__u32 queue;
	__u32 flags;
	__u32 num_cmds;
	__u32 cmd_stride;
	__u64 cmds;
	__u64 rsvd[7];
};

#if defined(__cplusplus)
}
#endif

#endif /* _UAPI_DRM_POLAR_ACCEL_H_ */
