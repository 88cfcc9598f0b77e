// SPDX-License-Identifier: GPL-2.0
/*
 * kselftests for polar_accel.ko, run inside the VM after insmod.
 * GPL-2.0 because it includes the kernel's kselftest harness.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <xf86drm.h>

#include "kselftest_harness.h"

#include "drm/polar_accel.h"
#include "polar/polar.h"
#include "polar_cim_hw.h"

#define ACCEL_MAJOR 261u

/* BAR0 of the device behind an accel node, mapped through sysfs. */
static volatile uint32_t *map_bar0(const char *node, int *fd_out)
{
	char path[128];
	void *p;
	int fd;

	snprintf(path, sizeof(path), "/sys/class/accel/%s/device/resource0",
		 node);
	fd = open(path, O_RDONLY | O_SYNC);
	if (fd < 0)
		return NULL;
	p = mmap(NULL, POLAR_CIM_BAR0_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		close(fd);
		return NULL;
	}
	*fd_out = fd;
	return p;
}

static int get_param(int fd, uint32_t param, uint64_t *value)
{
	struct drm_polar_accel_get_param args = { .param = param };
	int ret = ioctl(fd, DRM_IOCTL_POLAR_ACCEL_GET_PARAM, &args);

	*value = args.value;
	return ret ? -errno : 0;
}

static int wait_for_node(const char *path, int present)
{
	struct stat st;
	int i;

	for (i = 0; i < 200; i++) {
		if ((stat(path, &st) == 0) == present)
			return 0;
		usleep(10000);
	}
	return -1;
}

TEST(device_node_exists)
{
	char path[64];
	struct stat st;

	ASSERT_EQ(0, polar_find_device(NULL, 0, path, sizeof(path)))
		TH_LOG("%s", polar_errmsg());
	ASSERT_EQ(0, stat(path, &st));
	EXPECT_TRUE(S_ISCHR(st.st_mode));
	EXPECT_EQ(ACCEL_MAJOR, major(st.st_rdev));
	EXPECT_EQ(0, stat("/dev/accel/accel0", &st));
}

FIXTURE(polar) {
	struct polar_device *dev;
	int fd;
	char node[32];
};

FIXTURE_SETUP(polar)
{
	char path[64];

	ASSERT_EQ(0, polar_find_device(NULL, 0, path, sizeof(path)))
		TH_LOG("%s", polar_errmsg());
	snprintf(self->node, sizeof(self->node), "%s", strrchr(path, '/') + 1);
	ASSERT_EQ(0, polar_open(path, &self->dev))
		TH_LOG("%s", polar_errmsg());
	self->fd = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->fd);
}

FIXTURE_TEARDOWN(polar)
{
	polar_close(self->dev);
	close(self->fd);
}

TEST_F(polar, drm_version_names_driver)
{
	drmVersionPtr ver = drmGetVersion(self->fd);

	ASSERT_NE(NULL, ver);
	EXPECT_STREQ(POLAR_DRIVER_NAME, ver->name);
	drmFreeVersion(ver);
}

