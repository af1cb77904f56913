#!/usr/bin/env bash
# Build the four image targets of deploy/docker/Dockerfile daemonless (podman/buildah, no Docker
# engine), on the debootstrapped base from build-base.sh, and report their sizes.
#
#   deploy/images/build.sh                   # all targets -> <IMAGE_PREFIX>-<target>, the compose files' names
#   deploy/images/build.sh edge worker       # some of them
#   deploy/images/build.sh standin-postgres standin-redis   # CI stand-ins (standins.Dockerfile)
#   BASE_IMAGE=python:3.11-slim-bookworm@sha256:... deploy/images/build.sh   # where a registry is reachable
#
# --format docker keeps HEALTHCHECK (the OCI format has no field for it). Layers are cached in podman's
# storage, so a rebuild with unchanged lock files reuses the dependency layers.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/images/podman-env.sh
source "$HERE/podman-env.sh"
cd "$IMAGES_ROOT"

TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=(worker control-plane data-plane edge standin-postgres standin-redis)
PREFIX="${IMAGE_PREFIX:-ghcr.io/example/lightweight-dataspace-connector:ci}"
BASE_IMAGE="${BASE_IMAGE:-$("$HERE/build-base.sh")}"

# The host's CA bundle reaches PyPI through a TLS-intercepting proxy; a build secret, never a layer.
secret=()
ca="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"
[[ -s "$ca" ]] && secret=(--secret "id=pip_cert,src=$ca")

mkdir -p "$IMAGES_CACHE"
# sizes.tsv: target, bytes, build seconds of the last build of each target (docs/deploy.md)
touch "$IMAGES_CACHE/sizes.tsv"
for target in "${TARGETS[@]}"; do
    start=$SECONDS
    case "$target" in
        standin-*)
            image="localhost/connector-standin:${target#standin-}"
            podman build --quiet --format docker --network host --layers \
                --build-arg "BASE_IMAGE=$BASE_IMAGE" -f deploy/images/standins.Dockerfile \
                --target "${target#standin-}" -t "$image" deploy/images >/dev/null
            ;;
        *)
            image="$PREFIX-$target"
            podman build --quiet --format docker --network host --layers \
                --build-arg "BASE_IMAGE=$BASE_IMAGE" "${secret[@]}" \
                -f deploy/docker/Dockerfile --target "$target" -t "$image" . >/dev/null
            ;;
    esac
    size="$(podman image inspect --format '{{.Size}}' "$image")"
    { grep -v "^$target	" "$IMAGES_CACHE/sizes.tsv" || true; printf '%s\t%s\t%s\n' "$target" "$size" "$((SECONDS - start))"; } \
        >"$IMAGES_CACHE/sizes.tsv.new"
    mv "$IMAGES_CACHE/sizes.tsv.new" "$IMAGES_CACHE/sizes.tsv"
    printf '[images] %-14s %4d MB  built in %3d s\n' "$target" "$((size / 1000000))" "$((SECONDS - start))" >&2
done
