#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run-vm-suite.sh NAME INITRAMFS: every VM kselftest in one VM run
# (tests/vm/run-vm.sh NAME), with the two chips of make check, and one
# closing line "N passed, N failed". The VM is chosen by run-vm.sh's
# environment: make check-debug passes the debug kernel (POLAR_KENV) and 4
# vCPUs, make check-swiotlb swiotlb=force on the guest command line. A
# kernel report on the console, a hang or a lost run counts as a failure.
set -uo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
cd "$TOP"
name=$1 initramfs=$2

# The first chip as make check has it (tests/run-checks.sh).
export POLAR_CIM_PROPS=${POLAR_CIM_PROPS-sigma-static=6554,stuck-rate=2000,adc-offset-sigma=16384,adc-gain-sigma=1311,seed=7,digital-planes=1,adc-bits-msb=8,adc-msb-levels=2}
# The second chip as make check has it (tests/run-checks.sh): whole-cell
# reconstruction, which lib.layer_across_two_devices requires.
export POLAR_VM_DEVICES=${POLAR_VM_DEVICES-polar-cim,sigma-static=6554,stuck-rate=2000,seed=8,recon=cells}

echo "== VM kselftests ($name: ${POLAR_VM_SMP:-1} vCPUs${POLAR_VM_APPEND:+, $POLAR_VM_APPEND}${POLAR_KENV:+, kernel env $POLAR_KENV})"
start=$(date +%s)
tests/vm/run-vm.sh "$name" "$initramfs" >"$BUILD/vm-$name.out" 2>&1
vm_rc=$?
log=$BUILD/vm-$name.log
grep -E '^(ok|not ok) |^vm: (booting|running|status|FAIL|console|kmemleak|the guest|  |timed|the VM)' \
	"$BUILD/vm-$name.out"
passed=$(grep -E -c '^ok [0-9]+ ' "$log")
failed=$(grep -E -c '^not ok [0-9]+ ' "$log")
if [ "$vm_rc" != 0 ] && [ "$failed" = 0 ]; then
	echo "not ok - the VM run failed (see $BUILD/vm-$name.out)"
	failed=$((failed + 1))
fi
if [ "$passed" = 0 ]; then
	echo "not ok - the VM reported no test results"
	failed=$((failed + 1))
fi
echo "$name: $(($(date +%s) - start)) s"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
