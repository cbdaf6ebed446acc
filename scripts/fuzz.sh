#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang++ 14, ASan + UBSan; Debian 12: libclang-rt-14-dev) in
# build/fuzz and, for each harness:
#   1. runs every generated deep / huge seed once (unless RUNBOX_FUZZ_BIG_SEEDS=0) (libFuzzer would truncate them to -max_len if
#      they were mutated, so they are replayed on their own);
#   2. fuzzes for SECONDS (default 60) from the committed corpus (new inputs go to build/fuzz/work).
# RUNBOX_FUZZ_JOBS harnesses run at a time (default 2), one core each.
# Prints executions and findings per harness; a finding's input is kept in build/fuzz/artifacts.
# Exits 1 when there was a finding. RUNBOX_FUZZ_HARNESSES="a b" picks harnesses.
set -euo pipefail
seconds=${1:-60}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build=build/fuzz
harnesses=(${RUNBOX_FUZZ_HARNESSES:-event_decoder python_literal bash_parse http_request})

mkdir -p "$build"
# The build's output goes to a log; on failure its tail is shown (a silent failure hid a clang error).
if ! { cmake -S . -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" -DRUNBOX_BUILD_FUZZERS=ON -DRUNBOX_BUILD_FUZZ_REPLAY=OFF \
        -DRUNBOX_BUILD_EXAMPLES=OFF -DRUNBOX_BUILD_BENCH=OFF -DRUNBOX_BUILD_CHECKS=OFF -DRUNBOX_TEST_PCH=OFF \
        -DRUNBOX_BUILD_CLI=OFF -DRUNBOX_INSTALL=OFF &&
     cmake --build "$build" -j"${RUNBOX_FUZZ_JOBS:-2}" --target "${harnesses[@]/#/fuzz_}"; } >"$build/build.log" 2>&1; then
    tail -n 40 "$build/build.log" >&2
    echo "fuzz: building the harnesses failed; the whole log: $build/build.log" >&2
    exit 1
fi
python3 tests/fuzz/gen_seeds.py "$build/seeds"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
# One harness: its big seeds, then SECONDS of fuzzing; its table row and finding count go to
# $build/results (harnesses run RUNBOX_FUZZ_JOBS at a time, default 2: one core each).
fuzz_harness() {
    local h=$1
    local bin="$build/tests/fuzz/fuzz_$h"
    local work="$build/work/$h" artifacts="$build/artifacts/$h" logs="$build/logs/$h"
    mkdir -p "$work" "$artifacts" "$logs"
    local findings=0 notes="" seeds=0 seed name start status execs
    # RUNBOX_FUZZ_BIG_SEEDS=0 skips them (scripts/test.sh: its legs replay them already, ctest -L fuzz).
    for seed in "$build/seeds/$h"/*; do
        [ "${RUNBOX_FUZZ_BIG_SEEDS:-1}" != 0 ] || break
        seeds=$((seeds + 1))
        name=$(basename "$seed")
        # (the braces keep bash's "Aborted" notice of a crashing seed out of the table)
        if ! { "$bin" -rss_limit_mb=1024 -timeout=60 -artifact_prefix="$artifacts/seed-$name-" "$seed" \
            >"$logs/seed-$name.log" 2>&1; } 2>/dev/null; then
            findings=$((findings + 1))
            notes+=" seed:$name"
        fi
    done
    start=$(date +%s)
    status=0
    { "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "$work" "tests/fuzz/corpus/$h" >"$logs/fuzz.log" 2>&1; } 2>/dev/null || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/fuzz.log" | tail -1)
    [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$logs/fuzz.log" | tail -1 | tr -d '#' || true)
    if [ "$status" -ne 0 ]; then
        findings=$((findings + 1))
        notes+=" fuzz:$(grep -m1 -o 'ERROR: [A-Za-z]*: [a-z-]*\|deadly signal\|out-of-memory\|timeout' "$logs/fuzz.log" || echo "exit $status")"
    fi
    notes+=" ($seeds big seeds, $(( $(date +%s) - start )) s fuzzing, logs: $logs)"
    printf '%-15s %12s %9s%s\n' "$h" "${execs:-0}" "$findings" "$notes" >"$build/results/$h.row"
    echo "$findings" >"$build/results/$h.findings"
}

rm -rf "$build/results"
mkdir -p "$build/results"
for h in "${harnesses[@]}"; do
    fuzz_harness "$h" &
    while [ "$(jobs -rp | wc -l)" -ge "${RUNBOX_FUZZ_JOBS:-2}" ]; do wait -n || true; done
done
wait
total_findings=0
printf '%-15s %12s %9s %s\n' harness executions findings notes
for h in "${harnesses[@]}"; do
    if [ -f "$build/results/$h.findings" ]; then
        cat "$build/results/$h.row"
        total_findings=$((total_findings + $(cat "$build/results/$h.findings")))
    else
        printf '%-15s %12s %9s %s\n' "$h" 0 1 " (the harness's run ended without a result)"
        total_findings=$((total_findings + 1))
    fi
done
[ "$total_findings" -eq 0 ] || { echo "fuzz: $total_findings finding(s); inputs in $build/artifacts"; exit 1; }
