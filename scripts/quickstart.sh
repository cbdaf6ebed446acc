#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds examples/quickstart and runs it (local provider).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh
cmake --preset default >/dev/null
cmake --build --preset default -j2 --target quickstart
build/default/examples/quickstart "$@"
