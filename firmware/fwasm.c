// SPDX-License-Identifier: MIT
/*
 * fwasm: read and write the firmware source language.
 *
 * A source file is a list of lines; '#' starts a comment; words are
 * separated by blanks. Top-level lines:
 *
 *	version MAJOR.MINOR		the image version (once)
 *	api N				the firmware API (once; must be 1)
 *	codebook nf4 [V ...]		16 signed bytes, NF4 code 0..15 in
 *	  V ...				order, over any number of lines,
 *	end				closed by "end"
 *	schedule wW xX			the plane schedule for W-bit weights
 *	  pair xA wB			and X-bit inputs (4 or 8): pairs in
 *	  pairs msb-first		order, all pairs most significant
 *	  cutoff K			first, skip pairs with A + B < K
 *	end
 *	calibration rows R fs F		ADC full scale F cells (decimal) when
 *					a MATMUL sums R rows per conversion
 *
 * Everything is checked here with the line that is wrong, and once more
 * by cim_firmware_build(), which runs the device's own checks.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fwasm.h"

#define FWASM_MAX_WORDS		32

enum fwasm_block {
	FWASM_TOP,
	FWASM_CODEBOOK,
	FWASM_SCHEDULE,
};

/* The assembler's state while it walks the lines. */
struct fwasm {
	const char *name;
	unsigned int line;
	char *err;
	size_t errlen;
	struct cim_firmware *fw;
	enum fwasm_block block;
	unsigned int block_line;
	int sched;			/* index of the open schedule */
	uint64_t pair_mask;		/* its pairs, bit x * 8 + w */
	int has_cutoff;
	unsigned int ncode;		/* codebook values so far */
	int has_version;
	int has_api;
};

