/* SPDX-License-Identifier: MIT */
/*
 * polar-cim hardware contract: PCI identity, the BAR0 register map, the
 * queue entry formats, the commands and their status codes, and the
 * firmware image format of the bit-plane compute-in-memory accelerator.
 *
 * hw/README.md is the datasheet that explains every field; this header only
 * encodes it. It is shared by the QEMU device model, the kernel driver, the
 * firmware tool and the library, so it uses nothing but fixed-width integer
 * types (and the kernel's u8..u64 are not assumed). All multi-byte values
 * are little-endian, in registers and in memory.
 */
#ifndef POLAR_CIM_HW_H
#define POLAR_CIM_HW_H

#ifdef __KERNEL__
#include <linux/types.h>
typedef __u8 polar_u8;
typedef __u16 polar_u16;
typedef __u32 polar_u32;
typedef __u64 polar_u64;
/* In-memory structures are little-endian; sparse checks the kernel's use. */
typedef __le16 polar_le16;
typedef __le32 polar_le32;
typedef __le64 polar_le64;
#else
#include <stdint.h>
typedef uint8_t polar_u8;
typedef uint16_t polar_u16;
typedef uint32_t polar_u32;
typedef uint64_t polar_u64;
typedef uint16_t polar_le16;
typedef uint32_t polar_le32;
typedef uint64_t polar_le64;
#endif

/* ---- PCI identity ------------------------------------------------------ */

/* QEMU's docs/specs/pci-ids.rst leaves 1af4:10f0-10ff for experiments. */
#define POLAR_CIM_PCI_VENDOR_ID		0x1af4
#define POLAR_CIM_PCI_DEVICE_ID		0x10f0
#define POLAR_CIM_PCI_REVISION		0x01
#define POLAR_CIM_PCI_CLASS		0x1200	/* processing accelerator */

#define POLAR_CIM_BAR0_SIZE		0x4000	/* registers */
#define POLAR_CIM_MSIX_BAR		1	/* MSI-X table and PBA */

#define POLAR_CIM_ID_MAGIC		0x4d494350u	/* "PCIM" */
#define POLAR_CIM_VERSION_MAJOR		1
#define POLAR_CIM_VERSION_MINOR		2
#define POLAR_CIM_VERSION \
	((POLAR_CIM_VERSION_MAJOR << 16) | POLAR_CIM_VERSION_MINOR)

#define POLAR_CIM_MAX_QUEUES		16
#define POLAR_CIM_MAX_QUEUE_ENTRIES	4096

/* ---- identity and geometry: read-only ---------------------------------- */

#define POLAR_CIM_REG_ID		0x000	/* POLAR_CIM_ID_MAGIC */
#define POLAR_CIM_REG_VERSION		0x004	/* major << 16 | minor */
#define POLAR_CIM_REG_SCRATCH		0x008	/* read/write, no effect */
#define POLAR_CIM_REG_CAPS		0x00c	/* POLAR_CIM_CAP_* */
#define POLAR_CIM_REG_ROWS		0x010	/* rows per tile */
#define POLAR_CIM_REG_COLS		0x014	/* columns per tile */
#define POLAR_CIM_REG_TILES		0x018	/* number of tiles */
#define POLAR_CIM_REG_ADC_BITS		0x01c	/* ADC resolution in bits */
#define POLAR_CIM_REG_NUM_QUEUES	0x020	/* ring pairs */
#define POLAR_CIM_REG_MAX_ENTRIES	0x024	/* largest ring size */
#define POLAR_CIM_REG_SIGMA_STATIC	0x028	/* Q16 conductance spread */
#define POLAR_CIM_REG_SIGMA_DYNAMIC	0x02c	/* Q16 read noise */
#define POLAR_CIM_REG_STUCK_PPM		0x030	/* stuck cells per million */
#define POLAR_CIM_REG_SEED_LO		0x034	/* chip seed, low half */
#define POLAR_CIM_REG_SEED_HI		0x038	/* chip seed, high half */
#define POLAR_CIM_REG_ADC_OFFSET_SIGMA	0x03c	/* Q16 LSB per column */
#define POLAR_CIM_REG_ADC_GAIN_SIGMA	0x040	/* Q16 per column */
#define POLAR_CIM_REG_MAX_BATCH		0x044	/* vectors per MATMUL */
#define POLAR_CIM_REG_ROWS_PER_CONV	0x048	/* rows per ADC conversion */
/*
 * How conversions become outputs: bits 7:0 POLAR_CIM_RECON_*, bits 11:8
 * the fractional bits F of whole-cell reconstruction (0 under CODES).
 */
