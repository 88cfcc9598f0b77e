/* SPDX-License-Identifier: MIT */
/*
 * libpolar-accel: the application interface to polar-cim accelerators.
 *
 * Errors are returned as negative errno values; polar_errmsg() then says,
 * for the calling thread, which file, field or shape was wrong. The library
 * never prints. A struct polar_device may be used by one thread at a time;
 * different devices may be used from different threads concurrently.
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
 * Opens an accelerator. path NULL opens the first polar accel node;
 * otherwise it names the node, e.g. "/dev/accel/accel1". The node's DRM
 * driver must be polar_accel (-ENODEV otherwise).
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

/*
 * The calling thread's description of its last failed call, or "" when
 * there was none.
 */
const char *polar_errmsg(void);

#ifdef __cplusplus
}
#endif

#endif /* POLAR_POLAR_H */
