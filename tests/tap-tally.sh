# SPDX-License-Identifier: MIT
# Sourced by tests/run-checks.sh (and tests/runner-test.sh): the one
# definition of "a test" and its verdict. A test is one TAP result line,
# whatever printed it:
#   ok 3 name              (a unit test function, a kselftest TEST)
#   ok - tools: name       (a tools.sh check, a fuzzer, a run-checks.sh step)
#   not ok ...             failed
#   ok ... # SKIP reason   skipped
# Assertions inside a test only reach the logs. A skip counts as skipped
# only when tests/skips-allowed names the test with a reason; any other
# skip is a test the CI platform supports that did not run, so it counts
# as failed.

passed=${passed:-0}
failed=${failed:-0}
skipped=${skipped:-0}
# Of the last tally: how many results it saw, and how many of them failed.
tally_results=0
tally_failed=0

# The allow-list, one "regex<TAB or spaces>reason" per line, '#' comments.
SKIPS_ALLOWED=${SKIPS_ALLOWED:-$(dirname "${BASH_SOURCE[0]}")/skips-allowed}

skip_allowed() { # test name: 0 when the allow-list names it
	local re reason
	[ -r "$SKIPS_ALLOWED" ] || return 1
	while read -r re reason; do
		case $re in '' | '#'*) continue ;; esac
		[ -n "$reason" ] || continue
		if [[ $1 =~ ^$re$ ]]; then
			return 0
		fi
	done <"$SKIPS_ALLOWED"
	return 1
}

tally() { # log file: adds its TAP results to passed/failed/skipped
	local line name reason
	tally_results=0
	tally_failed=0
	while IFS= read -r line; do
		line=${line%$'\r'}
		if [[ $line =~ ^not\ ok(\ [0-9]+)?\ (-\ )?(.*)$ ]]; then
			tally_results=$((tally_results + 1))
			tally_failed=$((tally_failed + 1))
			failed=$((failed + 1))
		elif [[ $line =~ ^ok(\ [0-9]+)?\ (-\ )?(.*)\ \#\ [Ss][Kk][Ii][Pp]\ ?(.*)$ ]]; then
			name=${BASH_REMATCH[3]} reason=${BASH_REMATCH[4]}
			tally_results=$((tally_results + 1))
			if skip_allowed "$name"; then
				skipped=$((skipped + 1))
			else
				echo "not ok - $name skipped, but this platform runs it: $reason"
				tally_failed=$((tally_failed + 1))
				failed=$((failed + 1))
			fi
		elif [[ $line =~ ^ok(\ [0-9]+)?\ (-\ )?(.*)$ ]]; then
			tally_results=$((tally_results + 1))
			passed=$((passed + 1))
		fi
	done <"$1"
}

# One result of run-checks.sh itself (a step that is one test).
result() { # 0/1, name
	if [ "$1" = 0 ]; then
		echo "ok - $2"
		passed=$((passed + 1))
	else
		echo "not ok - $2"
		failed=$((failed + 1))
	fi
}

suite_verdict() { # log, exit status, name: tallies the log; an exit status
	# that no failed test explains (a crash, a hung VM, a lost run) and a
	# suite that reported no test at all are each one failure more
	tally "$1"
	if [ "$2" != 0 ] && [ "$tally_failed" = 0 ]; then
		result 1 "$3 exited with status $2 (see $1)"
	fi
	if [ "$tally_results" = 0 ]; then
		result 1 "$3 reported no test"
	fi
}
