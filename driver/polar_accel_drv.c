// SPDX-License-Identifier: GPL-2.0-only
/*
 * polar_accel: DRM compute-accelerator driver for the polar-cim bit-plane
 * compute-in-memory device. This file holds PCI probe/remove, the DRM
 * registration and the ioctl table.
 */

#include <drm/drm_gem.h>
#include <drm/drm_accel.h>
#include <drm/drm_drv.h>
#include <drm/drm_file.h>
#include <drm/drm_ioctl.h>
#include <linux/module.h>
#include <linux/pci.h>

#include "polar_accel_drv.h"
#include "polar_cim_hw.h"
#include "drm/polar_accel.h"

static int polar_read_hw_param(struct polar_device *pdev, u32 param, u64 *value)
{
	struct pci_dev *pci = to_pci_dev(pdev->drm.dev);
	u32 reg;
	int idx;

	switch (param) {
	case DRM_POLAR_ACCEL_PARAM_DEVICE_ID:
		reg = POLAR_CIM_REG_ID;
		break;
	case DRM_POLAR_ACCEL_PARAM_DEVICE_VERSION:
		reg = POLAR_CIM_REG_VERSION;
		break;
	case DRM_POLAR_ACCEL_PARAM_TILE_ROWS:
		reg = POLAR_CIM_REG_ROWS;
		break;
	case DRM_POLAR_ACCEL_PARAM_TILE_COLS:
		reg = POLAR_CIM_REG_COLS;
		break;
	case DRM_POLAR_ACCEL_PARAM_NUM_TILES:
		reg = POLAR_CIM_REG_TILES;
		break;
	case DRM_POLAR_ACCEL_PARAM_ADC_BITS:
		reg = POLAR_CIM_REG_ADC_BITS;
		break;
	case DRM_POLAR_ACCEL_PARAM_PCI_ID:
		*value = (u64)pci->vendor << 16 | pci->device;
		return 0;
	case DRM_POLAR_ACCEL_PARAM_UAPI_VERSION:
		*value = DRM_POLAR_ACCEL_UAPI_VERSION;
		return 0;
	default:
		return -EINVAL;
	}

	/* The device may be gone (unbind) while a file is still open. */
	if (!drm_dev_enter(&pdev->drm, &idx))
		return -ENODEV;
	*value = polar_reg_read(pdev, reg);
	drm_dev_exit(idx);
	return 0;
}

static int polar_get_param_ioctl(struct drm_device *drm, void *data,
				 struct drm_file *file)
{
	struct drm_polar_accel_get_param *args = data;

	if (args->pad)
		return -EINVAL;
	return polar_read_hw_param(to_polar_device(drm), args->param,
				   &args->value);
}

static const struct drm_ioctl_desc polar_ioctls[] = {
	DRM_IOCTL_DEF_DRV(POLAR_ACCEL_GET_PARAM, polar_get_param_ioctl, 0),
};

DEFINE_DRM_ACCEL_FOPS(polar_fops);

static const struct drm_driver polar_drm_driver = {
	.driver_features = DRIVER_COMPUTE_ACCEL,
	.ioctls = polar_ioctls,
	.num_ioctls = ARRAY_SIZE(polar_ioctls),
	.fops = &polar_fops,
	.name = DRIVER_NAME,
	.desc = DRIVER_DESC,
	.major = 0,
	.minor = 1,
};

static int polar_probe(struct pci_dev *pci, const struct pci_device_id *id)
{
	struct polar_device *pdev;
	u32 magic, version;
	int ret;

	pdev = devm_drm_dev_alloc(&pci->dev, &polar_drm_driver,
				  struct polar_device, drm);
	if (IS_ERR(pdev))
		return PTR_ERR(pdev);

	ret = pcim_enable_device(pci);
	if (ret)
		return ret;
	pci_set_master(pci);

	pdev->regs = pcim_iomap_region(pci, 0, DRIVER_NAME);
	if (IS_ERR(pdev->regs))
		return dev_err_probe(&pci->dev, PTR_ERR(pdev->regs),
				     "cannot map BAR0\n");

	magic = polar_reg_read(pdev, POLAR_CIM_REG_ID);
	if (magic != POLAR_CIM_ID_MAGIC)
		return dev_err_probe(&pci->dev, -ENODEV,
				     "unexpected ID register 0x%08x\n", magic);
	version = polar_reg_read(pdev, POLAR_CIM_REG_VERSION);
	if (version >> 16 != POLAR_CIM_VERSION_MAJOR)
		return dev_err_probe(&pci->dev, -ENODEV,
				     "unsupported device version %u.%u\n",
				     version >> 16, version & 0xffff);

	pci_set_drvdata(pci, pdev);
	ret = drm_dev_register(&pdev->drm, 0);
	if (ret)
		return ret;

	dev_info(&pci->dev, "polar-cim %u.%u: %u tiles of %ux%u, %u-bit ADC\n",
		 version >> 16, version & 0xffff,
		 polar_reg_read(pdev, POLAR_CIM_REG_TILES),
		 polar_reg_read(pdev, POLAR_CIM_REG_ROWS),
		 polar_reg_read(pdev, POLAR_CIM_REG_COLS),
		 polar_reg_read(pdev, POLAR_CIM_REG_ADC_BITS));
	return 0;
}

static void polar_remove(struct pci_dev *pci)
{
	struct polar_device *pdev = pci_get_drvdata(pci);

	drm_dev_unplug(&pdev->drm);
}

static const struct pci_device_id polar_pci_ids[] = {
	{ PCI_DEVICE(POLAR_CIM_PCI_VENDOR_ID, POLAR_CIM_PCI_DEVICE_ID) },
	{ }
};
MODULE_DEVICE_TABLE(pci, polar_pci_ids);

static struct pci_driver polar_pci_driver = {
	.name = DRIVER_NAME,
	.id_table = polar_pci_ids,
	.probe = polar_probe,
	.remove = polar_remove,
};
module_pci_driver(polar_pci_driver);

MODULE_DESCRIPTION(DRIVER_DESC);
MODULE_LICENSE("GPL");
