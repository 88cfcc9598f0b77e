#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run-main.sh: the main job behind `make run`. Trains the CNN on the host
# (or reuses the one cached in $BUILD/models), boots the VM with a
# polar-cim device, and inside it runs `polar eval` against the real
# device through the driver: quantize, program, calibrate every method on
# this chip, evaluate on the Fashion-MNIST test split. The report
# (markdown + SVG) is copied out of the console into $BUILD/reports/run.
#
# Knobs (environment): POLAR_SEED chip seed (7), POLAR_SIGMA sigma-static
# in Q16 (13107 = 0.2), POLAR_ADC_BITS (5), POLAR_RECON the chip's
# reconstruction (codes; cells for the whole-cell model), POLAR_TEST test
# images (10000, the whole split), POLAR_CALIB calibration images (512),
# POLAR_EVAL_EXTRA more `polar eval` options (e.g. "--wfmt int4"),
# POLAR_MODEL another model to evaluate instead of the CNN (a safetensors
# file of polar train or an ONNX file, e.g. build/onnx/resnet_small.onnx
# from make check-onnx),
# POLAR_VM_SMP guest vCPUs (2: polar eval evaluates on one thread per
# vCPU).
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
export BUILD

seed=${POLAR_SEED:-7}
sigma=${POLAR_SIGMA:-13107}
adc=${POLAR_ADC_BITS:-5}
recon=${POLAR_RECON:-codes}
ntest=${POLAR_TEST:-10000}
ncalib=${POLAR_CALIB:-512}
model=${POLAR_MODEL:-$BUILD/models/cnn.safetensors}
reports=$BUILD/reports/run
log=$BUILD/vm-run.log

# Wall-clock seconds of the host's phases, printed at the end.
t_start=$(date +%s)
export LD_LIBRARY_PATH=$BUILD/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if [ -n "${POLAR_MODEL:-}" ]; then
	[ -s "$model" ] || { echo "run: POLAR_MODEL=$model: no such model" >&2; exit 1; }
	echo "run: evaluating $model"
elif [ ! -s "$model" ]; then
	echo "run: training the CNN on the host (cached in $model)"
	mkdir -p "$(dirname "$model")"
	"$BUILD/bin/polar" train --arch cnn --out "$model.tmp"
	mv "$model.tmp" "$model"
else
	echo "run: reusing $model (delete it to retrain)"
fi
t_model=$(date +%s)

# The fp32 reference involves no chip: the same polar eval, library and
# model file compute it natively here in seconds, where the VM's emulated
# float arithmetic took a fifth of the evaluation. The guest evaluates
# every chip method.
fp32_log=$BUILD/run-fp32.log
"$BUILD/bin/polar" eval --methods fp32 --model "$model" \
	--data "${POLAR_DATA:-/usr/share/datasets/fashion-mnist}" \
	--test "$ntest" >"$fp32_log" 2>&1 || { cat "$fp32_log"; exit 1; }
fp32_acc=$(sed -n 's/^accuracy fp32=//p' "$fp32_log")
t_fp32=$(date +%s)

# The device's properties are the chip; polar eval reads them back from
# the device and records them in the report.
export POLAR_MODEL=$model
export POLAR_EVAL_ARGS="--chip-seed $seed --sigma-static $sigma --adc-bits $adc --recon $recon --test $ntest --calib $ncalib --methods quant,svd,act,act-device,sensitivity,trained ${POLAR_EVAL_EXTRA:-}"
export POLAR_CIM_PROPS="seed=$seed,sigma-static=$sigma,adc-bits=$adc,recon=$recon${POLAR_CIM_PROPS:+,$POLAR_CIM_PROPS}"
initramfs=$BUILD/initramfs-run.cpio.gz
"$TOP/tests/vm/mkinitramfs.sh" "$initramfs" run "$TOP/polar_accel.ko"
t_initramfs=$(date +%s)

# Under TCG the guest's share of the work (im2col, quantizing, the rank-r
# host path) runs about 25x slower than natively. The guest evaluates on
# one thread per vCPU under multi-threaded TCG; the device model's engine
# threads share the same host cores. Measured on the shared 2-core machine
# with 2 vCPUs (POLAR_TEST=1000, before the fp32 pass moved to the host
# and the guest's float work was cut): about 4 minutes of calibration,
# then about 0.24 s per test image for all six methods; the timeout
# allows more than twice that on a quiet machine. On a loaded one set
# POLAR_VM_TIMEOUT (seconds).
export POLAR_VM_SMP=${POLAR_VM_SMP:-2}
export POLAR_VM_TIMEOUT=${POLAR_VM_TIMEOUT:-$((1200 + ntest / 2))}
rc=0
"$TOP/tests/vm/run-vm.sh" run "$initramfs" || rc=$?
t_vm=$(date +%s)

rm -rf "$reports"
mkdir -p "$reports"
awk -v dir="$reports" '
	/^vm: file .* begin$/ { f = dir "/" $3; next }
	/^vm: file .* end$/ { close(f); f = ""; next }
	f != "" { print > f }' "$log"
echo
if [ -s "$reports/report.md" ]; then
	printf '\n## fp32 reference\n\n%s %% on the same %s test images, %s\n' \
		"$fp32_acc" "$ntest" "computed natively on the host by polar eval --methods fp32 (the same library and model file; it involves no chip)." \
		>>"$reports/report.md"
	echo "run: report $reports/report.md"
fi
grep -E '^(quant|sensitivity) energy:' "$log" || true
eval_s=$(sed -n 's/^phases: .*, total \([0-9.]*\) s$/\1/p' "$log" | tail -1)
echo "run: host phases: model $((t_model - t_start)) s, fp32 reference" \
	"$((t_fp32 - t_model)) s (native), initramfs" \
	"$((t_initramfs - t_fp32)) s, VM $((t_vm - t_initramfs)) s" \
	"(polar eval ${eval_s:-?} s of it, the rest boot and shutdown)," \
	"total $((t_vm - t_start)) s"
grep -E '^phases: ' "$log" | sed 's/^/run: guest /' || true
echo "run: fp32 evaluated natively on the host (no chip), every other method in the VM"
echo "accuracy fp32=$fp32_acc"
grep -E '^accuracy [a-z0-9-]+=' "$log" || { echo "run: polar eval printed no results"; rc=1; }
grep -E '^tops_per_w=' "$log" || { echo "run: polar eval printed no tops_per_w"; rc=1; }
exit $rc
