// SPDX-License-Identifier: MIT
/*
 * Device discovery against fake sysfs trees: the library must pick the
 * accel nodes bound to polar_accel, in node-number order, and say clearly
 * when there is none.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "polar/polar.h"
#include "unit.h"

static char root[256];

static void make_node(const char *node, const char *driver)
{
	char dir[512], link[600], target[600];

	snprintf(dir, sizeof(dir), "%s/class/accel/%s/device", root, node);
	if (mkdir_p(dir))
		abort();
	snprintf(target, sizeof(target), "%s/bus/pci/drivers/%s", root, driver);
	if (mkdir_p(target))
		abort();
	snprintf(link, sizeof(link), "%s/driver", dir);
	if (symlink(target, link))
		abort();
}

static void test_finds_polar_nodes_in_order(void)
{
	char path[64];

	make_node("accel0", "ivpu");
	make_node("accel3", "polar_accel");
	make_node("accel12", "polar_accel");
	make_node("accel2", "polar_accel");

	CHECK(polar_find_device(root, 0, path, sizeof(path)) == 0);
	CHECK_STR(path, "/dev/accel/accel2");
	CHECK(polar_find_device(root, 1, path, sizeof(path)) == 0);
	CHECK_STR(path, "/dev/accel/accel3");
	CHECK(polar_find_device(root, 2, path, sizeof(path)) == 0);
	CHECK_STR(path, "/dev/accel/accel12");
	CHECK(polar_find_device(root, 3, path, sizeof(path)) == -ENOENT);
	CHECK(strstr(polar_errmsg(), "no accel node #3") != NULL);
}

static void test_small_buffer(void)
{
	char path[8];

	CHECK(polar_find_device(root, 0, path, sizeof(path)) == -ENAMETOOLONG);
}

static void test_no_sysfs(void)
{
	char path[64];

	CHECK(polar_find_device("/nonexistent-sysfs", 0, path,
				sizeof(path)) == -ENOENT);
	CHECK(strstr(polar_errmsg(), "/nonexistent-sysfs/class/accel") != NULL);
}

static void test_open_rejects_non_polar(void)
{
	struct polar_device *dev = (struct polar_device *)1;

	/* /dev/null is no DRM device: drmGetVersion fails. */
	CHECK(polar_open("/dev/null", &dev) == -ENODEV);
	CHECK(dev == NULL);
	CHECK(strstr(polar_errmsg(), "/dev/null") != NULL);
	CHECK(polar_open("/nonexistent/accel9", &dev) == -ENOENT);
	CHECK(strstr(polar_errmsg(), "/nonexistent/accel9") != NULL);
	CHECK(polar_open(NULL, NULL) == -EINVAL);
}

int main(void)
{
	char cmd[300];

	snprintf(root, sizeof(root), "/tmp/polar-sysfs-XXXXXX");
	if (!mkdtemp(root))
		return 1;
	RUN(test_finds_polar_nodes_in_order);
	RUN(test_small_buffer);
	RUN(test_no_sysfs);
	RUN(test_open_rejects_non_polar);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", root);
	return unit_summary();
}
