// SPDX-License-Identifier: GPL-2.0
/*
 * ABI fuzz kselftest of polar_accel.ko: runs tests/fuzz/abi_fuzz.c (seeded,
 * 3 processes, 20000 operations, at most 25 s) and requires that no
 * process crashed, that the kernel log gained no oops, BUG, WARNING,
 * KASAN/UBSAN report or hung task, and that a normal job still completes.
 * The seed is fixed so that a failure is reproducible (abi_fuzz -s SEED,
 * tests/fuzz/README.md). GPL-2.0: includes the kselftest harness.
 */
#define ABI_FUZZ_NO_MAIN
#include "../fuzz/abi_fuzz.c"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "kselftest_harness.h"

#define FUZZ_SEED 1
#define FUZZ_OPS 20000
#define FUZZ_PROCS 3
#define FUZZ_SECS 25

FIXTURE(fuzz) {
	int unused;
};

FIXTURE_SETUP(fuzz)
{
	self->unused = 0;
}

FIXTURE_TEARDOWN(fuzz)
{
}

TEST_F_TIMEOUT(fuzz, abi_three_processes, 120)
{
	struct af_result res;
	int ret;

	ret = abi_fuzz_run(FUZZ_SEED, FUZZ_PROCS, FUZZ_OPS, FUZZ_SECS, &res);
	TH_LOG("fuzz ops=%llu seed=%llu %s", (unsigned long long)res.ops,
	       (unsigned long long)res.seed, res.errors);
	EXPECT_EQ(0, res.crashed);
	EXPECT_EQ(0, res.klog_new) TH_LOG("the kernel log shows new warnings");
	EXPECT_EQ(0, res.final_job) TH_LOG("a normal job after the fuzzing");
	EXPECT_LT(FUZZ_OPS / 2, res.ops) TH_LOG("too few operations in %u s",
						FUZZ_SECS);
	EXPECT_EQ(0, ret);
}

/*
 * The DMA domain the device sits in must be the one the kernel command line
 * asks for: "DMA" (strict translation, no flush queue) when run-vm.sh
 * started the guest with intel_iommu=on iommu.strict=1, no IOMMU group
 * without an IOMMU. So the IOMMU run cannot pass with the IOMMU off or in
 * passthrough, and the plain run notices an IOMMU it did not ask for.
 */
TEST(iommu_domain_reported)
{
	char type[64] = "none", cmdline[1024] = "";
	int fd = af_open(), f;
	const char *want;
	struct stat st;
	char path[128];
	ssize_t n;

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, fstat(fd, &st));
	snprintf(path, sizeof(path),
		 "/sys/class/accel/accel%u/device/iommu_group/type",
		 minor(st.st_rdev));
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f >= 0) {
		n = read(f, type, sizeof(type) - 1);
		type[n > 0 ? n : 0] = 0;
		if (n > 0 && type[n - 1] == '\n')
			type[n - 1] = 0;
		close(f);
	}
	close(fd);
	f = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, f);
	n = read(f, cmdline, sizeof(cmdline) - 1);
	close(f);
	ASSERT_LT(0, n);
	cmdline[n] = 0;
	want = strstr(cmdline, "intel_iommu=on") &&
	       strstr(cmdline, "iommu.strict=1") ? "DMA" : "none";
	TH_LOG("iommu_group type=%s, expected %s", type, want);
	ASSERT_STREQ(want, type);
}

TEST_HARNESS_MAIN
