#!/usr/bin/env bash
# Install what building and running the images daemonless needs, from Debian's packages: podman
# (with runc, the network plugins and slirp4netns) and debootstrap. Idempotent; podman-compose and the
# Compose v2 binary come with .venv-tools (deploy/tools/install.sh).
set -euo pipefail

# dnsname: compose services find each other by name on the CNI networks podman 4.3 makes.
PACKAGES=(podman runc debootstrap slirp4netns fuse-overlayfs uidmap containernetworking-plugins
    golang-github-containernetworking-plugin-dnsname
    catatonit iptables gpg curl)
missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "[images] installing ${missing[*]}" >&2
    SUDO=""
    if [[ "$(id -u)" != "0" ]]; then
        command -v sudo >/dev/null 2>&1 || { echo "[images] need root or sudo for apt-get" >&2; exit 1; }
        SUDO="sudo"
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
podman --version >&2
