#!/usr/bin/env bash
# Post-deploy smoke test: from outside through the Ingress, then inside the cluster.
#
#   deploy/tools/smoke-test.sh BASE_URL [--data-plane-url URL] [--namespace NS [--release NAME]]
#                              [--attempts N]
#
# Outside. The Ingress routes only /dsp, /.well-known and /public (values ingress.controlPlanePaths
# and dataPlanePaths); /health and /ready are not routed, so they are not probed from here. Probed:
#   GET  /.well-known/dspace-version   200 and announces DSP 2025-1
#   POST /dsp/2025-1/catalog/request   401 from the control plane itself (WWW-Authenticate realm
#                                      "dsp" and an X-Correlation-Id), not some proxy's answer
#   GET  /public/smoke-test            401 from the data plane itself (realm "data-plane")
# --data-plane-url: where /public is served when it is not BASE_URL (a local stack).
#
# Inside (with --namespace): every Deployment of the release is rolled out, and in each one's pod
# the process answers 200 on /ready on its own port (kubectl exec; the image has Python, no curl).
set -euo pipefail

usage() {
    sed -n '4,5p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

BASE_URL="${1:-}"
[[ -n "$BASE_URL" && "$BASE_URL" != -* ]] || usage
shift
DP_URL=""
NAMESPACE=""
RELEASE="connector"
ATTEMPTS=30
while (($#)); do
    case "$1" in
    --data-plane-url) DP_URL="${2:?}" && shift 2 ;;
    --namespace) NAMESPACE="${2:?}" && shift 2 ;;
    --release) RELEASE="${2:?}" && shift 2 ;;
    --attempts) ATTEMPTS="${2:?}" && shift 2 ;;
    *) usage ;;
    esac
done
BASE_URL="${BASE_URL%/}"
DP_URL="${DP_URL:-$BASE_URL}"
DP_URL="${DP_URL%/}"
SLEEP_SECONDS="${SMOKE_SLEEP_SECONDS:-10}"

fail() {
    echo "smoke test failed: $*" >&2
    exit 1
}

# request METHOD URL -> "<status> <response headers, lower-cased, one line>" (000 on connection errors)
request() {
    local headers status
    headers="$(mktemp)"
    status="$(curl -sS -o /dev/null -D "$headers" -w '%{http_code}' --max-time 10 -X "$1" \
        -H 'Content-Type: application/json' ${3:+--data "$3"} "$2" 2>/dev/null || echo 000)"
    printf '%s %s\n' "$status" "$(tr -d '\r' <"$headers" | tr 'A-Z\n' 'a-z ')"
    rm -f "$headers"
}

# ---- outside, through the Ingress -------------------------------------------------------------
version_url="$BASE_URL/.well-known/dspace-version"
for i in $(seq 1 "$ATTEMPTS"); do
    answer="$(request GET "$version_url")"
    [[ "${answer%% *}" == "200" ]] && break
    echo "attempt $i/$ATTEMPTS: /.well-known/dspace-version -> ${answer%% *}" >&2
    [[ "$i" == "$ATTEMPTS" ]] && fail "$version_url never answered 200"
    sleep "$SLEEP_SECONDS"
done
versions="$(curl -sS --max-time 10 "$version_url")"
grep -q '"2025-1"' <<<"$versions" || fail "/.well-known/dspace-version does not announce 2025-1: $versions"

answer="$(request POST "$BASE_URL/dsp/2025-1/catalog/request" '{}')"
[[ "${answer%% *}" == "401" ]] || fail "unauthenticated POST /dsp/2025-1/catalog/request -> ${answer%% *}, want 401"
grep -q 'www-authenticate: bearer realm="dsp"' <<<"$answer" ||
    fail "the 401 on /dsp does not come from the control plane: $answer"
grep -q 'x-correlation-id: ' <<<"$answer" || fail "the 401 on /dsp carries no X-Correlation-Id"

answer="$(request GET "$DP_URL/public/smoke-test")"
[[ "${answer%% *}" == "401" ]] || fail "GET /public/smoke-test without a token -> ${answer%% *}, want 401"
grep -q 'www-authenticate: bearer realm="data-plane"' <<<"$answer" ||
    fail "the 401 on /public does not come from the data plane: $answer"
echo "routed paths: /.well-known, /dsp (control plane) and /public (data plane) answer as the connector"

# ---- inside the cluster -----------------------------------------------------------------------
if [[ -z "$NAMESPACE" ]]; then
    echo "smoke test passed: $BASE_URL (no --namespace: in-cluster health not checked)"
    exit 0
fi
# "<name> <component>" per Deployment of the release
mapfile -t deployments < <(kubectl -n "$NAMESPACE" get deployments -l "app.kubernetes.io/instance=$RELEASE" \
    -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.metadata.labels.app\.kubernetes\.io/component}{"\n"}{end}')
((${#deployments[@]})) || fail "no Deployment of release $RELEASE in namespace $NAMESPACE"
for entry in "${deployments[@]}"; do
    deployment="${entry%% *}"
    component="${entry#* }"
    kubectl -n "$NAMESPACE" rollout status "deployment/$deployment" --timeout=300s >&2 ||
        fail "deployment/$deployment did not roll out"
    case "$component" in
    control-plane) port=3000 ;;
    data-plane) port=3001 ;;
    worker*) port=3002 ;; # the workers' health port
    *) echo "in cluster: deployment/$deployment ($component) rolled out" && continue ;;
    esac
    kubectl -n "$NAMESPACE" exec "deployment/$deployment" -- python -c \
        "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/ready', timeout=5)" ||
        fail "deployment/$deployment: /ready on port $port did not answer 200"
    echo "in cluster: deployment/$deployment ($component) ready on :$port"
done
echo "smoke test passed: $BASE_URL routed paths and ${#deployments[@]} deployments ready in $NAMESPACE"