#ifdef __GNUC__
__attribute__((format(printf, 2, 3)))
#endif
static int fwasm_error(struct fwasm *a, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!a->err || !a->errlen)
		return -1;
	if (a->line)
		n = snprintf(a->err, a->errlen, "%s:%u: ", a->name, a->line);
	else
		n = snprintf(a->err, a->errlen, "%s: ", a->name);
	if (n < 0 || (size_t)n >= a->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(a->err + n, a->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* A decimal integer in [min, max], the whole word. */
static int fwasm_int(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (!*s || ((*s < '0' || *s > '9') && *s != '-' && *s != '+'))
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/*
 * A non-negative decimal "I" or "I.F" (up to 9 fraction digits) as Q8,
 * rounded to nearest, computed exactly in integers.
 */
static int fwasm_q8(const char *s, uint32_t *out)
{
	uint64_t num = 0, den = 1;
	unsigned int idigits = 0, fdigits = 0;

	for (; *s >= '0' && *s <= '9'; s++, idigits++) {
		if (idigits >= 9)
			return -1;
		num = num * 10 + (uint64_t)(*s - '0');
	}
	if (*s == '.') {
		for (s++; *s >= '0' && *s <= '9'; s++, fdigits++) {
			if (fdigits >= 9)
				return -1;
			num = num * 10 + (uint64_t)(*s - '0');
			den *= 10;
		}
	}
	if (*s || !idigits)
		return -1;
	num = (num * 256 + den / 2) / den;
	if (num > UINT32_MAX)
		return -1;
	*out = (uint32_t)num;
	return 0;
}

/* "w8" / "x4": the letter and 4 or 8. */
static int fwasm_bits(const char *s, char letter, uint32_t *bits)
{
	if (s[0] != letter || (s[1] != '4' && s[1] != '8') || s[2])
		return -1;
	*bits = (uint32_t)(s[1] - '0');
	return 0;
}

/* "x7" / "w0": the letter and a plane 0..7. */
static int fwasm_plane(const char *s, char letter, uint32_t *plane)
{
	if (s[0] != letter || s[1] < '0' || s[1] > '7' || s[2])
		return -1;
	*plane = (uint32_t)(s[1] - '0');
	return 0;
}

static int fwasm_add_pair(struct fwasm *a, uint32_t x, uint32_t w)
{
	struct cim_fw_schedule *s = &a->fw->sched[a->sched];
	uint32_t wbits = a->sched & 2 ? 4 : 8, xbits = a->sched & 1 ? 4 : 8;

	if (x >= xbits || w >= wbits)
		return fwasm_error(a, "pair x%u w%u: planes out of range for schedule w%u x%u (x0..x%u, w0..w%u)",
				   x, w, wbits, xbits, xbits - 1, wbits - 1);
	if (a->pair_mask & (1ull << (x * 8 + w)))
		return fwasm_error(a, "pair x%u w%u: already in this schedule",
				   x, w);
	if (s->count >= CIM_FW_MAX_PAIRS)
		return fwasm_error(a, "more than %u pairs", CIM_FW_MAX_PAIRS);
	a->pair_mask |= 1ull << (x * 8 + w);
	s->pairs[s->count].xplane = (uint8_t)x;
	s->pairs[s->count].wplane = (uint8_t)w;
	s->count++;
	return 0;
}

static int fwasm_schedule_line(struct fwasm *a, char **word, int n)
{
	struct cim_fw_schedule *s = &a->fw->sched[a->sched];
	uint32_t wbits = a->sched & 2 ? 4 : 8, xbits = a->sched & 1 ? 4 : 8;
	struct cim_fw_pair all[CIM_FW_MAX_PAIRS];
	uint32_t x, w, i, cnt;
	long k;

	if (!strcmp(word[0], "pair")) {
		if (n != 3)
			return fwasm_error(a, "usage: pair xA wB");
		if (!fwasm_plane(word[1], 'x', &x) &&
		    !fwasm_plane(word[2], 'w', &w))
			return fwasm_add_pair(a, x, w);
		if (!fwasm_plane(word[1], 'w', &w) &&
		    !fwasm_plane(word[2], 'x', &x))
			return fwasm_add_pair(a, x, w);
		return fwasm_error(a, "pair %s %s: expected xA wB with planes 0..7",
				   word[1], word[2]);
	}
	if (!strcmp(word[0], "pairs")) {
		if (n != 2 || strcmp(word[1], "msb-first"))
			return fwasm_error(a, "usage: pairs msb-first");
		cnt = cim_firmware_msb_first(wbits, xbits, all);
		for (i = 0; i < cnt; i++)
			if (fwasm_add_pair(a, all[i].xplane, all[i].wplane))
				return -1;
		return 0;
	}
	if (!strcmp(word[0], "cutoff")) {
		if (n != 2)
			return fwasm_error(a, "usage: cutoff K");
		if (a->has_cutoff)
			return fwasm_error(a, "second cutoff in this schedule");
		if (fwasm_int(word[1], 0, (long)(wbits + xbits - 2), &k))
			return fwasm_error(a, "cutoff %s: must be 0..%u for w%u x%u",
					   word[1], wbits + xbits - 2, wbits,
					   xbits);
		a->has_cutoff = 1;
		s->cutoff = (uint8_t)k;
		return 0;
	}
	if (!strcmp(word[0], "end")) {
		if (n != 1)
			return fwasm_error(a, "end takes nothing");
		if (!s->count)
			return fwasm_error(a, "schedule w%u x%u has no pairs",
					   wbits, xbits);
		for (i = 0; i < s->count; i++)
			if (s->pairs[i].xplane + s->pairs[i].wplane >= s->cutoff)
				break;
		if (i == s->count)
			return fwasm_error(a, "cutoff %u skips every pair of w%u x%u",
					   s->cutoff, wbits, xbits);
		a->block = FWASM_TOP;
		return 0;
	}
	return fwasm_error(a, "'%s' inside a schedule (started at line %u): expected pair, pairs, cutoff or end",
			   word[0], a->block_line);
}

static int fwasm_codebook_words(struct fwasm *a, char **word, int n)
{
	long v;
	int i;

	for (i = 0; i < n; i++) {
		if (!strcmp(word[i], "end")) {
			if (i != n - 1)
				return fwasm_error(a, "words after end");
			if (a->ncode != 16)
				return fwasm_error(a, "codebook has %u values, needs 16",
						   a->ncode);
			a->block = FWASM_TOP;
			return 0;
		}
		if (fwasm_int(word[i], -128, 127, &v))
			return fwasm_error(a, "codebook value '%s': must be an integer -128..127",
					   word[i]);
		if (a->ncode >= 16)
			return fwasm_error(a, "codebook has more than 16 values");
		a->fw->codebook[a->ncode++] = (int8_t)v;
	}
	return 0;
}

static int fwasm_calibration(struct fwasm *a, char **word, int n)
{
	struct cim_firmware *fw = a->fw;
	uint32_t fs, i;
	long rows;

	if (n != 5 || strcmp(word[1], "rows") || strcmp(word[3], "fs"))
		return fwasm_error(a, "usage: calibration rows R fs F");
	if (fwasm_int(word[2], 1, 65535, &rows))
		return fwasm_error(a, "rows %s: must be 1..65535", word[2]);
	if (fwasm_q8(word[4], &fs) || fs < 256 || fs > (uint32_t)rows << 8)
		return fwasm_error(a, "fs %s: must be a decimal 1.0..%ld (cells)",
				   word[4], rows);
	if (fw->num_calib >= CIM_FW_MAX_CALIB)
		return fwasm_error(a, "more than %u calibration entries",
				   CIM_FW_MAX_CALIB);
	/* Keep the table sorted by rows, as the image requires. */
	for (i = fw->num_calib; i > 0; i--) {
		if (fw->calib[i - 1].rows_per_conv == (uint32_t)rows)
			return fwasm_error(a, "second calibration for rows %ld",
					   rows);
		if (fw->calib[i - 1].rows_per_conv < (uint32_t)rows)
			break;
	}
	memmove(&fw->calib[i + 1], &fw->calib[i],
		(fw->num_calib - i) * sizeof(fw->calib[0]));
	fw->calib[i].rows_per_conv = (uint32_t)rows;
	fw->calib[i].adc_fs_q8 = fs;
	fw->num_calib++;
	return 0;
}

static int fwasm_top_line(struct fwasm *a, char **word, int n)
{
	struct cim_firmware *fw = a->fw;
	uint32_t wbits, xbits;
	long major, minor, api;
	char *dot;

	if (!strcmp(word[0], "version")) {
		if (a->has_version)
			return fwasm_error(a, "second version line");
		dot = n == 2 ? strchr(word[1], '.') : NULL;
		if (!dot)
			return fwasm_error(a, "usage: version MAJOR.MINOR");
		*dot = '\0';
		if (fwasm_int(word[1], 0, 65535, &major) ||
		    fwasm_int(dot + 1, 0, 65535, &minor))
			return fwasm_error(a, "version: MAJOR and MINOR must be 0..65535");
		fw->version = (uint32_t)major << 16 | (uint32_t)minor;
		a->has_version = 1;
		return 0;
	}
	if (!strcmp(word[0], "api")) {
		if (a->has_api)
			return fwasm_error(a, "second api line");
		if (n != 2 || fwasm_int(word[1], 0, 0x7fffffff, &api))
			return fwasm_error(a, "usage: api N");
		if (api != POLAR_CIM_FW_API_VERSION)
			return fwasm_error(a, "api %ld: this assembler writes firmware API %d",
					   api, POLAR_CIM_FW_API_VERSION);
		fw->api_version = (uint32_t)api;
		a->has_api = 1;
		return 0;
	}
	if (!strcmp(word[0], "codebook")) {
		if (n < 2 || strcmp(word[1], "nf4"))
			return fwasm_error(a, "usage: codebook nf4 [values...] ... end");
		if (fw->has_codebook)
			return fwasm_error(a, "second codebook");
		fw->has_codebook = 1;
		a->block = FWASM_CODEBOOK;
		a->block_line = a->line;
		a->ncode = 0;
		return fwasm_codebook_words(a, word + 2, n - 2);
	}
	if (!strcmp(word[0], "schedule")) {
		if (n != 3 || fwasm_bits(word[1], 'w', &wbits) ||
		    fwasm_bits(word[2], 'x', &xbits))
			return fwasm_error(a, "usage: schedule wW xX (W, X: 4 or 8)");
		a->sched = cim_firmware_sched_index(wbits, xbits);
		if (fw->sched[a->sched].present)
			return fwasm_error(a, "second schedule w%u x%u",
					   wbits, xbits);
		fw->sched[a->sched].present = 1;
		a->block = FWASM_SCHEDULE;
		a->block_line = a->line;
		a->pair_mask = 0;
		a->has_cutoff = 0;
		return 0;
	}
	if (!strcmp(word[0], "calibration"))
		return fwasm_calibration(a, word, n);
	if (!strcmp(word[0], "end"))
		return fwasm_error(a, "end outside a codebook or schedule");
	if (!strcmp(word[0], "pair") || !strcmp(word[0], "pairs") ||
	    !strcmp(word[0], "cutoff"))
		return fwasm_error(a, "%s outside a schedule", word[0]);
	return fwasm_error(a, "unknown directive '%s'", word[0]);
}

/* Split @line in place at blanks, up to a '#'. Returns the word count. */
static int fwasm_split(char *line, char **word)
{
	int n = 0;
	char *p = line;

	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\f' ||
		       *p == '\v')
			p++;
		if (!*p || *p == '#')
			return n;
		if (n == FWASM_MAX_WORDS)
			return -1;
		word[n++] = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\r' &&
		       *p != '\f' && *p != '\v' && *p != '#')
			p++;
		if (*p == '#') {
			*p = '\0';
			return n;
		}
		if (*p)
			*p++ = '\0';
	}
}

