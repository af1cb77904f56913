"""Drive `connector up` as a user would: a subprocess on free ports under a temporary data dir."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from connector.runtime.embedded import free_ports
from connector.settings import Settings, load_settings


@dataclass
class Edge:
    data_dir: Path
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    #: `connector up --separate-roles`: one process per role (the default runs them in one).
    separate_roles: bool = False

    @classmethod
    def allocate(cls, data_dir: Path) -> Edge:
        names = ["server", "dataplane", "metrics", "worker", "temporal", "ui", "postgres", "redis"]
        return cls(data_dir=data_dir, ports=dict(zip(names, free_ports(len(names)), strict=True)))

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_")}
        p = self.ports
        env.update(
            {
                "CONNECTOR_DATA_DIR": str(self.data_dir),
                "CONNECTOR_SERVER__PORT": str(p["server"]),
                "CONNECTOR_DATAPLANE__PORT": str(p["dataplane"]),
                "CONNECTOR_METRICS__PORT": str(p["metrics"]),
                "CONNECTOR_WORKERS__HEALTH_PORT": str(p["worker"]),
                "CONNECTOR_TEMPORAL__EMBEDDED_PORT": str(p["temporal"]),
                "CONNECTOR_TEMPORAL__UI_PORT": str(p["ui"]),
                "CONNECTOR_DATABASE__EMBEDDED_PORT": str(p["postgres"]),
                "CONNECTOR_REDIS__EMBEDDED_PORT": str(p["redis"]),
                "CONNECTOR_LOGGING__FORMAT": "console",
            }
        )
        env.update(extra)
        return env

    def settings(self, **extra: str) -> Settings:
        """The stack's settings as its processes see them (for the connector's own Temporal
        client: payload codec with the stack's data key ring)."""
        return load_settings(
            env=self.env(**extra),
            temporal={"address": f"127.0.0.1:{self.ports['temporal']}"},
        )

    def argv(self) -> list[str]:
        layout = ["--separate-roles"] if self.separate_roles else []
        return [sys.executable, "-m", "connector", "up", *layout]

    def start(self, **extra: str) -> None:
        self.log_path = self.data_dir.parent / f"up-{int(time.time() * 1000)}.log"
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.argv(),
            env=self.env(**extra),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def url(self, name: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}{path}"

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"connector up exited early:\n{self.log()}")
            if "connector is up" in self.log():
                return
            time.sleep(0.1)
        raise AssertionError(f"connector up not ready in {timeout}s:\n{self.log()}")

    def pids(self) -> dict[str, int]:
        pids: dict[str, int] = json.loads((self.data_dir / "run" / "pids.json").read_text())
        return pids

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> float:
        if self.process is None:
            return 0.0
        started = time.monotonic()
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        return time.monotonic() - started

    def get(self, name: str, path: str) -> httpx.Response:
        return httpx.get(self.url(name, path), timeout=5.0)


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention `text` (a data dir): orphans, if any."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if text in cmdline and ") Z " not in stat:
            found.append(f"{entry.name}: {cmdline}")
    return found


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return ") Z " not in stat
