#!/usr/bin/env bash
# runbox-server (Release) under 50 honest clients, then the same plus one attacker doing issue 10's
# rows 5 and 6 at once; prints both rows and the server's peak RSS. Arguments go to attack_load
# (e.g. bench/attack_load.sh --seconds 60).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
cmake --preset release >/dev/null
cmake --build --preset release -j2 --target attack_load runbox-server >/dev/null
exec build/release/bench/attack_load build/release/examples/runbox-server "$@"
