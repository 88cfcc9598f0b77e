#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make coverage: runs the gcov-instrumented unit tests, then prints the line
# coverage of each file of lib/src and of the engine the library shares with
# the device (qemu-device/cim_*.c), and one total line for lib/.
# Usage: coverage.sh BUILD test-binary...
set -uo pipefail
BUILD=$1
shift
export POLAR_FIRMWARE=${POLAR_FIRMWARE:-$BUILD/firmware/polar_cim.fw}
status=0
for t in "$@"; do
	if ! "$t" >"$t.log" 2>&1; then
		echo "coverage: $(basename "$t") failed (see $t.log)" >&2
		status=1
	fi
done

# gcov prints, per source it was asked about and per header inlined into
# it, "File 'x'" then "Lines executed:P% of N"; only the source itself
# counts here.
report() { # label, object dir, sources...
	local label=$1 objdir=$2
	shift 2
	local src line file pct n total=0 hit=0
	for src in "$@"; do
		file='' pct='' n=''
		while IFS= read -r line; do
			case $line in
			"File '"*) file=${line#File \'}; file=${file%\'} ;;
			"Lines executed:"*)
				if [ "$file" = "$src" ]; then
					pct=${line#Lines executed:}; pct=${pct%%\%*}
					n=${line##* of }
				fi ;;
			esac
		done < <(gcov -n -o "$objdir/$(dirname "$src")" "$src" 2>/dev/null)
		if [ -z "$n" ]; then
			# No notes file: the source is not in the instrumented build.
			printf '  %-32s  no gcov data\n' "$src"
			status=1
			continue
		fi
		local h
		h=$(awk -v p="$pct" -v n="$n" 'BEGIN { printf "%d", p * n / 100 + 0.5 }')
		printf '  %-32s %6.2f%% of %5d lines\n' "$src" "$pct" "$n"
		total=$((total + n))
		hit=$((hit + h))
	done
	awk -v l="$label" -v h="$hit" -v t="$total" 'BEGIN {
		printf "%s: %.1f%% of %d lines (%d executed)\n", l, t ? 100 * h / t : 0, t, h }'
}

echo "line coverage by the host unit tests (gcov):"
report "lib/ line coverage" "$BUILD/obj/cov" lib/src/*.c
report "engine (qemu-device/cim_*.c) line coverage" "$BUILD/obj/cov" \
	qemu-device/cim_*.c
echo "Not counted: the device backend's paths that only the VM's kselftests reach."
exit $status
