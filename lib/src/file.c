// SPDX-License-Identifier: MIT
/* Whole-file reads, shared by the model readers (safetensors, ONNX). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "polar_internal.h"

int polar_read_file(const char *path, void **out, size_t *out_len)
{
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0, n;
	FILE *f;
	int ret;

	*out = NULL;
	*out_len = 0;
	f = fopen(path, "rb");
	if (!f)
		return polar_fail(-errno, "%s: cannot open: %s", path,
				  strerror(errno));
	for (;;) {
		if (len == cap) {
			uint8_t *nb;

			cap = cap ? cap * 2 : 1 << 20;
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(f);
				return polar_fail(-ENOMEM, "%s: out of memory",
						  path);
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		ret = polar_fail(-EIO, "%s: read error", path);
		free(buf);
		fclose(f);
		return ret;
	}
	fclose(f);
	*out = buf;
	*out_len = len;
	return 0;
}
