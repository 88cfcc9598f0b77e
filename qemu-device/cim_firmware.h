// SPDX-License-Identifier: MIT
/*
 * cim_firmware: the polar-cim firmware image, parsed and built.
 *
 * The image format (header, section table, sections, sequencer microcode)
 * is the contract in hw/polar_cim_hw.h and hw/README.md. This file turns an
 * image into a struct cim_firmware and back. The QEMU device parses what the
 * guest boots, the library's software backend parses the same file, and the
 * assembler (firmware/polar-fwasm) builds images with it, so all three agree
 * on every check. Plain C11, no QEMU types, no allocation.
 */
#ifndef CIM_FIRMWARE_H
#define CIM_FIRMWARE_H

#include <stddef.h>
#include <stdint.h>

#include "polar_cim_hw.h"

#define CIM_FW_MAX_PAIRS	64	/* pairs per schedule: 8 x 8 planes */
#define CIM_FW_MAX_CALIB	16	/* calibration entries */
#define CIM_FW_NUM_SCHEDS	4	/* (wbits, xbits) in {8, 4} x {8, 4} */

/** struct cim_fw_pair - one plane pair of a schedule, as in a PAIR word */
struct cim_fw_pair {
	uint8_t xplane;		/* input bit-plane, 0 = LSB */
	uint8_t wplane;		/* weight bit-plane, 0 = LSB */
};

/**
 * struct cim_fw_schedule - the plane schedule of one (wbits, xbits)
 * @present: 1 if the microcode has a SCHED block for this combination
 * @cutoff: CUTOFF k: pairs with xplane + wplane < k are skipped (0 = none)
 * @count: pairs listed, 1..CIM_FW_MAX_PAIRS, each (xplane, wplane) once
 * @pairs: the pairs in the order of the PAIR words, before the cutoff;
 *	cim_firmware_schedule_pairs() applies the cutoff
 */
struct cim_fw_schedule {
	uint8_t present;
	uint8_t cutoff;
	uint8_t count;
	struct cim_fw_pair pairs[CIM_FW_MAX_PAIRS];
};

/**
 * struct cim_fw_calib - a default ADC full scale
 * @rows_per_conv: rows summed per conversion this entry applies to
 * @adc_fs_q8: ADC full scale in cell currents, Q8, 256..rows_per_conv << 8
 */
struct cim_fw_calib {
	uint32_t rows_per_conv;
	uint32_t adc_fs_q8;
};

/**
 * struct cim_firmware - a parsed firmware image
 * @version: the image's version, major << 16 | minor
 * @api_version: POLAR_CIM_FW_API_VERSION
 * @has_codebook: 1 if the image has a CODEBOOK section
 * @codebook: NF4 code -> signed 8-bit weight value
 * @sched: schedules, indexed by cim_firmware_sched_index(wbits, xbits)
 * @num_calib: entries of @calib, 0..CIM_FW_MAX_CALIB
 * @calib: default full scales, @rows_per_conv strictly ascending
 *
 * Microcode and calibration sections are optional; their absence is the
 * same as being empty. An image carries at most one section of each type.
 */
struct cim_firmware {
	uint32_t version;
	uint32_t api_version;
	uint8_t has_codebook;
	int8_t codebook[16];
	struct cim_fw_schedule sched[CIM_FW_NUM_SCHEDS];
	uint32_t num_calib;
	struct cim_fw_calib calib[CIM_FW_MAX_CALIB];
};

/**
 * struct cim_fw_diag - why cim_firmware_parse() rejected an image
 * @offset: byte offset in the image of the field that failed the check
 * @msg: what was wrong, e.g. "microcode word 5: PAIR outside a SCHED block"
 */
struct cim_fw_diag {
	uint32_t offset;
	char msg[120];
};

/** cim_crc32() - CRC-32 of @len bytes (IEEE 802.3), by zlib's crc32(). */
uint32_t cim_crc32(const void *buf, size_t len);

