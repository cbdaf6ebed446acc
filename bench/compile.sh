#!/usr/bin/env bash
# Compile cost of one translation unit (issue 13): CPU seconds (user + sys) and peak RSS of
# `g++ -std=c++20 -c` (no optimisation) for a one-line use of each entry point, against the
# json + httplib baseline. Runs the units one after another (never in parallel, so the peak
# memory is one compiler's); on a shared machine the CPU seconds vary by a few percent.
# Usage: bench/compile.sh [compiler]   (default g++; e.g. bench/compile.sh clang++)
# RUNBOX_INCLUDE_DIR=dir measures other headers (e.g. an older checkout's include/).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cxx=${1:-g++}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# cpp-httplib's flags come from pkg-config: Debian's split build changes class layouts with them.
flags=(-std=c++20 -c -I"${RUNBOX_INCLUDE_DIR:-$root/include}" $(pkg-config --cflags cpp-httplib libzip 2>/dev/null))

cat >"$work/baseline.cpp" <<'CPP'
#include <httplib.h>
#include <nlohmann/json.hpp>
int main() { httplib::Client c("http://127.0.0.1:1"); return c.Get("/")->status + nlohmann::json::parse("1").get<int>(); }
CPP
cat >"$work/umbrella_local.cpp" <<'CPP'
#include <runbox/runbox.hpp>
int main() { runbox::Config c; runbox::EventStream s; runbox::LocalRuntime r(c, s); r.connect(); (void)r.run("true"); r.close(); return 0; }
CPP
cat >"$work/factory_local.cpp" <<'CPP'
#include <runbox/factory.hpp>
int main() { runbox::Config c; runbox::EventStream s; auto r = runbox::make_runtime("local", c, s); r.connect(); r.close(); return 0; }
CPP
cat >"$work/runtime_daytona.cpp" <<'CPP'
#include <runbox/runtime.hpp>
#include <runbox/providers/daytona.hpp>
int main() { runbox::Config c; runbox::EventStream s; runbox::DaytonaRuntime r(c, s); r.connect(); r.close(); return 0; }
CPP

cat >"$work/any_runtime_cloud.cpp" <<'CPP'
#include <runbox/any_runtime.hpp>
#include <runbox/providers/daytona.hpp>
#include <runbox/providers/runloop.hpp>
int main() { runbox::Config c; runbox::EventStream s; auto r = runbox::make_runtime<boost::mp11::mp_list<runbox::daytona::Auth, runbox::runloop::Auth>>("daytona", c, s); r.connect(); r.close(); return 0; }
CPP

measure() {  # prints "cpu_seconds peak_mb"
    /usr/bin/time -f '%U %S %M' -o "$work/time" "$cxx" "${flags[@]}" "$work/$1.cpp" -o "$work/$1.o"
    awk '{ printf "%.1f %.0f\n", $1 + $2, $3 / 1024 }' "$work/time"
}

echo "Machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); $("$cxx" --version | head -1); $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| unit | CPU s | peak MB | x baseline (CPU) |"
echo "|---|---|---|---|"
read -r base_s base_mb < <(measure baseline)
echo "| nlohmann/json + httplib, one line | $base_s | $base_mb | 1.0 |"
for unit in umbrella_local factory_local runtime_daytona any_runtime_cloud; do
    case $unit in
        umbrella_local) label='runbox.hpp, LocalRuntime connect/run/close' ;;
        factory_local) label='factory.hpp, make_runtime("local")' ;;
        runtime_daytona) label='runtime.hpp + providers/daytona.hpp, DaytonaRuntime' ;;
        any_runtime_cloud) label='any_runtime.hpp + daytona + runloop, make_runtime<cloud list>' ;;
    esac
    if [ "$unit" = any_runtime_cloud ] && [ ! -f "${RUNBOX_INCLUDE_DIR:-$root/include}/runbox/any_runtime.hpp" ]; then continue; fi
    read -r s mb < <(measure "$unit")
    echo "| $label | $s | $mb | $(awk -v a="$s" -v b="$base_s" 'BEGIN { printf "%.1f", a / b }') |"
done
