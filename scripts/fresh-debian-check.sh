#!/usr/bin/env bash
# The README's Quick start on a freshly installed Debian 12, as a new user would run it: a
# debootstrapped bookworm root (Debian's own packages only), a clone of this repository's HEAD
# inside it, then `scripts/quickstart.sh` and `scripts/test.sh` with their times.
#
#   scripts/fresh-debian-check.sh [--root DIR] [--keep-root] [--only-prepare] [LEG...]
#
# --root DIR      where the Debian root lives (default /var/tmp/runbox-fresh-bookworm); a root that
#                 was bootstrapped before is reused only with --keep-root (otherwise it is made anew)
# --only-prepare  bootstrap the root and stop (to overlap the download with other work)
# LEG...          passed to scripts/test.sh (default: every leg)
# Needs root, debootstrap and the Debian archive; the host's extra CA certificates are copied in.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
root=/var/tmp/runbox-fresh-bookworm
keep=0
only_prepare=0
legs=()
while [ $# -gt 0 ]; do
    case "$1" in
        --root) root=$2; shift 2 ;;
        --keep-root) keep=1; shift ;;
        --only-prepare) only_prepare=1; shift ;;
        -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) legs+=("$1"); shift ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "fresh-check: run as root (debootstrap and chroot need it)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "fresh-check: install debootstrap first (apt-get install debootstrap)" >&2; exit 1; }
mirror=${RUNBOX_DEBIAN_MIRROR:-http://deb.debian.org/debian}

mounted=()
cleanup() {
    local i
    for (( i=${#mounted[@]}-1; i>=0; i-- )); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT

if [ "$keep" -eq 0 ] || [ ! -f "$root/.runbox-bootstrapped" ]; then
    echo "fresh-check: debootstrap bookworm into $root"
    rm -rf "$root"
    mkdir -p "$root"
    start=$(date +%s)
    debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 ||
        { echo "fresh-check: debootstrap failed, see $root.debootstrap.log" >&2; exit 1; }
    echo "deb $mirror bookworm main" >"$root/etc/apt/sources.list"
    echo "deb $mirror bookworm-updates main" >>"$root/etc/apt/sources.list"
    echo "deb http://deb.debian.org/debian-security bookworm-security main" >>"$root/etc/apt/sources.list"
    touch "$root/.runbox-bootstrapped"
    echo "fresh-check: debootstrap took $(( $(date +%s) - start )) s"
fi
[ "$only_prepare" -eq 0 ] || exit 0

# What a new user's machine has beyond the installer: the host's extra CA certificates (an egress
# proxy's, where there is one) and DNS.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
for fs in proc sys dev dev/pts; do
    mkdir -p "$root/$fs"
    case "$fs" in
        proc) mount -t proc proc "$root/proc" ;;
        sys) mount -t sysfs sys "$root/sys" ;;
        dev) mount --bind /dev "$root/dev" ;;
        dev/pts) mount -t devpts devpts "$root/dev/pts" -o newinstance,ptmxmode=0666 ;;
    esac
    mounted+=("$root/$fs")
done

in_root() { chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

# The user's first steps: git to clone (the README says so), CA certificates for the registries.
echo "fresh-check: apt-get install git ca-certificates (the README's prerequisites)"
in_root bash -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends git ca-certificates && update-ca-certificates' \
    >"$root.prereq.log" 2>&1 || { echo "fresh-check: prerequisites failed, see $root.prereq.log" >&2; exit 1; }

rm -rf "$root/root/runbox" "$root/root/runbox.git"
git clone -q --bare "$repo" "$root/root/runbox.git"
in_root git clone -q /root/runbox.git /root/runbox
echo "fresh-check: cloned $(git -C "$repo" rev-parse --short HEAD)"

status=0
start=$(date +%s)
if in_root bash -c 'cd /root/runbox && scripts/quickstart.sh' >"$root.quickstart.log" 2>&1; then
    echo "fresh-check: scripts/quickstart.sh passed in $(( $(date +%s) - start )) s"
else
    echo "fresh-check: scripts/quickstart.sh FAILED after $(( $(date +%s) - start )) s, see $root.quickstart.log" >&2
    status=1
fi
start=$(date +%s)
if in_root bash -c 'cd /root/runbox && scripts/test.sh "$@"' test.sh "${legs[@]}" >"$root.test.log" 2>&1; then
    echo "fresh-check: scripts/test.sh ${legs[*]:-} passed in $(( $(date +%s) - start )) s"
else
    echo "fresh-check: scripts/test.sh ${legs[*]:-} FAILED after $(( $(date +%s) - start )) s, see $root.test.log" >&2
    status=1
fi
grep -E '^test\.sh: ' "$root.test.log" || true
exit "$status"
