#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds qemu-system-x86_64 10.0 from Debian's trixie source package with
# the polar-cim device grafted in: qemu-device/ (plus the hw/ contract
# header) is copied to hw/misc/polar-cim/ and qemu-device/qemu-graft.patch
# adds the build-system lines. Rebuilds are incremental (ninja + ccache).
# Prints the path of the binary on stdout. With --sanitize it builds the
# same source with ASan and UBSan into build/qemu-build-asan instead (for
# the device fuzzer, tests/fuzz/README.md).
. "$(dirname "$0")/common.sh"

SRC_ROOT=$BUILD/qemu-src
OBJ=$BUILD/qemu-build
SANITIZE=()
if [ "${1:-}" = --sanitize ]; then
	OBJ=$BUILD/qemu-build-asan
	SANITIZE=(--enable-asan --enable-ubsan)
fi
BIN=$OBJ/qemu-system-x86_64

src=$(ls -d "$SRC_ROOT"/qemu-10.0.* 2>/dev/null | head -1 || true)
if [ -z "$src" ] || [ ! -f "$src/.polar-grafted" ]; then
	apt_private_init
	mkdir -p "$SRC_ROOT"
	if ! ls "$SRC_ROOT"/qemu_10.0.*.orig.tar.xz >/dev/null 2>&1; then
		log "downloading QEMU 10.0 source (trixie)"
		(cd "$SRC_ROOT" && apt-get "${APT_OPTS[@]}" -q source \
			--download-only qemu/trixie >&2)
	fi
	tarball=$(ls "$SRC_ROOT"/qemu_10.0.*.orig.tar.xz | head -1)
	rm -rf "$SRC_ROOT"/qemu-10.0.*/
	log "unpacking $(basename "$tarball")"
	tar -xJf "$tarball" -C "$SRC_ROOT"
	src=$(ls -d "$SRC_ROOT"/qemu-10.0.* | head -1)
	patch -d "$src" -p1 --quiet <"$TOP/qemu-device/qemu-graft.patch"
	touch "$src/.polar-grafted"
	rm -rf "$BUILD/qemu-build" "$BUILD/qemu-build-asan"
fi

# Copy only files whose content changed, so ninja rebuilds only them.
dev_dir=$src/hw/misc/polar-cim
mkdir -p "$dev_dir"
for f in "$TOP"/qemu-device/* "$TOP"/hw/polar_cim_hw.h; do
	case $f in *.patch|*.md) continue ;; esac
	[ -f "$f" ] || continue
	if ! cmp -s "$f" "$dev_dir/$(basename "$f")"; then
		cp "$f" "$dev_dir/"
	fi
done

if [ ! -f "$OBJ/build.ninja" ]; then
	log "configuring QEMU"
	mkdir -p "$OBJ"
	(cd "$OBJ" && "$src/configure" --python=/usr/bin/python3 \
		--cc="ccache gcc" --host-cc="ccache gcc" \
		--target-list=x86_64-softmmu --without-default-features \
		--disable-docs --disable-user --enable-tcg --enable-kvm \
		--enable-virtfs --enable-attr --enable-cap-ng \
		--disable-download --disable-install-blobs \
		--disable-werror "${SANITIZE[@]}" >&2)
fi
export CCACHE_DIR=${CCACHE_DIR:-$BUILD/ccache}
log "building qemu-system-x86_64 (ninja, ccache in $CCACHE_DIR)"
ninja -C "$OBJ" -j"$(nproc)" qemu-system-x86_64 >&2
echo "$BIN"
