#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run-vm.sh MODE INITRAMFS: boots the fetched Debian 6.12 kernel in our
# QEMU with -device polar-cim under TCG, streams the console, and exits 0
# only when the guest reported success through isa-debug-exit. A VM that
# hangs is killed after $POLAR_VM_TIMEOUT seconds and reported as failed;
# a guest console showing an oops, BUG or WARNING fails the run too.
set -uo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$TOP/build}
mode=$1 initramfs=$2
log=$BUILD/vm-$mode.log
timeout_s=${POLAR_VM_TIMEOUT:-600}
# shellcheck disable=SC1091
. "$BUILD/kernel/env"
qemu=$BUILD/qemu-build/qemu-system-x86_64

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

# iomem=relaxed lets the tests map BAR0 through sysfs while the driver owns
# it, to compare what the driver reports with the registers themselves.
echo "vm: booting $KREL in QEMU (TCG) with ${devices[*]}"
timeout -k 10 "$timeout_s" "$qemu" \
	-L /usr/share/seabios -L /usr/share/qemu \
	-accel tcg -M "$machine" -m 1024 -smp 1 "${iommu[@]}" \
	-display none -nodefaults -no-reboot -serial stdio \
	-kernel "$VMLINUZ" -initrd "$initramfs" \
	-append "console=ttyS0 loglevel=5 panic=-1 iomem=relaxed rdinit=/init $append_extra" \
	"${devices[@]}" \
	-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
	</dev/null 2>&1 | tr -d '\r' | tee "$log"
rc=${PIPESTATUS[0]}

verdict=0
case $rc in
1) ;;
3) echo "vm: the guest reported failures"; verdict=1 ;;
124|137) echo "vm: timed out after ${timeout_s}s (hung VM killed)"; verdict=1 ;;
*) echo "vm: the VM ended without reporting (QEMU exit status $rc)"; verdict=1 ;;
esac
if grep -E -q '(Oops|BUG:|WARNING:|Call Trace|Kernel panic)' "$log"; then
	echo "vm: the guest console shows a kernel oops, BUG or WARNING"
	verdict=1
fi
if [ "${POLAR_VM_IOMMU:-0}" = 1 ]; then
	# DMAR faults in the guest, failed DMA in the device model, or the
	# driver's report of a device (ring DMA) error.
	dma_faults=$(grep -E -c 'DMAR: \[DMA|DMAR:.*[Ff]ault|polar-cim: DMA|device error' "$log")
	echo "vm: iommu dma_faults=$dma_faults"
	if [ "$dma_faults" != 0 ]; then
		grep -E 'DMAR: \[DMA|DMAR:.*[Ff]ault|polar-cim: DMA|device error' "$log" | head -20
		verdict=1
	fi
fi
exit $verdict
