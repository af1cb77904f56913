"""deploy/edge/install-edge.sh, the real script, as root in fresh Debian 12 and Ubuntu 24.04
containers (deploy/images/build-base.sh, build-ubuntu-base.sh; no systemd there, so the installer's
background path runs).

The Debian container walks the cases in order: without python3-venv and --no-apt it says what
to run; a too-old Python; over a half-built venv (what a failed `python3 -m venv` leaves) a full
install that installs python3-venv itself, rebuilds the venv, starts `connector up` and waits for
/health; a re-run. The Ubuntu one is a server as installed: python3 3.12 without python3-venv.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.deploy_testlib import ROOT
from tests.deploy.images_testlib import base_image, podman, run

pytestmark = [pytest.mark.deploy, pytest.mark.images]

CA = Path("/etc/ssl/certs/ca-certificates.crt")
INSTALLER = "/src/edge/install-edge.sh"
# pip's download cache outlives the containers (git-ignored), so a second run downloads nothing.
PIP_CACHE = ROOT / ".cache" / "images" / "pip"


def mounts(wheel: Path) -> list[str]:
    PIP_CACHE.mkdir(parents=True, exist_ok=True)
    out = ["-v", f"{ROOT / 'deploy' / 'edge'}:/src/edge:ro", "-v", f"{wheel.parent}:/src/dist:ro"]
    out += ["-v", f"{PIP_CACHE}:/root/.cache/pip"]
    if CA.exists():  # a TLS-intercepting proxy's CA for pip; a test container, never an image
        out += ["-v", f"{CA}:/etc/ssl/host-ca.crt:ro", "-e", "PIP_CERT=/etc/ssl/host-ca.crt"]
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [ROOT / ".venv" / "bin" / "python", "-m", "pip", "wheel", "--quiet", "--no-deps",
         "--wheel-dir", out, ROOT],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (found,) = out.glob("lightweight_dataspace_connector-*.whl")
    return found


@pytest.fixture(scope="module")
def debian(wheel: Path) -> Iterator[str]:
    name = "connector-installer-debian"
    podman("rm", "-f", "-t", "0", name, check=False)
    podman("run", "-d", "--name", name, *mounts(wheel), base_image(), "sleep", "infinity")
    try:
        yield name
    finally:
        podman("rm", "-f", "-t", "5", name, check=False)


def sh(container: str, script: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return podman("exec", container, "sh", "-c", script, check=False, timeout=timeout)


def wheel_arg(wheel: Path) -> str:
    return f"--wheel /src/dist/{wheel.name}"


def test_without_venv_and_without_apt_it_says_what_to_run(debian: str, wheel: Path) -> None:
    gone = sh(
        debian, "dpkg -r python3-venv python3.11-venv >/dev/null && ! python3 -c 'import ensurepip'"
    )
    assert gone.returncode == 0, gone.stdout + gone.stderr
    proc = sh(debian, f"bash {INSTALLER} {wheel_arg(wheel)} --no-apt")
    assert proc.returncode != 0
    assert "run: apt-get install -y python3.11-venv" in proc.stderr, proc.stderr
    assert sh(debian, "test ! -e /opt/connector/venv").returncode == 0, "no half-built venv left"


def test_too_old_python_is_refused_in_one_line(debian: str, wheel: Path) -> None:
    # Debian 12 has no Python older than 3.11: a stand-in answers the installer's two probes (the
    # version check and the version string) as Ubuntu 22.04's Python 3.10 does.
    old = "/usr/local/bin/python3.10"
    stub = (
        "#!/bin/sh\n"
        'case "$*" in *version_info*) exit 1 ;; *python_version*) echo 3.10.12; exit 0 ;; esac\n'
        'exec python3 "$@"\n'
    )
    made = podman("exec", "-i", debian, "sh", "-c", f"cat > {old} && chmod +x {old}", check=False,
                  stdin=stub)  # fmt: skip
    assert made.returncode == 0, made.stderr
    proc = sh(debian, f"PYTHON={old} bash {INSTALLER} {wheel_arg(wheel)}")
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Python >= 3.11 is required, /usr/local/bin/python3.10 is 3.10.12" in lines[0]
    assert "re-run with PYTHON=python3.11" in lines[0]


@pytest.mark.timeout(1800)  # pip installs the [edge] dependencies from PyPI, twice
def test_install_repairs_a_half_built_venv_and_waits_for_health(debian: str, wheel: Path) -> None:
    # What the first run of the old installer left behind without python3-venv.
    half = sh(debian, "python3 -m venv /opt/connector/venv; test ! -x /opt/connector/venv/bin/pip")
    assert half.returncode == 0, half.stdout + half.stderr
    proc = sh(debian, f"bash {INSTALLER} {wheel_arg(wheel)} --health-timeout 300", timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Installing python3.11-venv" in proc.stdout
    assert "Rebuilding the unusable virtualenv" in proc.stdout
    assert "healthy: http://127.0.0.1:3000/health" in proc.stdout
    assert "Connector installed (background)" in proc.stdout
    health = sh(
        debian,
        "python3 -c \"import urllib.request as u; print(u.urlopen('http://127.0.0.1:3000/health').status)\"",
    )
    assert health.stdout.strip() == "200", health.stdout + health.stderr
    owner = sh(  # no procps in a minimal Debian: the owners of the postgres processes from /proc
        debian,
        "for d in /proc/[0-9]*; do grep -qx postgres $d/comm 2>/dev/null && stat -c %U $d; done"
        " | sort -u",
    )
    assert owner.stdout.split() == ["connector"], owner.stdout
    # A re-run is an in-place upgrade: the same venv, healthy again.
    again = sh(debian, f"bash {INSTALLER} {wheel_arg(wheel)} --health-timeout 300", timeout=1200)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "Rebuilding" not in again.stdout
    assert "healthy:" in again.stdout


@pytest.fixture(scope="module")
def ubuntu(wheel: Path) -> Iterator[str]:
    proc = run(["bash", "deploy/images/build-ubuntu-base.sh"], timeout=1200)
    assert proc.returncode == 0, proc.stderr
    name = "connector-installer-ubuntu"
    podman("rm", "-f", "-t", "0", name, check=False)
    podman("run", "-d", "--name", name, *mounts(wheel), proc.stdout.strip(), "sleep", "infinity")
    try:
        yield name
    finally:
        podman("rm", "-f", "-t", "5", name, check=False)


@pytest.mark.timeout(1800)
def test_fresh_ubuntu_24_04_without_venv(ubuntu: str, wheel: Path) -> None:
    assert sh(ubuntu, "! python3 -c 'import ensurepip'").returncode == 0, "fresh: no python3-venv"
    proc = sh(ubuntu, f"bash {INSTALLER} {wheel_arg(wheel)} --health-timeout 300", timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Installing python3.12-venv" in proc.stdout
    assert "healthy: http://127.0.0.1:3000/health" in proc.stdout
