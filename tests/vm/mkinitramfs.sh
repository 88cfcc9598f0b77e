#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# mkinitramfs.sh OUT MODE KO TESTS...: builds the VM's initramfs: static
# busybox, the DRM modules polar_accel.ko depends on (resolved through
# modules.dep and decompressed), the driver, the polar tool with the
# shared libraries it needs, the test binaries, and /init.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$TOP/build}
out=$1 mode=$2 ko=$3
shift 3
# The kernel whose modules.dep resolves the driver's dependencies: the
# stock one, or the one POLAR_KENV names (the debug kernel).
# shellcheck disable=SC1090
. "${POLAR_KENV:-$BUILD/kernel/env}"

root=$(mktemp -d "$BUILD/initramfs.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,proc,sys,tmp,etc,usr/bin,usr/lib,tests,lib/modules/polar/deps}
cp /bin/busybox "$root/bin/busybox"
cp "$BUILD/bin/guest-exit" "$root/bin/"
cp "$TOP/tests/vm/init" "$root/init"
chmod +x "$root/init"
echo "$mode" >"$root/etc/polar-mode"

# Modules in load order: each module's dependencies before it.
declare -A loaded=()
order=()
load_module() { # path relative to $MODROOT
	local rel=$1 dep
	[ -n "${loaded[$rel]:-}" ] && return
	loaded[$rel]=1
	for dep in $(awk -v m="$rel:" '$1 == m { $1 = ""; print }' "$MODROOT/modules.dep"); do
		load_module "$dep"
	done
	order+=("$rel")
}
for name in $(modinfo -F depends "$ko" | tr ',' ' '); do
	rel=$(awk -F: -v n="$name" '{ b = $1; sub(".*/", "", b); sub("\\.ko.*", "", b);
		gsub("-", "_", b); if (b == n) { print $1; exit } }' "$MODROOT/modules.dep")
	[ -n "$rel" ] || { echo "mkinitramfs: module $name not found" >&2; exit 1; }
	load_module "$rel"
done
for rel in "${order[@]}"; do
	base=$(basename "$rel")
	case $base in
	*.xz) xz -dc "$MODROOT/$rel" >"$root/lib/modules/polar/deps/${base%.xz}" ;;
	*.zst) zstd -qdc "$MODROOT/$rel" >"$root/lib/modules/polar/deps/${base%.zst}" ;;
	*) cp "$MODROOT/$rel" "$root/lib/modules/polar/deps/" ;;
	esac
	echo "${base%.*z*}" | sed 's/\.ko\..*$/.ko/' >>"$root/lib/modules/polar/deps.order"
done
cp "$ko" "$root/lib/modules/polar/polar_accel.ko"
# request_firmware() looks in /lib/firmware.
mkdir -p "$root/lib/firmware"
cp "$BUILD/firmware/polar_cim.fw" "$root/lib/firmware/"

# The polar tool is linked against libpolar-accel.so: ship what ldd names.
cp "$BUILD/bin/polar" "$root/usr/bin/"
copy_libs() {
	local lib
	for lib in $(LD_LIBRARY_PATH=$BUILD/lib ldd "$1" |
		     awk '/=> \// { print $3 } /^\t\/lib/ { print $1 }' |
		     grep -v libpolar-accel); do
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
}
copy_libs "$root/usr/bin/polar"
for so in "$BUILD"/lib/libpolar-accel.so*; do
	cp -P "$so" "$root/usr/lib/"
done
# The main job (mode "run") evaluates the host-trained model on the
# Fashion-MNIST files Debian installs, with the options in
# POLAR_EVAL_ARGS.
if [ "$mode" = run ]; then
	mkdir -p "$root/data/fashion-mnist" "$root/models"
	cp "${POLAR_DATA:-/usr/share/datasets/fashion-mnist}"/*-ubyte.gz \
		"$root/data/fashion-mnist/"
	# model.safetensors or model.onnx: polar eval reads either.
	model=${POLAR_MODEL:-$BUILD/models/cnn.safetensors}
	cp "$model" "$root/models/model.${model##*.}"
	echo "${POLAR_EVAL_ARGS:-}" >"$root/etc/polar-eval-args"
fi
for t in "$@"; do
	case $mode in
	bench) cp "$t" "$root/usr/bin/" ;;	# run by /init, not as a test
	*) cp "$t" "$root/tests/" ;;
	esac
done

(cd "$root" && find . | cpio -o -H newc --quiet) | gzip -1 >"$out.tmp"
mv "$out.tmp" "$out"
