#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A real PyTorch client of libpolar-accel (issue 17): models trained and
# exported by PyTorch (tests/onnx/client.py), loaded by the library, whose
# fp32 outputs must match PyTorch's on the whole test split (max |diff|
# under 1e-4, the same accuracy), then polarized on the software backend
# with polar eval --device sim, whose fp32 accuracy on the images it
# evaluates must again be PyTorch's. One "ok - onnx: ..." or "not ok - ..."
# line per check.
#
#   onnx-client.sh          make check-onnx: installs python3-torch, trains
#                           both models for a few minutes into build/onnx/,
#                           polar eval on 2000 test images
#   onnx-client.sh --short  make check: the models of build/onnx/ if a
#                           make check-onnx saved them, else tiny ones (one
#                           epoch on 2000 images, about a minute, cached in
#                           build/onnx-short/); polar eval on 200 images
set -uo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$TOP/build}
export LD_LIBRARY_PATH=$BUILD/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export POLAR_FIRMWARE=${POLAR_FIRMWARE:-$BUILD/firmware/polar_cim.fw}
polar=$BUILD/bin/polar
forward=$BUILD/tests/onnx/onnx_forward
# Debian's python3 (the one python3-torch installs into), not a pyenv one.
py=/usr/bin/python3
short=0
[ "${1:-}" = --short ] && short=1

check() { # description, then a command that must succeed
	local what=$1
	shift
	if "$@"; then
		echo "ok - onnx: $what"
	else
		echo "not ok - onnx: $what"
	fi
}

if ! "$TOP/scripts/install-packages.sh" python3-torch >"$BUILD/onnx-apt.log" 2>&1; then
	cat "$BUILD/onnx-apt.log"
	echo "not ok - onnx: install python3-torch"
	exit 1
fi

models="resnet_small mlp_bn"
have_all() { # dir: 0 when it holds both exported models and their outputs
	local m
	for m in $models; do
		[ -s "$1/$m.onnx" ] && [ -s "$1/$m.torch.f32" ] && [ -s "$1/$m.torch.acc" ] || return 1
	done
}

if [ $short = 1 ]; then
	dir=$BUILD/onnx
	ntest=200
	if ! have_all "$dir"; then
		dir=$BUILD/onnx-short
		have_all "$dir" ||
			check "PyTorch trains and exports (one epoch, 2000 images)" \
				"$py" "$TOP/tests/onnx/client.py" "$dir" --epochs 1 --train-images 2000
	fi
else
	dir=$BUILD/onnx
	ntest=${POLAR_TEST:-2000}
	check "PyTorch trains and exports (tests/onnx/client.py)" \
		"$py" "$TOP/tests/onnx/client.py" "$dir"
fi
have_all "$dir" || exit 1

compare() { # model: fp32 outputs against PyTorch's
	local m=$1 out line
	out=$("$forward" "$dir/$m.onnx" "$dir/$m.polar.f32") || return 1
	echo "  $out"
	line=$("$py" - "$dir/$m.polar.f32" "$dir/$m.torch.f32" <<'PY'
import sys
import numpy as np
a = np.fromfile(sys.argv[1], "<f4")
b = np.fromfile(sys.argv[2], "<f4")
print(a.size == b.size and a.size > 0, float(np.abs(a - b).max()) if a.size == b.size else -1)
PY
) || return 1
	echo "  $m: max |libpolar-accel - PyTorch| = ${line#* }"
	[ "${line%% *}" = True ] && "$py" -c "import sys; sys.exit(0 if float('${line#* }') < 1e-4 else 1)" || return 1
	# The same number of test images classified correctly.
	[ "$(awk '{print $(NF-3)}' <<<"$out")" = "$(cat "$dir/$m.torch.acc")" ]
}

sim_eval() { # model: polar eval on the sim, its fp32 accuracy PyTorch's
	local m=$1 log=$dir/$m.eval.log methods=$2 want got
	"$polar" eval --model "$dir/$m.onnx" --device sim --calib 128 \
		--test "$ntest" --methods "$methods" >"$log" 2>&1 || { tail -5 "$log"; return 1; }
	grep '^accuracy ' "$log" | sed 's/^/  '"$m"': /'
	got=$(awk -F= '/^accuracy fp32=/ {print $2}' "$log")
	want=$("$py" - "$dir/$m.torch.f32" "$ntest" <<'PY'
import sys
import gzip
import numpy as np
out = np.fromfile(sys.argv[1], "<f4").reshape(10000, -1)
n = int(sys.argv[2])
with gzip.open("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz") as f:
    y = np.frombuffer(f.read(), np.uint8, offset=8)
print(f"{100.0 * (out[:n].argmax(1) == y[:n]).mean():.2f}")
PY
)
	echo "  $m: PyTorch on the same $ntest images: $want%"
	[ -n "$got" ] && [ "$got" = "$want" ] && grep -q '^accuracy act-device=\|^accuracy quant=' "$log"
}

for m in $models; do
	check "$m: fp32 outputs match PyTorch's to 1e-4, same test accuracy" compare "$m"
done
# The short form keeps to the cheaper fits on the MLP (its 784-input
# layer's act-device fit takes a minute on this machine).
check "resnet_small: polar eval --device sim" sim_eval resnet_small fp32,quant,svd,act,act-device
if [ $short = 1 ]; then
	check "mlp_bn: polar eval --device sim" sim_eval mlp_bn fp32,quant,svd,act
else
	check "mlp_bn: polar eval --device sim" sim_eval mlp_bn fp32,quant,svd,act,act-device
fi
