// SPDX-License-Identifier: GPL-2.0
/*
 * ABI fuzz kselftest of polar_accel.ko: runs tests/fuzz/abi_fuzz.c (seeded,
 * 3 processes, 20000 operations, at most 25 s, 200 s on the debug kernel)
 * and requires that no process crashed, that the kernel log gained no
 * oops, BUG, WARNING, KASAN/UBSAN report or hung task, and that a normal
 * job still completes.
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
/*
 * On a kernel with the checkers (KASAN, lockdep, kmemleak: make
 * check-debug) every call costs about ten times as much, and more under
 * load: 9172 operations in 25 s there, 10791 in 80.6 s at load average 23,
 * against 20000 in about 8 s on the stock kernel (RELIABILITY.md). The
 * fuzzer gets more time there instead of a lower floor, so that it still
 * covers at least half its operations; it stops at 20000 all the same.
 */
#define FUZZ_SECS_CHECKED 200

/* The debug kernel: lockdep's /proc file, or kmemleak's debugfs one. */
static bool kernel_has_checkers(void)
{
	return !access("/proc/lockdep", F_OK) ||
	       !access("/sys/kernel/debug/kmemleak", F_OK);
}

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

/* The alarm only ends a hung run: 25 s of fuzzing on the stock kernel. */
TEST_F_TIMEOUT(fuzz, abi_three_processes, 300)
{
	unsigned int secs = kernel_has_checkers() ? FUZZ_SECS_CHECKED : FUZZ_SECS;
	struct af_result res;
	int ret;

	ret = abi_fuzz_run(FUZZ_SEED, FUZZ_PROCS, FUZZ_OPS, secs, &res);
	TH_LOG("fuzz ops=%llu seed=%llu in %.1f s (at most %u) %s",
	       (unsigned long long)res.ops, (unsigned long long)res.seed,
	       res.secs, secs, res.errors);
	EXPECT_EQ(0, res.crashed);
	EXPECT_EQ(0, res.klog_new) TH_LOG("the kernel log shows new warnings");
	EXPECT_EQ(0, res.final_job) TH_LOG("a normal job after the fuzzing");
	EXPECT_LT(FUZZ_OPS / 2, res.ops) TH_LOG("too few operations in %u s",
						secs);
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
