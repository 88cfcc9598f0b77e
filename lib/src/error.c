// SPDX-License-Identifier: MIT
/* Per-thread error messages: errors travel as -errno plus a sentence. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "polar_internal.h"

static _Thread_local char polar_errbuf[512];

int polar_fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(polar_errbuf, sizeof(polar_errbuf), fmt, ap);
	va_end(ap);
	return err;
}

int polar_null_arg(const char *fn, const char *arg)
{
	return polar_fail(-EINVAL, "%s: %s is NULL", fn, arg);
}

void polar_clear_error(void)
{
	polar_errbuf[0] = '\0';
}

const char *polar_errmsg(void)
{
	return polar_errbuf;
}
