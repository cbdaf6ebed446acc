#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine with what the quickstart needs (Debian packages only), builds
# examples/quickstart and the `runbox` command line, and runs the quickstart on the local provider.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/setup.sh --quickstart
echo "quickstart: configuring and building examples/quickstart and the runbox command line (build/quickstart)"
cmake --preset quickstart >build/quickstart-configure.log 2>&1 ||
    { cat build/quickstart-configure.log >&2; exit 1; }
cmake --build --preset quickstart -j2
build/quickstart/examples/quickstart "$@"
echo "quickstart: the command line is build/quickstart/examples/runbox (try: build/quickstart/examples/runbox run -- echo hi)"
