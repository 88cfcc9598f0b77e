// SPDX-License-Identifier: GPL-2.0-only
/*
 * polar_accel: firmware load and boot. The image (polar_cim.fw, built by
 * firmware/polar-fwasm) is read once at probe and kept, because a hang
 * recovery must boot it again. It reaches the device by DMA; the device
 * checks its header, CRC and API version and reports in FW_STATUS.
 */

#include <linux/dma-mapping.h>
#include <linux/firmware.h>
#include <linux/iopoll.h>
#include <linux/slab.h>

#include "polar_accel_drv.h"

#define POLAR_FW_NAME		"polar_cim.fw"
#define POLAR_FW_TIMEOUT_US	(5 * USEC_PER_SEC)

MODULE_FIRMWARE(POLAR_FW_NAME);

static const char *polar_fw_status_str(u32 status)
{
	switch (status) {
	case POLAR_CIM_FW_ERR_DMA:
		return "the device could not read the image";
	case POLAR_CIM_FW_ERR_SIZE:
		return "bad image size";
	case POLAR_CIM_FW_ERR_MAGIC:
		return "bad magic";
	case POLAR_CIM_FW_ERR_CRC:
		return "CRC mismatch";
	case POLAR_CIM_FW_ERR_API:
		return "unsupported firmware API version";
	case POLAR_CIM_FW_ERR_SECTION:
		return "malformed section or microcode";
	default:
		return "unknown status";
	}
}

/*
 * Reads polar_cim.fw into pdev->fw_image: DMA memory the device reads at
 * every boot, freed only when the driver unbinds (after the device reset),
 * so that a boot the driver gave up on never reads freed memory.
 */
int polar_fw_load(struct polar_device *pdev)
{
	struct device *dev = pdev->drm.dev;
	const struct firmware *fw;
	int ret;

	ret = request_firmware(&fw, POLAR_FW_NAME, dev);
	if (ret) {
		dev_err(dev, "cannot load firmware %s: %d\n", POLAR_FW_NAME,
			ret);
		return ret;
	}
	if (fw->size < sizeof(struct polar_cim_fw_header) ||
	    fw->size > POLAR_CIM_FW_MAX_SIZE) {
		dev_err(dev, "firmware %s: size %zu out of range\n",
			POLAR_FW_NAME, fw->size);
		ret = -EINVAL;
	} else {
		pdev->fw_image = dmam_alloc_coherent(dev, fw->size,
						     &pdev->fw_dma, GFP_KERNEL);
		pdev->fw_size = fw->size;
		if (pdev->fw_image)
			memcpy(pdev->fw_image, fw->data, fw->size);
		else
			ret = -ENOMEM;
	}
	release_firmware(fw);
	return ret;
}

/* Boots the kept image; the device must be reset and idle. */
int polar_fw_boot(struct polar_device *pdev)
{
	struct device *dev = pdev->drm.dev;
	/* Past the header, so that the device's CRC check is what fails. */
	u8 *poke = (u8 *)pdev->fw_image + pdev->fw_size - 1;
	bool corrupt = pdev->fw_corrupt_next_boot;
	u32 status;
	int ret;

	pdev->fw_corrupt_next_boot = false;
	if (corrupt)
		*poke ^= 0xff;
	polar_reg_write(pdev, POLAR_CIM_REG_FW_ADDR_LO, lower_32_bits(pdev->fw_dma));
	polar_reg_write(pdev, POLAR_CIM_REG_FW_ADDR_HI, upper_32_bits(pdev->fw_dma));
	polar_reg_write(pdev, POLAR_CIM_REG_FW_SIZE, pdev->fw_size);
	polar_reg_write(pdev, POLAR_CIM_REG_FW_CTRL, POLAR_CIM_FW_CTRL_BOOT);
	ret = readl_poll_timeout(pdev->regs + POLAR_CIM_REG_FW_STATUS, status,
				 status != POLAR_CIM_FW_NONE, 100,
				 POLAR_FW_TIMEOUT_US);
	/* The boot has ended: INT_FW is acknowledged like any event. */
	polar_reg_write(pdev, POLAR_CIM_REG_INT_STATUS, POLAR_CIM_INT_FW);
	if (corrupt)
		*poke ^= 0xff;
	if (ret) {
		dev_err(dev, "firmware %s: the device did not answer\n",
			POLAR_FW_NAME);
		return ret;
	}
	if (status != POLAR_CIM_FW_BOOTED) {
		dev_err(dev, "firmware %s rejected: %s (status 0x%x)\n",
			POLAR_FW_NAME, polar_fw_status_str(status), status);
		return -EINVAL;
	}
	pdev->fw_version = polar_reg_read(pdev, POLAR_CIM_REG_FW_VERSION);
	dev_info(dev, "firmware %s %u.%u booted\n", POLAR_FW_NAME,
		 pdev->fw_version >> 16, pdev->fw_version & 0xffff);
	return 0;
}
