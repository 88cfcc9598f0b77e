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
# in Q16 (13107 = 0.2), POLAR_ADC_BITS (5), POLAR_TEST test images (2000;
# 10000 is the whole split, about an hour under TCG), POLAR_CALIB
# calibration images (512), POLAR_EVAL_EXTRA more `polar eval` options
# (e.g. "--wfmt int4").
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
export BUILD

seed=${POLAR_SEED:-7}
sigma=${POLAR_SIGMA:-13107}
adc=${POLAR_ADC_BITS:-5}
ntest=${POLAR_TEST:-2000}
ncalib=${POLAR_CALIB:-512}
model=$BUILD/models/cnn.safetensors
reports=$BUILD/reports/run
log=$BUILD/vm-run.log

export LD_LIBRARY_PATH=$BUILD/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if [ ! -s "$model" ]; then
	echo "run: training the CNN on the host (cached in $model)"
	mkdir -p "$(dirname "$model")"
	"$BUILD/bin/polar" train --arch cnn --out "$model.tmp"
	mv "$model.tmp" "$model"
else
	echo "run: reusing $model (delete it to retrain)"
fi

# The device's properties are the chip; polar eval reads them back from
# the device and records them in the report.
export POLAR_MODEL=$model
export POLAR_EVAL_ARGS="--chip-seed $seed --sigma-static $sigma --adc-bits $adc --test $ntest --calib $ncalib ${POLAR_EVAL_EXTRA:-}"
export POLAR_CIM_PROPS="seed=$seed,sigma-static=$sigma,adc-bits=$adc${POLAR_CIM_PROPS:+,$POLAR_CIM_PROPS}"
initramfs=$BUILD/initramfs-run.cpio.gz
"$TOP/tests/vm/mkinitramfs.sh" "$initramfs" run "$TOP/polar_accel.ko"

# Under TCG the guest's share of the work (im2col, quantizing, the rank-r
# host path) runs about 25x slower than natively: allow for it.
export POLAR_VM_TIMEOUT=${POLAR_VM_TIMEOUT:-$((1800 + ntest * 2))}
rc=0
"$TOP/tests/vm/run-vm.sh" run "$initramfs" || rc=$?

rm -rf "$reports"
mkdir -p "$reports"
awk -v dir="$reports" '
	/^vm: file .* begin$/ { f = dir "/" $3; next }
	/^vm: file .* end$/ { close(f); f = ""; next }
	f != "" { print > f }' "$log"
echo
if [ -s "$reports/report.md" ]; then
	echo "run: report $reports/report.md"
fi
grep -E '^(quant|sensitivity) energy:' "$log" || true
grep -E '^accuracy [a-z0-9-]+=' "$log" || { echo "run: polar eval printed no results"; rc=1; }
exit $rc
