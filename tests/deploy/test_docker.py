"""Dockerfile: hadolint clean, four targets, non-root, tini, curl-less HEALTHCHECK, cached deps."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy.deploy_testlib import ROOT, Run, tool

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


def test_dependencies_come_from_hashed_locks_in_cached_layers() -> None:
    s = stages()
    for stage, lock in (
        ("deps-cloud", "requirements.lock"),
        ("deps-edge", "requirements-edge.lock"),
    ):
        body = s[stage]
        assert "--require-hashes" in body, stage
        assert "--only-binary :all:" in body, stage
        assert f"-r {lock}" in body, stage
        assert "COPY . " not in body, f"{stage}: only the lock files may invalidate the layer"
    for stage, deps in (("venv-cloud", "deps-cloud"), ("venv-edge", "deps-edge")):
        body = s[stage]
        assert body.startswith(f"{deps} AS {stage}"), stage
        assert "pip wheel" in body
        assert "--no-index" in body, f"{stage}: the project wheel builds offline"
        assert "slim-venv.sh" in body, stage
    assert "venv-edge" in s["edge"]
    assert "venv-cloud" in s["worker"]
    assert "venv-cloud" in s["control-plane"]
    for lock in ("requirements.lock", "requirements-edge.lock"):
        text = (ROOT / "deploy" / "docker" / lock).read_text()
        pins = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", text, re.M)
        assert len(pins) > 20, lock
        assert text.count("--hash=sha256:") >= len(pins), f"{lock}: every pin has hashes"


def test_base_image_is_an_argument_pinned_by_digest() -> None:
    text = DOCKERFILE.read_text()
    match = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.M)
    assert match, "ARG BASE_IMAGE before the first FROM"
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", match.group(1))
    assert "FROM ${BASE_IMAGE} AS base" in text


def test_secrets_only_as_build_secrets() -> None:
    text = DOCKERFILE.read_text()
    assert "--mount=type=secret,id=pip_cert" in text
    assert not re.search(r"^(ARG|ENV) .*(CERT|TOKEN|PASSWORD)", text, re.M)
    assert "ca-certificates.crt" not in re.sub(r"^#.*$", "", text, flags=re.M)


def test_worker_carries_pg_tools_of_the_production_major() -> None:
    s = stages()
    assert s["worker"].startswith("worker-os AS worker")
    assert "postgresql-client-15" in s["pg-tools"]
    assert "CONNECTOR_BACKUP__PG_BIN_DIR=/usr/lib/postgresql/15/bin" in s["worker-os"]


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
        "!deploy/docker/requirements.lock",
        "!deploy/docker/requirements-edge.lock",
    ):
        assert needed in lines, needed
    assert not any(
        line.startswith("!") and (".venv" in line or "var" in line or "tests" in line)
        for line in lines
    )
