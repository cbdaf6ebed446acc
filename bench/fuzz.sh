#!/usr/bin/env bash
# The longer fuzz run: every harness for SECONDS (default 600) each; prints executions and findings.
set -euo pipefail
exec "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/scripts/fuzz.sh" "${1:-600}"
