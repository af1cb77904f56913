#!/usr/bin/env bash
# Post-deploy smoke test: the control plane is healthy, ready and speaks DSP.
#   deploy/tools/smoke-test.sh https://connector.staging.example.com [attempts]
set -euo pipefail

BASE_URL="${1:?usage: smoke-test.sh BASE_URL [attempts]}"
ATTEMPTS="${2:-30}"
BASE_URL="${BASE_URL%/}"

probe() {
    # prints the HTTP status of GET $1 (000 on connection errors)
    curl -sS -o /dev/null -w '%{http_code}' --max-time 10 "$1" 2>/dev/null || echo 000
}

for i in $(seq 1 "$ATTEMPTS"); do
    status="$(probe "$BASE_URL/health")"
    if [[ "$status" == "200" ]]; then
        break
    fi
    echo "attempt $i/$ATTEMPTS: /health -> $status" >&2
    if [[ "$i" == "$ATTEMPTS" ]]; then
        echo "smoke test failed: $BASE_URL/health never returned 200" >&2
        curl -sS --max-time 10 "$BASE_URL/health" >&2 || true
        exit 1
    fi
    sleep 10
done

for path in /ready /.well-known/dspace-version; do
    status="$(probe "$BASE_URL$path")"
    if [[ "$status" != "200" ]]; then
        echo "smoke test failed: $path -> $status" >&2
        exit 1
    fi
done

versions="$(curl -sS --max-time 10 "$BASE_URL/.well-known/dspace-version")"
if ! grep -q '2025-1' <<<"$versions"; then
    echo "smoke test failed: /.well-known/dspace-version does not announce 2025-1: $versions" >&2
    exit 1
fi
echo "smoke test passed: $BASE_URL is healthy, ready and announces DSP 2025-1"
