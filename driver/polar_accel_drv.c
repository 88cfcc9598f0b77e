// SPDX-License-Identifier: GPL-2.0-only
/*
 * polar_accel: DRM compute-accelerator driver for the polar-cim bit-plane
 * compute-in-memory device. This file holds PCI probe/remove, the DRM
 * registration, the ioctl table and GET_PARAM.
 */

#include <drm/drm_gem.h>
#include <drm/drm_accel.h>
#include <drm/drm_drv.h>
#include <drm/drm_file.h>
#include <drm/drm_ioctl.h>
#include <linux/dma-mapping.h>
#include <linux/iopoll.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/slab.h>

#include "polar_accel_drv.h"
#include "drm/polar_accel.h"

#define CREATE_TRACE_POINTS
#include "polar_accel_trace.h"

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
	case DRM_POLAR_ACCEL_PARAM_NUM_QUEUES:
		*value = pdev->num_queues;
		return 0;
	case DRM_POLAR_ACCEL_PARAM_CAPS:
		reg = POLAR_CIM_REG_CAPS;
		break;
	case DRM_POLAR_ACCEL_PARAM_FW_VERSION:
		*value = pdev->fw_version;
		return 0;
	case DRM_POLAR_ACCEL_PARAM_SIGMA_STATIC:
		reg = POLAR_CIM_REG_SIGMA_STATIC;
		break;
	case DRM_POLAR_ACCEL_PARAM_SIGMA_DYNAMIC:
		reg = POLAR_CIM_REG_SIGMA_DYNAMIC;
		break;
	case DRM_POLAR_ACCEL_PARAM_STUCK_PPM:
		reg = POLAR_CIM_REG_STUCK_PPM;
		break;
	case DRM_POLAR_ACCEL_PARAM_ADC_OFFSET_SIGMA:
		reg = POLAR_CIM_REG_ADC_OFFSET_SIGMA;
		break;
	case DRM_POLAR_ACCEL_PARAM_ADC_GAIN_SIGMA:
		reg = POLAR_CIM_REG_ADC_GAIN_SIGMA;
		break;
	case DRM_POLAR_ACCEL_PARAM_RESET_COUNT:
		*value = atomic_read(&pdev->reset_count);
		return 0;
	case DRM_POLAR_ACCEL_PARAM_FEATURES:
		*value = DRM_POLAR_ACCEL_FEATURE_URING_CMD |
			 DRM_POLAR_ACCEL_FEATURE_HANG_RECOVERY |
			 DRM_POLAR_ACCEL_FEATURE_IMPLICIT_FENCES;
		return 0;
	case DRM_POLAR_ACCEL_PARAM_ROWS_PER_CONV:
		reg = POLAR_CIM_REG_ROWS_PER_CONV;
		break;
	case DRM_POLAR_ACCEL_PARAM_RECON:
		reg = POLAR_CIM_REG_RECON;
		break;
	case DRM_POLAR_ACCEL_PARAM_DESIGN:
		reg = POLAR_CIM_REG_DESIGN;
		break;
	case DRM_POLAR_ACCEL_PARAM_MAX_BATCH:
		*value = pdev->max_batch;
		return 0;
	case DRM_POLAR_ACCEL_PARAM_MAX_CMDS:
		*value = POLAR_MAX_CMDS;
		return 0;
	case DRM_POLAR_ACCEL_PARAM_SEED:
		if (!drm_dev_enter(&pdev->drm, &idx))
			return -ENODEV;
		*value = (u64)polar_reg_read(pdev, POLAR_CIM_REG_SEED_HI) << 32 |
			 polar_reg_read(pdev, POLAR_CIM_REG_SEED_LO);
		drm_dev_exit(idx);
		return 0;
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
	DRM_IOCTL_DEF_DRV(POLAR_ACCEL_BO_CREATE, polar_bo_create_ioctl, 0),
	DRM_IOCTL_DEF_DRV(POLAR_ACCEL_BO_INFO, polar_bo_info_ioctl, 0),
	DRM_IOCTL_DEF_DRV(POLAR_ACCEL_SUBMIT, polar_submit_ioctl, 0),
	DRM_IOCTL_DEF_DRV(POLAR_ACCEL_WAIT, polar_wait_ioctl, 0),
};

static int polar_open(struct drm_device *drm, struct drm_file *file)
{
	struct polar_file *pfile;

	pfile = kzalloc(sizeof(*pfile), GFP_KERNEL);
	if (!pfile)
		return -ENOMEM;
	pfile->pdev = to_polar_device(drm);
	file->driver_priv = pfile;
	return 0;
}

static void polar_postclose(struct drm_device *drm, struct drm_file *file)
{
	struct polar_file *pfile = file->driver_priv;

	polar_jobs_file_close(pfile->pdev, pfile);
	kfree(pfile);
}

static const struct file_operations polar_fops = {
	.owner = THIS_MODULE,
	DRM_ACCEL_FOPS,
	.uring_cmd = polar_uring_cmd,
};

