// SPDX-License-Identifier: MIT
/*
 * qtest_client: QEMU's qtest protocol and QMP with timeouts (see
 * qtest_client.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qtest_client.h"

int64_t qtest_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fail(struct qtest *q, const char *fmt, ...)
{
	va_list ap;

	if (q->failed)
		return;
	q->failed = true;
	va_start(ap, fmt);
	vsnprintf(q->why, sizeof(q->why), fmt, ap);
	va_end(ap);
}

/* One line from fd into line (without '\n'), waiting until deadline. */
static int read_line(struct qtest *q, int fd, char *buf, size_t *have,
		     size_t cap, char *line, size_t line_cap,
		     int64_t deadline)
{
	for (;;) {
		char *nl = memchr(buf, '\n', *have);
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left;
		ssize_t n;

		if (nl) {
			size_t len = nl - buf;

			if (len >= line_cap)
				len = line_cap - 1;
			memcpy(line, buf, len);
			line[len] = 0;
			*have -= nl + 1 - buf;
			memmove(buf, nl + 1, *have);
			return 0;
		}
		if (*have == cap) {
			fail(q, "protocol: reply line too long");
			return -1;
		}
		left = deadline - qtest_now_ms();
		if (left <= 0) {
			fail(q, "hung: no reply within %d ms", q->timeout_ms);
			return -1;
		}
		n = poll(&p, 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			continue;
		n = read(fd, buf + *have, cap - *have);
		if (n <= 0) {
			fail(q, "died: QEMU closed the connection");
			return -1;
		}
		*have += n;
	}
}

static int write_all(struct qtest *q, int fd, const char *s, size_t len)
{
	while (len) {
		ssize_t n = write(fd, s, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fail(q, "died: write to QEMU failed: %s", strerror(errno));
			return -1;
		}
		s += n;
		len -= n;
	}
	return 0;
}

/*
 * Sends one qtest command and returns its reply line ("OK ..."), or NULL.
 * The reply's text after "OK " is in reply (may be large for reads).
 */
static char *qtest_cmd(struct qtest *q, char *reply, size_t reply_cap,
		       const char *fmt, ...)
{
	static char cmd[1 << 17];
	va_list ap;
	int len;

	if (q->failed)
		return NULL;
	va_start(ap, fmt);
	len = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (len < 0 || (size_t)len >= sizeof(cmd)) {
		fail(q, "protocol: command too long");
		return NULL;
	}
	if (write_all(q, q->to_qemu, cmd, len))
		return NULL;
	for (;;) {
		if (read_line(q, q->from_qemu, q->buf, &q->have, sizeof(q->buf),
			      reply, reply_cap,
			      qtest_now_ms() + q->timeout_ms))
			return NULL;
		/* Asynchronous IRQ messages are not replies. */
		if (!strncmp(reply, "IRQ ", 4))
			continue;
		break;
	}
	if (strncmp(reply, "OK", 2)) {
		fail(q, "protocol: '%.*s' answered '%.100s'", len - 1, cmd,
		     reply);
		return NULL;
	}
	return reply;
}

static uint64_t reply_value(struct qtest *q, const char *fmt, ...)
{
	char reply[128], cmd[96];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (!qtest_cmd(q, reply, sizeof(reply), "%s", cmd))
		return ~0ull;
	return strtoull(reply + 3, NULL, 0);
}

uint32_t qtest_readl(struct qtest *q, uint64_t addr)
{
	return reply_value(q, "readl 0x%" PRIx64 "\n", addr);
}

void qtest_writel(struct qtest *q, uint64_t addr, uint32_t val)
{
	char reply[64];

	qtest_cmd(q, reply, sizeof(reply), "writel 0x%" PRIx64 " 0x%x\n", addr,
		  val);
}

uint32_t qtest_inl(struct qtest *q, uint16_t port)
{
	return reply_value(q, "inl 0x%x\n", port);
}

void qtest_outl(struct qtest *q, uint16_t port, uint32_t val)
{
	char reply[64];

	qtest_cmd(q, reply, sizeof(reply), "outl 0x%x 0x%x\n", port, val);
}

/* Hex text, at most 32 KiB of data per command. */
void qtest_memwrite(struct qtest *q, uint64_t addr, const void *buf,
		    size_t len)
{
	static char hex[2 * 32768 + 1];
	const uint8_t *p = buf;
	char reply[64];

	while (len && !q->failed) {
		size_t n = len < 32768 ? len : 32768, i;

		for (i = 0; i < n; i++)
			sprintf(hex + 2 * i, "%02x", p[i]);
		qtest_cmd(q, reply, sizeof(reply), "write 0x%" PRIx64
			  " 0x%zx 0x%s\n", addr, n, hex);
		addr += n;
		p += n;
		len -= n;
	}
}

void qtest_memread(struct qtest *q, uint64_t addr, void *buf, size_t len)
{
	static char reply[2 * 32768 + 64];
	uint8_t *p = buf;

	memset(buf, 0, len);
	while (len && !q->failed) {
		size_t n = len < 32768 ? len : 32768, i;

		if (!qtest_cmd(q, reply, sizeof(reply), "read 0x%" PRIx64
			       " 0x%zx\n", addr, n))
			return;
		for (i = 0; i < n && reply[5 + 2 * i]; i++)
			sscanf(reply + 5 + 2 * i, "%2hhx", &p[i]);
		addr += n;
		p += n;
		len -= n;
	}
}

void qtest_memset(struct qtest *q, uint64_t addr, uint8_t val, size_t len)
{
	char reply[64];

	qtest_cmd(q, reply, sizeof(reply), "memset 0x%" PRIx64 " 0x%zx 0x%x\n",
		  addr, len, val);
}

/* ---- QMP ------------------------------------------------------------------ */

static char qmp_buf[1 << 16];
static size_t qmp_have;
static char qmp_events[1 << 14];

static int qmp_line(struct qtest *q, char *line, size_t cap, int64_t deadline)
{
	return read_line(q, q->qmp, qmp_buf, &qmp_have, sizeof(qmp_buf), line,
			 cap, deadline);
}

static void note_event(const char *line)
{
	const char *e = strstr(line, "\"event\"");
	size_t used = strlen(qmp_events);

	if (e && used + 128 < sizeof(qmp_events))
		snprintf(qmp_events + used, sizeof(qmp_events) - used,
			 "%.100s\n", e);
}

int qtest_qmp(struct qtest *q, const char *json)
{
	char line[4096];

	if (q->failed || q->qmp < 0)
		return -1;
	if (write_all(q, q->qmp, json, strlen(json)) ||
	    write_all(q, q->qmp, "\n", 1))
		return -1;
	for (;;) {
		if (qmp_line(q, line, sizeof(line),
			     qtest_now_ms() + q->timeout_ms))
			return -1;
		if (strstr(line, "\"event\"")) {
			note_event(line);
			continue;
		}
		if (strstr(line, "\"return\""))
			return 0;
		if (strstr(line, "\"error\""))
			return -1;
	}
}

int qtest_qmp_event(struct qtest *q, const char *name, int timeout_ms)
{
	int64_t deadline = qtest_now_ms() + timeout_ms;
	char want[128], line[4096];

	snprintf(want, sizeof(want), "\"event\": \"%s\"", name);
	while (!strstr(qmp_events, want)) {
		if (q->failed)
			return -1;
		if (qmp_line(q, line, sizeof(line), deadline))
			return -1;
		note_event(line);
	}
	return 0;
}

/* ---- the process -------------------------------------------------------- */

int qtest_start(struct qtest *q, const char *qemu, const char *args)
{
	int in[2], out[2], i;
	char sock[96], qmp_opt[160];
	char *argv[96], *copy, *tok, *save;
	int argc = 0;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char line[4096];

	memset(q, 0, sizeof(*q));
	q->qmp = -1;
	q->timeout_ms = 20000;
	qmp_have = 0;
	qmp_events[0] = 0;
	snprintf(q->dir, sizeof(q->dir), "/tmp/polar-qtest.XXXXXX");
	if (!mkdtemp(q->dir)) {
		fail(q, "mkdtemp: %s", strerror(errno));
		return -1;
	}
	snprintf(sock, sizeof(sock), "%s/qmp", q->dir);
	snprintf(q->stderr_path, sizeof(q->stderr_path), "%s/stderr", q->dir);
	snprintf(qmp_opt, sizeof(qmp_opt), "unix:%s,server=on,wait=off", sock);

	argv[argc++] = (char *)qemu;
	{
		static const char *fixed[] = {
			"-machine", "pc", "-accel", "qtest", "-display", "none",
			"-L", "/usr/share/seabios", "-L", "/usr/share/qemu",
			"-nodefaults", "-m", "128M", "-qtest", "stdio", "-qmp",
		};
		for (i = 0; i < (int)(sizeof(fixed) / sizeof(fixed[0])); i++)
			argv[argc++] = (char *)fixed[i];
	}
	argv[argc++] = qmp_opt;
	copy = strdup(args);
	for (tok = strtok_r(copy, " ", &save); tok && argc < 94;
	     tok = strtok_r(NULL, " ", &save))
		argv[argc++] = tok;
	argv[argc] = NULL;

	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC)) {
		fail(q, "pipe: %s", strerror(errno));
		free(copy);
		return -1;
	}
	signal(SIGPIPE, SIG_IGN);
	q->pid = fork();
	if (q->pid == 0) {
		int err = open(q->stderr_path, O_WRONLY | O_CREAT | O_TRUNC,
			       0644);

		dup2(in[0], 0);
		dup2(out[1], 1);
		if (err >= 0)
			dup2(err, 2);
		execv(qemu, argv);
		_exit(127);
	}
	free(copy);
	close(in[0]);
	close(out[1]);
	q->to_qemu = in[1];
	q->from_qemu = out[0];

	/* QMP: the socket exists once QEMU has parsed its options. */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	for (i = 0; i < 2000; i++) {
		int fd;

		if (!qtest_alive(q)) {
			fail(q, "died: QEMU exited at start (see %s)",
			     q->stderr_path);
			return -1;
		}
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			q->qmp = fd;
			break;
		}
		close(fd);
		usleep(10000);
	}
	if (q->qmp < 0) {
		fail(q, "hung: no QMP socket");
		return -1;
	}
	if (qmp_line(q, line, sizeof(line), qtest_now_ms() + q->timeout_ms) ||
	    qtest_qmp(q, "{\"execute\": \"qmp_capabilities\"}"))
		return -1;
	/* A first command proves the qtest side answers too. */
	qtest_inl(q, 0xcfc);
	return q->failed ? -1 : 0;
}

