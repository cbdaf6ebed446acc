#!/usr/bin/env bash
# The whole test suite: installs dependencies, then builds and runs ctest for each configuration
# (g++; g++ with ASan+UBSan; clang++: all header-only; g++ in compiled mode, `compiled`: the test
# programs against runbox::compiled, RUNBOX_SEPARATE_COMPILATION), then the Release build of what
# bench/run.sh runs (the `release` leg: GCC's optimised builds warn where -O0 does not, and no
# other leg builds them), then a short libFuzzer run of each harness (the `fuzz` leg,
# scripts/fuzz.sh). `scripts/test.sh default` runs one leg.
# Every leg that was asked for runs, even after one fails; the run ends with one line per leg
# (passed / failed / not built) and fails if any leg did not pass.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh
# The SDK conformance tests fail here instead of skipping when Node or an SDK is missing.
export RUNBOX_REQUIRE_CONFORMANCE=1
legs=("$@")
[ "${#legs[@]}" -gt 0 ] || legs=(default asan clang compiled release fuzz)

summary=()
failed=0
for leg in "${legs[@]}"; do
    echo "==== $leg ===="
    start=$(date +%s)
    log=build/test-$leg.log
    mkdir -p build
    rm -f "$log"
    result="passed"
    if [ "$leg" = fuzz ]; then
        # 30 s of fuzzing per harness; the deep and huge seeds were replayed by every other leg.
        RUNBOX_FUZZ_BIG_SEEDS=0 scripts/fuzz.sh "${RUNBOX_FUZZ_SECONDS:-30}" 2>&1 | tee "$log" || result="failed"
    elif [ "$leg" = release ]; then
        # Built, not run: timings are bench/run.sh's, never a pass/fail test's.
        { cmake --preset release &&
          cmake --build --preset release -j2 --target bench_runbox soak_lifecycle runbox-server; } 2>&1 | tee "$log" ||
            result="not built"
    elif ! { cmake --preset "$leg" &&
           cmake --build --preset "$leg" -j2 &&
           # Every public header compiles on its own (g++; the other legs compile the same headers in the tests).
           { [ "$leg" != default ] || cmake --build --preset "$leg" -j2 --target all_verify_interface_header_sets; }; }; then
        result="not built"
    elif ! ctest --preset "$leg" 2>&1 | tee "$log"; then   # pipefail: ctest's status counts
        result="failed"
    fi
    counts=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$log" 2>/dev/null | tail -n 1 || true)
    [ "$result" = "not built" ] && counts=""
    [ "$result" = passed ] || failed=1
    summary+=("test.sh: $leg: $result${counts:+ ($counts)} in $(( $(date +%s) - start )) s")
    echo "==== $leg: $result ===="
done
printf '%s\n' "${summary[@]}"
exit "$failed"
