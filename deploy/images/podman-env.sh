# shellcheck shell=bash
# Sourced by the image scripts: a containers.conf of our own (CONTAINERS_CONF), so nothing under
# /etc/containers changes. Podman 4.3's defaults fail on CI-like machines: crun cannot set up the
# cgroups there (runc can), and its default ulimits ask for more open files than the hard limit.
IMAGES_ROOT="${IMAGES_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
IMAGES_CACHE="${IMAGES_CACHE:-$IMAGES_ROOT/.cache/images}"
mkdir -p "$IMAGES_CACHE"
_nofile="$(ulimit -Hn)"
[[ "$_nofile" == "unlimited" ]] && _nofile=1048576
cat >"$IMAGES_CACHE/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=${_nofile}:${_nofile}", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF
export CONTAINERS_CONF="$IMAGES_CACHE/containers.conf"
unset _nofile
