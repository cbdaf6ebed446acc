#!/usr/bin/env bash
# Runs runbox's benchmarks (Release build) and prints one Markdown table.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh >/dev/null
mkdir -p build
# The build's output goes to a log; on failure its tail is shown (a silent exit 1 said nothing).
if ! { cmake --preset release && cmake --build --preset release -j2 --target bench_runbox soak_lifecycle runbox-server; } >build/bench-build.log 2>&1; then
    tail -n 30 build/bench-build.log
    echo "bench/run.sh: the release build failed (build/bench-build.log)" >&2
    exit 1
fi
bin=build/release

key=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
workdir=$(mktemp -d)
log=$(mktemp)
SESSION_API_KEY=$key "$bin/examples/runbox-server" 0 --working-dir "$workdir" --host 127.0.0.1 --no-enable-browser >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$workdir" "$log"' EXIT
for _ in $(seq 1 500); do grep -q "listening on" "$log" && break; sleep 0.01; done
url=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$log" | head -1)
[ -n "$url" ] || { echo "runbox-server did not start:"; cat "$log"; exit 1; }

results=$( "$bin/bench/bench_runbox" local; "$bin/bench/bench_runbox" client "$url" "$key"; /usr/bin/python3 bench/httpx_client.py "$url" "$key" )

value() { echo "$results" | awk -v n="$1" '$1 == n { print $2 }'; }
p90() { echo "$results" | awk -v n="$1" '$1 == n { print $3 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }

echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); $(date -u +%Y-%m-%d)"
echo
echo "| measurement | median (ms) | p90 (ms) | goal |"
echo "|---|---|---|---|"
echo "| local: connect() to ready | $(value local_connect_to_ready) | $(p90 local_connect_to_ready) | < 50 |"
echo "| local: run(\"echo hi\") round trip | $(value local_run_echo) | $(p90 local_run_echo) | < 5 |"
echo "| runbox client: GET /alive | $(value client_alive) | $(p90 client_alive) | |"
echo "| httpx client: GET /alive | $(value httpx_alive) | $(p90 httpx_alive) | |"
echo "| runbox client: run(\"echo hi\") | $(value client_run_echo) | $(p90 client_run_echo) | |"
echo "| httpx client: run(\"echo hi\") | $(value httpx_run_echo) | $(p90 httpx_run_echo) | |"
echo
echo "httpx / runbox, /alive: $(ratio "$(value httpx_alive)" "$(value client_alive)")x; run(\"echo hi\"): $(ratio "$(value httpx_run_echo)" "$(value client_run_echo)")x"

# The lifecycle soak (issue 11): connect/run/close cycles over the cloud fakes with faults.
echo
echo "Lifecycle soak ($(date -u +%H:%M:%S) UTC):"
echo
"$bin/bench/soak_lifecycle" "${RUNBOX_SOAK_CYCLES:-1000}" 2>/dev/null
