"""Dockerfile: hadolint clean, four targets, non-root, tini, curl-less HEALTHCHECK, cached deps."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from deploy_testlib import ROOT, Run, tool

pytestmark = pytest.mark.deploy

DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
TARGETS = {"control-plane": "3000", "data-plane": "3001", "worker": "3002", "edge": "3000"}


def stages() -> dict[str, str]:
    text = DOCKERFILE.read_text()
    parts = re.split(r"^FROM\s+", text, flags=re.M)[1:]
    out = {}
    for part in parts:
        header, _, body = part.partition("\n")
        name = header.split(" AS ")[-1].strip() if " AS " in header else header.strip()
        out[name] = header + "\n" + body
    return out


def test_hadolint_clean(run: Run) -> None:
    proc = run(tool("hadolint"), "deploy/docker/Dockerfile")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_catches_problems(run: Run, tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install -y curl\n")
    proc = run(tool("hadolint"), bad, cwd=tmp_path)
    assert proc.returncode != 0


def test_targets_and_runtime_contract() -> None:
    s = stages()
    assert set(TARGETS) <= set(s)
    for target, port in TARGETS.items():
        body = s[target]
        assert re.search(r"^USER 10001:10001$", body, re.M), target
        assert "HEALTHCHECK" in body, target
        assert f"http://127.0.0.1:{port}/health" in body, target
        assert 'CMD ["python", "-c"' in body, f"{target}: healthcheck must not need curl"
        assert re.search(r"^EXPOSE .*9090", body, re.M), target
        assert "apt-get" not in body, f"{target}: no build tools in final stages"
        assert "pip install" not in body, f"{target}: no build tools in final stages"
    assert 'ENTRYPOINT ["/usr/bin/tini", "--", "connector"]' in s["runtime"]
    assert 'CMD ["up"]' in s["edge"]
    assert "venv-edge" in s["edge"]
    assert 'CMD ["control-plane"]' in s["control-plane"]
    assert 'CMD ["data-plane"]' in s["data-plane"]
    assert "useradd --system --uid 10001" in s["runtime"]
    assert "ARG UID" not in DOCKERFILE.read_text(), "ARGs do not cross stages: use literal ids"


def test_dependencies_are_a_cached_layer_and_the_project_a_wheel() -> None:
    builder = stages()["builder"]
    deps = builder.index("pip install --no-cache-dir -r /tmp/requirements.txt")
    copy_all = builder.index("COPY . .")
    assert builder.index("COPY pyproject.toml ./") < deps < copy_all
    assert "pip wheel" in builder
    assert "requirements-edge.txt" in stages()["venv-edge"]
    assert "python:3.11-slim" in DOCKERFILE.read_text()


def test_no_binary_downloads() -> None:
    text = DOCKERFILE.read_text()
    assert not re.search(r"\b(curl|wget)\b", text)


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert "**" in lines
    for needed in (
        "!pyproject.toml",
        "!connector/",
        "!api/",
        "!workflows/",
        "!activities/",
        "!workers/",
        "!dataplane/",
    ):
        assert needed in lines, needed
    assert not any(
        line.startswith("!") and (".venv" in line or "var" in line or "tests" in line)
        for line in lines
    )
