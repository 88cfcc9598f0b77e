#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the debug guest kernel (KASAN, lockdep, atomic-sleep checks,
# kmemleak, debug objects) from Debian's linux-source-6.12 of the same
# version as the stock guest kernel, with scripts/debug-kernel.config over
# tinyconfig (a defconfig-based one took too long to build on the shared
# 2-core machine). The result is cached in $BUILD/debug-kernel/<key>,
# keyed on the source version, the config fragment and the compiler, so a
# second run reuses it; objects go through ccache ($BUILD/ccache).
# Writes $BUILD/debug-kernel/env in the format of $BUILD/kernel/env (KREL,
# KDIR, VMLINUZ, MODROOT); POLAR_KENV=$BUILD/debug-kernel/env makes the VM
# scripts use it. Prints nothing on stdout.
. "$(dirname "$0")/common.sh"

OUT=$BUILD/debug-kernel
FRAGMENT=$TOP/scripts/debug-kernel.config
mkdir -p "$OUT"

# The stock kernel's version, so that both guests run the same source.
[ -f "$BUILD/kernel/env" ] || "$TOP/scripts/fetch-kernel.sh"
image_deb=$(ls "$BUILD"/kernel/debs/linux-image-*.deb | head -1)
ver=$(dpkg-deb -f "$image_deb" Version)
key=$( { echo "$ver"; cat "$FRAGMENT"; gcc --version | head -1; } |
	sha256sum | cut -c1-12)
obj=$OUT/$key
env_file=$OUT/env

write_env() {
	local krel
	krel=$(cat "$obj/include/config/kernel.release")
	cat >"$env_file" <<ENV
KREL=$krel
KDIR=$obj
VMLINUZ=$obj/arch/x86/boot/bzImage
MODROOT=$obj/modroot
DEBUG_KERNEL=1
ENV
}

if [ -f "$obj/.done" ]; then
	write_env
	exit 0
fi

src=$OUT/src-$ver
if [ ! -f "$src/.done" ]; then
	apt_private_init
	log "debug kernel: fetching linux-source-6.12 $ver"
	tmp=$OUT/tmp-source
	rm -rf "$tmp" "$src"
	mkdir -p "$tmp"
	(cd "$tmp" && apt-get "${APT_OPTS[@]}" -q download "linux-source-6.12=$ver" >&2)
	dpkg -x "$tmp"/linux-source-6.12_*.deb "$tmp/x"
	mkdir -p "$src"
	tar -xJf "$tmp"/x/usr/src/linux-source-6.12.tar.xz -C "$src" \
		--strip-components=1
	rm -rf "$tmp"
	touch "$src/.done"
fi

export CCACHE_DIR=${CCACHE_DIR:-$BUILD/ccache}
# Same timestamp and host every build, so that ccache hits across keys.
export KBUILD_BUILD_TIMESTAMP="linux-source-6.12 $ver"
export KBUILD_BUILD_USER=polar KBUILD_BUILD_HOST=polar-accel
kmake=(nice make -C "$src" O="$obj" CC="ccache gcc" LOCALVERSION=-polar-debug)
jobs=${POLAR_KERNEL_JOBS:-2}

log "debug kernel: configuring $ver in $obj"
mkdir -p "$obj"
"${kmake[@]}" -s tinyconfig >&2
"$src/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" \
	"$FRAGMENT" >/dev/null
"${kmake[@]}" -s olddefconfig >&2
# A symbol the fragment sets that Kconfig did not keep (a dependency
# missing, a name gone) would silently drop a checker: refuse.
missing=0
while read -r line; do
	sym=$(grep -oE 'CONFIG_[A-Z0-9_]+' <<<"$line")
	if ! grep -qxF "$line" "$obj/.config"; then
		log "debug kernel: config wants '$line', got '$(grep -E "^$sym=|# $sym is not set" "$obj/.config")'"
		missing=1
	fi
done < <(grep -E '^CONFIG_|^# CONFIG_.* is not set' "$FRAGMENT")
[ "$missing" = 0 ] || exit 1

log "debug kernel: building (make -j$jobs, ccache in $CCACHE_DIR; long when cold)"
"${kmake[@]}" -j"$jobs" bzImage modules >"$obj/build.log" 2>&1 || {
	tail -30 "$obj/build.log" >&2
	exit 1
}
rm -rf "$obj/modroot"
"${kmake[@]}" -s INSTALL_MOD_PATH="$obj/modroot-tmp" modules_install >&2
krel=$(cat "$obj/include/config/kernel.release")
mv "$obj/modroot-tmp/lib/modules/$krel" "$obj/modroot"
rm -rf "$obj/modroot-tmp"
touch "$obj/.done"
write_env
log "debug kernel ready: $obj ($krel)"
