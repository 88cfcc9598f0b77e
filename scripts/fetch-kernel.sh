#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Fetches Debian's bookworm-backports Linux 6.12 image, headers and kbuild
# packages into $BUILD/kernel, makes the headers usable from there, and runs
# depmod for the image's modules. The version comes from the metapackage.
# Prints nothing on stdout; $BUILD/kernel/env holds KREL, KDIR and VMLINUZ.
. "$(dirname "$0")/common.sh"

KROOT=$BUILD/kernel
ENV_FILE=$KROOT/env
if [ -f "$ENV_FILE" ]; then
	# shellcheck disable=SC1090
	. "$ENV_FILE"
	if [ -f "$VMLINUZ" ] && [ -f "$KDIR/Makefile" ]; then
		exit 0
	fi
fi

apt_private_init
meta_ver=$(apt-cache "${APT_OPTS[@]}" show -a linux-image-amd64 |
	awk '/^Version:/ { print $2 }' | grep bpo | sort -V | tail -1)
[ -n "$meta_ver" ] || { log "no linux-image-amd64 in bookworm-backports"; exit 1; }
image_pkg=$(apt-cache "${APT_OPTS[@]}" show "linux-image-amd64=$meta_ver" |
	awk -F': ' '/^Depends:/ { print $2; exit }' | tr ',' '\n' |
	sed -n 's/^ *\(linux-image-6\.12[^ ]*-amd64\).*/\1/p' | head -1)
[ -n "$image_pkg" ] || { log "cannot resolve the 6.12 image from the metapackage"; exit 1; }
KREL=${image_pkg#linux-image-}
ABI=${KREL%-amd64}
pkgs=("linux-image-$KREL" "linux-headers-$KREL" "linux-headers-$ABI-common"
      "linux-kbuild-${ABI%+deb12}+deb12")
# The unsigned image is the one that carries the modules.
if apt-cache "${APT_OPTS[@]}" show "linux-image-$KREL-unsigned" >/dev/null 2>&1; then
	pkgs[0]="linux-image-$KREL-unsigned"
fi
log "kernel $KREL: ${pkgs[*]}"

rm -rf "$KROOT"
mkdir -p "$KROOT/debs" "$KROOT/root"
(cd "$KROOT/debs" && apt-get "${APT_OPTS[@]}" -q download "${pkgs[@]}" >&2)
for deb in "$KROOT"/debs/*.deb; do
	dpkg -x "$deb" "$KROOT/root"
done

KDIR=$KROOT/root/usr/src/linux-headers-$KREL
# The arch headers' Makefile includes the common tree by absolute path.
sed -i "s|/usr/src/linux-headers-$ABI-common|$KROOT/root/usr/src/linux-headers-$ABI-common|g" \
	"$KDIR/Makefile"
depmod -b "$KROOT/root" "$KREL"

cat >"$ENV_FILE" <<ENV
KREL=$KREL
KDIR=$KDIR
VMLINUZ=$KROOT/root/boot/vmlinuz-$KREL
MODROOT=$KROOT/root/lib/modules/$KREL
ENV
log "kernel ready: $KDIR"
