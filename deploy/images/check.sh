#!/usr/bin/env bash
# Build the images daemonless and run them (make images-check; a step of make deploy-check):
#   1. Debian 12 base by debootstrap, the four targets and the CI stand-ins (build.sh)
#   2. tests/deploy -m images: the edge compose file under podman-compose, docker-compose.yaml
#      under Compose v2 against `podman system service`, the edge installer in Debian/Ubuntu
#      containers, the worker's pg_dump against a Postgres of the production major
# Needs .venv-tools (deploy/tools/install.sh) and the project venv (.venv).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
start=$SECONDS
bash deploy/images/install-tools.sh
bash deploy/images/build.sh
echo "[images] built in $((SECONDS - start)) s" >&2
PY="${DEPLOY_CHECK_PYTHON:-$ROOT/.venv/bin/python}"
"$PY" -m pytest -q -p no:cacheprovider -m images --basetemp="$ROOT/var/images-check" tests/deploy
echo "[images] images-check in $((SECONDS - start)) s" >&2
