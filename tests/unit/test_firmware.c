// SPDX-License-Identifier: MIT
/*
 * Firmware image tests: the CRC, the builder and parser (round trips), the
 * assembler on the real firmware/polar_cim.fws, and every way an image can
 * be rejected, each with the FW_STATUS the device would report.
 * Run from the repository root.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cim_firmware.h"
#include "fwasm.h"
#include "unit.h"

#define SRC_PATH "firmware/polar_cim.fws"

#define OP_SCHED(w, x)	POLAR_CIM_UC_WORD(POLAR_CIM_UC_SCHED, w, x, 0)
#define OP_PAIR(x, w)	POLAR_CIM_UC_WORD(POLAR_CIM_UC_PAIR, 0, x, w)
#define OP_CUTOFF(k)	POLAR_CIM_UC_WORD(POLAR_CIM_UC_CUTOFF, 0, 0, k)
#define OP_END		POLAR_CIM_UC_WORD(POLAR_CIM_UC_END, 0, 0, 0)

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 |
	       (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Recompute the header's CRC after a test edited the payload. */
static void fix_crc(uint8_t *img, size_t len)
{
	put32(img + 20, cim_crc32(img + 32, len - 32));
}

/* A raw section for make_image(). */
struct raw_sec {
	uint32_t type;
	const void *data;
	uint32_t size;
};

/* Header + table + sections back to back, with a correct CRC. */
static size_t make_image(uint8_t *img, const struct raw_sec *sec,
			 uint32_t nsec)
{
	uint32_t off = nsec * 16, i;
	size_t len;

	memset(img, 0, 32 + off);
	for (i = 0; i < nsec; i++) {
		put32(img + 32 + 16 * i, sec[i].type);
		put32(img + 32 + 16 * i + 4, off);
		put32(img + 32 + 16 * i + 8, sec[i].size);
		memcpy(img + 32 + off, sec[i].data, sec[i].size);
		off += sec[i].size;
	}
	len = 32 + off;
	put32(img, POLAR_CIM_FW_MAGIC);
	put32(img + 4, 0x00010000);
	put32(img + 8, POLAR_CIM_FW_API_VERSION);
	put32(img + 12, 32);
	put32(img + 16, off);
	put32(img + 24, nsec);
	fix_crc(img, len);
	return len;
}

/* Status of an image holding one microcode section of @n words. */
static enum polar_cim_fw_status parse_microcode(const uint32_t *words,
						uint32_t n,
						struct cim_fw_diag *diag)
{
	static uint8_t img[4096];
	uint8_t uc[1024];
	struct raw_sec sec = { POLAR_CIM_FW_SEC_MICROCODE, uc, n * 4 };
	struct cim_firmware fw;
	uint32_t i;

	for (i = 0; i < n; i++)
		put32(uc + 4 * i, words[i]);
	return cim_firmware_parse(img, make_image(img, &sec, 1), &fw, diag);
}

/* Status of an image holding one calibration section of @n word pairs. */
static enum polar_cim_fw_status parse_calib(const uint32_t *words,
					    uint32_t nwords)
{
	static uint8_t img[4096];
	uint8_t cal[1024];
	struct raw_sec sec = { POLAR_CIM_FW_SEC_CALIBRATION, cal, nwords * 4 };
	struct cim_firmware fw;
	uint32_t i;

	for (i = 0; i < nwords; i++)
		put32(cal + 4 * i, words[i]);
	return cim_firmware_parse(img, make_image(img, &sec, 1), &fw, NULL);
}

/* A firmware with something in every table, not in canonical order. */
static void sample_firmware(struct cim_firmware *fw)
{
	static const int8_t cb[16] = { -8, -7, -6, -5, -4, -3, -2, -1,
				       0, 1, 2, 3, 4, 5, 6, 7 };
	struct cim_fw_schedule *s;

	memset(fw, 0, sizeof(*fw));
	fw->version = 0x00020003;
	fw->api_version = POLAR_CIM_FW_API_VERSION;
	fw->has_codebook = 1;
	memcpy(fw->codebook, cb, 16);
	s = &fw->sched[cim_firmware_sched_index(4, 8)];
	s->present = 1;
	s->cutoff = 4;
	s->count = 3;
	s->pairs[0] = (struct cim_fw_pair){ 0, 0 };
	s->pairs[1] = (struct cim_fw_pair){ 7, 3 };
	s->pairs[2] = (struct cim_fw_pair){ 2, 2 };
	s = &fw->sched[cim_firmware_sched_index(8, 8)];
	s->present = 1;
	s->count = (uint8_t)cim_firmware_msb_first(8, 8, s->pairs);
	fw->num_calib = 2;
	fw->calib[0] = (struct cim_fw_calib){ 32, 16 * 256 + 128 };
	fw->calib[1] = (struct cim_fw_calib){ 128, 47 * 256 };
}

