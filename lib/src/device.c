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

int polar_open(const char *path, struct polar_device **out)
{
	char found[256];
	struct polar_device *dev;
	drmVersionPtr ver;
	int ret;

	polar_clear_error();
	if (!out)
		return polar_fail(-EINVAL, "polar_open: dev pointer is NULL");
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
	dev->fd = open(path, O_RDWR | O_CLOEXEC);
	if (dev->fd < 0) {
		ret = -errno;
		free(dev);
		return polar_fail(ret, "%s: cannot open: %s", path,
				  strerror(-ret));
	}
	ver = drmGetVersion(dev->fd);
	if (!ver || strcmp(ver->name, POLAR_DRIVER_NAME) != 0) {
		polar_fail(-ENODEV, "%s: driver is %s, not %s", path,
			   ver ? ver->name : "unknown", POLAR_DRIVER_NAME);
		drmFreeVersion(ver);
		close(dev->fd);
		free(dev);
		return -ENODEV;
	}
	drmFreeVersion(ver);
	*out = dev;
	return 0;
}

void polar_close(struct polar_device *dev)
{
	if (!dev)
		return;
	close(dev->fd);
	free(dev);
}

const char *polar_device_path(const struct polar_device *dev)
{
	return dev->path;
}

int polar_get_param(struct polar_device *dev, uint32_t param, uint64_t *value)
{
	struct drm_polar_accel_get_param args = { .param = param };

	polar_clear_error();
	if (!dev || !value)
		return polar_fail(-EINVAL, "polar_get_param: NULL argument");
	if (drmIoctl(dev->fd, DRM_IOCTL_POLAR_ACCEL_GET_PARAM, &args))
		return polar_fail(-errno, "%s: GET_PARAM %u: %s", dev->path,
				  param, strerror(errno));
	*value = args.value;
	return 0;
}
