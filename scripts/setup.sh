#!/usr/bin/env bash
# Installs what runbox needs on Debian 12 (bookworm): compilers, CMake, the library dependencies,
# and the npm packages of the SDK conformance tests. Idempotent: installs only what is missing and
# says what it installs. Works as root or through sudo.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

packages=(
    build-essential g++ clang cmake ninja-build pkg-config python3   # toolchain
    nlohmann-json3-dev libboost-dev libcpp-httplib-dev libssl-dev     # library dependencies
    libzip-dev libcurl4-openssl-dev
    catch2                                                           # tests (Catch2 v2 on Debian 12)
    nodejs npm                                                       # official SDK conformance tests
    python3-httpx                                                    # bench: the HTTP client OpenHands uses
    procps                                                           # ps/pkill used by tests
)

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo_cmd=(sudo); else
        echo "setup: run as root or install sudo" >&2; exit 1; fi
fi

missing=()
for package in "${packages[@]}"; do
    # A package counts as present when dpkg says so, or when it is a toolchain piece already on PATH.
    if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then continue; fi
    case "$package" in
        nodejs) command -v node >/dev/null 2>&1 && continue ;;
        npm) command -v npm >/dev/null 2>&1 && continue ;;
        python3) command -v python3 >/dev/null 2>&1 && continue ;;
        cmake) command -v cmake >/dev/null 2>&1 && continue ;;
    esac
    missing+=("$package")
done

if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    echo "setup: all Debian packages present"
fi

# Conformance tests run the providers' official TypeScript SDKs, pinned by lock files.
for dir in "$root"/tests/conformance/*/; do
    [ -f "$dir/package-lock.json" ] || continue
    if [ -d "$dir/node_modules" ] && [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
        continue
    fi
    echo "setup: npm ci in ${dir#"$root"/}"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
done
