/* SPDX-License-Identifier: MIT */
/*
 * A very small host test harness: CHECK() records a failure with its line
 * and goes on; RUN() runs one test function and prints a TAP-style line;
 * unit_summary() prints "N passed, N failed" and returns the exit status.
 */
#ifndef POLAR_UNIT_H
#define POLAR_UNIT_H

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int unit_passed, unit_failed, unit_test_failed;

#define CHECK(cond)							\
	do {								\
		if (!(cond)) {						\
			fprintf(stderr, "  %s:%d: CHECK(%s) failed\n",	\
				__FILE__, __LINE__, #cond);		\
			unit_test_failed = 1;				\
		}							\
	} while (0)

#define CHECK_STR(a, b)							\
	do {								\
		if (strcmp((a), (b))) {					\
			fprintf(stderr, "  %s:%d: \"%s\" != \"%s\"\n",	\
				__FILE__, __LINE__, (a), (b));		\
			unit_test_failed = 1;				\
		}							\
	} while (0)

#define RUN(fn)								\
	do {								\
		unit_test_failed = 0;					\
		fn();							\
		if (unit_test_failed) {					\
			unit_failed++;					\
			printf("not ok %d %s\n",			\
			       unit_passed + unit_failed, #fn);		\
		} else {						\
			unit_passed++;					\
			printf("ok %d %s\n",				\
			       unit_passed + unit_failed, #fn);		\
		}							\
		fflush(stdout);						\
	} while (0)

static inline int unit_summary(void)
{
	printf("%d passed, %d failed\n", unit_passed, unit_failed);
	return unit_failed ? 1 : 0;
}

/* mkdir -p: creates every missing component of path. */
static inline int mkdir_p(const char *path)
{
	char buf[512];
	size_t i, n = strlen(path);

	if (n >= sizeof(buf))
		return -1;
	memcpy(buf, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (buf[i] == '/' || buf[i] == '\0') {
			char c = buf[i];

			buf[i] = '\0';
			if (mkdir(buf, 0755) && errno != EEXIST)
				return -1;
			buf[i] = c;
		}
	}
	return 0;
}

#endif /* POLAR_UNIT_H */
