// SPDX-License-Identifier: MIT
/*
 * fwasm: the polar-cim firmware source language (.fws), read and written.
 *
 * fwasm_parse() turns source text into a struct cim_firmware, which
 * cim_firmware_build() (qemu-device/cim_firmware.c) serializes; and
 * fwasm_format() prints a struct cim_firmware back as source, so that
 * assembling the output of --dump gives the same image. The syntax is
 * described in firmware/README.md. Shared by polar-fwasm and the unit tests.
 */
#ifndef POLAR_FWASM_H
#define POLAR_FWASM_H

#include <stddef.h>

#include "cim_firmware.h"

/**
 * fwasm_parse() - assemble source text.
 * @src, @len: the text (need not be NUL-terminated)
 * @name: the file name used in messages
 * @fw: the result, every field set
 * @err, @errlen: on failure, receives "NAME:LINE: what is wrong"
 *
 * Returns 0, or -1 on the first error.
 */
int fwasm_parse(const char *src, size_t len, const char *name,
		struct cim_firmware *fw, char *err, size_t errlen);

/**
 * fwasm_format() - print @fw as source text into @buf (always
 * NUL-terminated when @cap > 0). Returns the length of the whole text, as
 * snprintf() does: call with @buf NULL to size the buffer.
 */
size_t fwasm_format(const struct cim_firmware *fw, char *buf, size_t cap);

/**
 * fwasm_read_file() - read a whole file into a malloc()ed buffer with a
 * NUL after the last byte. Returns 0, or -1 with errno set (EFBIG above
 * @max bytes).
 */
int fwasm_read_file(const char *path, size_t max, char **data, size_t *len);

#endif /* POLAR_FWASM_H */
