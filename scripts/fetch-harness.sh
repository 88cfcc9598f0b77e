#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Extracts the kselftest harness and checkpatch.pl from Debian's
# linux-source-6.12 package (matching the guest kernel) into
# $BUILD/kernel-tools, once. Nothing of it is copied into the repository.
. "$(dirname "$0")/common.sh"

OUT=$BUILD/kernel-tools
if [ -f "$OUT/.done" ]; then
	exit 0
fi
apt_private_init
ver=$(apt-cache "${APT_OPTS[@]}" show -a linux-source-6.12 |
	awk '/^Version:/ { print $2 }' | sort -V | tail -1)
[ -n "$ver" ] || { log "linux-source-6.12 not found in bookworm-backports"; exit 1; }
log "extracting kselftest harness and checkpatch from linux-source-6.12 $ver"
tmp=$BUILD/tmp-linux-source
rm -rf "$OUT"
mkdir -p "$tmp" "$OUT"
if ! ls "$tmp"/linux-source-6.12_*.deb >/dev/null 2>&1; then
	(cd "$tmp" && apt-get "${APT_OPTS[@]}" -q download "linux-source-6.12=$ver" >&2)
fi
rm -rf "$tmp/x"
dpkg -x "$tmp"/linux-source-6.12_*.deb "$tmp/x"
tarball=$(ls "$tmp"/x/usr/src/linux-source-6.12*.tar.xz)
top=$(basename "$tarball" .tar.xz)
members=(
	tools/testing/selftests/kselftest_harness.h
	tools/testing/selftests/kselftest.h
	tools/testing/selftests/lib.mk
	scripts/checkpatch.pl
	scripts/spelling.txt
	scripts/const_structs.checkpatch
)
tar -xJf "$tarball" -C "$tmp" "${members[@]/#/$top/}"
for m in "${members[@]}"; do
	mkdir -p "$OUT/$(dirname "$m")"
	mv "$tmp/$top/$m" "$OUT/$m"
done
rm -rf "$tmp"
touch "$OUT/.done"
log "harness ready in $OUT"
