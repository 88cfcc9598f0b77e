// SPDX-License-Identifier: MIT
/*
 * cim_firmware: verify, decode and build polar-cim firmware images.
 *
 * Everything here reads the image byte by byte as little-endian, so it
 * works on any host and any alignment, and trusts nothing in it: every
 * size and offset is checked in 64-bit arithmetic before it is used.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "cim_firmware.h"

#define FW_HDR_SIZE	((uint32_t)sizeof(struct polar_cim_fw_header))
#define FW_SEC_SIZE	((uint32_t)sizeof(struct polar_cim_fw_section))
#define FW_CODEBOOK_SIZE 16u
/* Largest microcode: every schedule with SCHED, CUTOFF, 64 PAIRs, END. */
#define FW_MAX_UC_WORDS	(CIM_FW_NUM_SCHEDS * (CIM_FW_MAX_PAIRS + 3))

_Static_assert(sizeof(struct polar_cim_fw_header) == 32, "fw header size");
_Static_assert(sizeof(struct polar_cim_fw_section) == 16, "fw section size");

/* ---- CRC-32 ----------------------------------------------------------- */

uint32_t cim_crc32(const void *buf, size_t len)
{
	uLong crc = crc32(0L, Z_NULL, 0);
	const Bytef *p = buf;

	/* zlib takes a uInt length: feed a larger image in parts. */
	while (len) {
		uInt part = len > UINT_MAX ? UINT_MAX : (uInt)len;

		crc = crc32(crc, p, part);
		p += part;
		len -= part;
	}
	return (uint32_t)crc;
}

/* ---- helpers ------------------------------------------------------------ */

