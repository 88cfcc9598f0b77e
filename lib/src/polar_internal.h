/* SPDX-License-Identifier: MIT */
/* Library-internal declarations: not installed, not exported. */
#ifndef POLAR_INTERNAL_H
#define POLAR_INTERNAL_H

#include "polar/polar.h"

#if defined(__GNUC__)
#define POLAR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define POLAR_PRINTF(a, b)
#endif

/* Records the message for polar_errmsg() and returns err (a -errno). */
int polar_fail(int err, const char *fmt, ...) POLAR_PRINTF(2, 3);
void polar_clear_error(void);

struct polar_device {
	int fd;
	char path[256];
};

#endif /* POLAR_INTERNAL_H */
