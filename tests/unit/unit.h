/* SPDX-License-Identifier: MIT */
/*
 * A very small host test harness. A test is one function run by RUN(); it
 * passes, fails or skips, and prints one TAP line:
 *   ok 3 test_name / not ok 3 test_name / ok 3 test_name # SKIP reason
 * which is what tests/run-checks.sh counts. CHECK() is an assertion inside
 * a test: it records a failure with its line (and an optional printf-style
 * message) and goes on. UNIT_SKIP() ends a test as skipped, with a reason.
 * unit_summary() prints "N passed, N failed, N skipped" (tests, not
 * assertions) and returns the exit status.
 */
#ifndef POLAR_UNIT_H
#define POLAR_UNIT_H

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int unit_passed, unit_failed, unit_skipped, unit_test_failed;
static char unit_skip_reason[256];

/* CHECK(cond) or CHECK(cond, "format", ...): the message names the case. */
#define CHECK(cond, ...)						\
	do {								\
		if (!(cond)) {						\
			fprintf(stderr, "  %s:%d: CHECK(%s) failed",	\
				__FILE__, __LINE__, #cond);		\
			fprintf(stderr, " " __VA_ARGS__);		\
			fputc('\n', stderr);				\
			unit_test_failed = 1;				\
		}							\
	} while (0)

/* Ends the (void) test function as skipped; the reason is printed. */
#define UNIT_SKIP(...)							\
	do {								\
		snprintf(unit_skip_reason, sizeof(unit_skip_reason),	\
			 __VA_ARGS__);					\
		return;							\
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
		int n_ = unit_passed + unit_failed + unit_skipped + 1;	\
		unit_test_failed = 0;					\
		unit_skip_reason[0] = '\0';				\
		fn();							\
		fflush(stderr);						\
		if (unit_test_failed) {					\
			unit_failed++;					\
			printf("not ok %d %s\n", n_, #fn);		\
		} else if (unit_skip_reason[0]) {			\
			unit_skipped++;					\
			printf("ok %d %s # SKIP %s\n", n_, #fn,	\
			       unit_skip_reason);			\
		} else {						\
			unit_passed++;					\
			printf("ok %d %s\n", n_, #fn);			\
		}							\
		fflush(stdout);						\
	} while (0)

static inline int unit_summary(void)
{
	printf("%d passed, %d failed, %d skipped\n", unit_passed, unit_failed,
	       unit_skipped);
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