int fwasm_parse(const char *src, size_t len, const char *name,
		struct cim_firmware *fw, char *err, size_t errlen)
{
	struct fwasm a = {
		.name = name, .err = err, .errlen = errlen, .fw = fw,
	};
	char *word[FWASM_MAX_WORDS];
	char *copy, *line, *nl;
	size_t built;
	int n, ret = -1;

	memset(fw, 0, sizeof(*fw));
	if (err && errlen)
		err[0] = '\0';
	if (memchr(src, '\0', len))
		return fwasm_error(&a, "contains a NUL byte");
	copy = malloc(len + 1);
	if (!copy)
		return fwasm_error(&a, "out of memory");
	memcpy(copy, src, len);
	copy[len] = '\0';

	for (line = copy; line && *line; line = nl) {
		nl = strchr(line, '\n');
		if (nl)
			*nl++ = '\0';
		a.line++;
		n = fwasm_split(line, word);
		if (n < 0) {
			fwasm_error(&a, "more than %d words on a line",
				    FWASM_MAX_WORDS);
			goto out;
		}
		if (!n)
			continue;
		if (a.block == FWASM_CODEBOOK)
			n = fwasm_codebook_words(&a, word, n);
		else if (a.block == FWASM_SCHEDULE)
			n = fwasm_schedule_line(&a, word, n);
		else
			n = fwasm_top_line(&a, word, n);
		if (n)
			goto out;
	}

