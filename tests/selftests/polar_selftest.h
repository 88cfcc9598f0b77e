/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the polar_accel kselftests: opening the device, BOs,
 * submitting and waiting for jobs, test data codes, debugfs and the
 * kernel log. GPL-2.0 like the tests that include the kselftest harness.
 */
#ifndef POLAR_SELFTEST_H
#define POLAR_SELFTEST_H

#include <errno.h>
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <linux/sync_file.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "drm/polar_accel.h"
#include "polar/polar.h"
#include "polar_cim_hw.h"

#define FW_PATH "/lib/firmware/polar_cim.fw"
#define WAIT_NS (20ll * 1000 * 1000 * 1000)
#define JOB_TIMEOUT_PARAM "/sys/module/polar_accel/parameters/job_timeout_ms"

/* WAIT's timeout_ns: the CLOCK_MONOTONIC deadline @ns from now. */
static inline int64_t deadline_ns(int64_t ns)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec * 1000000000ll + now.tv_nsec + ns;
}

struct bo {
	uint32_t handle;
	uint64_t size;
	void *map;
};

/*
 * The node under test: $POLAR_DEVICE when set (the VM's /init runs some
 * tests again that way against each of make check's extra chips), else
 * the first polar_accel node.
 */
static inline int accel_open(void)
{
	const char *dev = getenv("POLAR_DEVICE");
	char path[64];

	if (dev && *dev)
		return open(dev, O_RDWR | O_CLOEXEC);
	if (polar_find_device(NULL, 0, path, sizeof(path)))
		return -1;
	return open(path, O_RDWR | O_CLOEXEC);
}

static inline uint64_t param(int fd, uint32_t p)
{
	struct drm_polar_accel_get_param a = { .param = p };

	if (ioctl(fd, DRM_IOCTL_POLAR_ACCEL_GET_PARAM, &a))
		return 0;
	return a.value;
}

/*
 * The chip's reconstruction (RECON register) as cim_config's recon and
 * recon_frac_bits, so that a test's software engine computes what the
 * device does in either mode.
 */
static inline void param_recon(int fd, uint32_t *recon, uint32_t *frac_bits)
{
	uint64_t v = param(fd, DRM_POLAR_ACCEL_PARAM_RECON);

	*recon = v & POLAR_CIM_RECON_MODE_MASK;
	*frac_bits = (v & POLAR_CIM_RECON_FRAC_MASK) >>
		     POLAR_CIM_RECON_FRAC_SHIFT;
}

/*
 * The chip design (DESIGN register) as cim_config's digital_planes,
 * adc_bits_msb and adc_msb_levels, for the same comparisons.
 */
static inline void param_design(int fd, uint32_t *digital_planes,
				uint32_t *adc_bits_msb, uint32_t *msb_levels)
{
	uint64_t v = param(fd, DRM_POLAR_ACCEL_PARAM_DESIGN);

	*digital_planes = v & POLAR_CIM_DESIGN_DIGITAL_MASK;
	*adc_bits_msb = (v & POLAR_CIM_DESIGN_MSB_BITS_MASK) >>
			POLAR_CIM_DESIGN_MSB_BITS_SHIFT;
	*msb_levels = (v & POLAR_CIM_DESIGN_MSB_LEVELS_MASK) >>
		      POLAR_CIM_DESIGN_MSB_LEVELS_SHIFT;
}

static inline int bo_new(int fd, uint64_t size, struct bo *bo)
{
	struct drm_polar_accel_bo_create c = { .size = size };
	struct drm_polar_accel_bo_info i = { 0 };

	if (ioctl(fd, DRM_IOCTL_POLAR_ACCEL_BO_CREATE, &c))
		return -errno;
	i.handle = c.handle;
	if (ioctl(fd, DRM_IOCTL_POLAR_ACCEL_BO_INFO, &i))
		return -errno;
	bo->handle = c.handle;
	bo->size = i.size;
	bo->map = mmap(NULL, i.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		       i.mmap_offset);
	return bo->map == MAP_FAILED ? -errno : 0;
}

static inline void bo_free(int fd, struct bo *bo)
{
	struct drm_gem_close c = { .handle = bo->handle };

	munmap(bo->map, bo->size);
	ioctl(fd, DRM_IOCTL_GEM_CLOSE, &c);
}

static inline int submit(int fd, uint32_t queue, struct drm_polar_accel_cmd *cmds,
		  uint32_t n, uint64_t *seqno)
{
	struct drm_polar_accel_submit s = {
		.queue = queue,
		.num_cmds = n,
		.cmds = (uintptr_t)cmds,
	};

	if (ioctl(fd, DRM_IOCTL_POLAR_ACCEL_SUBMIT, &s))
		return -errno;
	*seqno = s.seqno;
	return 0;
}