static uint32_t fw_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 |
	       (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void fw_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

#ifdef __GNUC__
__attribute__((format(printf, 4, 5)))
#endif
static enum polar_cim_fw_status fw_fail(struct cim_fw_diag *diag,
					enum polar_cim_fw_status st,
					uint64_t offset, const char *fmt, ...)
{
	va_list ap;

	if (diag) {
		diag->offset = (uint32_t)offset;
		va_start(ap, fmt);
		vsnprintf(diag->msg, sizeof(diag->msg), fmt, ap);
		va_end(ap);
	}
	return st;
}

static const char *fw_section_name(uint32_t type)
{
	switch (type) {
	case POLAR_CIM_FW_SEC_MICROCODE:
		return "microcode";
	case POLAR_CIM_FW_SEC_CODEBOOK:
		return "codebook";
	case POLAR_CIM_FW_SEC_CALIBRATION:
		return "calibration";
	}
	return "unknown";
}

int cim_firmware_sched_index(uint32_t wbits, uint32_t xbits)
{
	if ((wbits != 4 && wbits != 8) || (xbits != 4 && xbits != 8))
		return -1;
	return (wbits == 4) * 2 + (xbits == 4);
}

static uint32_t fw_sched_wbits(int idx)
{
	return idx & 2 ? 4 : 8;
}

static uint32_t fw_sched_xbits(int idx)
{
	return idx & 1 ? 4 : 8;
}

/* ---- microcode ---------------------------------------------------------- */

/*
 * Decode @n words at @p (image offset @base) into @fw->sched. Checks that
 * every PAIR and CUTOFF sits inside a SCHED ... END block, planes are in
 * range, no pair or schedule repeats, reserved bits are zero, every block
 * has pairs and its cutoff keeps at least one of them.
 */
static enum polar_cim_fw_status fw_decode_microcode(const uint8_t *p,
						    uint32_t n, uint64_t base,
						    struct cim_firmware *fw,
						    struct cim_fw_diag *diag)
{
	const enum polar_cim_fw_status bad = POLAR_CIM_FW_ERR_SECTION;
	struct cim_fw_schedule *s = NULL;
	uint64_t wmask[CIM_FW_NUM_SCHEDS] = { 0 };
	uint32_t wbits = 0, xbits = 0, i, j;
	int idx = -1, has_cutoff = 0;

	for (i = 0; i < n; i++) {
		uint32_t w = fw_get32(p + 4 * i);
		uint32_t a = (w >> 16) & 0xff, b = (w >> 8) & 0xff;
		uint32_t c = w & 0xff;
		uint64_t off = base + 4 * (uint64_t)i;

		switch (POLAR_CIM_UC_OP(w)) {
		case POLAR_CIM_UC_SCHED:
			if (s)
				return fw_fail(diag, bad, off,
					       "microcode word %u: SCHED inside the w%ux%u block (missing END)",
					       i, wbits, xbits);
			idx = cim_firmware_sched_index(a, b);
			if (idx < 0 || c)
				return fw_fail(diag, bad, off,
					       "microcode word %u: SCHED 0x%08x: wbits and xbits must be 4 or 8, bits 7..0 zero",
					       i, w);
			if (fw->sched[idx].present)
				return fw_fail(diag, bad, off,
					       "microcode word %u: second schedule for w%ux%u",
					       i, a, b);
			s = &fw->sched[idx];
			s->present = 1;
			wbits = a;
			xbits = b;
			has_cutoff = 0;
			break;
		case POLAR_CIM_UC_PAIR:
			if (!s)
				return fw_fail(diag, bad, off,
					       "microcode word %u: PAIR outside a SCHED block",
					       i);
			if (a)
				return fw_fail(diag, bad, off,
					       "microcode word %u: PAIR 0x%08x: bits 23..16 must be zero",
					       i, w);
			if (b >= xbits || c >= wbits)
				return fw_fail(diag, bad, off,
					       "microcode word %u: PAIR x%u w%u: planes out of range for w%ux%u",
					       i, b, c, wbits, xbits);
			if (wmask[idx] & (1ull << (b * 8 + c)))
				return fw_fail(diag, bad, off,
					       "microcode word %u: PAIR x%u w%u repeats in w%ux%u",
					       i, b, c, wbits, xbits);
			if (s->count >= CIM_FW_MAX_PAIRS)
				return fw_fail(diag, bad, off,
					       "microcode word %u: more than %u pairs in w%ux%u",
					       i, CIM_FW_MAX_PAIRS, wbits, xbits);
			wmask[idx] |= 1ull << (b * 8 + c);
			s->pairs[s->count].xplane = (uint8_t)b;
			s->pairs[s->count].wplane = (uint8_t)c;
			s->count++;
			break;
		case POLAR_CIM_UC_CUTOFF:
			if (!s)
				return fw_fail(diag, bad, off,
					       "microcode word %u: CUTOFF outside a SCHED block",
					       i);
			if (w & 0x00ffff00u)
				return fw_fail(diag, bad, off,
					       "microcode word %u: CUTOFF 0x%08x: bits 23..8 must be zero",
					       i, w);
			if (has_cutoff)
				return fw_fail(diag, bad, off,
					       "microcode word %u: second CUTOFF in w%ux%u",
					       i, wbits, xbits);
			if (c > wbits + xbits - 2)
				return fw_fail(diag, bad, off,
					       "microcode word %u: CUTOFF %u out of range 0..%u for w%ux%u",
					       i, c, wbits + xbits - 2, wbits, xbits);
			has_cutoff = 1;
			s->cutoff = (uint8_t)c;
			break;
		case POLAR_CIM_UC_END:
			if (!s)
				return fw_fail(diag, bad, off,
					       "microcode word %u: END outside a SCHED block",
					       i);
			if (w & 0x00ffffffu)
				return fw_fail(diag, bad, off,
					       "microcode word %u: END 0x%08x: bits 23..0 must be zero",
					       i, w);
			if (!s->count)
				return fw_fail(diag, bad, off,
					       "microcode word %u: schedule w%ux%u has no pairs",
					       i, wbits, xbits);
			for (j = 0; j < s->count; j++)
				if (s->pairs[j].xplane + s->pairs[j].wplane >=
				    s->cutoff)
					break;
			if (j == s->count)
				return fw_fail(diag, bad, off,
					       "microcode word %u: CUTOFF %u skips every pair of w%ux%u",
					       i, s->cutoff, wbits, xbits);
			s = NULL;
			break;
		default:
			return fw_fail(diag, bad, off,
				       "microcode word %u: unknown opcode 0x%02x",
				       i, POLAR_CIM_UC_OP(w));
		}
	}
	if (s)
		return fw_fail(diag, bad, base + 4 * (uint64_t)n,
			       "microcode: schedule w%ux%u has no END",
			       wbits, xbits);
	return POLAR_CIM_FW_BOOTED;
}

/* ---- calibration -------------------------------------------------------- */

/*
 * The CALIBRATION section is a list of (rows_per_conv, adc_fs_q8) pairs of
 * 32-bit words, rows_per_conv strictly ascending, 1..65535 (the width of
 * the command's field), adc_fs_q8 from 256 (one cell) to rows_per_conv << 8
 * (every row conducting), at most CIM_FW_MAX_CALIB entries.
 */
static enum polar_cim_fw_status fw_decode_calib(const uint8_t *p,
						uint32_t size, uint64_t base,
						struct cim_firmware *fw,
						struct cim_fw_diag *diag)
{
	const enum polar_cim_fw_status bad = POLAR_CIM_FW_ERR_SECTION;
	uint32_t i, n = size / 8;

	if (size % 8)
		return fw_fail(diag, bad, base,
			       "calibration: size %u is not a multiple of 8",
			       size);
	if (n > CIM_FW_MAX_CALIB)
		return fw_fail(diag, bad, base,
			       "calibration: %u entries, at most %u", n,
			       CIM_FW_MAX_CALIB);
	for (i = 0; i < n; i++) {
		uint32_t rows = fw_get32(p + 8 * i);
		uint32_t fs = fw_get32(p + 8 * i + 4);
		uint64_t off = base + 8 * (uint64_t)i;

		if (rows == 0 || rows > 0xffff)
			return fw_fail(diag, bad, off,
				       "calibration entry %u: rows %u out of range 1..65535",
				       i, rows);
		if (i && rows <= fw->calib[i - 1].rows_per_conv)
			return fw_fail(diag, bad, off,
				       "calibration entry %u: rows %u not above the previous entry's %u",
				       i, rows, fw->calib[i - 1].rows_per_conv);
		if (fs < 256 || fs > rows << 8)
			return fw_fail(diag, bad, off + 4,
				       "calibration entry %u: fs_q8 %u out of range 256..%u for rows %u",
				       i, fs, rows << 8, rows);
		fw->calib[i].rows_per_conv = rows;
		fw->calib[i].adc_fs_q8 = fs;
	}
	fw->num_calib = n;
	return POLAR_CIM_FW_BOOTED;
}

/* ---- the image ---------------------------------------------------------- */

static enum polar_cim_fw_status fw_parse_sections(const uint8_t *img,
						  uint32_t payload,
						  uint32_t nsec,
						  struct cim_firmware *fw,
						  struct cim_fw_diag *diag)
{
	const enum polar_cim_fw_status bad = POLAR_CIM_FW_ERR_SECTION;
	const uint8_t *pl = img + FW_HDR_SIZE;
	uint64_t table_end = (uint64_t)nsec * FW_SEC_SIZE;
	uint32_t seen = 0, i, j;
	enum polar_cim_fw_status st;

	if (table_end > payload)
		return fw_fail(diag, bad, 24,
			       "header: %u sections need %llu bytes, payload has %u",
			       nsec, (unsigned long long)table_end, payload);
	for (i = 0; i < nsec; i++) {
		const uint8_t *e = pl + i * FW_SEC_SIZE;
		uint32_t type = fw_get32(e), off = fw_get32(e + 4);
		uint32_t size = fw_get32(e + 8), rsvd = fw_get32(e + 12);
		uint64_t eoff = FW_HDR_SIZE + (uint64_t)i * FW_SEC_SIZE;

		if (type < POLAR_CIM_FW_SEC_MICROCODE ||
		    type > POLAR_CIM_FW_SEC_CALIBRATION)
			return fw_fail(diag, bad, eoff,
				       "section %u: unknown type %u", i, type);
		if (seen & (1u << type))
			return fw_fail(diag, bad, eoff,
				       "section %u: second %s section", i,
				       fw_section_name(type));
		seen |= 1u << type;
		if (rsvd)
			return fw_fail(diag, bad, eoff + 12,
				       "section %u (%s): reserved word is 0x%x, must be zero",
				       i, fw_section_name(type), rsvd);
		if (off % 4)
			return fw_fail(diag, bad, eoff + 4,
				       "section %u (%s): offset %u is not 4-byte aligned",
				       i, fw_section_name(type), off);
		if (off < table_end || (uint64_t)off + size > payload)
			return fw_fail(diag, bad, eoff + 4,
				       "section %u (%s): bytes %u..%llu of the payload are outside %llu..%u",
				       i, fw_section_name(type), off,
				       (unsigned long long)off + size,
				       (unsigned long long)table_end, payload);
		for (j = 0; j < i; j++) {
			const uint8_t *o = pl + j * FW_SEC_SIZE;
			uint32_t ooff = fw_get32(o + 4);
			uint32_t osize = fw_get32(o + 8);

			if (size && osize && off < (uint64_t)ooff + osize &&
			    ooff < (uint64_t)off + size)
				return fw_fail(diag, bad, eoff + 4,
					       "section %u (%s) overlaps section %u",
					       i, fw_section_name(type), j);
		}

		switch (type) {
		case POLAR_CIM_FW_SEC_CODEBOOK:
			if (size != FW_CODEBOOK_SIZE)
				return fw_fail(diag, bad, eoff + 8,
					       "section %u (codebook): size %u, must be %u",
					       i, size, FW_CODEBOOK_SIZE);
			memcpy(fw->codebook, pl + off, FW_CODEBOOK_SIZE);
			fw->has_codebook = 1;
			break;
		case POLAR_CIM_FW_SEC_MICROCODE:
			if (size % 4)
				return fw_fail(diag, bad, eoff + 8,
					       "section %u (microcode): size %u is not a multiple of 4",
					       i, size);
			st = fw_decode_microcode(pl + off, size / 4,
						 FW_HDR_SIZE + (uint64_t)off,
						 fw, diag);
			if (st != POLAR_CIM_FW_BOOTED)
				return st;
			break;
		case POLAR_CIM_FW_SEC_CALIBRATION:
			st = fw_decode_calib(pl + off, size,
					     FW_HDR_SIZE + (uint64_t)off, fw,
					     diag);
			if (st != POLAR_CIM_FW_BOOTED)
				return st;
			break;
		}
	}
	return POLAR_CIM_FW_BOOTED;
}

enum polar_cim_fw_status cim_firmware_parse(const void *image, size_t size,
					    struct cim_firmware *fw,
					    struct cim_fw_diag *diag)
{
	const uint8_t *img = image;
	uint32_t hsize, payload, crc;
	enum polar_cim_fw_status st;

	memset(fw, 0, sizeof(*fw));
	if (diag)
		memset(diag, 0, sizeof(*diag));
	if (size < FW_HDR_SIZE || size > POLAR_CIM_FW_MAX_SIZE)
		return fw_fail(diag, POLAR_CIM_FW_ERR_SIZE, 0,
			       "image is %zu bytes, must be %u..%u", size,
			       FW_HDR_SIZE, (unsigned)POLAR_CIM_FW_MAX_SIZE);
	if (fw_get32(img) != POLAR_CIM_FW_MAGIC)
		return fw_fail(diag, POLAR_CIM_FW_ERR_MAGIC, 0,
			       "header: magic 0x%08x, expected 0x%08x",
			       fw_get32(img), POLAR_CIM_FW_MAGIC);
	hsize = fw_get32(img + 12);
	if (hsize != FW_HDR_SIZE)
		return fw_fail(diag, POLAR_CIM_FW_ERR_SIZE, 12,
			       "header: header_size %u, expected %u", hsize,
			       FW_HDR_SIZE);
	payload = fw_get32(img + 16);
	if ((uint64_t)hsize + payload != size)
		return fw_fail(diag, POLAR_CIM_FW_ERR_SIZE, 16,
			       "header: header_size %u + payload_size %u is not the image size %zu",
			       hsize, payload, size);
	crc = cim_crc32(img + FW_HDR_SIZE, payload);
	if (fw_get32(img + 20) != crc)
		return fw_fail(diag, POLAR_CIM_FW_ERR_CRC, 20,
			       "header: crc32 0x%08x, payload has 0x%08x",
			       fw_get32(img + 20), crc);
	if (fw_get32(img + 8) != POLAR_CIM_FW_API_VERSION)
		return fw_fail(diag, POLAR_CIM_FW_ERR_API, 8,
			       "header: api_version %u, device supports %u",
			       fw_get32(img + 8), POLAR_CIM_FW_API_VERSION);
	if (fw_get32(img + 28))
		return fw_fail(diag, POLAR_CIM_FW_ERR_API, 28,
			       "header: reserved word 0x%08x, must be zero",
			       fw_get32(img + 28));

	st = fw_parse_sections(img, payload, fw_get32(img + 24), fw, diag);
	if (st != POLAR_CIM_FW_BOOTED) {
		memset(fw, 0, sizeof(*fw));
		return st;
	}
	fw->version = fw_get32(img + 4);
	fw->api_version = POLAR_CIM_FW_API_VERSION;
	return POLAR_CIM_FW_BOOTED;
}

/* ---- building ------------------------------------------------------------ */

/* Microcode words of @fw into @w (FW_MAX_UC_WORDS); -EINVAL on bad counts. */
static int fw_encode_microcode(const struct cim_firmware *fw, uint8_t *w,
			       uint32_t *n)
{
	uint32_t k = 0, j;
	int idx;

	for (idx = 0; idx < CIM_FW_NUM_SCHEDS; idx++) {
		const struct cim_fw_schedule *s = &fw->sched[idx];

		if (!s->present)
			continue;
		if (s->count > CIM_FW_MAX_PAIRS)
			return -EINVAL;
		fw_put32(w + 4 * k++,
			 POLAR_CIM_UC_WORD(POLAR_CIM_UC_SCHED,
					   fw_sched_wbits(idx),
					   fw_sched_xbits(idx), 0));
		if (s->cutoff)
			fw_put32(w + 4 * k++,
				 POLAR_CIM_UC_WORD(POLAR_CIM_UC_CUTOFF, 0, 0,
						   s->cutoff));
		for (j = 0; j < s->count; j++)
			fw_put32(w + 4 * k++,
				 POLAR_CIM_UC_WORD(POLAR_CIM_UC_PAIR, 0,
						   s->pairs[j].xplane,
						   s->pairs[j].wplane));
		fw_put32(w + 4 * k++, POLAR_CIM_UC_WORD(POLAR_CIM_UC_END, 0, 0, 0));
	}
	*n = k;
	return 0;
}

/* One section to write: the builder's table of contents. */
struct fw_sec_src {
	uint32_t type;
	const void *data;
	uint32_t size;
};

int cim_firmware_build(const struct cim_firmware *fw, void *out, size_t cap,
		       size_t *len)
{
	uint8_t uc[FW_MAX_UC_WORDS * 4];
	uint8_t cal[CIM_FW_MAX_CALIB * 8];
	struct fw_sec_src sec[3];
	struct cim_firmware check;
	uint32_t nuc, ncal, nsec = 0, i, off, payload;
	uint8_t *img = out;

	/* Encode, then decode with the parser's own checks. */
	if (fw->api_version != POLAR_CIM_FW_API_VERSION ||
	    fw->num_calib > CIM_FW_MAX_CALIB ||
	    fw_encode_microcode(fw, uc, &nuc))
		return -EINVAL;
	ncal = fw->num_calib * 8;
	for (i = 0; i < fw->num_calib; i++) {
		fw_put32(cal + 8 * i, fw->calib[i].rows_per_conv);
		fw_put32(cal + 8 * i + 4, fw->calib[i].adc_fs_q8);
	}
	memset(&check, 0, sizeof(check));
	if (fw_decode_microcode(uc, nuc, 0, &check, NULL) !=
	    POLAR_CIM_FW_BOOTED ||
	    fw_decode_calib(cal, ncal, 0, &check, NULL) !=
	    POLAR_CIM_FW_BOOTED)
		return -EINVAL;

	if (nuc)
		sec[nsec++] = (struct fw_sec_src){ POLAR_CIM_FW_SEC_MICROCODE,
						   uc, nuc * 4 };
	if (fw->has_codebook)
		sec[nsec++] = (struct fw_sec_src){ POLAR_CIM_FW_SEC_CODEBOOK,
						   fw->codebook,
						   FW_CODEBOOK_SIZE };
	if (ncal)
		sec[nsec++] = (struct fw_sec_src){ POLAR_CIM_FW_SEC_CALIBRATION,
						   cal, ncal };
	payload = nsec * FW_SEC_SIZE;
	for (i = 0; i < nsec; i++)
		payload += sec[i].size;	/* each a multiple of 4 */
	*len = FW_HDR_SIZE + payload;
	if (!out)
		return 0;
	if (cap < *len)
		return -ENOSPC;

	memset(img, 0, *len);
	off = nsec * FW_SEC_SIZE;
	for (i = 0; i < nsec; i++) {
		uint8_t *e = img + FW_HDR_SIZE + i * FW_SEC_SIZE;

		fw_put32(e, sec[i].type);
		fw_put32(e + 4, off);
		fw_put32(e + 8, sec[i].size);
		memcpy(img + FW_HDR_SIZE + off, sec[i].data, sec[i].size);
		off += sec[i].size;
	}
	fw_put32(img, POLAR_CIM_FW_MAGIC);
	fw_put32(img + 4, fw->version);
	fw_put32(img + 8, fw->api_version);
	fw_put32(img + 12, FW_HDR_SIZE);
	fw_put32(img + 16, payload);
	fw_put32(img + 20, cim_crc32(img + FW_HDR_SIZE, payload));
	fw_put32(img + 24, nsec);
	return 0;
}

int cim_firmware_equal(const struct cim_firmware *a,
		       const struct cim_firmware *b)
{
	uint32_t i;
	int idx;

	if (a->version != b->version || a->api_version != b->api_version ||
	    a->has_codebook != b->has_codebook ||
	    (a->has_codebook && memcmp(a->codebook, b->codebook, 16)) ||
	    a->num_calib != b->num_calib)
		return 0;
	for (i = 0; i < a->num_calib && i < CIM_FW_MAX_CALIB; i++)
		if (a->calib[i].rows_per_conv != b->calib[i].rows_per_conv ||
		    a->calib[i].adc_fs_q8 != b->calib[i].adc_fs_q8)
			return 0;
	for (idx = 0; idx < CIM_FW_NUM_SCHEDS; idx++) {
		const struct cim_fw_schedule *s = &a->sched[idx];
		const struct cim_fw_schedule *t = &b->sched[idx];

		if (s->present != t->present)
			return 0;
		if (!s->present)
			continue;
		if (s->cutoff != t->cutoff || s->count != t->count ||
		    s->count > CIM_FW_MAX_PAIRS ||
		    memcmp(s->pairs, t->pairs, s->count * sizeof(s->pairs[0])))
			return 0;
	}
	return 1;
}

/* ---- queries ------------------------------------------------------------- */

const struct cim_fw_schedule *
cim_firmware_schedule(const struct cim_firmware *fw, uint32_t wbits,
		      uint32_t xbits)
{
	int idx = cim_firmware_sched_index(wbits, xbits);

	if (!fw || idx < 0 || !fw->sched[idx].present)
		return NULL;
	return &fw->sched[idx];
}

uint32_t cim_firmware_schedule_pairs(const struct cim_fw_schedule *s,
				     struct cim_fw_pair out[CIM_FW_MAX_PAIRS])
{
	uint32_t i, n = 0;

	for (i = 0; i < s->count && i < CIM_FW_MAX_PAIRS; i++)
		if (s->pairs[i].xplane + s->pairs[i].wplane >= s->cutoff)
			out[n++] = s->pairs[i];
	return n;
}

uint32_t cim_firmware_msb_first(uint32_t wbits, uint32_t xbits,
				struct cim_fw_pair out[CIM_FW_MAX_PAIRS])
{
	uint32_t n = 0;
	int sum, x;

	if (cim_firmware_sched_index(wbits, xbits) < 0)
		return 0;
	for (sum = (int)(wbits + xbits) - 2; sum >= 0; sum--) {
		for (x = (int)xbits - 1; x >= 0; x--) {
			int w = sum - x;

			if (w < 0 || w >= (int)wbits)
				continue;
			out[n].xplane = (uint8_t)x;
			out[n].wplane = (uint8_t)w;
			n++;
		}
	}
	return n;
}

uint32_t cim_firmware_default_fs_q8(const struct cim_firmware *fw,
				    uint32_t rows_per_conv)
{
	uint32_t i;

	if (fw) {
		for (i = 0; i < fw->num_calib && i < CIM_FW_MAX_CALIB; i++)
			if (fw->calib[i].rows_per_conv == rows_per_conv)
				return fw->calib[i].adc_fs_q8;
	}
	return rows_per_conv << 8;
}

const char *cim_firmware_status_name(uint32_t status)
{
	switch (status) {
	case POLAR_CIM_FW_NONE:
		return "NONE";
	case POLAR_CIM_FW_BOOTED:
		return "BOOTED";
	case POLAR_CIM_FW_ERR_DMA:
		return "ERR_DMA";
	case POLAR_CIM_FW_ERR_SIZE:
		return "ERR_SIZE";
	case POLAR_CIM_FW_ERR_MAGIC:
		return "ERR_MAGIC";
	case POLAR_CIM_FW_ERR_CRC:
		return "ERR_CRC";
	case POLAR_CIM_FW_ERR_API:
		return "ERR_API";
	case POLAR_CIM_FW_ERR_SECTION:
		return "ERR_SECTION";
	}
	return "unknown";
}
