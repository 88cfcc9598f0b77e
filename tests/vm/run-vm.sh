#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run-vm.sh MODE INITRAMFS: boots the fetched Debian 6.12 kernel (or, with
# POLAR_KENV=$BUILD/debug-kernel/env, the debug kernel) in our QEMU with
# -device polar-cim under TCG, streams the console, and exits 0 only when
# the guest reported success through isa-debug-exit. A VM that hangs is
# killed after $POLAR_VM_TIMEOUT seconds and reported as failed; a guest
# console showing an oops, BUG, WARNING, or a KASAN, lockdep, atomic-sleep,
# debug-objects or kmemleak report fails the run too.
set -uo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$TOP/build}
mode=$1 initramfs=$2
log=$BUILD/vm-$mode.log
timeout_s=${POLAR_VM_TIMEOUT:-600}
kenv=${POLAR_KENV:-$BUILD/kernel/env}
DEBUG_KERNEL=0
# shellcheck disable=SC1090
. "$kenv"
qemu=$BUILD/qemu-build/qemu-system-x86_64

# POLAR_VM_SMP vCPUs (default 1); more than one run in parallel under
# multi-threaded TCG, one host thread each. POLAR_VM_CPU the guest CPU
# model (default QEMU's qemu64; "max" is everything TCG emulates, AVX2
# and FMA included).
smp=${POLAR_VM_SMP:-1}
mem=${POLAR_VM_MEM:-1024}
cpu=()
if [ -n "${POLAR_VM_CPU:-}" ]; then
	cpu=(-cpu "$POLAR_VM_CPU")
fi

# Extra -device options (e.g. a second polar-cim) come from POLAR_VM_DEVICES.
devices=(-device "polar-cim${POLAR_CIM_PROPS:+,$POLAR_CIM_PROPS}")
for extra in ${POLAR_VM_DEVICES:-}; do
	devices+=(-device "$extra")
done

# POLAR_VM_IOMMU=1: an emulated Intel IOMMU in front of the devices, strict
# DMA remapping in the guest, QEMU's guest-error log on (the device model
# logs its failed DMA there); any DMA fault then fails the run.
machine=q35 iommu=() append_extra=${POLAR_VM_APPEND:-}
if [ "${POLAR_VM_IOMMU:-0}" = 1 ]; then
	machine=q35,kernel-irqchip=split
	iommu=(-device intel-iommu,intremap=on -d guest_errors)
	append_extra+=" intel_iommu=on iommu=strict iommu.strict=1"
fi
# The debug kernel: every KASAN report, not only the first, and a ring
# buffer big enough that a burst of reports reaches the console whole
# (a dropped message fails the run below).
if [ "$DEBUG_KERNEL" = 1 ]; then
	append_extra+=" kasan_multi_shot log_buf_len=8M"
fi

# The console ends lines with CR LF. The main job (mode run) goes to the
# terminal as it is, so that polar eval's progress bars redraw in place;
# test runs are cleaned line by line for the log readers and go through
# console-reports.awk as they stream. It counts every kernel report by
# kind and writes the counts and each report's first line (with the test
# that was running) to $log.reports: the verdict comes from the console
# itself, never from the guest's ring buffer, which wraps.
reports=$log.reports
scan_reports=(awk -v out="$reports" -f "$TOP/tests/vm/console-reports.awk")
if [ "$mode" = run ]; then
	console_filter=(cat)
	stream_scan=(cat)
else
	console_filter=(sed -u 's/\r$//')
	stream_scan=("${scan_reports[@]}")
fi

# iomem=relaxed lets the tests map BAR0 through sysfs while the driver owns
# it, to compare what the driver reports with the registers themselves.
# no_timer_check: the boot-time check that the timer interrupt arrives
# counts ticks over a busy-wait measured in host time; a vCPU starved on
# this shared 2-core machine misses it, and with interrupt remapping (the
# IOMMU runs) the kernel then panics ("timer doesn't work through
# Interrupt-remapped IO-APIC", seen once in make check with 4 vCPUs).
echo "vm: booting $KREL in QEMU (TCG, $smp vCPU${cpu[*]:+, ${cpu[*]}}) with ${devices[*]}"
timeout -k 10 "$timeout_s" "$qemu" \
	-L /usr/share/seabios -L /usr/share/qemu \
	-accel tcg,thread=multi -M "$machine" -m "$mem" -smp "$smp" "${cpu[@]}" \
	"${iommu[@]}" \
	-display none -nodefaults -no-reboot -serial stdio \
	-kernel "$VMLINUZ" -initrd "$initramfs" \
	-append "console=ttyS0 loglevel=5 panic=-1 iomem=relaxed no_timer_check rdinit=/init $append_extra" \
	"${devices[@]}" \
	-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
	</dev/null 2>&1 | "${console_filter[@]}" | tee "$log" | "${stream_scan[@]}"
rc=${PIPESTATUS[0]}
if [ "$mode" = run ]; then
	tr -d '\r' <"$log" >"$log.tmp" && mv "$log.tmp" "$log"
	"${scan_reports[@]}" <"$log" >/dev/null
fi

verdict=0
case $rc in
1) ;;
3) echo "vm: the guest reported failures"; verdict=1 ;;
124|137) echo "vm: timed out after ${timeout_s}s (hung VM killed)"; verdict=1 ;;
*) echo "vm: the VM ended without reporting (QEMU exit status $rc)"; verdict=1 ;;
esac
echo "vm: console reports: $(grep -E '^[a-z_]+=[0-9]+$' "$reports" | tr '\n' ' ')"
if grep -q '^report ' "$reports"; then
	echo "vm: the guest console shows kernel reports (first lines):"
	sed -n 's/^report /vm:   /p' "$reports" | head -40
	verdict=1
fi
if [ "${POLAR_VM_IOMMU:-0}" = 1 ]; then
	# DMAR faults in the guest, failed DMA in the device model, or the
	# driver's report of a device (ring DMA) error: any is a failure,
	# except those of the DMA canary (polar_accel_dma_canary_test), which
	# reads POLAR_CIM_STRAY_DMA_ADDR on purpose. Each of its injections
	# must have been caught by the IOMMU at that address: proof that this
	# check sees a stray DMA.
	stray=0xdead0000000
	dma_faults=$(grep -E 'DMAR: \[DMA|DMAR:.*[Ff]ault|polar-cim: DMA|device error' "$log" |
		grep -v -e 'handling fault status' -e "$stray" | grep -c .)
	injected=$(grep -c '^dma canary: injected' "$log")
	caught=$(grep -c "DMAR: \[DMA.*fault addr $stray" "$log")
	echo "vm: iommu dma_faults=$dma_faults stray_dma_injected=$injected caught_by_iommu=$caught"
	if [ "$dma_faults" != 0 ]; then
		grep -E 'DMAR: \[DMA|DMAR:.*[Ff]ault|polar-cim: DMA|device error' "$log" |
			grep -v -e 'handling fault status' -e "$stray" | head -20
		verdict=1
	fi
	if [ "$caught" -lt "$injected" ]; then
		echo "vm: the IOMMU did not report an injected stray DMA"
		verdict=1
	fi
fi
exit $verdict
