/* SPDX-License-Identifier: MIT */
/*
 * libpolar-accel: the application interface to polar-cim accelerators.
 *
 * Errors are returned as negative errno values; polar_errmsg() then says,
 * for the calling thread, which file, field or shape was wrong. The library
 * never prints.
 *
 * Thread-safety: a struct polar_device, and the buffers and layers made
 * from it, may be used by one thread at a time. Threads that submit
 * concurrently each open their own struct polar_device (each has its own
 * file and io_uring ring, so they share nothing but the hardware). The
 * io_uring ring serves one thread (IORING_SETUP_SINGLE_ISSUER): a handle
 * passes to another thread with no jobs in flight (it then sets up a new
 * ring), and jobs are reaped by the thread that submitted them.
 */
#ifndef POLAR_POLAR_H
#define POLAR_POLAR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An open accelerator (a /dev/accel/accelN node driven by polar_accel). */
struct polar_device;

/* The kernel driver's name, as drmGetVersion() and sysfs report it. */
#define POLAR_DRIVER_NAME "polar_accel"

/*
 * Finds the index-th (from 0) accel node bound to polar_accel by walking
 * <sysfs_root>/class/accel (sysfs_root NULL means "/sys") and writes its
 * /dev/accel path into path[len]. Returns 0, -ENOENT when there is no such
 * node, or -ENAMETOOLONG.
 */
int polar_find_device(const char *sysfs_root, unsigned int index,
		      char *path, size_t len);

/*
 * Opens an accelerator. path NULL opens the first polar accel node; a path
 * names one, e.g. "/dev/accel/accel1" (its DRM driver must be polar_accel,
 * -ENODEV otherwise). "sim" opens the software backend: cim_engine runs in
 * this process, with chip properties given as in QEMU,
 * "sim:rows=128,adc-bits=5,sigma-static=6554,seed=7" (names of
 * -device polar-cim,help), and the firmware image named by the
 * POLAR_FIRMWARE environment variable or else /lib/firmware/polar_cim.fw,
 * so that it computes bit for bit what a device with those properties
 * computes (with sigma-dynamic 0, or the same job seeds).
 */
int polar_open(const char *path, struct polar_device **dev);

/* Closes dev; NULL is allowed. */
void polar_close(struct polar_device *dev);

/* The device node dev was opened from. */
const char *polar_device_path(const struct polar_device *dev);

/*
 * Reads one parameter (enum drm_polar_accel_param in
 * <drm/polar_accel.h>) into *value.
 */
int polar_get_param(struct polar_device *dev, uint32_t param,
		    uint64_t *value);

/**
 * struct polar_caps - what a device is and can do
 * @rows, @cols: cells per tile; @tiles: tiles on the chip
 * @adc_bits: ADC resolution; @rows_per_conv: rows per conversion
 * @num_queues: device queues; @max_batch: vectors per MATMUL command
 * @max_cmds: commands per job
 * @sigma_static, @sigma_dynamic, @adc_offset_sigma, @adc_gain_sigma: Q16
 * @stuck_ppm: stuck cells per million; @seed: the chip seed
 * @fw_version: booted firmware, major << 16 | minor
 * @features: DRM_POLAR_ACCEL_FEATURE_* (the software backend has none)
 * @sim: 1 for the software backend
 * @recon: how conversions become outputs: POLAR_CIM_RECON_CODES (the ADC
 *	codes are shift-added and the ADC step applied once per output) or
 *	POLAR_CIM_RECON_CELLS (each conversion rounded to cell currents with
 *	@recon_frac_bits fractional bits); outputs are in the same units
 *	(weight code x input code) either way
 */
struct polar_caps {
	uint32_t rows, cols, tiles, adc_bits, rows_per_conv;
	uint32_t num_queues, max_batch, max_cmds;
	uint32_t sigma_static, sigma_dynamic, adc_offset_sigma, adc_gain_sigma;
	uint32_t stuck_ppm;
	uint64_t seed;
	uint32_t fw_version;
	uint64_t features;
	int sim;
	uint32_t recon, recon_frac_bits;
};

int polar_get_caps(struct polar_device *dev, struct polar_caps *caps);

