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
 * Reports the DMA domain the device sits in: "DMA" (or "DMA-FQ") behind a
 * translating IOMMU, no group without one. run-checks.sh requires "DMA" in
 * the IOMMU run, so that run cannot pass without the IOMMU translating.
 */
TEST(iommu_domain_reported)
{
	char type[64] = "none";
	int fd = af_open(), f;
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
	TH_LOG("iommu_group type=%s", type);
}

TEST_HARNESS_MAIN
