// SPDX-License-Identifier: MIT
/*
 * What the polar subcommands share: option parsing (getopt_long, one-line
 * errors naming the option, value and range) and the progress bar.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

int cli_getopt(int argc, char **argv, const struct option *longopts,
	       const char **opt)
{
	static char name[64];
	const char *arg;
	int c, idx = -1;
	size_t n;

	opterr = 0;	/* the messages below name the subcommand */
	c = getopt_long(argc, argv, ":h", longopts, &idx);
	if (c == -1) {
		if (optind < argc) {
			fprintf(stderr, "%s: unexpected argument '%s'\n",
				argv[0], argv[optind]);
			return '?';
		}
		return -1;
	}
	arg = argv[optind - 1];
	if (c == '?' || c == ':') {
		if (c == ':') {
			fprintf(stderr, "%s: %s needs a value\n", argv[0], arg);
			return '?';
		}
		if (strncmp(arg, "--", 2)) {
			fprintf(stderr, "%s: unknown option %s\n", argv[0], arg);
			return '?';
		}
		/* a flag given a value: --sweep=1 */
		for (idx = 0; longopts[idx].name; idx++) {
			n = strlen(longopts[idx].name);
			if (longopts[idx].has_arg == no_argument &&
			    !strncmp(arg + 2, longopts[idx].name, n) &&
			    arg[n + 2] == '=') {
				fprintf(stderr, "%s: --%s takes no value\n",
					argv[0], longopts[idx].name);
				return '?';
			}
		}
		fprintf(stderr, "%s: unknown or ambiguous option %s\n",
			argv[0], arg);
		return '?';
	}
	if (idx >= 0)
		snprintf(name, sizeof(name), "--%s", longopts[idx].name);
	else
		snprintf(name, sizeof(name), "-%c", c);
	*opt = name;
	return c;
}

int cli_parse_u64(const char *cmd, const char *opt, const char *s,
		  uint64_t min, uint64_t max, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	if (errno || end == s || *end || *s == '-' || *v < min || *v > max) {
		fprintf(stderr, "%s: %s: bad value '%s' (%llu..%llu)\n", cmd,
			opt, s, (unsigned long long)min,
			(unsigned long long)max);
		return -1;
	}
	return 0;
}

int cli_parse_double(const char *cmd, const char *opt, const char *s,
		     double min, double max, unsigned int open, double *v)
{
	const char *lo = open & CLI_MIN_OPEN ? "<" : "<=",
		   *hi = open & CLI_MAX_OPEN ? "<" : "<=";
	char *end;

	errno = 0;
	*v = strtod(s, &end);
	/* written so that NaN fails every comparison */
	if (errno || end == s || *end ||
	    !(open & CLI_MIN_OPEN ? *v > min : *v >= min) ||
	    !(open & CLI_MAX_OPEN ? *v < max : *v <= max)) {
		fprintf(stderr, "%s: %s: bad value '%s' (%g %s x %s %g)\n", cmd,
			opt, s, min, lo, hi, max);
		return -1;
	}
	return 0;
}

double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void bar_start(struct bar *b, const char *label)
{
	b->label = label;
	b->t0 = b->last = now_s();
	b->tty = isatty(STDERR_FILENO);
	b->open = 0;
}

static void bar_draw(struct bar *b, size_t done, size_t total,
		     const char *status)
{
	double t = now_s();
	char s[31];
	size_t i, fill;

	if (!b->tty)
		return;
	/* a frame after the first second, then five a second at most */
	if (done < total && (t - b->t0 < 1.0 || t - b->last < 0.2))
		return;
	if (done >= total && !b->open)
		return;
	b->last = t;
	fill = total ? (done < total ? done : total) * 30 / total : 30;
	for (i = 0; i < 30; i++)
		s[i] = i < fill ? '#' : '.';
	s[30] = 0;
	fprintf(stderr, "\r\033[K%-28s [%s] %zu/%zu %.1f s%s%s", b->label, s,
		done, total, t - b->t0, status ? "  " : "",
		status ? status : "");
	b->open = done < total;
	if (!b->open)
		fputc('\n', stderr);
	fflush(stderr);
}

void bar_update(struct bar *b, size_t done, size_t total)
{
	bar_draw(b, done, total, NULL);
}

void bar_updatef(struct bar *b, size_t done, size_t total, const char *fmt,
		 ...)
{
	char status[160];
	va_list ap;

	if (!b->tty)
		return;
	va_start(ap, fmt);
	vsnprintf(status, sizeof(status), fmt, ap);
	va_end(ap);
	bar_draw(b, done, total, status);
}

void bar_done(struct bar *b, size_t total)
{
	bar_draw(b, total, total, NULL);
}

void bar_line(struct bar *b, const char *fmt, ...)
{
	va_list ap;

	if (b->open) {
		fputs("\r\033[K", stderr);
		b->open = 0;
	}
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fflush(stderr);
}
