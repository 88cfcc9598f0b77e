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

/* Bumped when an ioctl, a param or a payload is added. */
#define DRM_POLAR_ACCEL_UAPI_VERSION	1

#define DRM_POLAR_ACCEL_GET_PARAM	0x00

#define DRM_IOCTL_POLAR_ACCEL_GET_PARAM \
	DRM_IOWR(DRM_COMMAND_BASE + DRM_POLAR_ACCEL_GET_PARAM, \
		 struct drm_polar_accel_get_param)

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
};

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

#if defined(__cplusplus)
}
#endif

#endif /* _UAPI_DRM_POLAR_ACCEL_H_ */
