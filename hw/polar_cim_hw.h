/* SPDX-License-Identifier: MIT */
/*
 * polar-cim hardware contract: PCI identity and the BAR0 register map of the
 * bit-plane compute-in-memory accelerator. hw/README.md is the datasheet
 * that explains every field; this header only encodes it. It is shared by
 * the QEMU device model, the kernel driver, the firmware tool and the
 * library, so it uses nothing but fixed-width integer types.
 */
#ifndef POLAR_CIM_HW_H
#define POLAR_CIM_HW_H

/* QEMU's docs/specs/pci-ids.rst leaves 1af4:10f0-10ff for experiments. */
#define POLAR_CIM_PCI_VENDOR_ID		0x1af4
#define POLAR_CIM_PCI_DEVICE_ID		0x10f0
#define POLAR_CIM_PCI_REVISION		0x01
#define POLAR_CIM_PCI_CLASS		0x1200	/* processing accelerator */

#define POLAR_CIM_BAR0_SIZE		0x1000

/* Identity: read-only. */
#define POLAR_CIM_REG_ID		0x000	/* POLAR_CIM_ID_MAGIC */
#define POLAR_CIM_REG_VERSION		0x004	/* major << 16 | minor */
#define POLAR_CIM_REG_SCRATCH		0x008	/* read/write, no effect */

/* Geometry: read-only, set by the device's properties. */
#define POLAR_CIM_REG_ROWS		0x010	/* rows per tile */
#define POLAR_CIM_REG_COLS		0x014	/* columns per tile */
#define POLAR_CIM_REG_TILES		0x018	/* number of tiles */
#define POLAR_CIM_REG_ADC_BITS		0x01c	/* ADC resolution in bits */

#define POLAR_CIM_ID_MAGIC		0x4d494350u	/* "PCIM" little-endian */
#define POLAR_CIM_VERSION_MAJOR		0
#define POLAR_CIM_VERSION_MINOR		1
#define POLAR_CIM_VERSION \
	((POLAR_CIM_VERSION_MAJOR << 16) | POLAR_CIM_VERSION_MINOR)

#endif /* POLAR_CIM_HW_H */
