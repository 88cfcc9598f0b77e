#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make install into a staging tree, then build lib/examples/layer_demo and
# lib/examples/onnx_predict the way a user would, with pkg-config against
# the installed files: once against the shared library and once fully
# static with `pkg-config --static`, which fails to link if polar-accel.pc
# leaves out a library that libpolar-accel.a needs. All run on the
# software backend; onnx_predict polarizes the small MLP that the fuzz
# seeds hold (build/fuzz/seeds/onnx/mlp28.onnx) on 100 Fashion-MNIST test
# images and classifies 100 more.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
stage=$BUILD/stage
rm -rf "$stage"
make -s -C "$TOP" install DESTDIR="$stage" PREFIX=/usr >/dev/null
export PKG_CONFIG_SYSROOT_DIR=$stage
export PKG_CONFIG_PATH=$stage/usr/lib/pkgconfig
demo=$TOP/lib/examples/layer_demo.c
export POLAR_FIRMWARE=$stage/lib/firmware/polar_cim.fw

cc -std=c11 -Wall -Wextra -Werror "$demo" \
	$(pkg-config --cflags --libs polar-accel) -lm -o "$BUILD/layer_demo"
soname=$(readelf -d "$stage/usr/lib/libpolar-accel.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = libpolar-accel.so.1 ] || { echo "SONAME is '$soname'"; exit 1; }
LD_LIBRARY_PATH=$stage/usr/lib "$BUILD/layer_demo" sim

# -u pulls in the calibration, which the demo does not call, so that
# LAPACK's static dependencies (libgfortran, libquadmath) are checked too.
cc -static -std=c11 -Wall -Wextra -Werror "$demo" -Wl,-u,polar_calib_symeig \
	$(pkg-config --static --cflags --libs polar-accel) -lm \
	-o "$BUILD/layer_demo-static"
if readelf -l "$BUILD/layer_demo-static" | grep -q INTERP; then
	echo "layer_demo-static is dynamically linked"
	exit 1
fi
"$BUILD/layer_demo-static" sim

# The pipeline example: an ONNX file to predictions, shared and static.
predict=$TOP/lib/examples/onnx_predict.c
onnx=$BUILD/fuzz/seeds/onnx/mlp28.onnx
[ -s "$onnx" ] || make -s -C "$TOP" "$BUILD/fuzz/seeds/.done" >/dev/null
fmnist=/usr/share/datasets/fashion-mnist
cc -std=c11 -Wall -Wextra -Werror "$predict" \
	$(pkg-config --cflags --libs polar-accel) -o "$BUILD/onnx_predict"
cc -static -std=c11 -Wall -Wextra -Werror "$predict" \
	$(pkg-config --static --cflags --libs polar-accel) \
	-o "$BUILD/onnx_predict-static"
for prog in "$BUILD/onnx_predict" "$BUILD/onnx_predict-static"; do
	out=$(LD_LIBRARY_PATH=$stage/usr/lib "$prog" "$onnx" \
		"$fmnist/t10k-images-idx3-ubyte.gz" \
		"$fmnist/t10k-labels-idx1-ubyte.gz" sim 100)
	echo "$out"
	grep -q "on sim, sensitivity: 100 images, first predictions [0-9] [0-9] [0-9], accuracy [0-9.]*%$" \
		<<<"$out" || { echo "$(basename "$prog"): no predictions"; exit 1; }
done

# Every page in lib/man is installed.
for page in "$TOP"/lib/man/*.3; do
	[ -f "$stage/usr/share/man/man3/$(basename "$page")" ] || {
		echo "man page $(basename "$page") not installed"; exit 1; }
done
