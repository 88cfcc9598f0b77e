// SPDX-License-Identifier: GPL-2.0
/*
 * A negative control for DMA isolation. The device's STRAY_DMA fault makes
 * it read an address no driver ever gave it (POLAR_CIM_STRAY_DMA_ADDR);
 * the job must fail with -EIO and DMA_ERROR, and the device must keep
 * serving. Under the IOMMU run of make check, run-vm.sh then requires the
 * guest's IOMMU to have logged a fault at exactly that address for every
 * "dma canary: injected" line below, and no other DMA fault at all: that
 * the zero-DMA-fault verdict can see a stray DMA is shown, not assumed.
 * GPL-2.0: includes the kselftest harness.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "polar_selftest.h"

#include "drm/polar_accel.h"
#include "polar_cim_hw.h"

TEST(stray_dma_fails_the_job_and_the_device_recovers)
{
	struct drm_polar_accel_cmd nop = { .opcode = POLAR_CIM_OP_NOP };
	uint32_t cmd_status = 0;
	uint64_t seqno = 0;
	int fd, st;

	fd = accel_open();
	ASSERT_LE(0, fd);
	if (!debugfs_has(fd, "fault"))
		SKIP(close(fd); return, "no debugfs fault file");

	ASSERT_EQ(0, debugfs_write(fd, "fault", "stray_dma 0 0"));
	printf("dma canary: injected at 0x%llx\n",
	       (unsigned long long)POLAR_CIM_STRAY_DMA_ADDR);
	fflush(stdout);
	ASSERT_EQ(0, submit(fd, 0, &nop, 1, &seqno));
	st = wait_job(fd, seqno, &cmd_status);
	EXPECT_EQ(-EIO, st);
	EXPECT_EQ(POLAR_CIM_ST_DMA_ERROR, cmd_status);

	/* The device goes on serving, on that queue and the others. */
	EXPECT_EQ(0, run(fd, 0, &nop, 1));
	EXPECT_EQ(0, run(fd, 1, &nop, 1));
	close(fd);
}

TEST_HARNESS_MAIN
