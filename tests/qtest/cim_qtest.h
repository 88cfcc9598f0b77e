/* SPDX-License-Identifier: MIT */
/*
 * cim_qtest: a polar-cim in a qtest QEMU (qtest_client.h), driven the way
 * hw/README.md's programming model says: BAR0 placed by hand (no BIOS
 * runs under qtest), INTx, rings and data in guest RAM.
 */
#ifndef CIM_QTEST_H
#define CIM_QTEST_H

#include "polar_cim_hw.h"
#include "qtest_client.h"

/* The device's PCI slot on the pc machine's bus 0, and where BAR0 goes. */
#define CIM_SLOT	4
#define CIM_BAR0	0xe0000000u

/* Guest RAM layout (of 128 MiB): rings, firmware, SG lists, data. */
#define CIM_SQ(q)	(0x01000000u + (q) * 0x40000u)
#define CIM_CQ(q)	(0x01400000u + (q) * 0x10000u)
#define CIM_FW_ADDR	0x01800000u
#define CIM_SGL_ADDR	0x01900000u
#define CIM_DATA_ADDR	0x02000000u
#define CIM_DATA_END	0x08000000u

/* The -device option that puts the device at CIM_SLOT; append ",prop=v". */
#define CIM_DEVICE_ARGS "-device polar-cim,id=cim,bus=pci.0,addr=04"

static inline uint64_t cim_reg(uint32_t off)
{
	return CIM_BAR0 + off;
}

/* Places BAR0 and enables memory decoding and bus mastering. */
void cim_pci_setup(struct qtest *q);

/* Boots the firmware @image; returns FW_STATUS (0 if the boot hung). */
uint32_t cim_boot_firmware(struct qtest *q, const void *image, size_t size);

/* Zeroes the CQ and enables queue @qid with @size entries. */
void cim_queue_setup(struct qtest *q, unsigned qid, uint32_t size);

/*
 * Writes @sqe (CPU byte order fields; converted here) at the SQ tail of
 * queue @qid and rings the doorbell. @tail is the driver's tail, advanced.
 */
void cim_submit(struct qtest *q, unsigned qid, uint32_t size,
		uint32_t *tail, const struct polar_cim_sqe *sqe);

/* One SG entry describing [addr, addr+len) at @sgl_addr. */
void cim_sgl_one(struct qtest *q, uint64_t sgl_addr, uint64_t addr,
		 uint32_t len);

/*
 * Waits up to @timeout_ms for the CQE at slot @head of queue @qid (phase
 * @phase) and returns its status, or -1 on a timeout.
 */
int cim_wait_cqe(struct qtest *q, unsigned qid, uint32_t head, int phase,
		 int timeout_ms, struct polar_cim_cqe *out);

/* Reads a whole file; NULL on error. */
void *cim_read_file(const char *path, size_t *size);

#endif /* CIM_QTEST_H */
