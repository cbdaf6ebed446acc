#!/usr/bin/env bash
# Compile cost of each core header alone (issue 13), header-only and compiled mode: CPU seconds
# (user + sys) and peak RSS of `g++ -std=c++20 -c` (no optimisation) for a unit that only
# includes the header, next to nlohmann/json.hpp and httplib.h alone. One compile at a time.
# Usage: bench/compile_headers.sh [compiler] [header...]   (default g++; headers relative to
# include/, default: the core's). RUNBOX_INCLUDE_DIR=dir measures other headers.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cxx=${1:-g++}
shift || true
headers=("$@")
if [ ${#headers[@]} -eq 0 ]; then
    headers=(runbox/error.hpp runbox/rpc_status.hpp runbox/detail/base64.hpp runbox/detail/python.hpp
             runbox/environment.hpp runbox/zip.hpp runbox/transport/transport.hpp runbox/transport/httplib.hpp
             runbox/config.hpp runbox/lifecycle.hpp runbox/events.hpp runbox/event_stream.hpp runbox/client.hpp)
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
flags=(-std=c++20 -c -I"${RUNBOX_INCLUDE_DIR:-$root/include}" $(pkg-config --cflags cpp-httplib libzip 2>/dev/null))

measure() {  # header, extra flags... -> "cpu_seconds peak_mb"
    local header=$1
    shift
    printf '#include <%s>\nint main() { return 0; }\n' "$header" >"$work/unit.cpp"
    /usr/bin/time -f '%U %S %M' -o "$work/time" "$cxx" "${flags[@]}" "$@" "$work/unit.cpp" -o "$work/unit.o"
    awk '{ printf "%.2f %.0f\n", $1 + $2, $3 / 1024 }' "$work/time"
}

echo "Machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); $("$cxx" --version | head -1); $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| header alone | header-only CPU s | MB | compiled mode CPU s | MB |"
echo "|---|---|---|---|---|"
for header in nlohmann/json.hpp httplib.h; do
    read -r s mb < <(measure "$header")
    echo "| <$header> (reference) | $s | $mb | | |"
done
for header in "${headers[@]}"; do
    read -r hs hmb < <(measure "$header")
    read -r cs cmb < <(measure "$header" -DRUNBOX_SEPARATE_COMPILATION)
    echo "| <$header> | $hs | $hmb | $cs | $cmb |"
done