TEST_F(polar, get_param_matches_registers)
{
	static const struct {
		uint32_t param, reg;
	} map[] = {
		{ DRM_POLAR_ACCEL_PARAM_DEVICE_ID, POLAR_CIM_REG_ID },
		{ DRM_POLAR_ACCEL_PARAM_DEVICE_VERSION, POLAR_CIM_REG_VERSION },
		{ DRM_POLAR_ACCEL_PARAM_TILE_ROWS, POLAR_CIM_REG_ROWS },
		{ DRM_POLAR_ACCEL_PARAM_TILE_COLS, POLAR_CIM_REG_COLS },
		{ DRM_POLAR_ACCEL_PARAM_NUM_TILES, POLAR_CIM_REG_TILES },
		{ DRM_POLAR_ACCEL_PARAM_ADC_BITS, POLAR_CIM_REG_ADC_BITS },
	};
	volatile uint32_t *bar;
	uint64_t value;
	size_t i;
	int bar_fd;

	bar = map_bar0(self->node, &bar_fd);
	ASSERT_NE(NULL, bar) TH_LOG("cannot map BAR0: %s", strerror(errno));
	EXPECT_EQ(POLAR_CIM_ID_MAGIC, bar[POLAR_CIM_REG_ID / 4]);
	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		ASSERT_EQ(0, get_param(self->fd, map[i].param, &value));
		EXPECT_EQ(bar[map[i].reg / 4], value)
			TH_LOG("param %u", map[i].param);
		/* The library goes through the same ioctl. */
		ASSERT_EQ(0, polar_get_param(self->dev, map[i].param, &value));
		EXPECT_EQ(bar[map[i].reg / 4], value);
	}
	/* The driver uses the device's ring pairs, up to the ones it has. */
	ASSERT_EQ(0, get_param(self->fd, DRM_POLAR_ACCEL_PARAM_NUM_QUEUES,
			       &value));
	EXPECT_EQ(bar[POLAR_CIM_REG_NUM_QUEUES / 4] < POLAR_CIM_MAX_QUEUES ?
		  bar[POLAR_CIM_REG_NUM_QUEUES / 4] : POLAR_CIM_MAX_QUEUES,
		  value);
	munmap((void *)bar, POLAR_CIM_BAR0_SIZE);
	close(bar_fd);
}

TEST_F(polar, get_param_driver_values)
{
	uint64_t value;

	ASSERT_EQ(0, get_param(self->fd, DRM_POLAR_ACCEL_PARAM_UAPI_VERSION,
			       &value));
	EXPECT_EQ((uint64_t)DRM_POLAR_ACCEL_UAPI_VERSION, value);
	ASSERT_EQ(0, get_param(self->fd, DRM_POLAR_ACCEL_PARAM_PCI_ID, &value));
	EXPECT_EQ((uint64_t)POLAR_CIM_PCI_VENDOR_ID << 16 |
		  POLAR_CIM_PCI_DEVICE_ID, value);
}

TEST_F(polar, unknown_param_is_einval)
{
	uint64_t value;

	EXPECT_EQ(-EINVAL, get_param(self->fd, 0x7fffffff, &value));
	EXPECT_EQ(-EINVAL, get_param(self->fd, 1000, &value));
	EXPECT_EQ(-EINVAL, polar_get_param(self->dev, 1000, &value));
	EXPECT_NE(NULL, strstr(polar_errmsg(), "GET_PARAM 1000"));
}

TEST_F(polar, nonzero_padding_is_einval)
{
	struct drm_polar_accel_get_param args = {
		.param = DRM_POLAR_ACCEL_PARAM_DEVICE_ID,
		.pad = 1,
	};

	EXPECT_EQ(-1, ioctl(self->fd, DRM_IOCTL_POLAR_ACCEL_GET_PARAM, &args));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(polar, bad_pointer_is_efault)
{
	void *unmapped = mmap(NULL, 4096, PROT_NONE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_NE(MAP_FAILED, unmapped);
	EXPECT_EQ(-1, ioctl(self->fd, DRM_IOCTL_POLAR_ACCEL_GET_PARAM,
			    unmapped));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->fd, DRM_IOCTL_POLAR_ACCEL_GET_PARAM,
			    (void *)16));
	EXPECT_EQ(EFAULT, errno);
	munmap(unmapped, 4096);
}

