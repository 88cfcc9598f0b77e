#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make install into a staging tree, then build lib/examples/layer_demo the
# way a user would, with pkg-config against the installed files and the
# shared library, and run it on the software backend.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
stage=$BUILD/stage
rm -rf "$stage"
make -s -C "$TOP" install DESTDIR="$stage" PREFIX=/usr >/dev/null
export PKG_CONFIG_SYSROOT_DIR=$stage
export PKG_CONFIG_PATH=$stage/usr/lib/pkgconfig
cc -std=c11 -Wall -Wextra -Werror "$TOP/lib/examples/layer_demo.c" \
	$(pkg-config --cflags --libs polar-accel) -lm -o "$BUILD/layer_demo"
soname=$(readelf -d "$stage/usr/lib/libpolar-accel.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = libpolar-accel.so.0 ] || { echo "SONAME is '$soname'"; exit 1; }
LD_LIBRARY_PATH=$stage/usr/lib POLAR_FIRMWARE=$stage/lib/firmware/polar_cim.fw \
	"$BUILD/layer_demo" sim
