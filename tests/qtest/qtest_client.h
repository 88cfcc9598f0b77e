/* SPDX-License-Identifier: MIT */
/*
 * qtest_client: our QEMU binary started with -qtest, driven over QEMU's
 * qtest protocol (docs/devel/testing/qtest.rst) on a pipe and over QMP on
 * a unix socket. Every reply is awaited with a timeout, so a QEMU that
 * hangs is reported as such instead of hanging the test.
 */
#ifndef QTEST_CLIENT_H
#define QTEST_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/**
 * struct qtest - one QEMU process under test
 * @pid: its process id
 * @to_qemu, @from_qemu: the qtest pipe
 * @qmp: the QMP socket, or -1
 * @timeout_ms: how long a reply may take before the QEMU counts as hung
 * @failed: set by the first failure; later calls do nothing and fail
 * @why: what failed ("hung", "died", "protocol")
 * @stderr_path: where QEMU's stderr goes (sanitizer reports, guest
 *	errors with -d guest_errors)
 */
struct qtest {
	pid_t pid;
	int to_qemu;
	int from_qemu;
	int qmp;
	int timeout_ms;
	bool failed;
	char why[256];
	char dir[64];
	char stderr_path[128];
	char buf[1 << 16];
	size_t have;
};

/*
 * Starts @qemu with "-machine pc -accel qtest -display none -nodefaults
 * -m 128M", the qtest protocol on a pipe, QMP on a socket, and @args (a
 * shell-free, space-separated list of further options). Returns 0, or -1
 * with @q->why set (QEMU exited at once, e.g. a rejected -device).
 */
int qtest_start(struct qtest *q, const char *qemu, const char *args);

/* Kills QEMU and waits for it; returns its wait status. */
int qtest_stop(struct qtest *q);

/* Removes the files qtest_start() made (stderr_path included). */
void qtest_cleanup(struct qtest *q);

/* 1 while the QEMU process lives (not reaped); reaps it otherwise. */
bool qtest_alive(struct qtest *q);

uint32_t qtest_readl(struct qtest *q, uint64_t addr);
void qtest_writel(struct qtest *q, uint64_t addr, uint32_t val);
uint32_t qtest_inl(struct qtest *q, uint16_t port);
void qtest_outl(struct qtest *q, uint16_t port, uint32_t val);
void qtest_memwrite(struct qtest *q, uint64_t addr, const void *buf,
		    size_t len);
void qtest_memread(struct qtest *q, uint64_t addr, void *buf, size_t len);
void qtest_memset(struct qtest *q, uint64_t addr, uint8_t val, size_t len);

/*
 * Sends a QMP command (JSON text) and returns 0 on a "return" reply, -1
 * on an "error" reply or a failure. Events that arrive before the reply
 * are kept for qtest_qmp_event().
 */
int qtest_qmp(struct qtest *q, const char *json);

/* Waits up to timeout_ms for a QMP event named @name; 0 when seen. */
int qtest_qmp_event(struct qtest *q, const char *name, int timeout_ms);

/* QEMU's resident set size in KiB, from /proc; 0 if unknown. */
long qtest_rss_kib(struct qtest *q);

/* Milliseconds on a monotonic clock. */
int64_t qtest_now_ms(void);

#endif /* QTEST_CLIENT_H */