bool qtest_alive(struct qtest *q)
{
	int status;

	if (q->pid <= 0)
		return false;
	if (waitpid(q->pid, &status, WNOHANG) == q->pid) {
		q->pid = -status - 1;
		return false;
	}
	return true;
}

int qtest_stop(struct qtest *q)
{
	int status = 0;
	char path[160];

	if (q->pid > 0) {
		kill(q->pid, SIGKILL);
		waitpid(q->pid, &status, 0);
		q->pid = 0;
	} else if (q->pid < 0) {
		status = -q->pid - 1;
	}
	if (q->to_qemu > 0)
		close(q->to_qemu);
	if (q->from_qemu > 0)
		close(q->from_qemu);
	if (q->qmp >= 0)
		close(q->qmp);
	q->to_qemu = q->from_qemu = 0;
	q->qmp = -1;
	snprintf(path, sizeof(path), "%s/qmp", q->dir);
	unlink(path);
	return status;
}

void qtest_cleanup(struct qtest *q)
{
	if (!q->dir[0])
		return;
	unlink(q->stderr_path);
	rmdir(q->dir);
	q->dir[0] = 0;
}

long qtest_rss_kib(struct qtest *q)
{
	char path[64], line[256];
	long kib = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)q->pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	fclose(f);
	return kib;
}
