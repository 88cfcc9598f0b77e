#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Compares the built libpolar-accel.so with the ABI baseline kept in this
# folder (lib/abi/README.md). Exit 0 when they are the same ABI; 1 with
# abidiff's report when they differ; --update rewrites the baseline.
# Usage: check-abi.sh [--update] path/to/libpolar-accel.so
set -uo pipefail
ABI_DIR=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$ABI_DIR/../.." && pwd)
update=0
if [ "${1:-}" = --update ]; then
	update=1
	shift
fi
so=${1:?usage: check-abi.sh [--update] libpolar-accel.so}
# One baseline per SONAME: a new major number starts a new ABI.
soname=$(objdump -p "$so" | awk '$1 == "SONAME" { print $2 }')
[ -n "$soname" ] || { echo "abi: $so has no SONAME"; exit 1; }
BASELINE=$ABI_DIR/$soname.abi
if [ $update = 0 ] && [ ! -f "$BASELINE" ]; then
	echo "abi: no baseline for $soname in lib/abi/: run 'make abi-baseline'"
	exit 1
fi
# Only what the public headers declare is the ABI; types private to the
# library's sources are left out of the comparison.
hdrs=(--headers-dir "$TOP/lib/include/polar")

if [ $update = 1 ]; then
	abidw --no-corpus-path --no-comp-dir-path "${hdrs[@]}" \
		--out-file "$BASELINE" "$so" || exit 1
	echo "abi: baseline rewritten: $BASELINE"
	exit 0
fi

abidiff --no-show-locs --headers-dir1 "$TOP/lib/include/polar" \
	--headers-dir2 "$TOP/lib/include/polar" "$BASELINE" "$so"
rc=$?
# abidiff's status is a bit field: 1 error, 2 usage, 4 a change that
# needs a human to judge it (an added function is compatible; a struct an
# application allocates that changed its layout is not), 8 a change that
# is incompatible for sure (a function removed).
if [ $rc = 0 ]; then
	echo "abi: $soname matches lib/abi/ ($(grep -c '<elf-symbol ' "$BASELINE") symbols)"
elif [ $((rc & 3)) != 0 ]; then
	echo "abi: abidiff could not compare (status $rc)"
elif [ $((rc & 8)) != 0 ]; then
	echo "abi: the change above breaks applications linked against $soname:" \
		"keep the old ABI, or bump LIB_SONAME and the baseline together"
else
	echo "abi: the ABI changed (above). If every change is compatible" \
		"(additions), run 'make abi-baseline' and commit lib/abi/ with it;" \
		"if not, keep the old ABI or bump LIB_SONAME"
fi
[ $rc = 0 ]