TEST(rmmod_and_insmod)
{
	const char *ko = getenv("POLAR_ACCEL_KO");
	char path[64], cmd[512];
	uint64_t value;
	int fd;

	ASSERT_NE(NULL, ko) TH_LOG("POLAR_ACCEL_KO is not set");
	ASSERT_EQ(0, polar_find_device(NULL, 0, path, sizeof(path)));
	ASSERT_EQ(0, system("rmmod polar_accel"));
	EXPECT_EQ(0, wait_for_node(path, 0));
	EXPECT_EQ(-ENOENT, polar_find_device(NULL, 0, path, sizeof(path)));

	snprintf(cmd, sizeof(cmd), "insmod %s", ko);
	ASSERT_EQ(0, system(cmd));
	ASSERT_EQ(0, polar_find_device(NULL, 0, path, sizeof(path)));
	ASSERT_EQ(0, wait_for_node(path, 1));
	fd = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd);
	EXPECT_EQ(0, get_param(fd, DRM_POLAR_ACCEL_PARAM_DEVICE_ID, &value));
	EXPECT_EQ(POLAR_CIM_ID_MAGIC, value);
	close(fd);
}

static int dmesg_has(const char *text)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "dmesg | grep -q '%s'", text);
	return system(cmd) == 0;
}

static int file_copy(const char *from, const char *to, long flip_at)
{
	char buf[65536];
	ssize_t n;
	int in, out;

	in = open(from, O_RDONLY);
	if (in < 0)
		return -1;
	n = read(in, buf, sizeof(buf));
	close(in);
	if (n <= 0)
		return -1;
	if (flip_at >= 0 && flip_at < n)
		buf[flip_at] ^= 0x40;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (out < 0)
		return -1;
	if (write(out, buf, n) != n) {
		close(out);
		return -1;
	}
	return close(out);
}

/*
 * A bad or missing firmware image fails the probe with a message that
 * says why, leaves no device node, and a good image works again after.
 * Three loads of the driver over every chip: on the debug kernel at load
 * average 22 a refused probe took 6 s a chip, past the harness's default
 * 30 s, and the killed test left the driver unloaded for the rest of the
 * run. The alarm only ends a hung run (a fixture of its own: a plain TEST
 * has no timeout of its own).
 */
FIXTURE(probe) {
	int unused;
};

FIXTURE_SETUP(probe)
{
	self->unused = 0;
}

FIXTURE_TEARDOWN(probe)
{
}

TEST_F_TIMEOUT(probe, bad_or_missing_firmware_fails_probe, 180)
{
	const char *fw = "/lib/firmware/polar_cim.fw";
	const char *saved = "/tmp/polar_cim.fw.good";
	const char *ko = getenv("POLAR_ACCEL_KO");
	char path[64], cmd[512];

	ASSERT_NE(NULL, ko);
	snprintf(cmd, sizeof(cmd), "insmod %s", ko);
	ASSERT_EQ(0, file_copy(fw, saved, -1));
	ASSERT_EQ(0, system("rmmod polar_accel"));

	/* One payload byte flipped: the device's CRC check rejects it. */
	ASSERT_EQ(0, file_copy(saved, fw, 100));
	ASSERT_EQ(0, system("dmesg -c > /dev/null"));
	system(cmd);
	EXPECT_EQ(-ENOENT, polar_find_device(NULL, 0, path, sizeof(path)));
	EXPECT_TRUE(dmesg_has("polar_cim.fw rejected: CRC mismatch"));
	system("rmmod polar_accel");

	/* No image at all. */
	ASSERT_EQ(0, unlink(fw));
	system(cmd);
	EXPECT_EQ(-ENOENT, polar_find_device(NULL, 0, path, sizeof(path)));
	EXPECT_TRUE(dmesg_has("cannot load firmware polar_cim.fw"));
	system("rmmod polar_accel");

	/* The good image again. */
	ASSERT_EQ(0, file_copy(saved, fw, -1));
	ASSERT_EQ(0, system(cmd));
	ASSERT_EQ(0, polar_find_device(NULL, 0, path, sizeof(path)));
	EXPECT_EQ(0, wait_for_node(path, 1));
	EXPECT_TRUE(dmesg_has("firmware polar_cim.fw 1.0 booted"));
}

TEST_HARNESS_MAIN