/* WAIT: the job's status, or -1000 - errno if WAIT itself failed. */
static inline int wait_job(int fd, uint64_t seqno, uint32_t *cmd_status)
{
	struct drm_polar_accel_wait w = {
		.seqno = seqno,
		.timeout_ns = deadline_ns(WAIT_NS),
	};

	if (ioctl(fd, DRM_IOCTL_POLAR_ACCEL_WAIT, &w))
		return -1000 - errno;
	if (cmd_status)
		*cmd_status = w.cmd_status;
	return w.status;
}

static inline int run(int fd, uint32_t queue, struct drm_polar_accel_cmd *cmds,
	       uint32_t n)
{
	uint64_t seqno = 0;
	int ret = submit(fd, queue, cmds, n, &seqno);

	return ret ? ret : wait_job(fd, seqno, NULL);
}

static inline int8_t weight_code(uint8_t wfmt, uint32_t r)
{
	switch (wfmt) {
	case POLAR_CIM_WFMT_INT4:
		return (int8_t)(r % 16) - 8;
	case POLAR_CIM_WFMT_NF4:
		return (int8_t)(r % 16);
	default:
		return (int8_t)r;
	}
}

static inline int8_t input_code(uint8_t xfmt, uint32_t r)
{
	switch (xfmt) {
	case POLAR_CIM_XFMT_INT4:
		return (int8_t)(r % 16) - 8;
	case POLAR_CIM_XFMT_UINT4:
		return (int8_t)(r % 16);
	default:
		return (int8_t)r;
	}
}

/* Occurrences of kernel warning markers in the whole kernel log. */
static inline int klog_problems(void)
{
	static const char *const pat[] = {
		"WARNING:", "BUG:", "Oops", "Call Trace",
		"general protection", "refcount_t:",
	};
	int size = klogctl(10, NULL, 0), n, count = 0;
	size_t k;
	char *buf;

	if (size <= 0)
		return 0;
	buf = calloc(1, size + 1);
	if (!buf)
		return 0;
	n = klogctl(3, buf, size);
	if (n > 0) {
		buf[n] = 0;
		for (k = 0; k < sizeof(pat) / sizeof(pat[0]); k++) {
			const char *p = buf;

			while ((p = strstr(p, pat[k]))) {
				count++;
				p++;
			}
		}
	}
	free(buf);
	return count;
}

/* /sys/kernel/debug/accel/<minor>/<name> of the open accel fd. */
static inline void debugfs_path(int fd, const char *name, char *out, size_t len)
{
	char link[64], target[256];
	const char *base;
	struct stat st;
	ssize_t n;

	if (fstat(fd, &st))
		st.st_rdev = 0;
	snprintf(out, len, "/sys/kernel/debug/accel/%u/%s",
		 minor(st.st_rdev), name);
	if (!access(out, F_OK))
		return;
	/* 6.12 names the directory after the device (dev->unique). */
	snprintf(link, sizeof(link), "/sys/class/accel/accel%u/device",
		 minor(st.st_rdev));
	n = readlink(link, target, sizeof(target) - 1);
	if (n <= 0)
		return;
	target[n] = 0;
	base = strrchr(target, '/');
	snprintf(out, len, "/sys/kernel/debug/accel/%s/%s",
		 base ? base + 1 : target, name);
}

/* The PCI address of the open accel node's device, e.g. 0000:00:01.0. */
static inline int accel_bdf(int fd, char *bdf, size_t len)
{
	char link[128], target[256];
	const char *base;
	struct stat st;
	ssize_t n;

	if (fstat(fd, &st))
		return -errno;
	snprintf(link, sizeof(link), "/sys/class/accel/accel%u/device",
		 minor(st.st_rdev));
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = 0;
	base = strrchr(target, '/');
	snprintf(bdf, len, "%.63s", base ? base + 1 : target);
	return 0;
}

/*
 * The device coredump that reset number @reset of the device at PCI
 * address @bdf made: 1 with the path of its data file (write to it to
 * free the dump) in @data, or 0. Only that one is read: other dumps (the
 * other chip's, earlier tests') are neither read nor freed.
 */
static inline int devcoredump_find(const char *bdf, uint64_t reset,
				   char *data, size_t len)
{
	char cmd[512], line[4096], want[64], dir[300] = "";
	int found = 0;
	FILE *f;

	snprintf(want, sizeof(want), "polar_accel coredump: reset %llu,",
		 (unsigned long long)reset);
	/* Each dump of this device: its directory, then its data. */
	snprintf(cmd, sizeof(cmd),
		 "for d in /sys/class/devcoredump/devcd*; do "
		 "case $(readlink $d/failing_device) in */%s) "
		 "echo \"dir $d\"; cat $d/data;; esac; done 2>/dev/null", bdf);
	f = popen(cmd, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "dir ", 4)) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(dir, sizeof(dir), "%.250s", line + 4);
		} else if (!found && strstr(line, want)) {
			found = 1;
			snprintf(data, len, "%s/data", dir);
		}
	}
	pclose(f);
	return found;
}

