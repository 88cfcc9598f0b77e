/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * polar_accel: driver state shared by the driver's files.
 */
#ifndef __POLAR_ACCEL_DRV_H__
#define __POLAR_ACCEL_DRV_H__

#include <drm/drm_device.h>
#include <linux/io.h>
#include <linux/pci.h>

#define DRIVER_NAME	"polar_accel"
#define DRIVER_DESC	"polar-cim bit-plane compute-in-memory accelerator"

/**
 * struct polar_device - one polar-cim PCI function
 * @drm: the DRM device; its lifetime owns this struct (devm_drm_dev_alloc)
 * @regs: BAR0, the registers of hw/polar_cim_hw.h
 */
struct polar_device {
	struct drm_device drm;
	void __iomem *regs;
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

#endif /* __POLAR_ACCEL_DRV_H__ */
