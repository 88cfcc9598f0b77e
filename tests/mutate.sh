#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make mutate: does the test suite catch bugs? Applies each mutant of
# tests/mutants/mutants.tsv, one at a time, to a copy of the tree, rebuilds
# what it touches and runs the part of make check that should catch it
# (tests/run-checks.sh with CHECK_PARTS/CHECK_UNIT/polar_tests). A mutant
# is killed when that part fails, survives when it passes. A mutant whose
# text is not found exactly once, or whose tree does not build, is no
# valid mutant: reported as such, never as killed. The working tree is
# only read; everything happens in $BUILD/mutate.
#
#   tests/mutate.sh [ID...]   only these mutants (default: all)
#
# Prints one line per mutant, then "mutants=N killed=K survived=S", naming
# the survivors; exits non-zero when one survives that the table does not
# mark equivalent (tests/README.md argues each of those), or is invalid.
set -uo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
TABLE=${MUTANTS:-$TOP/tests/mutants/mutants.tsv}
# MUTATE_DIR: another work directory, so that runs over different
# mutants (tests/mutate.sh ID...) can go on at the same time.
work=${MUTATE_DIR:-$BUILD/mutate}
src=$work/src
mbuild=$work/build
logs=$work/logs
mkdir -p "$src" "$mbuild" "$logs"

log() { printf 'mutate: %s\n' "$*" >&2; }

# The copy: the working tree's files that git tracks or would (untracked,
# not ignored), so uncommitted tests count. A file that differs is
# rewritten (a new mtime), so make rebuilds what changed since last time.
sync_tree() {
	git -C "$TOP" ls-files -z --cached --others --exclude-standard |
		python3 -c '
import os, shutil, sys
top, dst = sys.argv[1:3]
for f in sys.stdin.buffer.read().decode().split("\0"):
    a, b = os.path.join(top, f), os.path.join(dst, f)
    if not f or not os.path.isfile(a):
        continue
    if os.path.isfile(b) and open(a, "rb").read() == open(b, "rb").read():
        continue
    os.makedirs(os.path.dirname(b), exist_ok=True)
    shutil.copyfile(a, b)
    shutil.copymode(a, b)
' "$TOP" "$src"
}

# The mutants' build tree: the downloaded kernel, headers and harness are
# shared read-only with $BUILD, QEMU's source and objects are copied once
# (a device mutant rebuilds the device into them), ccache is shared.
# The copied build.ninja names the device's sources relative
# (../qemu-src/...), so a mutant in the copy's qemu-src is what ninja
# compiles; it also names trees by absolute path (QEMU's own include
# directories, trace-events, its Python venv), those of the build it was
# configured in, which may be another worktree's ($BUILD's may be a copy
# of one). Pointing those at the copy would make ninja recompile all of
# QEMU (1581 steps), too long on this machine; instead build_and_check
# requires every device mutant to change qemu-system-x86_64, so a mutant
# that did not reach QEMU is INVALID, never killed or survived.
# Whether the copy's build.ninja compiles the device from the copy's
# qemu-src. Meson regenerates build.ninja when a meson.build changes (a
# device source file added) and then writes the source directory it was
# configured with, $BUILD's: the copy would compile $BUILD's sources and
# no device mutant would reach its QEMU (seen: every device mutant
# INVALID after the device gained cim_command.c). A fresh copy of $BUILD's
# build tree, which `make mutate` has just brought up to date, is right.
qemu_copy_builds_own_sources() {
	local rel
	rel=$(grep -o -m1 '[./]*qemu-src/qemu-10\.0\.[0-9]*/hw/misc/polar-cim/polar_cim\.c' \
		"$mbuild/qemu-build/build.ninja" 2>/dev/null) || return 1
	[ "$(cd "$mbuild/qemu-build" && realpath -m "$rel")" = \
	  "$(realpath -m "$mbuild/qemu-src")/${rel#*qemu-src/}" ]
}

