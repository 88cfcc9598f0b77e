// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the IDX loader (raw or gzip'd). polar_idx_load() takes
 * a path, so the input is written to a memfd and loaded through
 * /proc/self/fd/N; the first input byte also picks which magic to expect.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "polar/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfd = -1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct polar_idx idx;
	char path[64];
	size_t off = 0;
	int ret;

	if (memfd < 0) {
		memfd = memfd_create("fuzz_idx", MFD_CLOEXEC);
		if (memfd < 0)
			abort();
	}
	if (ftruncate(memfd, 0))
		abort();
	while (off < size) {
		ssize_t n = pwrite(memfd, data + off, size - off, off);

		if (n <= 0)
			abort();
		off += n;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	if (size && (data[0] & 1))
		ret = polar_idx_load_expect(path, data[0] & 2 ?
					    POLAR_IDX_MAGIC_IMAGES :
					    POLAR_IDX_MAGIC_LABELS, &idx);
	else
		ret = polar_idx_load(path, &idx);
	if (ret == 0) {
		volatile uint8_t sink;
		size_t n = idx.count * idx.item_size;

		if (idx.count != idx.dims[0] || !n)
			__builtin_trap();
		sink = idx.data[0] ^ idx.data[n - 1];
		(void)sink;
	}
	polar_idx_free(&idx);
	return 0;
}
