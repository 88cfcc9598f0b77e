// SPDX-License-Identifier: MIT
/*
 * Device discovery and open. libdrm's drmGetDevices2() scans only /dev/dri,
 * so accel nodes are found through /sys/class/accel; libdrm still does the
 * DRM core calls (drmGetVersion, drmIoctl).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xf86drm.h>

#include "drm/polar_accel.h"
#include "polar_internal.h"

/* Is <class_dir>/<node>/device/driver a link to a driver named polar_accel? */
static int node_is_polar(const char *class_dir, const char *node)
{
	char link[PATH_MAX], target[PATH_MAX];
	const char *base;
	ssize_t n;

	if (snprintf(link, sizeof(link), "%s/%s/device/driver", class_dir,
		     node) >= (int)sizeof(link))
		return 0;
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return 0;
	target[n] = '\0';
	base = strrchr(target, '/');
	base = base ? base + 1 : target;
	return strcmp(base, POLAR_DRIVER_NAME) == 0;
}

static int accel_node_number(const char *name)
{
	char *end;
	long n;

	if (strncmp(name, "accel", 5) != 0 || name[5] < '0' || name[5] > '9')
		return -1;
	n = strtol(name + 5, &end, 10);
	if (*end || n > INT_MAX)
		return -1;
	return (int)n;
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

int polar_find_device(const char *sysfs_root, unsigned int index, char *path,
		      size_t len)
{
	char class_dir[PATH_MAX], name[32];
	int nodes[256], count = 0, found = -1;
	struct dirent *de;
	DIR *dir;

	polar_clear_error();
	POLAR_NONNULL(__func__, path);
	if (!len)
		return polar_fail(-EINVAL, "%s: len is 0", __func__);
	snprintf(class_dir, sizeof(class_dir), "%s/class/accel",
		 sysfs_root ? sysfs_root : "/sys");
	dir = opendir(class_dir);
	if (!dir)
		return polar_fail(-ENOENT, "%s: cannot list accel nodes: %s",
				  class_dir, strerror(errno));
	while ((de = readdir(dir)) && count < 256) {
		int n = accel_node_number(de->d_name);

		if (n >= 0 && node_is_polar(class_dir, de->d_name))
			nodes[count++] = n;
	}
	closedir(dir);
	/* readdir order is arbitrary; index counts in node-number order. */
	qsort(nodes, count, sizeof(nodes[0]), cmp_int);
	if (index < (unsigned int)count)
		found = nodes[index];
	if (found < 0)
		return polar_fail(-ENOENT,
				  "%s: no accel node #%u bound to %s (found %d)",
				  class_dir, index, POLAR_DRIVER_NAME, count);
	snprintf(name, sizeof(name), "accel%d", found);
	if ((size_t)snprintf(path, len, "/dev/accel/%s", name) >= len)
		return polar_fail(-ENAMETOOLONG,
				  "path buffer of %zu bytes too small", len);
	return 0;
}

/*
 * Reads the firmware image the chip runs (POLAR_FIRMWARE, else the one
 * the driver loads). The software backend needs it; for a device it only
 * tells the quantizer the NF4 codebook, so a missing file is no error
 * there (the default codebook is then assumed).
 */
int polar_load_firmware(struct polar_device *dev, int required)
{
	const char *path = getenv("POLAR_FIRMWARE");
	static _Thread_local uint8_t image[POLAR_CIM_FW_MAX_SIZE + 1];
	struct cim_fw_diag diag;
	uint32_t status;
	size_t n;
	FILE *f;

	if (!path || !*path)
		path = "/lib/firmware/polar_cim.fw";
	f = fopen(path, "rb");
	if (!f)
		return required ? polar_fail(-ENOENT, "%s: cannot open firmware "
					     "%s (set POLAR_FIRMWARE to "
					     "polar_cim.fw)", dev->path, path) : 0;
	n = fread(image, 1, sizeof(image), f);
	fclose(f);
	status = cim_firmware_parse(image, n, &dev->fw, &diag);
	if (status != POLAR_CIM_FW_BOOTED && required)
		return polar_fail(-EINVAL, "%s: firmware %s rejected (%s): "
				  "offset %u: %s", dev->path, path,
				  cim_firmware_status_name(status), diag.offset,
				  diag.msg);
	return 0;
}

int polar_open(const char *path, struct polar_device **out)
{
	char found[256];
	struct polar_device *dev;
	int ret;

	polar_clear_error();
	if (!out)
		return polar_null_arg(__func__, "dev");
	*out = NULL;
	if (!path) {
		ret = polar_find_device(NULL, 0, found, sizeof(found));
		if (ret)
			return ret;
		path = found;
	}
	if (strlen(path) >= sizeof(dev->path))
		return polar_fail(-ENAMETOOLONG, "%s: path too long", path);

	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return polar_fail(-ENOMEM, "out of memory");
	strcpy(dev->path, path);
	dev->fd = -1;
	if (!strcmp(path, "sim") || !strncmp(path, "sim:", 4))
		ret = polar_sim_open(dev, path[3] ? path + 4 : "");
	else
		ret = polar_drm_open(dev);
	if (ret) {
		free(dev);
		return ret;
	}
	*out = dev;
	return 0;
}

void polar_close(struct polar_device *dev)
{
	if (!dev)
		return;
	dev->ops->close(dev);
	free(dev->tile_used);
	free(dev);
}

const char *polar_device_path(const struct polar_device *dev)
{
	if (!dev) {
		polar_null_arg(__func__, "dev");
		return NULL;
	}
	return dev->path;
}

int polar_get_caps(struct polar_device *dev, struct polar_caps *caps)
{
	polar_clear_error();
	POLAR_NONNULL(__func__, dev);
	POLAR_NONNULL(__func__, caps);
	*caps = dev->caps;
	return 0;
}

int polar_get_design(struct polar_device *dev, struct polar_design *design)
{
	polar_clear_error();
	POLAR_NONNULL(__func__, dev);
	POLAR_NONNULL(__func__, design);
	*design = dev->design;
	return 0;
}

int polar_get_param(struct polar_device *dev, uint32_t param, uint64_t *value)
{
	struct drm_polar_accel_get_param args = { .param = param };

	polar_clear_error();
	POLAR_NONNULL(__func__, dev);
	POLAR_NONNULL(__func__, value);
	if (dev->fd < 0)
		return polar_fail(-ENOTSUP, "%s: GET_PARAM needs a device node "
				  "(use polar_get_caps)", dev->path);
	if (drmIoctl(dev->fd, DRM_IOCTL_POLAR_ACCEL_GET_PARAM, &args))
		return polar_fail(-errno, "%s: GET_PARAM %u: %s", dev->path,
				  param, strerror(errno));
	*value = args.value;
	return 0;
}

/* ---- buffers and jobs: dispatched to the backend ------------------------ */

int polar_buffer_create(struct polar_device *dev, size_t size,
			struct polar_buffer **out)
{
	struct polar_buffer *buf;
	int ret;

	polar_clear_error();
	POLAR_NONNULL(__func__, dev);
	if (!out)
		return polar_null_arg(__func__, "buf");
	if (!size || size > DRM_POLAR_ACCEL_MAX_BO_SIZE)
		return polar_fail(-EINVAL, "polar_buffer_create: size %zu out "
				  "of range 1..%llu", size,
				  (unsigned long long)DRM_POLAR_ACCEL_MAX_BO_SIZE);
	buf = calloc(1, sizeof(*buf));
	if (!buf)
		return polar_fail(-ENOMEM, "out of memory");
	buf->dev = dev;
	buf->size = size;
	ret = dev->ops->buffer_create(dev, buf);
	if (ret) {
		free(buf);
		return ret;
	}
	*out = buf;
	return 0;
}

void *polar_buffer_map(const struct polar_buffer *buf)
{
	if (!buf) {
		polar_null_arg(__func__, "buf");
		return NULL;
	}
	return buf->map;
}

size_t polar_buffer_size(const struct polar_buffer *buf)
{
	if (!buf) {
		polar_null_arg(__func__, "buf");
		return 0;
	}
	return buf->size;
}

void polar_buffer_free(struct polar_buffer *buf)
{
	if (!buf)
		return;
	buf->dev->ops->buffer_free(buf->dev, buf);
	free(buf);
}

int polar_set_submit_path(struct polar_device *dev, enum polar_submit_path p)
{
	polar_clear_error();
	POLAR_NONNULL(__func__, dev);
	/* Checked first: the software backend would take any value. */
	if (p != POLAR_PATH_AUTO && p != POLAR_PATH_URING &&
	    p != POLAR_PATH_IOCTL)
		return polar_fail(-EINVAL, "%s: p is %d, not a submit path",
				  __func__, (int)p);
	if (p == POLAR_PATH_AUTO)
		p = dev->has_ring ? POLAR_PATH_URING : POLAR_PATH_IOCTL;
	if (dev->caps.sim) {
		dev->submit_path = p;
		return 0;
	}
	if (p == POLAR_PATH_URING && !dev->has_ring)
		return polar_fail(-ENOTSUP, "%s: no io_uring submission",
				  dev->path);
	if (dev->inflight)
		return polar_fail(-EBUSY, "%s: %u jobs in flight; reap them "
				  "before switching paths", dev->path,
				  dev->inflight);
	dev->submit_path = p;
	return 0;
}

enum polar_submit_path polar_submit_path(const struct polar_device *dev)
{
	if (!dev) {
		polar_null_arg(__func__, "dev");
		return POLAR_PATH_AUTO;
	}
	return dev->submit_path;
}

int polar_submit(struct polar_device *dev, uint32_t queue,
		 const struct polar_cmd *cmds, uint32_t n, uint64_t user_data)
{
	uint32_t i;
	int ret;

	polar_clear_error();
	POLAR_NONNULL(__func__, dev);
	POLAR_NONNULL(__func__, cmds);
	if (queue >= dev->caps.num_queues)
		return polar_fail(-EINVAL, "%s: queue %u, the device has %u",
				  dev->path, queue, dev->caps.num_queues);
	if (!n || n > dev->caps.max_cmds)
		return polar_fail(-EINVAL, "%s: n is %u commands in a job, "
				  "allowed 1..%u", dev->path, n,
				  dev->caps.max_cmds);
	for (i = 0; i < n; i++) {
		const struct polar_buf_ref *r[2] = { &cmds[i].src, &cmds[i].dst };
		int b;

		for (b = 0; b < 2; b++) {
			if (r[b]->buf && r[b]->buf->dev != dev)
				return polar_fail(-EINVAL, "command %u: %s buffer "
						  "belongs to another device", i,
						  b ? "dst" : "src");
			if (r[b]->buf && (r[b]->offset > r[b]->buf->size ||
					  r[b]->size > r[b]->buf->size - r[b]->offset))
				return polar_fail(-ERANGE, "command %u: %s range "
						  "%llu+%llu outside its %zu-byte "
						  "buffer", i, b ? "dst" : "src",
						  (unsigned long long)r[b]->offset,
						  (unsigned long long)r[b]->size,
						  r[b]->buf->size);
		}
	}
	if (dev->inflight >= POLAR_MAX_INFLIGHT)
		return polar_fail(-EBUSY, "%s: %u jobs in flight, the most a "
				  "handle keeps; reap some first", dev->path,
				  dev->inflight);
	ret = dev->ops->submit(dev, queue, cmds, n, user_data);
	if (!ret)
		dev->inflight++;
	return ret;
}

int polar_reap(struct polar_device *dev, struct polar_completion *out,
	       uint32_t max, uint32_t min_wait)
{
	int ret;

	polar_clear_error();
	POLAR_NONNULL(__func__, dev);
	if (!out && max)
		return polar_null_arg(__func__, "out");
	if (min_wait > max || min_wait > dev->inflight)
		return polar_fail(-EINVAL, "polar_reap: min_wait %u, above max "
				  "%u or the %u jobs in flight", min_wait, max,
				  dev->inflight);
	ret = dev->ops->reap(dev, out, max, min_wait);
	if (ret > 0)
		dev->inflight -= ret;
	return ret;
}

int polar_flush(struct polar_device *dev)
{
	polar_clear_error();
	POLAR_NONNULL(__func__, dev);
	return dev->ops->flush ? dev->ops->flush(dev) : 0;
}

uint32_t polar_inflight(const struct polar_device *dev)
{
	if (!dev) {
		polar_null_arg(__func__, "dev");
		return 0;
	}
	return dev->inflight;
}

uint32_t polar_max_inflight(const struct polar_device *dev)
{
	if (!dev) {
		polar_null_arg(__func__, "dev");
		return 0;
	}
	return POLAR_MAX_INFLIGHT;
}

/* ---- FIFOs ------------------------------------------------------------------ */

int polar_fifo_push(struct polar_fifo *f, const struct polar_fifo_entry *e)
{
	if (f->count == f->cap) {
		uint32_t cap = f->cap ? 2 * f->cap : 64, i;
		struct polar_fifo_entry *n = malloc(cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		for (i = 0; i < f->count; i++)
			n[i] = f->e[(f->head + i) % f->cap];
		free(f->e);
		f->e = n;
		f->cap = cap;
		f->head = 0;
	}
	f->e[(f->head + f->count) % f->cap] = *e;
	f->count++;
	return 0;
}

struct polar_fifo_entry *polar_fifo_peek(struct polar_fifo *f)
{
	return f->count ? &f->e[f->head] : NULL;
}

void polar_fifo_pop(struct polar_fifo *f)
{
	f->head = (f->head + 1) % f->cap;
	f->count--;
}

void polar_fifo_free(struct polar_fifo *f)
{
	free(f->e);
	f->e = NULL;
	f->cap = f->count = f->head = 0;
}