/**
 * struct polar_design - the chip-design options of a device, beside its
 * caps (struct polar_caps keeps its size: applications allocate it)
 * @digital_planes: most significant weight planes (sign plane first) read
 *	digitally, as exact counts without the ADC
 * @adc_bits_msb: ADC bits of the MSB conversions, 0 = none (all at
 *	adc_bits)
 * @adc_msb_levels: significance levels (input plane + weight plane) of
 *	the analog pairs converted at @adc_bits_msb
 */
struct polar_design {
	uint32_t digital_planes, adc_bits_msb, adc_msb_levels;
};

int polar_get_design(struct polar_device *dev, struct polar_design *design);

/*
 * Buffers: memory the device reads and writes (a GEM buffer object of the
 * open file, or plain memory for the software backend), mapped in this
 * process from creation to free.
 */
struct polar_buffer;

int polar_buffer_create(struct polar_device *dev, size_t size,
			struct polar_buffer **buf);
void *polar_buffer_map(const struct polar_buffer *buf);
size_t polar_buffer_size(const struct polar_buffer *buf);
/* Frees buf; no job may use it any more. NULL is allowed. */
void polar_buffer_free(struct polar_buffer *buf);

/* A byte range of a buffer a command reads or writes. */
struct polar_buf_ref {
	struct polar_buffer *buf;
	uint64_t offset;
	uint64_t size;
};

/**
 * struct polar_cmd - one device command (POLAR_CIM_OP_* of
 * <polar/polar_cim_hw.h>), with the fields of struct drm_polar_accel_cmd;
 * buffers are given as references instead of handles.
 */
struct polar_cmd {
	uint8_t opcode;
	uint8_t wfmt;
	uint8_t xfmt;
	uint16_t tile0;
	uint32_t in_dim;
	uint32_t out_dim;
	uint32_t batch;
	uint32_t adc_fs_q8;
	uint32_t job_seed;
	struct polar_buf_ref src;
	struct polar_buf_ref dst;
};

/* The end of a job: its user_data, 0 or -errno, and the device status. */
struct polar_completion {
	uint64_t user_data;
	int status;
	uint32_t cmd_status;
};

/* Submission paths: io_uring when the driver has it, else ioctls. */
enum polar_submit_path {
	POLAR_PATH_AUTO = 0,
	POLAR_PATH_URING = 1,
	POLAR_PATH_IOCTL = 2,
};

/* Chooses the path for later submissions; -ENOTSUP if unavailable. */
int polar_set_submit_path(struct polar_device *dev, enum polar_submit_path p);
enum polar_submit_path polar_submit_path(const struct polar_device *dev);

/*
 * Queues a job of n commands on device queue `queue`. It completes
 * asynchronously; polar_reap() returns its completion with user_data.
 * Errors found before the device sees the job return -errno here; the
 * driver's own checks on the io_uring path arrive as the completion's
 * status. On the io_uring path jobs are handed to the kernel in batches:
 * at the latest by polar_flush() or polar_reap().
 *
 * A handle keeps at most polar_max_inflight() jobs in flight (submitted,
 * not reaped), on every path: beyond that polar_submit() returns -EBUSY
 * and queues nothing; reap, then submit again. (The cap keeps every
 * job's completion within the io_uring completion ring.)
 */
int polar_submit(struct polar_device *dev, uint32_t queue,
		 const struct polar_cmd *cmds, uint32_t n, uint64_t user_data);

/*
 * Hands every queued job to the device now (one system call, more only
 * if the kernel takes part of them). When the kernel takes none
 * (-EAGAIN or -EBUSY: it is short of memory) the jobs stay queued for a
 * later polar_flush() or polar_reap().
 */
int polar_flush(struct polar_device *dev);

/*
 * Collects up to max completions into out, waiting until at least
 * min_wait have arrived (0 = do not wait). Returns the number collected or
 * -errno. It first hands queued jobs to the kernel; on the io_uring path
 * that and the wait are one system call, and jobs the kernel did not
 * take are offered again rather than waited for.
 */
int polar_reap(struct polar_device *dev, struct polar_completion *out,
	       uint32_t max, uint32_t min_wait);

/* Jobs submitted and not yet reaped. */
uint32_t polar_inflight(const struct polar_device *dev);

/* The most jobs a handle keeps in flight (256). */
uint32_t polar_max_inflight(const struct polar_device *dev);

/*
 * The calling thread's description of its last failed call, or "" when
 * there was none.
 */
const char *polar_errmsg(void);

#ifdef __cplusplus
}
#endif

#endif /* POLAR_POLAR_H */
