"""Helpers of the image run tests (marker `images`): podman with deploy/images/podman-env.sh's
configuration, the images deploy/images/build.sh made, health checks run by hand.

Podman runs no health checks on its own here (it schedules them through systemd timers, and the
machines have no systemd), so `podman healthcheck run` is looped; a missing image or tool is a
failure that says what to run, never a skip.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.deploy.deploy_testlib import ROOT, TOOLS

PREFIX = "ghcr.io/example/lightweight-dataspace-connector:ci"
BUILD_HINT = (
    "run `bash deploy/images/check.sh` (make images-check) to install podman and build the images"
)


@functools.cache
def podman_env() -> dict[str, str]:
    if shutil.which("podman") is None:
        pytest.fail(f"podman is not installed: {BUILD_HINT}")
    proc = subprocess.run(
        ["bash", "-c", 'source deploy/images/podman-env.sh && printf %s "$CONTAINERS_CONF"'],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = proc.stdout
    env["PATH"] = f"{TOOLS}{os.pathsep}{env.get('PATH', '')}"
    return env


def podman(
    *args: str,
    check: bool = True,
    timeout: float = 300,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    full = podman_env() | (env or {})
    proc = subprocess.run(
        ["podman", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def image(target: str) -> str:
    name = target if "/" in target else f"{PREFIX}-{target}"
    if podman("image", "exists", name, check=False).returncode != 0:
        pytest.fail(f"image {name} is missing: {BUILD_HINT}")
    return name


def base_image() -> str:
    proc = subprocess.run(
        ["bash", "deploy/images/build-base.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=podman_env(),
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def run(
    cmd: Sequence[str | Path],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    cwd: Path = ROOT,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=podman_env() | (env or {}),
        check=False,
    )


def wait_healthy(container: str, timeout: float = 240) -> float:
    """Run the image's own HEALTHCHECK until it passes; seconds it took."""
    start = time.monotonic()
    while True:
        proc = podman("healthcheck", "run", container, check=False)
        if proc.returncode == 0:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            logs = podman("logs", "--tail", "40", container, check=False)
            raise AssertionError(
                f"{container} not healthy after {timeout}s: {proc.stdout}{proc.stderr}\n"
                f"{logs.stdout}{logs.stderr}"
            )
        time.sleep(2)


@contextlib.contextmanager
def healthcheck_loop(label_filter: str, period: float = 2.0) -> Iterator[None]:
    """Run the health checks of matching containers while the block runs (Compose waits on them)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            ids = podman("ps", "-q", "--filter", label_filter, check=False).stdout.split()
            for cid in ids:
                podman("healthcheck", "run", cid, check=False, timeout=30)
            stop.wait(period)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=60)


def http_get(url: str, timeout: float = 10) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 (loopback URLs)
        return answer.status, answer.read().decode(errors="replace")


def inspect(container: str) -> dict[str, object]:
    out: list[dict[str, object]] = json.loads(podman("inspect", container).stdout)
    return out[0]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def processes(container: str) -> list[dict[str, str]]:
    """Every process of a container as the host kernel sees it (uids, capability sets, command)."""
    rows = podman("top", container, "hpid", "args").stdout.splitlines()[1:]
    out = []
    for row in rows:
        hpid, args = row.strip().split(None, 1)
        fields = dict(
            line.split(":\t", 1) for line in Path(f"/proc/{hpid}/status").read_text().splitlines()
        )
        out.append(
            {
                "args": args,
                "uids": " ".join(fields["Uid"].split()),
                "CapEff": fields["CapEff"],
                "CapPrm": fields["CapPrm"],
                "CapBnd": fields["CapBnd"],
                "NoNewPrivs": fields.get("NoNewPrivs", "?"),
            }
        )
    return out


def assert_unprivileged(container: str, uid: str = "10001") -> list[dict[str, str]]:
    """Every process runs as uid (real, effective, saved, fs) without any capability at all."""
    procs = processes(container)
    assert procs, container
    for proc in procs:
        assert proc["uids"] == " ".join([uid] * 4), proc
        for caps in ("CapEff", "CapPrm", "CapBnd"):
            assert int(proc[caps], 16) == 0, proc
        assert proc["NoNewPrivs"] == "1", proc
    return procs
