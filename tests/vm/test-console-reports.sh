#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The console report counter against a console transcript with one of
# each report (testdata/console-reports.txt: two KASAN reports, lockdep,
# atomic sleep, ODEBUG with its WARN banner, a plain WARNING, two kmemleak
# objects, dropped messages, and the stock /init's reprint that must not
# count twice): the counts and first lines must be the expected ones, and
# the console must pass through unchanged.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rc=0
awk -v out="$tmp/reports" -f "$here/console-reports.awk" \
	<"$here/testdata/console-reports.txt" >"$tmp/passed"
if cmp -s "$here/testdata/console-reports.txt" "$tmp/passed"; then
	echo "ok - console-reports: the console passes through unchanged"
else
	echo "not ok - console-reports: the console passes through unchanged"
	rc=1
fi
if diff -u "$here/testdata/console-reports.expected" "$tmp/reports"; then
	echo "ok - console-reports: every report counted once, with its test"
else
	echo "not ok - console-reports: every report counted once, with its test"
	rc=1
fi
exit $rc
