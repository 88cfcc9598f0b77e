/* SPDX-License-Identifier: MIT */
/*
 * What the polar subcommands share: getopt_long with one-line errors that
 * name the option, option values checked against their range, and the
 * progress bar.
 */
#ifndef POLAR_TOOLS_CLI_H
#define POLAR_TOOLS_CLI_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>

/*
 * getopt_long() over argv[0] = "polar CMD": both --name=value and
 * --name value. Returns the option's val, with *opt = "--name" for
 * messages and the value in optarg; -1 at the end; or '?' after printing
 * one line "polar CMD: ..." for an unknown option, a missing or unwanted
 * value, or a stray argument. Options are long, but for -h.
 */
int cli_getopt(int argc, char **argv, const struct option *longopts,
	       const char **opt);

/*
 * An unsigned value in [min, max]. The error names the subcommand,
 * option, value and range: "polar eval: --rank: bad value '0' (1..64)".
 */
int cli_parse_u64(const char *cmd, const char *opt, const char *s,
		  uint64_t min, uint64_t max, uint64_t *v);

#define CLI_MIN_OPEN 1u	/* cli_parse_double(): min itself is refused */
#define CLI_MAX_OPEN 2u	/* cli_parse_double(): max itself is refused */

/*
 * A real value between min and max (each included unless open says
 * otherwise); the error names the subcommand, option, value and range:
 * "polar eval: --lr: bad value '-1' (0 < x <= 1)".
 */
int cli_parse_double(const char *cmd, const char *opt, const char *s,
		     double min, double max, unsigned int open, double *v);

/*
 * A progress bar on stderr, one carriage-return frame at a time; drawn
 * only when stderr is a terminal and the work has taken a second, so a
 * log file holds no frames, only the lines of bar_line().
 */
struct bar {
	const char *label;
	double t0, last;
	int tty;
	int open;		/* a frame is on the line, not yet ended */
};

void bar_start(struct bar *b, const char *label);
void bar_update(struct bar *b, size_t done, size_t total);
/* bar_update() with a status after the counts, e.g. the running loss. */
void bar_updatef(struct bar *b, size_t done, size_t total, const char *fmt,
		 ...) __attribute__((format(printf, 4, 5)));
/* The last frame (when one was drawn), ended with a newline. */
void bar_done(struct bar *b, size_t total);
/* A line that stays, in place of the frame on the line if there is one. */
void bar_line(struct bar *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* CLOCK_MONOTONIC seconds, for the bar and the tools' timings */
double now_s(void);

#endif