seed_build() {
	local d
	for d in apt kernel kernel-tools models; do
		if [ -e "$BUILD/$d" ] && [ ! -e "$mbuild/$d" ]; then
			ln -s "$BUILD/$d" "$mbuild/$d"
		fi
	done
	if [ -x "$BUILD/qemu-build/qemu-system-x86_64" ] &&
		{ [ ! -x "$mbuild/qemu-build/qemu-system-x86_64" ] ||
		  ! qemu_copy_builds_own_sources; }; then
		log "copying QEMU's source and build tree"
		# (into a fresh directory first: an interrupted copy is not used)
		rm -rf "$mbuild/qemu-src" "$mbuild/qemu-build" "$mbuild/qemu.tmp"
		mkdir "$mbuild/qemu.tmp"
		cp -a -H "$BUILD/qemu-src" "$BUILD/qemu-build" "$mbuild/qemu.tmp/" &&
			mv "$mbuild/qemu.tmp/qemu-src" "$mbuild/qemu.tmp/qemu-build" \
				"$mbuild/" && rmdir "$mbuild/qemu.tmp"
	fi
}

export CCACHE_DIR=${CCACHE_DIR:-$BUILD/ccache}
# Through ccache, restoring a file after its mutant costs no compile.
cc=${CC:-gcc}
if command -v ccache >/dev/null; then
	cc="ccache $cc"
fi

# Replaces the one occurrence of $2 in file $1 by $3; fails unless the text
# occurs exactly once.
mutate_file() {
	python3 - "$1" "$2" "$3" <<'PY'
import sys
path, old, new = sys.argv[1:4]
# The table writes a tab as \t, a newline as \n, a backslash as \\.
old, new = (x.encode().decode("unicode_escape") for x in (old, new))
text = open(path).read()
n = text.count(old)
if n != 1:
    sys.stderr.write("%s: '%s' occurs %d times\n" % (path, old, n))
    sys.exit(1)
open(path, "w").write(text.replace(old, new))
PY
}

# Builds the copy and runs the check named in the table's third column:
#   unit:test_a,test_b   those host unit tests
#   vm:test_a,test_b     those kselftests in the VM (driver, device, library)
#   qtest                the device over qtest and the short device fuzz
#   tools                tests/tools.sh
# Returns 0 when the check passed, 1 when it failed, 2 when the build did.
build_and_check() { # check, log
	local check=$1 out=$2 kind=${1%%:*} names=${1#*:}
	qemu_now=
	# (the kernel module is built with the kernel's own CC, not ccache's)
	local m=(make --no-print-directory -C "$src" BUILD="$mbuild")
	case $kind in
	unit) "${m[@]}" CC="$cc" unit firmware >>"$out" 2>&1 || return 2 ;;
	vm) "${m[@]}" qemu firmware "$mbuild/initramfs-check.cpio.gz" \
		>>"$out" 2>&1 || return 2
	    qemu_now=$(sha256sum <"$mbuild/qemu-build/qemu-system-x86_64") ;;
	qtest) "${m[@]}" qemu firmware "$mbuild/tests/qtest/test_device" \
		"$mbuild/fuzz/device_fuzz" >>"$out" 2>&1 || return 2
	    qemu_now=$(sha256sum <"$mbuild/qemu-build/qemu-system-x86_64") ;;
	tools) "${m[@]}" CC="$cc" tools firmware >>"$out" 2>&1 || return 2 ;;
	*) echo "unknown check '$check'" >>"$out"; return 2 ;;
	esac
	# A device mutant must be in the QEMU it is tested with.
	if [ -n "$qemu_now" ] && [ "$device_mutant" = 1 ] &&
		[ "$qemu_now" = "$qemu_clean" ]; then
		echo "the mutant did not change qemu-system-x86_64" >>"$out"
		return 3
	fi
	local try rc attempt=$out.try
	for try in 1 2; do
		: >"$attempt"
		case $kind in
		unit) CHECK_PARTS=unit CHECK_UNIT=${names//,/ } \
			BUILD=$mbuild "$src/tests/run-checks.sh" >>"$attempt" 2>&1 ;;
		vm) CHECK_PARTS=vm POLAR_VM_APPEND=polar_tests=$names \
			BUILD=$mbuild "$src/tests/run-checks.sh" >>"$attempt" 2>&1 ;;
		qtest) CHECK_PARTS=qtest BUILD=$mbuild \
			"$src/tests/run-checks.sh" >>"$attempt" 2>&1 ;;
		tools) CHECK_PARTS=tools BUILD=$mbuild \
			"$src/tests/run-checks.sh" >>"$attempt" 2>&1 ;;
		esac
		rc=$?
		cat "$attempt" >>"$out"
		# QEMU aborting before the guest reported a test (TCG's
		# iotlb_to_section assertion under load, seen once in a
		# baseline) is no verdict on the tree: one more try, whose
		# result stands (a mutant that makes QEMU abort does so again).
		if [ "$kind" = vm ] && [ "$try" = 1 ] && [ "$rc" != 0 ] &&
			grep -q 'the VM run reported no test' "$attempt" &&
			grep -q 'QEMU exit status 134' "$attempt"; then
			echo "mutate: QEMU aborted before any test; again" >>"$out"
			continue
		fi
		break
	done
	rm -f "$attempt"
	[ "$rc" = 0 ] && return 0 || return 1
}