/*
 * Frees every device coredump of the device at PCI address @bdf. The
 * kernel keeps one dump per device and drops a new one while an older
 * one stands (5 minutes, unless freed): a test that needs its reset's
 * dump clears the way first (an earlier reset's, e.g. a hang check's).
 */
static inline void devcoredump_discard(const char *bdf)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd),
		 "for d in /sys/class/devcoredump/devcd*; do "
		 "case $(readlink $d/failing_device) in */%s) "
		 "echo 1 > $d/data;; esac; done 2>/dev/null", bdf);
	if (system(cmd))
		return;	/* nothing to free is no error */
}

static inline int debugfs_write(int fd, const char *name, const char *text)
{
	char path[512];
	ssize_t n;
	int f;

	debugfs_path(fd, name, path, sizeof(path));
	f = open(path, O_WRONLY | O_CLOEXEC);
	if (f < 0)
		return -errno;
	n = write(f, text, strlen(text));
	close(f);
	return n == (ssize_t)strlen(text) ? 0 : (n < 0 ? -errno : -EIO);
}

static inline bool debugfs_has(int fd, const char *name)
{
	char path[512];

	debugfs_path(fd, name, path, sizeof(path));
	return access(path, F_OK) == 0;
}

static inline int debugfs_read(int fd, const char *name, char *buf, size_t len)
{
	char path[512];
	ssize_t n;
	int f;

	debugfs_path(fd, name, path, sizeof(path));
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return -errno;
	n = read(f, buf, len - 1);
	close(f);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return n;
}

static inline int file_read(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int f = open(path, O_RDONLY | O_CLOEXEC);

	if (f < 0)
		return -errno;
	n = read(f, buf, len - 1);
	close(f);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = 0;
	return n;
}

static inline int file_write(const char *path, const char *text)
{
	ssize_t n;
	int f = open(path, O_WRONLY | O_CLOEXEC);

	if (f < 0)
		return -errno;
	n = write(f, text, strlen(text));
	close(f);
	return n == (ssize_t)strlen(text) ? 0 : (n < 0 ? -errno : -EIO);
}

static inline void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* ---- commands of another size (SUBMIT's cmd_stride) ----------------------- */

/* Room for two commands of a future, larger struct. */
#define STRIDE_BIG (sizeof(struct drm_polar_accel_cmd) + 24)

/*
 * Two READ_COUNTERS commands, @stride bytes apart in @buf, writing the
 * first and the second 64 bytes of @out; their tails (beyond today's
 * struct) zero, but for @tail_byte in the second one's last byte.
 */
static inline void stride_cmds(uint8_t *buf, size_t stride, uint32_t out,
			       uint8_t tail_byte)
{
	struct drm_polar_accel_cmd c = { .opcode = POLAR_CIM_OP_READ_COUNTERS };
	int k;

	memset(buf, 0, 2 * stride);
	for (k = 0; k < 2; k++) {
		c.dst = (struct drm_polar_accel_buf){ out, 0, 64ull * k, 64 };
		memcpy(buf + k * stride, &c, sizeof(c));
	}
	if (stride > sizeof(c))
		buf[2 * stride - 1] = tail_byte;
}

/* ---- PRIME and the jobs' fences ----------------------------------------- */

static inline int prime_export(int fd, uint32_t handle)
{
	struct drm_prime_handle p = {
		.handle = handle,
		.flags = DRM_CLOEXEC | DRM_RDWR,
		.fd = -1,
	};

	return ioctl(fd, DRM_IOCTL_PRIME_HANDLE_TO_FD, &p) ? -errno : p.fd;
}

/* A sync_file of the fences a reader (DMA_BUF_SYNC_READ) must wait for. */
static inline int export_sync_file(int dmabuf, uint32_t flags)
{
	struct dma_buf_export_sync_file e = { .flags = flags, .fd = -1 };

	return ioctl(dmabuf, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &e) ? -errno :
	       e.fd;
}

/* poll() revents for @events right now (0: not ready). */
static inline short poll_now(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };

	return poll(&p, 1, 0) == 1 ? p.revents : 0;
}

/* 1 signalled, 0 pending, a negative errno if signalled with an error. */
static inline int sync_file_status(int fd)
{
	struct sync_file_info info = { 0 };

	if (ioctl(fd, SYNC_IOC_FILE_INFO, &info))
		return -1000 - errno;
	return info.status;
}

#endif /* POLAR_SELFTEST_H */