#define POLAR_CIM_REG_RECON		0x04c
#define POLAR_CIM_RECON_MODE_MASK	0xffu
#define POLAR_CIM_RECON_FRAC_SHIFT	8
#define POLAR_CIM_RECON_FRAC_MASK	0xf00u
#define POLAR_CIM_RECON_CODES		0	/* shift-add codes, LSB once */
#define POLAR_CIM_RECON_CELLS		1	/* each conversion in Q(F) cells */
/*
 * The chip design: bits 3:0 D, the most significant weight planes read
 * digitally (exact counts, no ADC); bits 12:8 the ADC bits of the MSB
 * conversions (0 = none); bits 19:16 how many significance levels of
 * analog plane pairs get them.
 */
#define POLAR_CIM_REG_DESIGN		0x050
#define POLAR_CIM_DESIGN_DIGITAL_MASK	0xfu
#define POLAR_CIM_DESIGN_MSB_BITS_SHIFT	8
#define POLAR_CIM_DESIGN_MSB_BITS_MASK	0x1f00u
#define POLAR_CIM_DESIGN_MSB_LEVELS_SHIFT 16
#define POLAR_CIM_DESIGN_MSB_LEVELS_MASK 0xf0000u

#define POLAR_CIM_CAP_MSIX		(1u << 0)
#define POLAR_CIM_CAP_FAULT_INJECT	(1u << 1)
#define POLAR_CIM_CAP_FMT_INT8		(1u << 2)
#define POLAR_CIM_CAP_FMT_INT4		(1u << 3)
#define POLAR_CIM_CAP_FMT_NF4		(1u << 4)
#define POLAR_CIM_CAP_COUNTERS		(1u << 5)

/* ---- control and status ------------------------------------------------ */

#define POLAR_CIM_REG_CTRL		0x080	/* write-only */
/* Clears queues, firmware, interrupts and faults; tiles keep their weights. */
#define POLAR_CIM_CTRL_RESET		(1u << 0)
#define POLAR_CIM_REG_STATUS		0x084	/* read-only */
#define POLAR_CIM_STATUS_FW_BOOTED	(1u << 0)
#define POLAR_CIM_STATUS_FATAL		(1u << 1)	/* needs a reset */
#define POLAR_CIM_STATUS_BUSY		(1u << 2)	/* a command runs */
/* Commands completed since reset: hang detection reads progress here. */
#define POLAR_CIM_REG_PROGRESS		0x088
/* Moves while a MATMUL runs (vectors evaluated): long commands show life. */
#define POLAR_CIM_REG_HEARTBEAT		0x08c

/* ---- firmware boot ----------------------------------------------------- */

#define POLAR_CIM_REG_FW_ADDR_LO	0x0c0	/* DMA address of the image */
#define POLAR_CIM_REG_FW_ADDR_HI	0x0c4
#define POLAR_CIM_REG_FW_SIZE		0x0c8	/* bytes, <= POLAR_CIM_FW_MAX_SIZE */
#define POLAR_CIM_REG_FW_CTRL		0x0cc	/* write POLAR_CIM_FW_CTRL_BOOT */
#define POLAR_CIM_FW_CTRL_BOOT		(1u << 0)
#define POLAR_CIM_REG_FW_STATUS		0x0d0	/* enum polar_cim_fw_status */
#define POLAR_CIM_REG_FW_VERSION	0x0d4	/* of the booted image */

enum polar_cim_fw_status {
	POLAR_CIM_FW_NONE = 0,		/* not booted since reset */
	POLAR_CIM_FW_BOOTED = 1,
	POLAR_CIM_FW_ERR_DMA = 0x80,	/* image could not be read */
	POLAR_CIM_FW_ERR_SIZE = 0x81,	/* size out of range or inconsistent */
	POLAR_CIM_FW_ERR_MAGIC = 0x82,
	POLAR_CIM_FW_ERR_CRC = 0x83,
	POLAR_CIM_FW_ERR_API = 0x84,	/* firmware-API version unsupported */
	POLAR_CIM_FW_ERR_SECTION = 0x85,	/* malformed section or microcode */
};

/* ---- interrupts -------------------------------------------------------- */

/*
 * Bit q (q < num_queues): queue q posted a completion. Write 1 to clear.
 * MSI-X: vector q per queue, vector num_queues for errors and firmware.
 * Without MSI-X the device raises INTx while (STATUS & ~MASK) != 0.
 */
