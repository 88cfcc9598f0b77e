/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * polar-cim: a bit-plane compute-in-memory accelerator on PCI.
 *
 * The register map and every command are specified in hw/README.md and
 * encoded in polar_cim_hw.h, which the driver and the library share.
 */

#include "qemu/osdep.h"
#include "qemu/log.h"
#include "qemu/module.h"
#include "qapi/error.h"
#include "hw/pci/pci_device.h"
#include "hw/qdev-properties.h"
#include "migration/vmstate.h"
#include "qom/object.h"
#include "trace.h"
#include "polar_cim_hw.h"

#define TYPE_POLAR_CIM "polar-cim"
OBJECT_DECLARE_SIMPLE_TYPE(PolarCimState, POLAR_CIM)

struct PolarCimState {
    PCIDevice parent_obj;

    MemoryRegion mmio;

    /* Properties: the chip's geometry. */
    uint32_t rows;
    uint32_t cols;
    uint32_t tiles;
    uint32_t adc_bits;

    uint32_t scratch;
};

static uint64_t polar_cim_mmio_read(void *opaque, hwaddr addr, unsigned size)
{
    PolarCimState *s = opaque;
    uint64_t val = 0;

    switch (addr) {
    case POLAR_CIM_REG_ID:
        val = POLAR_CIM_ID_MAGIC;
        break;
    case POLAR_CIM_REG_VERSION:
        val = POLAR_CIM_VERSION;
        break;
    case POLAR_CIM_REG_SCRATCH:
        val = s->scratch;
        break;
    case POLAR_CIM_REG_ROWS:
        val = s->rows;
        break;
    case POLAR_CIM_REG_COLS:
        val = s->cols;
        break;
    case POLAR_CIM_REG_TILES:
        val = s->tiles;
        break;
    case POLAR_CIM_REG_ADC_BITS:
        val = s->adc_bits;
        break;
    default:
        qemu_log_mask(LOG_GUEST_ERROR,
                      "polar-cim: read of unknown register 0x%" HWADDR_PRIx
                      "\n", addr);
        break;
    }
    trace_polar_cim_mmio_read(addr, val);
    return val;
}

static void polar_cim_mmio_write(void *opaque, hwaddr addr, uint64_t val,
                                 unsigned size)
{
    PolarCimState *s = opaque;

    trace_polar_cim_mmio_write(addr, val);
    switch (addr) {
    case POLAR_CIM_REG_SCRATCH:
        s->scratch = val;
        break;
    default:
        qemu_log_mask(LOG_GUEST_ERROR,
                      "polar-cim: write of 0x%" PRIx64 " to read-only or "
                      "unknown register 0x%" HWADDR_PRIx "\n", val, addr);
        break;
    }
}

static const MemoryRegionOps polar_cim_mmio_ops = {
    .read = polar_cim_mmio_read,
    .write = polar_cim_mmio_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = {
        .min_access_size = 4,
        .max_access_size = 4,
    },
    .impl = {
        .min_access_size = 4,
        .max_access_size = 4,
    },
};

static void polar_cim_realize(PCIDevice *pdev, Error **errp)
{
    PolarCimState *s = POLAR_CIM(pdev);

    if (s->rows == 0 || s->rows % 64 || s->rows > 1024) {
        error_setg(errp, "polar-cim: rows must be a multiple of 64 in "
                   "64..1024, not %" PRIu32, s->rows);
        return;
    }
    if (s->cols == 0 || s->cols > 1024) {
        error_setg(errp, "polar-cim: cols must be in 1..1024, not %" PRIu32,
                   s->cols);
        return;
    }
    if (s->tiles == 0 || s->tiles > 4096) {
        error_setg(errp, "polar-cim: tiles must be in 1..4096, not %" PRIu32,
                   s->tiles);
        return;
    }
    if (s->adc_bits < 1 || s->adc_bits > 16) {
        error_setg(errp, "polar-cim: adc-bits must be in 1..16, not %" PRIu32,
                   s->adc_bits);
        return;
    }

    pci_config_set_interrupt_pin(pdev->config, 1);
    memory_region_init_io(&s->mmio, OBJECT(s), &polar_cim_mmio_ops, s,
                          "polar-cim-mmio", POLAR_CIM_BAR0_SIZE);
    pci_register_bar(pdev, 0, PCI_BASE_ADDRESS_SPACE_MEMORY, &s->mmio);
}

static void polar_cim_reset(DeviceState *dev)
{
    PolarCimState *s = POLAR_CIM(dev);

    s->scratch = 0;
}

static const Property polar_cim_properties[] = {
    DEFINE_PROP_UINT32("rows", PolarCimState, rows, 128),
    DEFINE_PROP_UINT32("cols", PolarCimState, cols, 128),
    DEFINE_PROP_UINT32("tiles", PolarCimState, tiles, 64),
    DEFINE_PROP_UINT32("adc-bits", PolarCimState, adc_bits, 5),
};

static const VMStateDescription polar_cim_vmstate = {
    .name = TYPE_POLAR_CIM,
    .unmigratable = 1,
};

static void polar_cim_class_init(ObjectClass *klass, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    PCIDeviceClass *k = PCI_DEVICE_CLASS(klass);

    k->realize = polar_cim_realize;
    k->vendor_id = POLAR_CIM_PCI_VENDOR_ID;
    k->device_id = POLAR_CIM_PCI_DEVICE_ID;
    k->revision = POLAR_CIM_PCI_REVISION;
    k->class_id = POLAR_CIM_PCI_CLASS;
    dc->desc = "polar-cim bit-plane compute-in-memory accelerator";
    dc->vmsd = &polar_cim_vmstate;
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
    device_class_set_legacy_reset(dc, polar_cim_reset);
    device_class_set_props(dc, polar_cim_properties);

    object_class_property_set_description(klass, "rows",
        "rows per tile: inputs summed on one bit line (multiple of 64)");
    object_class_property_set_description(klass, "cols",
        "columns per tile: output channels per tile");
    object_class_property_set_description(klass, "tiles",
        "number of CIM tiles on the chip");
    object_class_property_set_description(klass, "adc-bits",
        "resolution of each column's ADC in bits");
}

static const TypeInfo polar_cim_info = {
    .name          = TYPE_POLAR_CIM,
    .parent        = TYPE_PCI_DEVICE,
    .instance_size = sizeof(PolarCimState),
    .class_init    = polar_cim_class_init,
    .interfaces = (InterfaceInfo[]) {
        { INTERFACE_PCIE_DEVICE },
        { INTERFACE_CONVENTIONAL_PCI_DEVICE },
        { },
    },
};

static void polar_cim_register_types(void)
{
    type_register_static(&polar_cim_info);
}

type_init(polar_cim_register_types)