/**
 * cim_firmware_parse() - verify a firmware image and decode it into @fw.
 * @image, @size: the image as loaded (little-endian, any alignment)
 * @fw: the result; cleared (no codebook, no schedules) when the image is
 *	rejected
 * @diag: if not NULL, receives the failing check on rejection
 *
 * Returns the value the device puts in FW_STATUS: POLAR_CIM_FW_BOOTED if
 * the image is valid, otherwise
 *	POLAR_CIM_FW_ERR_SIZE	size below the header or above
 *				POLAR_CIM_FW_MAX_SIZE, header_size is not
 *				sizeof(header), or header_size + payload_size
 *				is not the image size
 *	POLAR_CIM_FW_ERR_MAGIC	magic is not POLAR_CIM_FW_MAGIC
 *	POLAR_CIM_FW_ERR_CRC	CRC-32 of the payload does not match
 *	POLAR_CIM_FW_ERR_API	api_version is not POLAR_CIM_FW_API_VERSION,
 *				or the header's reserved word is not zero
 *	POLAR_CIM_FW_ERR_SECTION  section table, a section, the microcode or
 *				the calibration table is malformed
 * The checks run in that order (size, magic, header size, payload size,
 * CRC, API, sections), so an image has exactly one status.
 */
enum polar_cim_fw_status cim_firmware_parse(const void *image, size_t size,
					    struct cim_firmware *fw,
					    struct cim_fw_diag *diag);

/**
 * cim_firmware_build() - serialize @fw into an image.
 * @out, @cap: the buffer; with @out NULL only the size is computed
 * @len: receives the image size
 *
 * Layout: header, section table (microcode, codebook, calibration, each
 * only if non-empty), then the sections in that order, 4-byte aligned.
 * Schedules are emitted in index order, CUTOFF right after SCHED when not
 * zero. cim_firmware_parse() of the result gives back @fw.
 * Returns 0, -EINVAL if @fw would not parse (bad counts, planes, cutoffs,
 * calibration entries, API version), -ENOSPC if @cap is too small.
 */
int cim_firmware_build(const struct cim_firmware *fw, void *out, size_t cap,
		       size_t *len);

/** cim_firmware_equal() - 1 if @a and @b describe the same firmware. */
int cim_firmware_equal(const struct cim_firmware *a,
		       const struct cim_firmware *b);

/**
 * cim_firmware_sched_index() - index into cim_firmware.sched: 0 = w8x8,
 * 1 = w8x4, 2 = w4x8, 3 = w4x4; -1 if @wbits or @xbits is not 4 or 8.
 */
int cim_firmware_sched_index(uint32_t wbits, uint32_t xbits);

/**
 * cim_firmware_schedule() - the schedule for weights of @wbits planes and
 * inputs of @xbits planes, or NULL if the firmware has none (the device
 * then evaluates every pair, most significant first).
 */
const struct cim_fw_schedule *
cim_firmware_schedule(const struct cim_firmware *fw, uint32_t wbits,
		      uint32_t xbits);

/**
 * cim_firmware_schedule_pairs() - the pairs a schedule evaluates: its
 * pairs in order, without those below the cutoff. Returns their number
 * (at least 1 for a parsed schedule).
 */
uint32_t cim_firmware_schedule_pairs(const struct cim_fw_schedule *s,
				     struct cim_fw_pair out[CIM_FW_MAX_PAIRS]);

/**
 * cim_firmware_msb_first() - write every pair of (@wbits, @xbits) planes
 * most significant first: xplane + wplane descending, then xplane
 * descending. Returns wbits * xbits, or 0 if the bits are not 4 or 8.
 */
uint32_t cim_firmware_msb_first(uint32_t wbits, uint32_t xbits,
				struct cim_fw_pair out[CIM_FW_MAX_PAIRS]);

/**
 * cim_firmware_default_fs_q8() - the ADC full scale (Q8) a MATMUL with
 * adc_fs_q8 = 0 uses: the calibration entry for @rows_per_conv, or
 * rows_per_conv << 8 (the whole range) if there is none or @fw is NULL.
 */
uint32_t cim_firmware_default_fs_q8(const struct cim_firmware *fw,
				    uint32_t rows_per_conv);

/** cim_firmware_status_name() - "BOOTED", "ERR_CRC", ... for tools. */
const char *cim_firmware_status_name(uint32_t status);

#endif /* CIM_FIRMWARE_H */
