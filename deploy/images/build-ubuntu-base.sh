#!/usr/bin/env bash
# A fresh Ubuntu 24.04 (noble) root file system as a podman image, for the edge installer test:
# minbase + python3 (as on an Ubuntu server), without python3-venv. Debian ships no Ubuntu archive
# keyring, so the ubuntu-keyring package is taken from the archive and accepted only if it holds the
# Ubuntu Archive Automatic Signing Key (2018) by fingerprint; debootstrap then checks the Release
# signature with it.
#
#   deploy/images/build-ubuntu-base.sh     # prints the image reference (reused while unchanged)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/images/podman-env.sh
source "$HERE/podman-env.sh"

SUITE=noble
MIRROR="${UBUNTU_MIRROR:-http://archive.ubuntu.com/ubuntu}"
ARCHIVE_KEY=F6ECB3762474EDA9D21B7022871920D1991BC93C
TAG="localhost/connector-test-ubuntu:${SUITE}-$(sha256sum "$HERE/build-ubuntu-base.sh" | cut -c1-12)"

log() { printf '[ubuntu-base] %s\n' "$*" >&2; }

if podman image exists "$TAG"; then
    echo "$TAG"
    exit 0
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/ubuntu-base.XXXXXX")"
trap 'rm -rf "$work"' EXIT
start=$SECONDS

deb="$(curl -fsS "$MIRROR/dists/$SUITE/main/binary-amd64/Packages.gz" | zcat \
    | awk '/^Package: ubuntu-keyring$/,/^$/' | sed -n 's/^Filename: //p' | head -n1)"
[[ -n "$deb" ]] || { log "no ubuntu-keyring in $MIRROR $SUITE"; exit 1; }
curl -fsS -o "$work/keyring.deb" "$MIRROR/$deb"
dpkg-deb -x "$work/keyring.deb" "$work/keyring"
keyring="$work/keyring/usr/share/keyrings/ubuntu-archive-keyring.gpg"
gpg --show-keys --with-colons "$keyring" 2>/dev/null | grep -q "^fpr:*$ARCHIVE_KEY:" \
    || { log "ubuntu-archive-keyring.gpg lacks $ARCHIVE_KEY: refusing it"; exit 1; }

log "debootstrap $SUITE from $MIRROR"
# debootstrap of Debian 12 has no noble script; noble bootstraps like every Ubuntu since gutsy.
debootstrap --variant=minbase --keyring="$keyring" --include=python3,ca-certificates \
    "$SUITE" "$work/root" "$MIRROR" /usr/share/debootstrap/scripts/gutsy >"$work/log" 2>&1 \
    || { tail -n 30 "$work/log" >&2; exit 1; }
echo "deb $MIRROR $SUITE main universe" >"$work/root/etc/apt/sources.list"
echo "deb $MIRROR $SUITE-updates main universe" >>"$work/root/etc/apt/sources.list"
rm -rf "$work"/root/var/lib/apt/lists/* "$work"/root/var/cache/apt/*.bin
tar --numeric-owner -C "$work/root" -c . | podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' - "$TAG" >/dev/null
log "$TAG in $((SECONDS - start)) s"
echo "$TAG"