static int assemble_text(const char *text, struct cim_firmware *fw,
			 char *err, size_t errlen)
{
	return fwasm_parse(text, strlen(text), "t.fws", fw, err, errlen);
}

/* ---- tests ----------------------------------------------------------- */

static void test_crc32_vectors(void)
{
	uint8_t all[256];
	int i;

	for (i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	CHECK(cim_crc32("123456789", 9) == 0xcbf43926u);
	CHECK(cim_crc32("", 0) == 0);
	CHECK(cim_crc32("a", 1) == 0xe8b7be43u);
	CHECK(cim_crc32("The quick brown fox jumps over the lazy dog", 43) ==
	      0x414fa339u);
	CHECK(cim_crc32(all, sizeof(all)) == 0x29058c73u);
}

static void test_build_parse_round_trip(void)
{
	static uint8_t img[POLAR_CIM_FW_MAX_SIZE];
	struct cim_firmware fw, back;
	struct cim_fw_pair act[CIM_FW_MAX_PAIRS];
	struct cim_fw_diag diag;
	size_t len, need;

	sample_firmware(&fw);
	CHECK(cim_firmware_build(&fw, NULL, 0, &need) == 0);
	CHECK(cim_firmware_build(&fw, img, need - 1, &len) == -ENOSPC);
	CHECK(cim_firmware_build(&fw, img, sizeof(img), &len) == 0);
	CHECK(len == need);
	CHECK(get32(img) == POLAR_CIM_FW_MAGIC);
	CHECK(get32(img + 24) == 3);
	CHECK(cim_firmware_parse(img, len, &back, &diag) ==
	      POLAR_CIM_FW_BOOTED);
	CHECK(cim_firmware_equal(&fw, &back));
	CHECK(back.version == 0x00020003);
	CHECK(cim_firmware_schedule(&back, 8, 4) == NULL);
	CHECK(cim_firmware_schedule(&back, 4, 8)->count == 3);
	CHECK(cim_firmware_schedule(&back, 8, 8)->count == 64);
	/* Cutoff 4 keeps (7,3) and (2,2), drops (0,0). */
	CHECK(cim_firmware_schedule_pairs(cim_firmware_schedule(&back, 4, 8),
					  act) == 2);
	CHECK(act[0].xplane == 7 && act[0].wplane == 3);
	CHECK(act[1].xplane == 2 && act[1].wplane == 2);
	CHECK(cim_firmware_default_fs_q8(&back, 32) == 16 * 256 + 128);
	CHECK(cim_firmware_default_fs_q8(&back, 128) == 47 * 256);
	CHECK(cim_firmware_default_fs_q8(&back, 100) == 100 << 8);
	CHECK(cim_firmware_default_fs_q8(NULL, 64) == 64 << 8);

	/* Nothing at all: header only, still a valid image. */
	memset(&fw, 0, sizeof(fw));
	fw.api_version = POLAR_CIM_FW_API_VERSION;
	CHECK(cim_firmware_build(&fw, img, sizeof(img), &len) == 0);
	CHECK(len == 32);
	CHECK(cim_firmware_parse(img, len, &back, NULL) == POLAR_CIM_FW_BOOTED);
	CHECK(cim_firmware_equal(&fw, &back));
}

static void test_build_rejects_invalid(void)
{
	uint8_t img[4096];
	struct cim_firmware fw;
	struct cim_fw_schedule *s;
	size_t len;

	sample_firmware(&fw);
	fw.api_version = 2;
	CHECK(cim_firmware_build(&fw, img, sizeof(img), &len) == -EINVAL);

	sample_firmware(&fw);
	s = &fw.sched[cim_firmware_sched_index(4, 4)];
	s->present = 1;		/* no pairs */
	CHECK(cim_firmware_build(&fw, img, sizeof(img), &len) == -EINVAL);
	s->count = 1;
	s->pairs[0] = (struct cim_fw_pair){ 4, 0 };	/* x4 in a 4-bit input */
	CHECK(cim_firmware_build(&fw, img, sizeof(img), &len) == -EINVAL);
	s->pairs[0] = (struct cim_fw_pair){ 1, 1 };
	s->cutoff = 3;		/* skips the only pair */
	CHECK(cim_firmware_build(&fw, img, sizeof(img), &len) == -EINVAL);
	s->cutoff = 2;
	CHECK(cim_firmware_build(&fw, img, sizeof(img), &len) == 0);
	s->count = 65;
	CHECK(cim_firmware_build(&fw, img, sizeof(img), &len) == -EINVAL);

	sample_firmware(&fw);
	fw.calib[1].rows_per_conv = 16;	/* not ascending */
	CHECK(cim_firmware_build(&fw, img, sizeof(img), &len) == -EINVAL);
	sample_firmware(&fw);
	fw.num_calib = CIM_FW_MAX_CALIB + 1;
	CHECK(cim_firmware_build(&fw, img, sizeof(img), &len) == -EINVAL);
}

static void test_format_round_trip(void)
{
	struct cim_firmware fw, back;
	char text[8192], err[256];
	size_t n;

	sample_firmware(&fw);
	n = fwasm_format(&fw, NULL, 0);
	CHECK(n > 0 && n < sizeof(text));
	CHECK(fwasm_format(&fw, text, sizeof(text)) == n);
	CHECK(strlen(text) == n);
	CHECK(strstr(text, "\tcutoff 4\n") != NULL);
	CHECK(strstr(text, "\tpair x7 w3\n") != NULL);
	CHECK(strstr(text, "calibration rows 32 fs 16.5\n") != NULL);
	CHECK(assemble_text(text, &back, err, sizeof(err)) == 0);
	CHECK(cim_firmware_equal(&fw, &back));

	/* Q8 values that are not round print exactly and come back. */
	fw.calib[0].adc_fs_q8 = 16 * 256 + 1;
	fwasm_format(&fw, text, sizeof(text));
	CHECK(strstr(text, "fs 16.00390625\n") != NULL);
	CHECK(assemble_text(text, &back, err, sizeof(err)) == 0);
	CHECK(cim_firmware_equal(&fw, &back));

	/* A truncated buffer stays NUL-terminated and reports the length. */
	CHECK(fwasm_format(&fw, text, 10) == fwasm_format(&fw, NULL, 0));
	CHECK(strlen(text) == 9);
}

static void test_assemble_default_firmware(void)
{
	static const int8_t nf4[16] = { -127, -88, -67, -50, -36, -23, -12, 0,
					10, 20, 31, 43, 56, 71, 92, 127 };
	static uint8_t img[POLAR_CIM_FW_MAX_SIZE], img2[POLAR_CIM_FW_MAX_SIZE];
	struct cim_firmware fw, back, again;
	size_t len, len2, srclen, n;
	char err[512], *src, *text;
	int idx;
	uint32_t i;

	if (fwasm_read_file(SRC_PATH, 1 << 20, &src, &srclen)) {
		CHECK(!"cannot read " SRC_PATH " (run from the repo root)");
		return;
	}
	CHECK(fwasm_parse(src, srclen, SRC_PATH, &fw, err, sizeof(err)) == 0);
	free(src);
	if (err[0])
		fprintf(stderr, "  %s\n", err);
	CHECK(fw.version == 0x00010000);
	CHECK(fw.api_version == POLAR_CIM_FW_API_VERSION);
	CHECK(fw.has_codebook);
	CHECK(!memcmp(fw.codebook, nf4, 16));
	for (idx = 0; idx < CIM_FW_NUM_SCHEDS; idx++) {
		const struct cim_fw_schedule *s = &fw.sched[idx];
		uint32_t w = idx & 2 ? 4 : 8, x = idx & 1 ? 4 : 8;

		CHECK(s->present);
		CHECK(s->count == w * x);
		CHECK(s->cutoff == 0);
		CHECK(s->pairs[0].xplane == x - 1 && s->pairs[0].wplane == w - 1);
		CHECK(s->pairs[s->count - 1].xplane == 0);
		CHECK(s->pairs[s->count - 1].wplane == 0);
		for (i = 1; i < s->count; i++)
			CHECK(s->pairs[i].xplane + s->pairs[i].wplane <=
			      s->pairs[i - 1].xplane + s->pairs[i - 1].wplane);
	}
	CHECK(cim_firmware_schedule(&fw, 8, 8) == &fw.sched[0]);
	CHECK(cim_firmware_default_fs_q8(&fw, 128) == 47 * 256);
	CHECK(cim_firmware_default_fs_q8(&fw, 64) == 27 * 256);
	CHECK(cim_firmware_default_fs_q8(&fw, 32) == 16 * 256);
	CHECK(cim_firmware_default_fs_q8(&fw, 16) == 10 * 256);
	CHECK(cim_firmware_default_fs_q8(&fw, 8) == 6 * 256);
	CHECK(cim_firmware_default_fs_q8(&fw, 100) == 100 * 256);

	CHECK(cim_firmware_build(&fw, img, sizeof(img), &len) == 0);
	CHECK(cim_firmware_parse(img, len, &back, NULL) == POLAR_CIM_FW_BOOTED);
	CHECK(cim_firmware_equal(&fw, &back));
	/* The microcode starts with SCHED w8 x8, PAIR x7 w7. */
	CHECK(get32(img + 32) == POLAR_CIM_FW_SEC_MICROCODE);
	CHECK(get32(img + 32 + get32(img + 36)) == OP_SCHED(8, 8));
	CHECK(get32(img + 32 + get32(img + 36) + 4) == OP_PAIR(7, 7));

	/* dump(assemble(src)) assembles to the identical image. */
	n = fwasm_format(&back, NULL, 0);
	text = malloc(n + 1);
	CHECK(text != NULL);
	if (!text)
		return;
	fwasm_format(&back, text, n + 1);
	CHECK(assemble_text(text, &again, err, sizeof(err)) == 0);
	free(text);
	CHECK(cim_firmware_build(&again, img2, sizeof(img2), &len2) == 0);
	CHECK(len2 == len && !memcmp(img, img2, len));
}

static void test_reject_header(void)
{
	static uint8_t img[POLAR_CIM_FW_MAX_SIZE + 64], copy[4096];
	struct cim_firmware fw, out;
	struct cim_fw_diag diag;
	size_t len;

	sample_firmware(&fw);
	CHECK(cim_firmware_build(&fw, copy, sizeof(copy), &len) == 0);

	/* Truncated: below the header, and one byte short. */
	memcpy(img, copy, len);
	CHECK(cim_firmware_parse(img, 31, &out, NULL) == POLAR_CIM_FW_ERR_SIZE);
	CHECK(cim_firmware_parse(img, 0, &out, NULL) == POLAR_CIM_FW_ERR_SIZE);
	CHECK(cim_firmware_parse(img, len - 1, &out, &diag) ==
	      POLAR_CIM_FW_ERR_SIZE);
	CHECK(diag.offset == 16);
	CHECK(!out.has_codebook && !out.sched[0].present);

	/* Oversized. */
	memset(img, 0, sizeof(img));
	memcpy(img, copy, len);
	CHECK(cim_firmware_parse(img, POLAR_CIM_FW_MAX_SIZE + 1, &out, NULL) ==
	      POLAR_CIM_FW_ERR_SIZE);
	put32(img + 16, POLAR_CIM_FW_MAX_SIZE + 1 - 32);
	CHECK(cim_firmware_parse(img, POLAR_CIM_FW_MAX_SIZE + 1, &out, NULL) ==
	      POLAR_CIM_FW_ERR_SIZE);
	put32(img + 16, 0xffffffe0u);	/* header + payload wraps 32 bits */
	CHECK(cim_firmware_parse(img, len, &out, NULL) == POLAR_CIM_FW_ERR_SIZE);

	/* Bad magic. */
	memcpy(img, copy, len);
	img[0] ^= 1;
	CHECK(cim_firmware_parse(img, len, &out, &diag) ==
	      POLAR_CIM_FW_ERR_MAGIC);
	CHECK(diag.offset == 0);

	/* Header size. */
	memcpy(img, copy, len);
	put32(img + 12, 36);
	CHECK(cim_firmware_parse(img, len, &out, NULL) == POLAR_CIM_FW_ERR_SIZE);

	/* Payload size does not match the image. */
	memcpy(img, copy, len);
	put32(img + 16, get32(img + 16) - 4);
	CHECK(cim_firmware_parse(img, len, &out, NULL) == POLAR_CIM_FW_ERR_SIZE);

	/* Bad CRC: one payload byte flipped, or the CRC field itself. */
	memcpy(img, copy, len);
	img[len - 3] ^= 0x10;
	CHECK(cim_firmware_parse(img, len, &out, &diag) ==
	      POLAR_CIM_FW_ERR_CRC);
	CHECK(diag.offset == 20);
	memcpy(img, copy, len);
	img[20] ^= 0x80;
	CHECK(cim_firmware_parse(img, len, &out, NULL) == POLAR_CIM_FW_ERR_CRC);

	/* Wrong API version (the header is not under the CRC). */
	memcpy(img, copy, len);
	put32(img + 8, POLAR_CIM_FW_API_VERSION + 1);
	CHECK(cim_firmware_parse(img, len, &out, &diag) ==
	      POLAR_CIM_FW_ERR_API);
	CHECK(diag.offset == 8);
	put32(img + 8, 0);
	CHECK(cim_firmware_parse(img, len, &out, NULL) == POLAR_CIM_FW_ERR_API);
	memcpy(img, copy, len);
	put32(img + 28, 1);	/* reserved */
	CHECK(cim_firmware_parse(img, len, &out, NULL) == POLAR_CIM_FW_ERR_API);

	/* Checks run in order: a bad magic wins over a bad CRC. */
	memcpy(img, copy, len);
	img[0] ^= 1;
	img[len - 1] ^= 1;
	CHECK(cim_firmware_parse(img, len, &out, NULL) ==
	      POLAR_CIM_FW_ERR_MAGIC);

	/* The untouched copy still boots. */
	CHECK(cim_firmware_parse(copy, len, &out, NULL) == POLAR_CIM_FW_BOOTED);
	CHECK(strcmp(cim_firmware_status_name(POLAR_CIM_FW_ERR_CRC),
		     "ERR_CRC") == 0);
}

static void test_reject_sections(void)
{
	static const int8_t cb[16] = { 0 };
	static const uint8_t uc[8] = { 0 };
	uint8_t img[4096], copy[4096];
	struct raw_sec two[2] = {
		{ POLAR_CIM_FW_SEC_CODEBOOK, cb, 16 },
		{ POLAR_CIM_FW_SEC_CALIBRATION, uc, 0 },
	};
	struct cim_firmware fw;
	struct cim_fw_diag diag;
	size_t len;

	len = make_image(copy, two, 2);
	CHECK(cim_firmware_parse(copy, len, &fw, NULL) == POLAR_CIM_FW_BOOTED);
	CHECK(fw.has_codebook && fw.num_calib == 0);

	/* Section runs past the payload. */
	memcpy(img, copy, len);
	put32(img + 32 + 8, 20);
	fix_crc(img, len);
	CHECK(cim_firmware_parse(img, len, &fw, &diag) ==
	      POLAR_CIM_FW_ERR_SECTION);
	CHECK(diag.offset == 32 + 4);
	CHECK(!fw.has_codebook);
	/* Offset far out, and an offset + size that wraps 32 bits. */
	memcpy(img, copy, len);
	put32(img + 32 + 4, 0x10000);
	fix_crc(img, len);
	CHECK(cim_firmware_parse(img, len, &fw, NULL) ==
	      POLAR_CIM_FW_ERR_SECTION);
	memcpy(img, copy, len);
	put32(img + 32 + 16 + 4, 32);
	put32(img + 32 + 16 + 8, 0xfffffff0u);
	fix_crc(img, len);
	CHECK(cim_firmware_parse(img, len, &fw, NULL) ==
	      POLAR_CIM_FW_ERR_SECTION);
	/* Section inside the section table. */
	memcpy(img, copy, len);
	put32(img + 32 + 4, 16);
	fix_crc(img, len);
	CHECK(cim_firmware_parse(img, len, &fw, NULL) ==
	      POLAR_CIM_FW_ERR_SECTION);
	/* Misaligned. */
	memcpy(img, copy, len);
	put32(img + 32 + 4, 34);
	put32(img + 32 + 8, 14);
	fix_crc(img, len);
	CHECK(cim_firmware_parse(img, len, &fw, NULL) ==
	      POLAR_CIM_FW_ERR_SECTION);
	/* Table larger than the payload. */
	memcpy(img, copy, len);
	put32(img + 24, 100);
	CHECK(cim_firmware_parse(img, len, &fw, &diag) ==
	      POLAR_CIM_FW_ERR_SECTION);
	CHECK(diag.offset == 24);
	/* Unknown type, repeated type, reserved word. */
	memcpy(img, copy, len);
	put32(img + 32, 7);
	fix_crc(img, len);
	CHECK(cim_firmware_parse(img, len, &fw, NULL) ==
	      POLAR_CIM_FW_ERR_SECTION);
	memcpy(img, copy, len);
	put32(img + 48, POLAR_CIM_FW_SEC_CODEBOOK);
	fix_crc(img, len);
	CHECK(cim_firmware_parse(img, len, &fw, NULL) ==
	      POLAR_CIM_FW_ERR_SECTION);
	memcpy(img, copy, len);
	put32(img + 32 + 12, 1);
	fix_crc(img, len);
	CHECK(cim_firmware_parse(img, len, &fw, NULL) ==
	      POLAR_CIM_FW_ERR_SECTION);
	/* Two sections on the same bytes. */
	memcpy(img, copy, len);
	put32(img + 48 + 4, get32(img + 32 + 4) + 8);
	put32(img + 48 + 8, 8);
	fix_crc(img, len);
	CHECK(cim_firmware_parse(img, len, &fw, NULL) ==
	      POLAR_CIM_FW_ERR_SECTION);
	/* Codebook of the wrong size. */
	two[0].size = 12;
	len = make_image(img, two, 2);
	CHECK(cim_firmware_parse(img, len, &fw, NULL) ==
	      POLAR_CIM_FW_ERR_SECTION);
	/* Microcode not a multiple of 4. */
	two[0] = (struct raw_sec){ POLAR_CIM_FW_SEC_MICROCODE, uc, 6 };
	len = make_image(img, two, 1);
	CHECK(cim_firmware_parse(img, len, &fw, NULL) ==
	      POLAR_CIM_FW_ERR_SECTION);
}

static void test_reject_microcode(void)
{
	const uint32_t ok[] = { OP_SCHED(8, 4), OP_CUTOFF(2), OP_PAIR(3, 7),
				OP_PAIR(0, 0), OP_END,
				OP_SCHED(4, 4), OP_PAIR(3, 3), OP_END };
	const uint32_t pair_outside[] = { OP_PAIR(0, 0) };
	const uint32_t pair_after_end[] = { OP_SCHED(8, 8), OP_PAIR(1, 1),
					    OP_END, OP_PAIR(0, 0) };
	const uint32_t xplane_range[] = { OP_SCHED(8, 4), OP_PAIR(4, 0),
					  OP_END };
	const uint32_t wplane_range[] = { OP_SCHED(4, 8), OP_PAIR(7, 4),
					  OP_END };
	const uint32_t missing_end[] = { OP_SCHED(8, 8), OP_PAIR(7, 7) };
	const uint32_t nested[] = { OP_SCHED(8, 8), OP_PAIR(7, 7),
				    OP_SCHED(4, 4), OP_PAIR(0, 0), OP_END };
	const uint32_t end_outside[] = { OP_END };
	const uint32_t twice[] = { OP_SCHED(8, 8), OP_PAIR(7, 7), OP_END,
				   OP_SCHED(8, 8), OP_PAIR(6, 6), OP_END };
	const uint32_t bad_bits[] = { OP_SCHED(6, 8), OP_PAIR(0, 0), OP_END };
	const uint32_t dup_pair[] = { OP_SCHED(8, 8), OP_PAIR(1, 2),
				      OP_PAIR(1, 2), OP_END };
	const uint32_t empty[] = { OP_SCHED(8, 8), OP_END };
	const uint32_t cutoff_range[] = { OP_SCHED(4, 4), OP_CUTOFF(7),
					  OP_PAIR(3, 3), OP_END };
	const uint32_t cutoff_all[] = { OP_SCHED(4, 4), OP_CUTOFF(5),
					OP_PAIR(1, 1), OP_END };
	const uint32_t cutoff_twice[] = { OP_SCHED(4, 4), OP_CUTOFF(1),
					  OP_CUTOFF(1), OP_PAIR(3, 3), OP_END };
	const uint32_t cutoff_outside[] = { OP_CUTOFF(1) };
	const uint32_t unknown[] = { OP_SCHED(4, 4), OP_PAIR(3, 3),
				     0x04000000, OP_END };
	const uint32_t rsvd_pair[] = { OP_SCHED(4, 4), 0x02010303, OP_END };
	const uint32_t rsvd_end[] = { OP_SCHED(4, 4), OP_PAIR(3, 3),
				      0xff000001 };
	uint32_t big[70];
	struct cim_fw_diag diag;
	uint32_t x, w, n = 0;

#define UC(a, d) parse_microcode((a), sizeof(a) / sizeof((a)[0]), (d))
	CHECK(UC(ok, NULL) == POLAR_CIM_FW_BOOTED);
	CHECK(UC(pair_outside, &diag) == POLAR_CIM_FW_ERR_SECTION);
	CHECK(diag.offset == 32 + 16);	/* the first microcode word */
	CHECK(strstr(diag.msg, "PAIR outside a SCHED block") != NULL);
	CHECK(UC(pair_after_end, &diag) == POLAR_CIM_FW_ERR_SECTION);
	CHECK(diag.offset == 32 + 16 + 12);
	CHECK(UC(xplane_range, NULL) == POLAR_CIM_FW_ERR_SECTION);
	CHECK(UC(wplane_range, NULL) == POLAR_CIM_FW_ERR_SECTION);
	CHECK(UC(missing_end, &diag) == POLAR_CIM_FW_ERR_SECTION);
	CHECK(strstr(diag.msg, "no END") != NULL);
	CHECK(UC(nested, NULL) == POLAR_CIM_FW_ERR_SECTION);
	CHECK(UC(end_outside, NULL) == POLAR_CIM_FW_ERR_SECTION);
	CHECK(UC(twice, NULL) == POLAR_CIM_FW_ERR_SECTION);
	CHECK(UC(bad_bits, NULL) == POLAR_CIM_FW_ERR_SECTION);
	CHECK(UC(dup_pair, NULL) == POLAR_CIM_FW_ERR_SECTION);
	CHECK(UC(empty, NULL) == POLAR_CIM_FW_ERR_SECTION);
	CHECK(UC(cutoff_range, NULL) == POLAR_CIM_FW_ERR_SECTION);
	CHECK(UC(cutoff_all, NULL) == POLAR_CIM_FW_ERR_SECTION);
	CHECK(UC(cutoff_twice, NULL) == POLAR_CIM_FW_ERR_SECTION);
	CHECK(UC(cutoff_outside, NULL) == POLAR_CIM_FW_ERR_SECTION);
	CHECK(UC(unknown, NULL) == POLAR_CIM_FW_ERR_SECTION);
	CHECK(UC(rsvd_pair, NULL) == POLAR_CIM_FW_ERR_SECTION);
	CHECK(UC(rsvd_end, NULL) == POLAR_CIM_FW_ERR_SECTION);

	/* All 64 pairs fit; the 65th cannot (it would repeat one). */
	big[n++] = OP_SCHED(8, 8);
	for (x = 0; x < 8; x++)
		for (w = 0; w < 8; w++)
			big[n++] = OP_PAIR(x, w);
	big[n++] = OP_END;
	CHECK(parse_microcode(big, n, NULL) == POLAR_CIM_FW_BOOTED);
	big[n - 1] = OP_PAIR(0, 0);
	big[n++] = OP_END;
	CHECK(parse_microcode(big, n, NULL) == POLAR_CIM_FW_ERR_SECTION);
}

static void test_reject_calibration(void)
{
	const uint32_t ok[] = { 16, 10 * 256, 128, 47 * 256 };
	const uint32_t unsorted[] = { 128, 47 * 256, 16, 10 * 256 };
	const uint32_t dup[] = { 16, 10 * 256, 16, 11 * 256 };
	const uint32_t rows0[] = { 0, 256 };
	const uint32_t fs_low[] = { 16, 255 };
	const uint32_t fs_high[] = { 16, 16 * 256 + 1 };
	const uint32_t odd[] = { 16, 10 * 256, 32 };
	uint32_t many[2 * (CIM_FW_MAX_CALIB + 1)];
	uint32_t i;

#define CAL(a) parse_calib((a), sizeof(a) / sizeof((a)[0]))
	CHECK(CAL(ok) == POLAR_CIM_FW_BOOTED);
	CHECK(CAL(unsorted) == POLAR_CIM_FW_ERR_SECTION);
	CHECK(CAL(dup) == POLAR_CIM_FW_ERR_SECTION);
	CHECK(CAL(rows0) == POLAR_CIM_FW_ERR_SECTION);
	CHECK(CAL(fs_low) == POLAR_CIM_FW_ERR_SECTION);
	CHECK(CAL(fs_high) == POLAR_CIM_FW_ERR_SECTION);
	CHECK(CAL(odd) == POLAR_CIM_FW_ERR_SECTION);
	for (i = 0; i <= CIM_FW_MAX_CALIB; i++) {
		many[2 * i] = i + 1;
		many[2 * i + 1] = 256;
	}
	CHECK(parse_calib(many, 2 * CIM_FW_MAX_CALIB) == POLAR_CIM_FW_BOOTED);
	CHECK(CAL(many) == POLAR_CIM_FW_ERR_SECTION);
}

/* Each bad source fails at the expected line with the expected words. */
static void test_assembler_errors(void)
{
	static const struct {
		const char *src;
		const char *where;
		const char *what;
	} bad[] = {
		{ "version 1.0\napi 1\npair x0 w0\n", "t.fws:3: ",
		  "outside a schedule" },
		{ "version 1.0\napi 1\nfrobnicate\n", "t.fws:3: ",
		  "unknown directive" },
		{ "version 1.0\napi 1\n\nschedule w8 x8\n pair x1 w1\n",
		  "t.fws:4: ", "has no end" },
		{ "version 1.0\napi 1\nschedule w8 x4\n pair x4 w0\nend\n",
		  "t.fws:4: ", "out of range" },
		{ "version 1.0\napi 1\nschedule w8 x8\n pair x1 w1\n"
		  " pair x1 w1\nend\n", "t.fws:5: ", "already" },
		{ "version 1.0\napi 1\nschedule w8 x8\nend\n", "t.fws:4: ",
		  "no pairs" },
		{ "version 1.0\napi 1\nschedule w4 x4\n pairs msb-first\nend\n"
		  "schedule w4 x4\n", "t.fws:6: ", "second schedule" },
		{ "version 1.0\napi 1\nschedule w6 x8\n", "t.fws:3: ",
		  "usage: schedule" },
		{ "version 1.0\napi 1\nschedule w4 x4\n cutoff 7\n",
		  "t.fws:4: ", "cutoff 7" },
		{ "version 1.0\napi 1\ncodebook nf4 1 2 3\nend\n",
		  "t.fws:4: ", "needs 16" },
		{ "version 1.0\napi 1\ncodebook nf4 128\n", "t.fws:3: ",
		  "-128..127" },
		{ "version 1.0\napi 2\n", "t.fws:2: ", "api 2" },
		{ "api 1\n", "t.fws: ", "no 'version" },
		{ "version 1.0\n", "t.fws: ", "no 'api" },
		{ "version 1.0\nversion 1.1\n", "t.fws:2: ", "second version" },
		{ "version 1.0\napi 1\ncalibration rows 16 fs 17\n",
		  "t.fws:3: ", "fs 17" },
		{ "version 1.0\napi 1\ncalibration rows 16 fs 0.5\n",
		  "t.fws:3: ", "fs 0.5" },
		{ "version 1.0\napi 1\ncalibration rows 16 fs 1e3\n",
		  "t.fws:3: ", "fs 1e3" },
		{ "version 1.0\napi 1\ncalibration rows 16 fs 9\n"
		  "calibration rows 16 fs 8\n", "t.fws:4: ", "second" },
		{ "version 1.0\napi 1\nend\n", "t.fws:3: ", "end outside" },
	};
	struct cim_firmware fw;
	char err[512];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (assemble_text(bad[i].src, &fw, err, sizeof(err)) != -1 ||
		    strncmp(err, bad[i].where, strlen(bad[i].where)) ||
		    !strstr(err, bad[i].what)) {
			fprintf(stderr, "  case %zu: got \"%s\"\n", i, err);
			CHECK(!"assembler error");
		}
	}

	/* Comments, blank lines, CRLF, pairs in either order, fs rounding. */
	CHECK(assemble_text("# c\r\nversion 2.7 # x\r\n\napi 1\r\n"
			    "schedule w4 x8\n\tpair w3 x7 # msb\n cutoff 1\n"
			    "end\ncalibration rows 64 fs 26.3923\n"
			    "calibration rows 8 fs 6\n",
			    &fw, err, sizeof(err)) == 0);
	CHECK(fw.version == 0x00020007);
	CHECK(fw.sched[2].present && fw.sched[2].count == 1);
	CHECK(fw.sched[2].pairs[0].xplane == 7);
	CHECK(fw.sched[2].pairs[0].wplane == 3);
	CHECK(fw.sched[2].cutoff == 1);
	CHECK(fw.num_calib == 2 && fw.calib[0].rows_per_conv == 8);
	CHECK(fw.calib[1].adc_fs_q8 == 6756);	/* 26.3923 * 256 = 6756.4 */
}

int main(void)
{
	RUN(test_crc32_vectors);
	RUN(test_build_parse_round_trip);
	RUN(test_build_rejects_invalid);
	RUN(test_format_round_trip);
	RUN(test_assemble_default_firmware);
	RUN(test_reject_header);
	RUN(test_reject_sections);
	RUN(test_reject_microcode);
	RUN(test_reject_calibration);
	RUN(test_assembler_errors);
	return unit_summary();
}
