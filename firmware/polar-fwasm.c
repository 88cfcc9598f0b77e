// SPDX-License-Identifier: MIT
/*
 * polar-fwasm: assemble the polar-cim firmware and take images apart.
 *
 *	polar-fwasm SOURCE.fws -o IMAGE		assemble
 *	polar-fwasm --dump IMAGE		verify with the device's own
 *						parser and print as source
 *
 * Assembly errors name FILE:LINE and exit 1; a rejected image prints the
 * device's FW_STATUS, the byte offset and the check, and exits 1.
 * Usage errors exit 2.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cim_firmware.h"
#include "fwasm.h"

/* Sources and images are small; anything larger is not one. */
#define FWASM_MAX_SOURCE	(1024 * 1024)

static int usage(FILE *f)
{
	fprintf(f,
		"usage: polar-fwasm SOURCE.fws -o IMAGE   assemble a firmware image\n"
		"       polar-fwasm --dump IMAGE          verify an image, print it as source\n");
	return f == stderr ? 2 : 0;
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 |
	       (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int assemble(const char *src_path, const char *out_path)
{
	unsigned char image[POLAR_CIM_FW_MAX_SIZE];
	struct cim_firmware fw;
	char err[512];
	size_t len, size;
	char *src;
	FILE *f;
	int ret;

	if (fwasm_read_file(src_path, FWASM_MAX_SOURCE, &src, &len)) {
		fprintf(stderr, "polar-fwasm: %s: %s\n", src_path,
			strerror(errno));
		return 1;
	}
	ret = fwasm_parse(src, len, src_path, &fw, err, sizeof(err));
	free(src);
	if (ret) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	ret = cim_firmware_build(&fw, image, sizeof(image), &size);
	if (ret) {
		fprintf(stderr, "%s: cannot build the image: %s\n", src_path,
			strerror(-ret));
		return 1;
	}
	f = fopen(out_path, "wb");
	if (!f) {
		fprintf(stderr, "polar-fwasm: %s: %s\n", out_path,
			strerror(errno));
		return 1;
	}
	if (fwrite(image, 1, size, f) != size || fclose(f)) {
		fprintf(stderr, "polar-fwasm: %s: write failed\n", out_path);
		remove(out_path);
		return 1;
	}
	return 0;
}

static int dump(const char *path)
{
	static const char *const sec_names[] = {
		"?", "microcode", "codebook", "calibration",
	};
	enum polar_cim_fw_status st;
	struct cim_firmware fw;
	struct cim_fw_diag diag;
	const unsigned char *img;
	uint32_t i, nsec;
	size_t len, n;
	char *data, *text;

	if (fwasm_read_file(path, FWASM_MAX_SOURCE, &data, &len)) {
		fprintf(stderr, "polar-fwasm: %s: %s\n", path, strerror(errno));
		return 1;
	}
	img = (const unsigned char *)data;
	st = cim_firmware_parse(data, len, &fw, &diag);
	if (st != POLAR_CIM_FW_BOOTED) {
		fprintf(stderr, "polar-fwasm: %s: rejected, FW_STATUS 0x%02x %s at byte %u: %s\n",
			path, (unsigned int)st, cim_firmware_status_name(st),
			(unsigned int)diag.offset, diag.msg);
		free(data);
		return 1;
	}

	printf("# %s: %zu bytes, crc32 0x%08x, FW_STATUS %s\n", path, len,
	       (unsigned int)get32(img + 20), cim_firmware_status_name(st));
	nsec = get32(img + 24);
	for (i = 0; i < nsec; i++) {
		const unsigned char *e = img + 32 + 16 * i;
		uint32_t type = get32(e);

		printf("#   section %u: %-11s payload offset %5u, %5u bytes\n",
		       (unsigned int)i, sec_names[type < 4 ? type : 0],
		       (unsigned int)get32(e + 4), (unsigned int)get32(e + 8));
	}
	free(data);

	n = fwasm_format(&fw, NULL, 0);
	text = malloc(n + 1);
	if (!text) {
		fprintf(stderr, "polar-fwasm: out of memory\n");
		return 1;
	}
	fwasm_format(&fw, text, n + 1);
	fputs(text, stdout);
	free(text);
	return fflush(stdout) ? 1 : 0;
}

int main(int argc, char **argv)
{
	const char *src = NULL, *out = NULL;
	int i;

	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))
		return usage(stdout);
	if (argc == 3 && !strcmp(argv[1], "--dump"))
		return dump(argv[2]);
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-o") && i + 1 < argc)
			out = argv[++i];
		else if (argv[i][0] != '-' && !src)
			src = argv[i];
		else
			return usage(stderr);
	}
	if (!src || !out)
		return usage(stderr);
	return assemble(src, out);
}
