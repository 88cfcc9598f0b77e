#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run-fuzz.sh SECONDS SEED: runs each libFuzzer target of build/fuzz for
# SECONDS with the fixed -seed=SEED on a working corpus (the generated seeds
# plus what earlier runs found), and prints one "ok - fuzz_x" or
# "not ok - fuzz_x" line per target. A crash, leak, sanitizer report or
# timeout fails the target; the reproducer is left in build/fuzz/artifacts.
set -uo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$TOP/build}
secs=$1 seed=$2
dir=$BUILD/fuzz
rc=0
mkdir -p "$dir/artifacts"
for name in safetensors idx firmware onnx; do
	fz=$dir/fuzz_$name
	corpus=$dir/corpus/$name
	log=$dir/fuzz_$name.log
	mkdir -p "$corpus"
	echo "fuzz: fuzz_$name -seed=$seed -max_total_time=$secs (corpus $corpus)"
	# -rss_limit_mb and -timeout bound each input; leaks are checked
	# (ASan's LeakSanitizer, on by default); UB aborts (no recovery).
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	"$fz" -seed="$seed" -max_total_time="$secs" -timeout=10 \
		-rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
		-artifact_prefix="$dir/artifacts/fuzz_$name-" \
		"$corpus" "$dir/seeds/$name" >"$log" 2>&1
	frc=$?
	runs=$(grep -E '^stat::number_of_executed_units:' "$log" | awk '{print $2}')
	cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -o 'cov: [0-9]*' | awk '{print $2}')
	if [ "$frc" = 0 ] && ! grep -E -q 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log"; then
		echo "ok - fuzz_$name runs=${runs:-?} cov=${cov:-?} seed=$seed time=${secs}s"
	else
		grep -E -A30 'ERROR:|runtime error:|==ERROR' "$log" | head -60
		echo "not ok - fuzz_$name (exit $frc, log $log, artifacts $dir/artifacts)"
		rc=1
	fi
done
exit $rc
