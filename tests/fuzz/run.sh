#!/bin/sh
# run.sh: runs each libFuzzer target for SECONDS from a scratch copy of its
# committed corpus (new inputs stay in build/fuzz, never in tests/). Exits 1
# when any target finds a crash, a leak, a timeout (a hang: 5 s per input)
# or an out-of-memory; the input that did it is kept and named.
#
#   sh tests/fuzz/run.sh SECONDS TARGET...      (make fuzz calls it)
#   build/fuzz/fuzz_TARGET FILE                 replays one input
set -u
secs=$1
shift
failed=""
for t in "$@"; do
	work=build/fuzz/work-$t
	art=build/fuzz/artifacts
	rm -rf "$work"
	mkdir -p "$work" "$art"
	cp tests/fuzz/corpus/"$t"/* "$work"/
	echo "=== fuzz_$t for ${secs}s"
	if build/fuzz/fuzz_"$t" -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$art/$t-" "$work" >"build/fuzz/$t.log" 2>&1; then
		grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|DONE' \
			"build/fuzz/$t.log"
	else
		echo "fuzz_$t FAILED; the input is in $art/ (replay: build/fuzz/fuzz_$t FILE):"
		grep -E 'ERROR|SUMMARY|Test unit written|timeout|leak' "build/fuzz/$t.log" | head -20
		failed="$failed $t"
	fi
done
if [ -n "$failed" ]; then
	echo "fuzz: FAILED:$failed"
	exit 1
fi
echo "fuzz: no findings"
