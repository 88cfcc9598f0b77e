#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The counting of tests/run-checks.sh (tests/tap-tally.sh) on made-up logs:
# each suite's TAP forms, a skip the allow-list names (counted as skipped)
# and one it does not (counted as failed), and assertion or comment lines
# that are not tests. Prints one TAP line; exits non-zero on a miscount.
set -uo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/allowed" <<'ALLOW'
# comment
lib\.layer_across_two_devices	a one-device machine
test_no_reason
ALLOW
cat >"$tmp/log" <<'LOG'
TAP version 13
1..6
# Starting 6 tests from 1 test cases.
#  RUN           lib.layer_sums_match_sim_uring ...
ok 1 lib.layer_sums_match_sim_uring
not ok 2 lib.layer_sums_match_sim_ioctl
ok 3 lib.layer_across_two_devices # SKIP one device only (start the VM with two)
ok 4 lib.failed_job_reported_uring # SKIP no io_uring path: EOPNOTSUPP
ok 5 test_no_reason # SKIP listed without a reason
ok 6 test_xfail # XFAIL counted as passed
# Totals: pass:2 fail:1 xfail:0 xpass:0 skip:3 error:0
  tests/unit/test_quant.c:12: CHECK(x) failed ok 7 not a result
ok - tools: train an MLP for one epoch
not ok - tools: eval on sim
ok - fuzz_idx runs=104045 cov=40 seed=1 time=10s
12 passed, 0 failed, 0 skipped
LOG

passed=0 failed=0 skipped=0
SKIPS_ALLOWED=$tmp/allowed
# shellcheck source=tests/tap-tally.sh
. "$TOP/tests/tap-tally.sh"
tally "$tmp/log" >"$tmp/out"
got="$passed passed, $failed failed, $skipped skipped; results $tally_results, failed $tally_failed"
want="4 passed, 4 failed, 1 skipped; results 9, failed 4"
if [ "$got" = "$want" ] &&
	grep -q '^not ok - lib.failed_job_reported_uring skipped, but this platform runs it: no io_uring path: EOPNOTSUPP$' "$tmp/out" &&
	grep -q '^not ok - test_no_reason skipped' "$tmp/out"; then
	echo "ok - runner: tests counted, unexpected skips failed"
else
	echo "  got:  $got" >&2
	echo "  want: $want" >&2
	cat "$tmp/out" >&2
	echo "not ok - runner: tests counted, unexpected skips failed"
	exit 1
fi
