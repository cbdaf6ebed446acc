#!/usr/bin/env bash
# Compile cost of one translation unit (issue 13): CPU seconds (user + sys) and peak RSS of
# `g++ -std=c++20 -c` (no optimisation) for a one-line use of each entry point, against the
# json + httplib baseline, header-only and in compiled mode (the same units compiled with
# -DRUNBOX_SEPARATE_COMPILATION, as a program that links runbox::compiled compiles them; the
# definitions they no longer compile are in runbox::compiled's one unit, src/runbox.cpp).
# Runs the units one after another (never in parallel, so the peak memory is one compiler's);
# on a shared machine the CPU seconds vary by about 10%.
# Usage: bench/compile.sh [compiler]   (default g++; e.g. bench/compile.sh clang++)
# RUNBOX_INCLUDE_DIR=dir measures other headers (e.g. an older checkout's include/).
# RUNBOX_COMPILE_UNITS="client local" measures only those units (names below).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cxx=${1:-g++}
include=${RUNBOX_INCLUDE_DIR:-$root/include}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# cpp-httplib's flags come from pkg-config: Debian's split build changes class layouts with them.
flags=(-std=c++20 -c -I"$include" $(pkg-config --cflags cpp-httplib libzip 2>/dev/null))

cat >"$work/baseline.cpp" <<'CPP'
#include <httplib.h>
#include <nlohmann/json.hpp>
int main() { httplib::Client c("http://127.0.0.1:1"); return c.Get("/")->status + nlohmann::json::parse("1").get<int>(); }
CPP
# The issue's client unit: make_runtime over cloud providers, no local provider (no server).
cat >"$work/client.cpp" <<'CPP'
#include <runbox/any_runtime.hpp>
#include <runbox/providers/daytona.hpp>
#include <runbox/providers/runloop.hpp>
int main() { runbox::Config c; runbox::EventStream s; auto r = runbox::make_runtime<boost::mp11::mp_list<runbox::daytona::Auth, runbox::runloop::Auth>>("daytona", c, s); r.connect(); r.close(); return 0; }
CPP
cat >"$work/daytona.cpp" <<'CPP'
#include <runbox/runtime.hpp>
#include <runbox/providers/daytona.hpp>
int main() { runbox::Config c; runbox::EventStream s; runbox::DaytonaRuntime r(c, s); r.connect(); r.close(); return 0; }
CPP
cat >"$work/local.cpp" <<'CPP'
#include <runbox/runbox.hpp>
int main() { runbox::Config c; runbox::EventStream s; runbox::LocalRuntime r(c, s); r.connect(); (void)r.run("true"); r.close(); return 0; }
CPP
cat >"$work/factory.cpp" <<'CPP'
#include <runbox/factory.hpp>
int main() { runbox::Config c; runbox::EventStream s; auto r = runbox::make_runtime("local", c, s); r.connect(); r.close(); return 0; }
CPP

label() {
    case $1 in
        client) echo 'client: any_runtime.hpp + daytona + runloop, make_runtime<cloud list>' ;;
        daytona) echo 'runtime.hpp + providers/daytona.hpp, DaytonaRuntime' ;;
        local) echo 'with local: runbox.hpp, LocalRuntime connect/run/close' ;;
        factory) echo 'with local: factory.hpp, make_runtime("local")' ;;
    esac
}
goal() {  # the issue's goal for a unit, x baseline
    case $1:$2 in
        header-only:client | header-only:daytona) echo '<= 2' ;;
        header-only:*) echo '<= 3' ;;
        *) echo '<= 1.5' ;;
    esac
}

measure() {  # unit, extra flags... -> "cpu_seconds peak_mb"
    local unit=$1
    shift
    /usr/bin/time -f '%U %S %M' -o "$work/time" "$cxx" "${flags[@]}" "$@" "$work/$unit.cpp" -o "$work/$unit.o"
    awk '{ printf "%.1f %.0f\n", $1 + $2, $3 / 1024 }' "$work/time"
}

units=(${RUNBOX_COMPILE_UNITS:-client daytona local factory})
compiled=yes
[ -f "$include/runbox/src.hpp" ] || compiled=no  # an older checkout has no compiled mode

echo "Machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); $("$cxx" --version | head -1); $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| mode | unit | CPU s | peak MB | x baseline (CPU) | goal |"
echo "|---|---|---|---|---|---|"
read -r base_s base_mb < <(measure baseline)
echo "| - | nlohmann/json + httplib, one line | $base_s | $base_mb | 1.0 | |"
for mode in header-only compiled; do
    extra=()
    if [ "$mode" = compiled ]; then
        [ "$compiled" = yes ] || continue
        extra=(-DRUNBOX_SEPARATE_COMPILATION)
    fi
    for unit in "${units[@]}"; do
        if [ "$unit" = client ] && [ ! -f "$include/runbox/any_runtime.hpp" ]; then continue; fi
        read -r s mb < <(measure "$unit" "${extra[@]}")
        echo "| $mode | $(label "$unit") | $s | $mb | $(awk -v a="$s" -v b="$base_s" 'BEGIN { printf "%.1f", a / b }') | $(goal "$mode" "$unit") |"
    done
done