#define POLAR_CIM_REG_INT_STATUS	0x100
#define POLAR_CIM_REG_INT_MASK		0x104	/* 1 = masked */
#define POLAR_CIM_INT_ERROR		(1u << 31)
#define POLAR_CIM_INT_FW		(1u << 30)	/* boot attempt ended */
#define POLAR_CIM_REG_ERROR_CODE	0x108	/* enum polar_cim_error */
#define POLAR_CIM_REG_ERROR_QUEUE	0x10c	/* queue of that error */

enum polar_cim_error {
	POLAR_CIM_ERROR_NONE = 0,
	POLAR_CIM_ERROR_INJECTED = 1,	/* fault injection asked for it */
	POLAR_CIM_ERROR_RING_DMA = 2,	/* an SQ or CQ entry was unreachable */
	POLAR_CIM_ERROR_FW_CRASH = 3,	/* sequencer stopped: reset needed */
};

/* ---- counters: 64-bit, latched ------------------------------------------ */

/* Writing 1 copies the live counters into the LO/HI registers below. */
#define POLAR_CIM_REG_COUNTERS_LATCH	0x200
#define POLAR_CIM_REG_COUNTER_LO(i)	(0x208 + 8 * (i))
#define POLAR_CIM_REG_COUNTER_HI(i)	(0x20c + 8 * (i))

enum polar_cim_counter {
	POLAR_CIM_CNT_COMMANDS = 0,	/* commands completed */
	POLAR_CIM_CNT_MACS = 1,		/* logical multiply-accumulates */
	POLAR_CIM_CNT_ARRAY_ACTIVATIONS = 2,	/* per plane pair and row group */
	POLAR_CIM_CNT_ADC_CONVERSIONS = 3,
	POLAR_CIM_CNT_SHIFT_ADDS = 4,
	POLAR_CIM_CNT_BYTES_MOVED = 5,	/* DMA in and out */
	POLAR_CIM_CNT_CYCLES = 6,	/* modelled array cycles */
	POLAR_CIM_CNT_ENERGY_FJ = 7,	/* modelled energy, femtojoules */
	POLAR_CIM_NUM_COUNTERS = 8,
};

/* ---- fault injection (tests only) --------------------------------------- */

/*
 * Arm: write FAULT_QUEUE, FAULT_COUNT (the fault hits the COUNT-th command
 * fetched from that queue from now on, 0 = the next), FAULT_DELAY_US for
 * DELAY, then FAULT_MODE. The device clears FAULT_MODE when the fault fired.
 */
#define POLAR_CIM_REG_FAULT_MODE	0x300	/* enum polar_cim_fault */
#define POLAR_CIM_REG_FAULT_QUEUE	0x304
#define POLAR_CIM_REG_FAULT_COUNT	0x308
#define POLAR_CIM_REG_FAULT_DELAY_US	0x30c

enum polar_cim_fault {
	POLAR_CIM_FAULT_NONE = 0,
	POLAR_CIM_FAULT_DROP = 1,	/* consume the command, never complete */
	POLAR_CIM_FAULT_DELAY = 2,	/* complete FAULT_DELAY_US late */
	POLAR_CIM_FAULT_CORRUPT_CQE = 3,	/* complete with a wrong tag */
	POLAR_CIM_FAULT_ERROR_IRQ = 4,	/* raise INT_ERROR after the command */
	POLAR_CIM_FAULT_DMA_ERROR = 5,	/* the command's DMA fails */
	POLAR_CIM_FAULT_FW_CRASH = 6,	/* sequencer stops until reset */
	/* read POLAR_CIM_STRAY_DMA_ADDR, never given; complete DMA_ERROR */
	POLAR_CIM_FAULT_STRAY_DMA = 7,
};

/*
 * Where a STRAY_DMA fault reads: above any guest RAM and recognisable in
 * an IOMMU's fault log, so tests can prove that stray DMA is caught.
 */
#define POLAR_CIM_STRAY_DMA_ADDR	0x00000dead0000000ull

/* ---- queues ------------------------------------------------------------- */

#define POLAR_CIM_REG_QUEUE_BASE	0x1000
#define POLAR_CIM_QUEUE_STRIDE		0x40
#define POLAR_CIM_REG_Q(q, reg) \
	(POLAR_CIM_REG_QUEUE_BASE + (q) * POLAR_CIM_QUEUE_STRIDE + (reg))