static const struct drm_driver polar_drm_driver = {
	.driver_features = DRIVER_COMPUTE_ACCEL | DRIVER_GEM,
	.open = polar_open,
	.postclose = polar_postclose,
	.ioctls = polar_ioctls,
	.num_ioctls = ARRAY_SIZE(polar_ioctls),
	.fops = &polar_fops,
	.name = DRIVER_NAME,
	.desc = DRIVER_DESC,
	.major = 0,
	.minor = 2,
};

/*
 * Longer than any command runs: an injected DELAY holds BUSY up to 10 s
 * (hw/README.md section 10), although a reset ends that wait early.
 */
#define POLAR_IDLE_TIMEOUT_US	(12 * USEC_PER_SEC)

/*
 * Stops the device: queues and firmware are cleared. A reset does not stop
 * the command that is executing (hw/README.md section 8): it runs to its
 * end and may still read its inputs and SG lists and write its outputs,
 * so wait for STATUS.BUSY = 0 before anyone frees what it uses. A device
 * that stays busy marks its DMA memory unsafe to free for good
 * (polar_device.dma_unsafe) and returns -ETIMEDOUT.
 */
int polar_hw_reset(struct polar_device *pdev)
{
	u32 status;
	int ret;

	polar_reg_write(pdev, POLAR_CIM_REG_INT_MASK, U32_MAX);
	polar_reg_write(pdev, POLAR_CIM_REG_CTRL, POLAR_CIM_CTRL_RESET);
	/* All ones: the device is gone from the bus and does no DMA. */
	ret = readl_poll_timeout(pdev->regs + POLAR_CIM_REG_STATUS, status,
				 !(status & POLAR_CIM_STATUS_BUSY) ||
				 status == U32_MAX,
				 100, POLAR_IDLE_TIMEOUT_US);
	if (ret) {
		drm_err(&pdev->drm, "still busy %u s after reset: its DMA memory is never freed\n",
			(u32)(POLAR_IDLE_TIMEOUT_US / USEC_PER_SEC));
		WRITE_ONCE(pdev->dma_unsafe, true);
	}
	return ret;
}

static int polar_hw_init(struct polar_device *pdev)
{
	pdev->rows = polar_reg_read(pdev, POLAR_CIM_REG_ROWS);
	pdev->cols = polar_reg_read(pdev, POLAR_CIM_REG_COLS);
	pdev->tiles = polar_reg_read(pdev, POLAR_CIM_REG_TILES);
	pdev->rows_per_conv = polar_reg_read(pdev, POLAR_CIM_REG_ROWS_PER_CONV);
	pdev->max_batch = polar_reg_read(pdev, POLAR_CIM_REG_MAX_BATCH);
	pdev->num_queues = min_t(u32,
				 polar_reg_read(pdev, POLAR_CIM_REG_NUM_QUEUES),
				 POLAR_CIM_MAX_QUEUES);
	if (!pdev->rows || !pdev->cols || !pdev->tiles || !pdev->max_batch ||
	    !pdev->num_queues)
		return -ENODEV;
	/* A previous driver's command may still run: wait for it. */
	return polar_hw_reset(pdev);
}

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

	ret = dma_set_mask_and_coherent(&pci->dev, DMA_BIT_MASK(64));
	if (ret)
		return ret;
	ret = polar_hw_init(pdev);
	if (ret)
		return dev_err_probe(&pci->dev, ret, "bad device geometry\n");
	ret = polar_fw_load(pdev);
	if (ret)
		return ret;
	ret = polar_fw_boot(pdev);
	if (ret)
		return ret;
	polar_recovery_init(pdev);
	ret = polar_queues_init(pdev);
	if (ret)
		goto err_reset;
	ret = polar_irqs_init(pdev);
	if (ret)
		goto err_reset;

	pci_set_drvdata(pci, pdev);
	ret = drm_dev_register(&pdev->drm, 0);
	if (ret)
		goto err_irqs;
	polar_debugfs_init(pdev);

	dev_info(&pci->dev, "polar-cim %u.%u: %u tiles of %ux%u, %u-bit ADC\n",
		 version >> 16, version & 0xffff,
		 polar_reg_read(pdev, POLAR_CIM_REG_TILES),
		 polar_reg_read(pdev, POLAR_CIM_REG_ROWS),
		 polar_reg_read(pdev, POLAR_CIM_REG_COLS),
		 polar_reg_read(pdev, POLAR_CIM_REG_ADC_BITS));
	return 0;

err_irqs:
	polar_irqs_fini(pdev);
err_reset:
	polar_hw_reset(pdev);
	return ret;
}

static void polar_remove(struct pci_dev *pci)
{
	struct polar_device *pdev = pci_get_drvdata(pci);

	/* New ioctls see -ENODEV from here on; then the device goes quiet. */
	drm_dev_unplug(&pdev->drm);
	/* Submitters waiting for ring space leave with -ENODEV. */
	wake_up_all(&pdev->job_wq);
	/*
	 * Interrupts go first: a FATAL one queues a recovery. Then the
	 * recovery and the watchdog, which re-arm each other, are disabled
	 * for good, so that no work runs once the drm_device or the module
	 * is gone.
	 */
	polar_irqs_fini(pdev);
	polar_recovery_fini(pdev);
	polar_hw_reset(pdev);
	/* Nothing will complete now: submitters see -ENODEV. */
	polar_jobs_abort_all(pdev, -ENODEV);
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