	if (a.block != FWASM_TOP) {
		a.line = a.block_line;
		fwasm_error(&a, "%s has no end",
			    a.block == FWASM_CODEBOOK ? "codebook" : "schedule");
		goto out;
	}
	a.line = 0;
	if (!a.has_version) {
		fwasm_error(&a, "no 'version MAJOR.MINOR' line");
		goto out;
	}
	if (!a.has_api) {
		fwasm_error(&a, "no 'api N' line");
		goto out;
	}
	if (cim_firmware_build(fw, NULL, 0, &built)) {
		fwasm_error(&a, "the firmware does not pass the device's checks");
		goto out;
	}
	ret = 0;
out:
	free(copy);
	if (ret)
		memset(fw, 0, sizeof(*fw));
	return ret;
}

/* ---- formatting ----------------------------------------------------------- */

/* An snprintf() that appends and keeps counting past the end. */
struct fwasm_out {
	char *buf;
	size_t cap;
	size_t len;
};

#ifdef __GNUC__
__attribute__((format(printf, 2, 3)))
#endif
static void fwasm_printf(struct fwasm_out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(o->buf && o->len < o->cap ? o->buf + o->len : NULL,
		      o->buf && o->len < o->cap ? o->cap - o->len : 0, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len += (size_t)n;
}

/* Q8 as an exact decimal: 256ths have at most 8 fraction digits. */
static void fwasm_print_q8(struct fwasm_out *o, uint32_t q8)
{
	uint32_t frac = (q8 & 255) * 390625u;	/* 10^8 / 256 */
	char digits[12];
	int end;

	snprintf(digits, sizeof(digits), "%08u", (unsigned int)frac);
	for (end = 8; end > 1 && digits[end - 1] == '0'; end--)
		;
	digits[end] = '\0';
	fwasm_printf(o, "%u.%s", (unsigned int)(q8 >> 8), digits);
}

size_t fwasm_format(const struct cim_firmware *fw, char *buf, size_t cap)
{
	struct fwasm_out o = { .buf = buf, .cap = cap, .len = 0 };
	struct cim_fw_pair msb[CIM_FW_MAX_PAIRS];
	uint32_t i, n;
	int idx;

	if (buf && cap)
		buf[0] = '\0';
	fwasm_printf(&o, "# polar-cim firmware (polar-fwasm --dump)\n");
	fwasm_printf(&o, "version %u.%u\n", (unsigned int)(fw->version >> 16),
		     (unsigned int)(fw->version & 0xffff));
	fwasm_printf(&o, "api %u\n", (unsigned int)fw->api_version);
	if (fw->has_codebook) {
		fwasm_printf(&o, "\ncodebook nf4\n");
		for (i = 0; i < 16; i++)
			fwasm_printf(&o, "%s%d%s", i % 8 ? " " : "\t",
				     fw->codebook[i], i % 8 == 7 ? "\n" : "");
		fwasm_printf(&o, "end\n");
	}
	for (idx = 0; idx < CIM_FW_NUM_SCHEDS; idx++) {
		const struct cim_fw_schedule *s = &fw->sched[idx];
		uint32_t wbits = idx & 2 ? 4 : 8, xbits = idx & 1 ? 4 : 8;

		if (!s->present)
			continue;
		fwasm_printf(&o, "\nschedule w%u x%u\n", (unsigned int)wbits,
			     (unsigned int)xbits);
		if (s->cutoff)
			fwasm_printf(&o, "\tcutoff %u\n", s->cutoff);
		n = cim_firmware_msb_first(wbits, xbits, msb);
		if (s->count == n &&
		    !memcmp(s->pairs, msb, n * sizeof(msb[0]))) {
			fwasm_printf(&o, "\tpairs msb-first\n");
		} else {
			for (i = 0; i < s->count && i < CIM_FW_MAX_PAIRS; i++)
				fwasm_printf(&o, "\tpair x%u w%u\n",
					     s->pairs[i].xplane,
					     s->pairs[i].wplane);
		}
		fwasm_printf(&o, "end\n");
	}
	if (fw->num_calib)
		fwasm_printf(&o, "\n");
	for (i = 0; i < fw->num_calib && i < CIM_FW_MAX_CALIB; i++) {
		fwasm_printf(&o, "calibration rows %u fs ",
			     (unsigned int)fw->calib[i].rows_per_conv);
		fwasm_print_q8(&o, fw->calib[i].adc_fs_q8);
		fwasm_printf(&o, "\n");
	}
	return o.len;
}

/* ---- files ------------------------------------------------------------------ */

int fwasm_read_file(const char *path, size_t max, char **data, size_t *len)
{
	FILE *f = fopen(path, "rb");
	size_t n = 0, cap = 4096, got;
	char *buf, *bigger;
	int saved;

	if (!f)
		return -1;
	buf = malloc(cap + 1);
	if (!buf)
		goto fail;
	for (;;) {
		got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (n > max) {
			errno = EFBIG;
			goto fail;
		}
		if (n < cap) {
			if (ferror(f)) {
				errno = EIO;
				goto fail;
			}
			break;
		}
		cap *= 2;
		bigger = realloc(buf, cap + 1);
		if (!bigger)
			goto fail;
		buf = bigger;
	}
	fclose(f);
	buf[n] = '\0';
	*data = buf;
	*len = n;
	return 0;
fail:
	saved = errno;
	free(buf);
	fclose(f);
	errno = saved;
	return -1;
}