#define POLAR_CIM_Q_SQ_BASE_LO		0x00	/* 64-byte aligned */
#define POLAR_CIM_Q_SQ_BASE_HI		0x04
#define POLAR_CIM_Q_CQ_BASE_LO		0x08	/* 16-byte aligned */
#define POLAR_CIM_Q_CQ_BASE_HI		0x0c
#define POLAR_CIM_Q_SIZE		0x10	/* entries, power of 2, 2..max */
#define POLAR_CIM_Q_CTRL		0x14	/* POLAR_CIM_Q_CTRL_ENABLE */
#define POLAR_CIM_Q_SQ_TAIL		0x18	/* doorbell: next free SQ slot */
#define POLAR_CIM_Q_CQ_HEAD		0x1c	/* doorbell: next CQ slot to read */
#define POLAR_CIM_Q_SQ_HEAD		0x20	/* read-only: next SQ slot to fetch */
#define POLAR_CIM_Q_CQ_TAIL		0x24	/* read-only: next CQ slot to fill */
#define POLAR_CIM_Q_STATUS		0x28	/* POLAR_CIM_Q_STATUS_* */

#define POLAR_CIM_Q_CTRL_ENABLE		(1u << 0)
#define POLAR_CIM_Q_STATUS_ENABLED	(1u << 0)
#define POLAR_CIM_Q_STATUS_ERROR	(1u << 1)	/* bad ring setup */

/* ---- commands ----------------------------------------------------------- */

enum polar_cim_opcode {
	POLAR_CIM_OP_NOP = 0x00,
	POLAR_CIM_OP_PROGRAM_TILES = 0x01,
	POLAR_CIM_OP_MATMUL = 0x02,
	POLAR_CIM_OP_READ_COUNTERS = 0x03,
	POLAR_CIM_OP_FENCE = 0x04,
};

/* Weight formats (PROGRAM_TILES, MATMUL). */
enum polar_cim_wfmt {
	POLAR_CIM_WFMT_INT8 = 0,	/* int8 codes, 8 planes */
	POLAR_CIM_WFMT_INT4 = 1,	/* int8 codes in -8..7, 4 planes */
	POLAR_CIM_WFMT_NF4 = 2,		/* 4-bit codebook index per byte, 8 planes */
};

/* Input formats (MATMUL): one byte per element. */
enum polar_cim_xfmt {
	POLAR_CIM_XFMT_INT8 = 0,	/* -128..127 */
	POLAR_CIM_XFMT_UINT8 = 1,	/* 0..255 */
	POLAR_CIM_XFMT_INT4 = 2,	/* -8..7 */
	POLAR_CIM_XFMT_UINT4 = 3,	/* 0..15 */
};

/* Scatter-gather entry: DMA data lives in nsge of these, in order. */
struct polar_cim_sge {
	polar_le64 addr;
	polar_le32 len;
	polar_le32 rsvd;			/* must be zero */
};

#define POLAR_CIM_MAX_SGE		4096
#define POLAR_CIM_MAX_FS_Q8		(65535u << 8)

/**
 * struct polar_cim_sqe - submission queue entry, 64 bytes
 * @opcode: enum polar_cim_opcode
 * @flags: must be zero
 * @tag: returned unchanged in the completion
 * @tile0: first tile of the range (PROGRAM_TILES, MATMUL)
 * @wfmt: enum polar_cim_wfmt
 * @xfmt: enum polar_cim_xfmt (MATMUL)
 * @in_dim: input length (rows used across the tile grid)
 * @out_dim: output length (columns used across the tile grid)
 * @batch: input vectors (MATMUL), <= MAX_BATCH
 * @adc_fs_q8: ADC full scale in cell currents, Q8, 256..POLAR_CIM_MAX_FS_Q8;
 *	0 = the firmware's calibration default for ROWS_PER_CONV
 * @rows_per_conv: 0 or ROWS_PER_CONV (the chip's row parallelism)
 * @job_seed: seed of the dynamic read noise of this command
 * @src_sgl: DMA address of the source SG list (weights or inputs)
 * @dst_sgl: DMA address of the destination SG list (outputs, counters)
 * @src_nsge: entries in the source SG list
 * @dst_nsge: entries in the destination SG list
 */
struct polar_cim_sqe {
	polar_u8 opcode;
	polar_u8 flags;
	polar_le16 rsvd0;
	polar_le32 tag;
	polar_le16 tile0;
	polar_u8 wfmt;
	polar_u8 xfmt;
	polar_le32 in_dim;
	polar_le32 out_dim;
	polar_le32 batch;
	polar_le32 adc_fs_q8;
	polar_le16 rows_per_conv;
	polar_le16 rsvd1;
	polar_le32 job_seed;
	polar_le32 rsvd2;
	polar_le64 src_sgl;
	polar_le64 dst_sgl;
	polar_le16 src_nsge;
	polar_le16 dst_nsge;
	polar_le32 rsvd3;
};

