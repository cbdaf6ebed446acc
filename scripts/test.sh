#!/usr/bin/env bash
# The whole test suite: installs dependencies, then builds and runs ctest for each configuration
# (g++; g++ with ASan+UBSan; clang++). `scripts/test.sh default` runs one configuration.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh
presets=("$@")
[ "${#presets[@]}" -gt 0 ] || presets=(default asan clang)
for preset in "${presets[@]}"; do
    echo "==== $preset ===="
    start=$(date +%s)
    cmake --preset "$preset"
    cmake --build --preset "$preset" -j2
    # Every public header compiles on its own (g++; the other legs compile the same headers in the tests).
    [ "$preset" != default ] || cmake --build --preset "$preset" -j2 --target all_verify_interface_header_sets
    ctest --preset "$preset"
    echo "==== $preset: $(( $(date +%s) - start )) s ===="
done
