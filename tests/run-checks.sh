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

echo "== VM kselftests"
# A chip with static variability, so that the device-versus-software-engine
# comparisons cover conductance spread, stuck cells and ADC offset and gain.
export POLAR_CIM_PROPS=${POLAR_CIM_PROPS-sigma-static=6554,stuck-rate=2000,adc-offset-sigma=16384,adc-gain-sigma=1311,seed=7}
# A second chip of another seed, for the tests that spread work over two.
export POLAR_VM_DEVICES=${POLAR_VM_DEVICES-polar-cim,sigma-static=6554,stuck-rate=2000,seed=8}
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

echo "== packaging (make install, pkg-config, the example program)"
if tests/packaging.sh; then
	echo "ok - packaging"
	passed=$((passed + 1))
else
	echo "not ok - packaging"
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
