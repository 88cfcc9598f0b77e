#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run-stress.sh: the long reliability run (make stress), on the debug guest
# kernel (KASAN, lockdep, atomic-sleep checks, kmemleak, debug objects;
# scripts/build-debug-kernel.sh) with 4 vCPUs, in two VMs:
#  1. under the IOMMU (intel-iommu, strict): the ABI fuzzer with many more
#     operations, the soak (P processes for a fixed wall time, both submit
#     paths, every result verified), then the 4 x 1000 stress test;
#  2. without it: the fault-injection matrix repeated (its injected DMA
#     errors are meant to be reported, so it cannot share the IOMMU run's
#     zero-DMA-fault rule).
# Knobs (environment): STRESS_SOAK_SECS (120), STRESS_SOAK_PROCS (6),
# STRESS_FUZZ_OPS (1250000), STRESS_FUZZ_PROCS (4), STRESS_FUZZ_SECS
# (5400, a cap), STRESS_MIN_FUZZ_CALLS (1000000: fewer fuzzed ioctls and
# URING_CMDs fail the run), STRESS_SEED (1), STRESS_FAULT_ROUNDS (3);
# POLAR_VM_SMP (4), POLAR_KENV (the debug kernel's env file).
# Ends with one line:
#  jobs submitted=<n> completed=<n> verified=<n> lost=<n> kernel_warnings=<n> dma_faults=<n> kasan=<n> lockdep=<n> kmemleak=<n>
set -uo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$TOP/build}
cd "$TOP"
initramfs=$BUILD/initramfs-stress.cpio.gz
soak_secs=${STRESS_SOAK_SECS:-120}
soak_procs=${STRESS_SOAK_PROCS:-6}
fuzz_ops=${STRESS_FUZZ_OPS:-1250000}
fuzz_procs=${STRESS_FUZZ_PROCS:-4}
fuzz_secs=${STRESS_FUZZ_SECS:-5400}
min_fuzz_calls=${STRESS_MIN_FUZZ_CALLS:-1000000}
seed=${STRESS_SEED:-1}
rounds=${STRESS_FAULT_ROUNDS:-3}
export POLAR_CIM_PROPS=${POLAR_CIM_PROPS-sigma-static=6554,stuck-rate=2000,adc-offset-sigma=16384,adc-gain-sigma=1311,seed=7}
export POLAR_VM_DEVICES=${POLAR_VM_DEVICES-polar-cim,sigma-static=6554,stuck-rate=2000,seed=8}
export POLAR_VM_TIMEOUT=${POLAR_VM_TIMEOUT:-$((soak_secs + fuzz_secs + 900))}
export POLAR_KENV=${POLAR_KENV:-$BUILD/debug-kernel/env}
export POLAR_VM_SMP=${POLAR_VM_SMP:-4}
# KASAN's shadow, its quarantine and kmemleak's objects need room.
export POLAR_VM_MEM=${POLAR_VM_MEM:-2048}
rc=0
# shellcheck disable=SC1090
echo "== kernel $(. "$POLAR_KENV" && echo "$KREL"), $POLAR_VM_SMP vCPUs"

echo "== stress 1/2: ABI fuzz (seed $seed, $fuzz_ops ops, $fuzz_procs procs), soak ($soak_procs procs, ${soak_secs}s), 4x1000 stress, under the IOMMU"
POLAR_VM_IOMMU=1 POLAR_VM_APPEND="polar_tests=abi_fuzz,polar_accel_soak,polar_accel_stress_test polar_soak_secs=$soak_secs polar_soak_procs=$soak_procs polar_fuzz_ops=$fuzz_ops polar_fuzz_procs=$fuzz_procs polar_fuzz_secs=$fuzz_secs polar_fuzz_seed=$seed" \
	tests/vm/run-vm.sh stress-iommu "$initramfs" >"$BUILD/vm-stress-iommu.out" 2>&1 || rc=1
log1=$BUILD/vm-stress-iommu.log
grep -E '^(ok|not ok) |^fuzz |^soak |submitted=|^vm: (iommu|status|FAIL|timed)' "$BUILD/vm-stress-iommu.out"

echo "== stress 2/2: fault-injection matrix x $rounds"
POLAR_VM_APPEND="polar_tests=recovery_repeat polar_fault_rounds=$rounds" \
	tests/vm/run-vm.sh stress-faults "$initramfs" >"$BUILD/vm-stress-faults.out" 2>&1 || rc=1