/* Completion status codes. */
enum polar_cim_status {
	POLAR_CIM_ST_OK = 0,
	POLAR_CIM_ST_BAD_OPCODE = 1,
	POLAR_CIM_ST_BAD_FIELD = 2,	/* reserved bits, formats, dims, sizes */
	POLAR_CIM_ST_TILE_RANGE = 3,	/* tiles beyond TILES */
	POLAR_CIM_ST_DMA_ERROR = 4,
	POLAR_CIM_ST_NO_FIRMWARE = 5,
	POLAR_CIM_ST_NOT_PROGRAMMED = 6,	/* tiles hold another layer */
	POLAR_CIM_ST_ABORTED = 7,	/* reset while queued */
	POLAR_CIM_ST_NO_RESOURCES = 8,	/* the device lacked memory for it */
};

/**
 * struct polar_cim_cqe - completion queue entry, 16 bytes
 * @tag: the command's tag
 * @status: enum polar_cim_status
 * @sq_head: the SQ slot the device will fetch next
 * @result: bytes written for MATMUL and READ_COUNTERS, else 0
 * @queue: the queue index
 * @phase: bit 0 flips each time the CQ wraps (starts at 1 after enable)
 */
struct polar_cim_cqe {
	polar_le32 tag;
	polar_le16 status;
	polar_le16 sq_head;
	polar_le32 result;
	polar_le16 queue;
	polar_le16 phase;
};

/* ---- firmware image ------------------------------------------------------ */

#define POLAR_CIM_FW_MAGIC		0x57464350u	/* "PCFW" */
#define POLAR_CIM_FW_API_VERSION	1
#define POLAR_CIM_FW_MAX_SIZE		(64 * 1024)

/**
 * struct polar_cim_fw_header - start of a firmware image, 32 bytes
 * @magic: POLAR_CIM_FW_MAGIC
 * @version: the image's own version, major << 16 | minor
 * @api_version: POLAR_CIM_FW_API_VERSION it was written for
 * @header_size: sizeof(struct polar_cim_fw_header)
 * @payload_size: bytes after the header (the section table and data)
 * @crc32: CRC-32 (IEEE 802.3, as zlib) of the payload
 * @num_sections: entries of the section table that starts the payload
 * @rsvd: zero
 */
struct polar_cim_fw_header {
	polar_le32 magic;
	polar_le32 version;
	polar_le32 api_version;
	polar_le32 header_size;
	polar_le32 payload_size;
	polar_le32 crc32;
	polar_le32 num_sections;
	polar_le32 rsvd;
};

/* Section table entry; offsets count from the start of the payload. */
struct polar_cim_fw_section {
	polar_le32 type;			/* enum polar_cim_fw_section_type */
	polar_le32 offset;
	polar_le32 size;
	polar_le32 rsvd;
};

enum polar_cim_fw_section_type {
	POLAR_CIM_FW_SEC_MICROCODE = 1,	/* polar_u32 sequencer words */
	POLAR_CIM_FW_SEC_CODEBOOK = 2,	/* 16 signed bytes: NF4 code -> int8 */
	POLAR_CIM_FW_SEC_CALIBRATION = 3,	/* polar_u32 words, see README */
};

/*
 * Sequencer microcode: a list of 32-bit words, opcode in bits 31..24.
 *   SCHED  wbits(23..16) xbits(15..8): starts the plane schedule used by
 *          MATMULs whose weights have wbits planes and inputs xbits planes
 *   PAIR   xplane(15..8) wplane(7..0): evaluate this plane pair next
 *   CUTOFF k(7..0): early termination, skip pairs with xplane + wplane < k
 *   END:   ends the schedule
 * A MATMUL whose (wbits, xbits) has no schedule evaluates every pair,
 * most significant first.
 */
#define POLAR_CIM_UC_OP(w)		((w) >> 24)
#define POLAR_CIM_UC_SCHED		0x01
#define POLAR_CIM_UC_PAIR		0x02
#define POLAR_CIM_UC_CUTOFF		0x03
#define POLAR_CIM_UC_END		0xff
#define POLAR_CIM_UC_WORD(op, a, b, c) \
	(((polar_u32)(op) << 24) | ((polar_u32)(a) << 16) | \
	 ((polar_u32)(b) << 8) | (polar_u32)(c))

#endif /* POLAR_CIM_HW_H */
