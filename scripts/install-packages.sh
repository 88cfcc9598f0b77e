#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian packages that the build, the VM and the tests need,
# and any bookworm packages named as arguments (tests/onnx/onnx-client.sh
# asks for python3-torch this way). Idempotent: when every package is
# already installed it does nothing.
. "$(dirname "$0")/common.sh"

BOOKWORM_PKGS=(
	build-essential pkg-config ccache ninja-build
	libglib2.0-dev libpixman-1-dev python3-venv flex bison
	libfdt-dev libcap-ng-dev libattr1-dev
	busybox-static cpio kmod dwarves sparse bc xz-utils zstd
	libelf-dev
	liburing-dev libdrm-dev libopenblas-dev libjansson-dev zlib1g-dev
	liblapacke-dev
	seabios qemu-system-data
	dataset-fashion-mnist
	clang-14 libclang-rt-14-dev
	abigail-tools
	libprotobuf-c-dev protobuf-c-compiler libonnx-dev
)
BOOKWORM_PKGS+=("$@")
BACKPORTS_PKGS=(meson python3-pycotap)

missing=()
for p in "${BOOKWORM_PKGS[@]}" "${BACKPORTS_PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing+=("$p")
	fi
done
meson_ok=1
if ! meson_v=$(/usr/bin/meson --version 2>/dev/null) ||
   ! dpkg --compare-versions "$meson_v" ge 1.5; then
	meson_ok=0
fi
if [ ${#missing[@]} -eq 0 ] && [ $meson_ok = 1 ]; then
	exit 0
fi

log "installing: ${missing[*]}"
apt_private_init
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get "${APT_OPTS[@]}" -y -q install --no-install-recommends \
	"${BOOKWORM_PKGS[@]}" >&2
$SUDO apt-get "${APT_OPTS[@]}" -y -q install --no-install-recommends \
	-t bookworm-backports "${BACKPORTS_PKGS[@]}" >&2