log2=$BUILD/vm-stress-faults.log
fault_ok=$(grep -E -c '^ok [0-9]+ ' "$log2")
fault_notok=$(grep -E -c '^not ok [0-9]+ ' "$log2")
grep -E '^stress: |^vm: (status|FAIL|timed)|^# (PASSED|FAILED|Totals)' "$BUILD/vm-stress-faults.out"
echo "fault matrix: $rounds rounds, $fault_ok cases passed, $fault_notok failed"
[ "$fault_notok" = 0 ] && [ "$fault_ok" -gt 0 ] || rc=1

# Jobs: the soak's and the stress test's, each verified against cim_engine.
sum() { # field: the sum of field=<n> over the soak and stress-test lines
	grep -E '^soak |four_processes_thousand_jobs_each:submitted=' "$log1" |
		grep -o "[ :]$1=[0-9]*" | cut -d= -f2 | awk '{ s += $1 } END { print s + 0 }'
}
# And the fault matrix's load processes, whose jobs run on the other
# queues while each fault is injected: every one must verify, so any
# that did not counts as lost.
read -r load_submitted load_verified < <(
	sed -n 's/.*load processes submitted \([0-9]*\), verified \([0-9]*\).*/\1 \2/p' "$log2" |
	awk '{ s += $1; v += $2 } END { print s + 0, v + 0 }')
echo "fault matrix load: submitted=$load_submitted verified=$load_verified"
submitted=$(( $(sum submitted) + load_submitted ))
completed=$(( $(sum completed) + load_verified ))
verified=$(( $(sum verified) + load_verified ))
lost=$(( $(sum lost) + load_submitted - load_verified ))
unverified=$(( $(sum failed) + $(sum mismatched) ))
# Kernel reports, as run-vm.sh's console-reports.awk counted them while
# the consoles streamed: kernel_warnings is every report of every kind
# (KASAN, lockdep, atomic sleep, debug objects, kmemleak, dropped console
# messages, any other oops, BUG, WARNING or call trace); kasan, lockdep
# and kmemleak are those kinds alone.
reports() { # kind: the sum of kind=<n> over both runs' report files
	cat "$log1.reports" "$log2.reports" 2>/dev/null |
		sed -n "s/^$1=//p" | awk '{ s += $1 } END { print s + 0 }'
}
kernel_warnings=0
for kind in kasan lockdep atomic_sleep debug_objects kmemleak dropped warning; do
	kernel_warnings=$((kernel_warnings + $(reports "$kind")))
done
for l in "$log1" "$log2"; do
	[ -f "$l.reports" ] || { echo "stress: no console report counts for $l"; rc=1; }
	sed -n "s|^report |stress: report in $(basename "$l"): |p" "$l.reports" 2>/dev/null
done
dma_faults=$(grep -E -c 'DMAR: \[DMA|DMAR:.*[Ff]ault|polar-cim: DMA|device error' "$log1")
# The fuzzer's ioctl calls and URING_CMD SQEs (abi_fuzz's second line).
fuzz_ioctls=$(sed -n 's/^fuzz procs=.* ioctls=\([0-9]*\) .*/\1/p' "$log1" | tail -1)
fuzz_uring=$(sed -n 's/^fuzz procs=.* uring_sqes=\([0-9]*\) .*/\1/p' "$log1" | tail -1)
fuzz_calls=$(( ${fuzz_ioctls:-0} + ${fuzz_uring:-0} ))
echo "fuzz: ioctls=${fuzz_ioctls:-0} uring_cmds=${fuzz_uring:-0} total=$fuzz_calls (at least $min_fuzz_calls)"
if [ "$submitted" = 0 ] || [ "$lost" != 0 ] || [ "$unverified" != 0 ] ||
   [ "$verified" != "$submitted" ] || [ "$kernel_warnings" != 0 ] ||
   [ "$dma_faults" != 0 ] || [ "$fuzz_calls" -lt "$min_fuzz_calls" ]; then
	rc=1
fi
echo "stress: $([ $rc = 0 ] && echo PASS || echo FAIL) (logs $log1 $log2)"
echo "jobs submitted=$submitted completed=$completed verified=$verified lost=$lost kernel_warnings=$kernel_warnings dma_faults=$dma_faults kasan=$(reports kasan) lockdep=$(reports lockdep) kmemleak=$(reports kmemleak)"
exit $rc
