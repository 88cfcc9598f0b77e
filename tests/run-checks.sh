#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs every host unit test and the VM kselftests, then the driver lint,
# and ends with one plain line "N passed, N failed" over all of them.
set -uo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
cd "$TOP"

passed=0
failed=0

ok=0
notok=0
count_tap() { # log file: adds its top-level TAP results to the totals
	ok=$(grep -E -c '^ok [0-9]+ ' "$1")
	notok=$(grep -E -c '^not ok [0-9]+ ' "$1")
	passed=$((passed + ok))
	failed=$((failed + notok))
}

echo "== host unit tests"
for t in "$BUILD"/tests/unit/test_*; do
	[ -x "$t" ] || continue
	name=$(basename "$t")
	log=$BUILD/tests/unit/$name.log
	"$t" >"$log" 2>&1
	rc=$?
	cat "$log"
	# Each host test ends with its own "N passed, N failed" line.
	summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
	if [ -n "$summary" ]; then
		ok=${summary%% passed*}
		notok=${summary#*passed, }
		notok=${notok%% failed*}
		passed=$((passed + ok))
		failed=$((failed + notok))
	else
		notok=0
	fi
	if [ "$rc" != 0 ] && [ "$notok" = 0 ]; then
		echo "not ok - $name exited with status $rc"
		failed=$((failed + 1))
	fi
done

echo "== host fuzzers (libFuzzer, bounded; tests/fuzz/README.md)"
mkdir -p "$BUILD/fuzz"
make --no-print-directory fuzz-short >"$BUILD/fuzz/fuzz-short.log" 2>&1
fuzz_rc=$?
grep -E -v '^(clang|cc) ' "$BUILD/fuzz/fuzz-short.log"
count_tap_plain() { # log, prefix: counts "ok - prefix" / "not ok - prefix"
	ok=$(grep -E -c "^ok - $2" "$1")
	notok=$(grep -E -c "^not ok - $2" "$1")
	passed=$((passed + ok))
	failed=$((failed + notok))
}
count_tap_plain "$BUILD/fuzz/fuzz-short.log" fuzz_
if [ "$fuzz_rc" != 0 ] && [ "$notok" = 0 ]; then
	echo "not ok - make fuzz-short exited with status $fuzz_rc"
	failed=$((failed + 1))
fi

echo "== VM kselftests"
# A chip with static variability, so that the device-versus-software-engine
# comparisons cover conductance spread, stuck cells and ADC offset and gain.
export POLAR_CIM_PROPS=${POLAR_CIM_PROPS-sigma-static=6554,stuck-rate=2000,adc-offset-sigma=16384,adc-gain-sigma=1311,seed=7}
# A second chip of another seed, for the tests that spread work over two,
# with whole-cell reconstruction: device and software engine are compared
# in both modes.
export POLAR_VM_DEVICES=${POLAR_VM_DEVICES-polar-cim,sigma-static=6554,stuck-rate=2000,seed=8,recon=cells}
tests/vm/run-vm.sh check "$BUILD/initramfs-check.cpio.gz"
vm_rc=$?
count_tap "$BUILD/vm-check.log"
if [ "$vm_rc" != 0 ] && [ "$notok" = 0 ]; then
	# The VM failed without a failing test: a hang, an oops or a lost run.
	echo "not ok - VM run failed (see $BUILD/vm-check.log)"
	failed=$((failed + 1))
fi
if [ "$ok" = 0 ]; then
	echo "not ok - the VM reported no test results"
	failed=$((failed + 1))
fi

echo "== VM kselftests under the IOMMU (DMA isolation)"
# QEMU's intel-iommu with strict DMA remapping in the guest: the job, io_uring,
# library, stress and fuzz tests again; any DMAR fault, failed device DMA or
# device error fails the run (run-vm.sh). The fault-injection tests are left
# out: their injected DMA errors are meant to be reported. The DMA canary is
# in: its one stray DMA must be caught by the IOMMU (run-vm.sh).
POLAR_VM_IOMMU=1 \
POLAR_VM_APPEND=polar_tests=polar_accel_dma_canary_test,polar_accel_fuzz_test,polar_accel_job_test,polar_accel_stress_test,polar_accel_uring_test,polar_lib_test \
	tests/vm/run-vm.sh check-iommu "$BUILD/initramfs-check.cpio.gz" \
	>"$BUILD/vm-check-iommu.out" 2>&1
vm_rc=$?
grep -E '^(ok|not ok) |^vm: (iommu|running|status|FAIL)|^dma canary|DMAR: \[DMA|polar-cim: DMA|device error|iommu_group type|fuzz ops=' \
	"$BUILD/vm-check-iommu.out"
count_tap "$BUILD/vm-check-iommu.log"
if [ "$vm_rc" != 0 ] && [ "$notok" = 0 ]; then
	echo "not ok - IOMMU VM run failed (see $BUILD/vm-check-iommu.log)"
	failed=$((failed + 1))
fi
if grep -E -q 'iommu_group type=DMA$' "$BUILD/vm-check-iommu.log"; then
	echo "ok - the devices sit in strict, translated IOMMU DMA domains"
	passed=$((passed + 1))
else
	echo "not ok - no translating IOMMU domain in the IOMMU run"
	failed=$((failed + 1))
fi

echo "== packaging (make install, pkg-config, the example program)"
if tests/packaging.sh; then
	echo "ok - packaging"
	passed=$((passed + 1))
else
	echo "not ok - packaging"
	failed=$((failed + 1))
fi

echo "== the polar tool on the software backend (tests/tools.sh)"
tests/tools.sh >"$BUILD/tools-test.log" 2>&1
cat "$BUILD/tools-test.log"
count_tap_plain "$BUILD/tools-test.log" "tools: "
if [ "$(grep -E -c '^(ok|not ok) - tools: ' "$BUILD/tools-test.log")" = 0 ]; then
	echo "not ok - tests/tools.sh reported nothing"
	failed=$((failed + 1))
fi

echo "== lint (checkpatch --strict, sparse)"
for l in checkpatch sparse; do
	if make --no-print-directory "$l"; then
		echo "ok - $l"
		passed=$((passed + 1))
	else
		echo "not ok - $l"
		failed=$((failed + 1))
	fi
done

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
