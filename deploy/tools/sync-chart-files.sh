#!/usr/bin/env bash
# Copy the canonical observability files from ops/ into the Helm chart (Helm can only read files inside
# the chart directory). Run after editing ops/prometheus/rules.yml or ops/grafana/dashboards/*.json;
# deploy/check.sh and tests/deploy fail while the copies differ.
#   bash deploy/tools/sync-chart-files.sh           # copy
#   bash deploy/tools/sync-chart-files.sh --check   # only compare (exit 1 on drift)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CHART="$ROOT/deploy/helm/connector/files"
mode="${1:-copy}"
status=0

pairs=("$ROOT/ops/prometheus/rules.yml:$CHART/prometheus/rules.yml")
for f in "$ROOT"/ops/grafana/dashboards/*.json; do
    pairs+=("$f:$CHART/dashboards/$(basename "$f")")
done

for pair in "${pairs[@]}"; do
    src="${pair%%:*}"
    dst="${pair#*:}"
    if [[ "$mode" == "--check" ]]; then
        if ! cmp -s "$src" "$dst"; then
            echo "drift: ${dst#"$ROOT"/} differs from ${src#"$ROOT"/} (run deploy/tools/sync-chart-files.sh)" >&2
            status=1
        fi
    else
        mkdir -p "$(dirname "$dst")"
        cp "$src" "$dst"
    fi
done

# Dashboards removed from ops/ must disappear from the chart too.
for dst in "$CHART"/dashboards/*.json; do
    [[ -e "$dst" ]] || continue
    if [[ ! -e "$ROOT/ops/grafana/dashboards/$(basename "$dst")" ]]; then
        if [[ "$mode" == "--check" ]]; then
            echo "drift: ${dst#"$ROOT"/} has no source in ops/grafana/dashboards" >&2
            status=1
        else
            rm -f "$dst"
        fi
    fi
done
exit "$status"