# A mutant's check must pass on the unmutated copy first, or the mutant
# cannot be said to be killed: it is then reported INVALID. Unit and tools
# checks get one baseline per kind (all unit programs, tools.sh); a VM
# check gets its own (exactly its kselftests): the whole VM suite at once
# has time-bounded tests (the ABI fuzzer's rate, the stress test's 60 s)
# that fail at load 25 and would void every VM mutant.
declare -A baseline=()
qemu_clean='' qemu_now='' device_mutant=0
baseline_ok() { # check
	local check=$1 kind=${1%%:*} key
	case $kind in
	vm) key=$check ;;
	*) key=$kind ;;
	esac
	if [ -z "${baseline[$key]:-}" ]; then
		case $kind in
		unit) check="unit:$(cd "$src/tests/unit" && ls test_*.c |
			sed 's/\.c$//' | paste -sd, -)" ;;
		esac
		local blog=$logs/baseline-${key//[:,]/-}.log
		: >"$blog"
		device_mutant=0
		build_and_check "$check" "$blog"
		baseline[$key]=$?
		case $kind in vm | qtest) qemu_clean=$qemu_now ;; esac
		log "baseline $key: $([ "${baseline[$key]}" = 0 ] && echo passes ||
			echo "FAILS (see $blog)")"
	fi
	[ "${baseline[$key]}" = 0 ]
}

only=" $* "
total=0 killed=0 survived=0 invalid=0 equivalent=0
survivors=() invalids=()
start=$(date +%s)
sync_tree
seed_build
# (a tab is whitespace to read, which would merge empty fields: use \037)
while IFS=$'\037' read -r id file check from to flag; do
	case $id in '' | '#'*) continue ;; esac
	if [ -n "${*:-}" ] && [[ $only != *" $id "* ]]; then
		continue
	fi
	total=$((total + 1))
	out=$logs/$id.log
	t0=$(date +%s)
	: >"$out"
	if ! baseline_ok "$check"; then
		verdict="INVALID (its check fails without the mutant)"
		invalid=$((invalid + 1))
		invalids+=("$id")
	elif ! mutate_file "$src/$file" "$from" "$to" 2>>"$out"; then
		verdict="INVALID (text not found once in $file)"
		invalid=$((invalid + 1))
		invalids+=("$id")
	else
		device_mutant=0
		case $file in qemu-device/*) device_mutant=1 ;; esac
		build_and_check "$check" "$out"
		case $? in
		0) if [ "$flag" = equivalent ]; then
			verdict="survived (equivalent: tests/README.md)"
			equivalent=$((equivalent + 1))
		   else
			verdict=SURVIVED
		   fi
		   survived=$((survived + 1))
		   survivors+=("$id") ;;
		1) verdict=killed; killed=$((killed + 1)) ;;
		3) verdict="INVALID (not compiled into QEMU)"
		   invalid=$((invalid + 1))
		   invalids+=("$id") ;;
		*) verdict="INVALID (does not build)"
		   invalid=$((invalid + 1))
		   invalids+=("$id") ;;
		esac
		# Back to the original content, with a new mtime.
		cat "$TOP/$file" >"$src/$file"
	fi
	printf '%-28s %-34s %-8s %4ss %s\n' "$id" "$file" "${check%%:*}" \
		$(($(date +%s) - t0)) "$verdict"
done < <(tr '\t' '\037' <"$TABLE")

# Leave the copy's build as the original tree builds it.
make --no-print-directory -C "$src" BUILD="$mbuild" CC="$cc" unit >/dev/null 2>&1
echo "mutants=$total killed=$killed survived=$survived${survivors[*]:+ (${survivors[*]})}${invalids[*]:+ invalid=$invalid (${invalids[*]})}"
echo "mutate: $(($(date +%s) - start)) s; logs in $logs"
[ $((survived - equivalent)) = 0 ] && [ "$invalid" = 0 ]
