#!/usr/bin/env bash
# Make the Debian 12 base image the Dockerfile builds on where no registry of images is reachable:
# debootstrap from the Debian mirror this machine's apt uses, then `podman import`. It stands in for
# python:3.11-slim-bookworm (Python 3.11 from Debian's python3 packages, `python` on PATH, venv,
# CA certificates, netbase, tzdata), so the Dockerfile is the same for both.
#
#   deploy/images/build-base.sh            # prints the image reference (reused while this file is unchanged)
#   deploy/images/build-base.sh --refresh  # rebuild (e.g. for newer security updates)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/images/podman-env.sh
source "$HERE/podman-env.sh"

SUITE=bookworm
PACKAGES=python3,python3-venv,python-is-python3,ca-certificates,netbase,tzdata
# The tag follows this script: any change to the recipe makes a new base.
TAG="localhost/connector-base:${SUITE}-$(sha256sum "$HERE/build-base.sh" | cut -c1-12)"

log() { printf '[build-base] %s\n' "$*" >&2; }

if [[ "${1:-}" != "--refresh" ]] && podman image exists "$TAG"; then
    echo "$TAG"
    exit 0
fi

for tool in debootstrap podman; do
    command -v "$tool" >/dev/null 2>&1 || { log "$tool missing: run deploy/images/install-tools.sh"; exit 2; }
done

# The mirror apt already uses here (deb822 or one-line sources); deb.debian.org otherwise.
mirror="$(grep -rhE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
    | grep -oE 'https?://[^ ]+/debian/?$|https?://[^ ]+/debian/? ' | tr -d ' ' | head -n1 || true)"
mirror="${mirror:-http://deb.debian.org/debian}"
mirror="${mirror%/}"
security="${mirror%/debian}/debian-security"

work="$(mktemp -d "${TMPDIR:-/tmp}/connector-base.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/root"
start=$SECONDS
log "debootstrap $SUITE from $mirror"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

cat >"$root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
rm -f "$root/etc/apt/sources.list"
# Security updates now; no docs, man pages or locales in any image (as the slim images do).
cat >"$root/etc/dpkg/dpkg.cfg.d/excludes" <<'EXCLUDES'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EXCLUDES
# apt keeps no package cache in an image layer (as the official Debian images are configured).
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'APTCLEAN'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APTCLEAN
cp /etc/resolv.conf "$root/etc/resolv.conf"
chroot "$root" /bin/sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -qq -y upgrade \
    && apt-get clean' >"$work/upgrade.log" 2>&1 || { tail -n 30 "$work/upgrade.log" >&2; exit 1; }
find "$root/usr/share/doc" -mindepth 2 -not -name copyright -not -type d -delete
rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
    "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/* "$root"/tmp/* \
    "$root"/etc/resolv.conf "$root"/etc/hostname
: >"$root/etc/machine-id"
find "$root/usr/lib/python3.11" -name __pycache__ -prune -exec rm -rf {} +

tar --numeric-owner -C "$root" -c . | podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$TAG" >/dev/null
log "$TAG in $((SECONDS - start)) s, $(podman image inspect --format '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}')"
echo "$TAG"
