#!/usr/bin/env bash
# Installs what runbox needs on Debian 12 (bookworm). Idempotent: installs only what is missing.
# Works as root or through sudo. One line per step; the package managers' output goes to a log
# file whose path is printed when a step fails.
#
#   scripts/setup.sh               everything the test suite needs (scripts/test.sh runs this)
#   scripts/setup.sh --quickstart  only what scripts/quickstart.sh needs: compiler, CMake and the
#                                  library's dependencies (Debian's archive only, no npm registry)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
scope=tests
case "${1:-}" in
    --quickstart) scope=quickstart ;;
    "") ;;
    *) echo "usage: scripts/setup.sh [--quickstart]" >&2; exit 2 ;;
esac

# What building a program that uses runbox needs.
library_packages=(
    g++ cmake ninja-build pkg-config                                  # toolchain
    nlohmann-json3-dev libboost-dev libcpp-httplib-dev libssl-dev     # library dependencies
    libzip-dev
    libcli11-dev                                                      # the runbox command line
    libcurl4-openssl-dev libprotozero-dev libtomlplusplus-dev         # opt-in: CurlTransport and Modal (gRPC, ~/.modal.toml)
)
# What the test suite needs beyond that.
test_packages=(
    clang libclang-rt-14-dev                 # the clang leg; libFuzzer and the sanitizer runtimes
    catch2 python3 procps git                # tests, the single-header check, ps/pkill, FetchContent
    libnghttp2-dev                           # the HTTP/2 loopback test server
    protobuf-compiler libprotobuf-dev        # the reference the Modal codec is checked against, byte for byte
    doxygen                                  # the API reference, built with warnings as errors
    npm                                      # only to install the pinned Node.js (tools/node) from the npm registry
    python3-httpx                            # bench: the HTTP client OpenHands uses
)

log=${RUNBOX_SETUP_LOG:-$root/build/setup.log}
mkdir -p "$(dirname "$log")"
: >"$log"

# step TEXT COMMAND...: one line on the terminal, the command's output in the log.
step() {
    local text=$1; shift
    printf 'setup: %s ... ' "$text"
    local start=$SECONDS
    if "$@" >>"$log" 2>&1; then
        echo "ok ($(( SECONDS - start )) s)"
    else
        echo "FAILED"
        echo "setup: '$text' failed; the last lines of $log:" >&2
        tail -n 20 "$log" >&2
        echo "setup: the whole log: $log" >&2
        exit 1
    fi
}

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo_cmd=(sudo); else
        echo "setup: run as root or install sudo" >&2; exit 1; fi
fi

packages=("${library_packages[@]}")
[ "$scope" = quickstart ] || packages+=("${test_packages[@]}")
missing=()
for package in "${packages[@]}"; do
    if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then continue; fi
    # An npm client or CMake already on PATH (from elsewhere than Debian) serves as well.
    case "$package" in
        npm|cmake) command -v "$package" >/dev/null 2>&1 && continue ;;
    esac
    missing+=("$package")
done

apt_install() {
    "${sudo_cmd[@]}" apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "$@"
}
if [ "${#missing[@]}" -gt 0 ]; then
    step "apt-get install ${missing[*]}" apt_install "${missing[@]}"
else
    echo "setup: Debian packages: all present"
fi
[ "$scope" = tests ] || exit 0

# The SDK conformance tests run on the Node.js pinned in tools/node (Debian 12's nodejs is 18; the
# SDKs need 20), installed from the npm registry as a package, with the npm pinned beside it.
node_dir=$root/tools/node
pinned_bin=$node_dir/bin
# The official Node binary trusts its own CA bundle; Debian's store (with any CA the machine's
# administrator added, such as an egress proxy's) is added to it, as Debian's own nodejs does.
if [ -z "${NODE_EXTRA_CA_CERTS:-}" ] && [ -r /etc/ssl/certs/ca-certificates.crt ]; then
    export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
fi
fresh() { [ -d "$1/node_modules" ] && [ "$1/node_modules/.package-lock.json" -nt "$1/package-lock.json" ]; }
npm_ci() { (cd "$1" && npm ci --no-audit --no-fund --loglevel=warn); }
# tools/node/bin holds node and npm, linked by this script (npm's own .bin links depend on its version).
link_pinned() {
    local arch
    case "$(uname -m)" in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) echo "no pinned Node.js for $(uname -m)"; return 1 ;; esac
    [ -x "$node_dir/node_modules/node-linux-$arch/bin/node" ] || { echo "node-linux-$arch was not installed"; return 1; }
    mkdir -p "$pinned_bin"
    ln -sfn "../node_modules/node-linux-$arch/bin/node" "$pinned_bin/node"
    ln -sfn ../node_modules/npm/bin/npm-cli.js "$pinned_bin/npm"
    "$pinned_bin/node" --version
}
if fresh "$node_dir" && [ -x "$pinned_bin/node" ]; then
    echo "setup: Node.js $("$pinned_bin/node" --version) (tools/node): present"
else
    step "Node.js and npm pinned in tools/node (npm registry)" npm_ci "$node_dir"
    step "link tools/node/bin/node and npm" link_pinned
fi

# The providers' official TypeScript SDKs, pinned by lock files, installed by the pinned npm on the
# pinned Node.js.
for dir in "$root"/tests/conformance/*/; do
    dir=${dir%/}
    [ -f "$dir/package-lock.json" ] || continue
    fresh "$dir" && continue
    step "npm ci in ${dir#"$root"/} (npm registry)" env PATH="$pinned_bin:$PATH" bash -c "$(declare -f npm_ci); npm_ci '$dir'"
done
