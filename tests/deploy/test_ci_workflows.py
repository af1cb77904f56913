"""GitHub workflows: actionlint (with ShellCheck) + yamllint clean; the required pipeline shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_testlib import ROOT, Run, tool

pytestmark = pytest.mark.deploy

WF = ROOT / ".github" / "workflows"


def load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((WF / name).read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # PyYAML reads the `on:` key as boolean True
    return doc


def uses(job: dict[str, Any]) -> list[str]:
    return [s.get("uses", "") for s in job.get("steps", [])]


def runs(job: dict[str, Any]) -> str:
    return "\n".join(s.get("run", "") for s in job.get("steps", []))


def test_actionlint(run: Run) -> None:
    proc = run(
        tool("actionlint"),
        "-shellcheck",
        tool("shellcheck"),
        "-ignore",
        'runtime "node20" is deprecated',
        *sorted(WF.glob("*.yml")),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_errors(run: Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    needs: [missing]\n"
        "    steps:\n      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    proc = run(tool("actionlint"), bad)
    assert proc.returncode != 0


def test_yamllint(run: Run) -> None:
    proc = run(
        tool("yamllint"),
        "-s",
        "-c",
        ".yamllint.yaml",
        "deploy",
        "ops",
        ".github",
        "docker-compose.yaml",
        ".checkov.yaml",
        ".hadolint.yaml",
        ".yamllint.yaml",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ci_cd_pipeline_shape() -> None:
    wf = load("ci-cd.yml")
    assert wf["permissions"] == {"contents": "read"}
    assert wf["on"]["push"] == {"branches": ["main", "develop"], "tags": ["v*"]}
    jobs = wf["jobs"]
    assert {
        "lint",
        "types",
        "test",
        "deploy-check",
        "build",
        "deploy-staging",
        "deploy-production",
    } <= set(jobs)
    assert "ruff check" in runs(jobs["lint"])
    assert "mypy" in runs(jobs["types"])
    test = jobs["test"]
    assert {"postgres", "redis"} <= set(test["services"])
    assert "temporal server start-dev" in runs(test)
    assert "bash deploy/tools/install.sh" in runs(jobs["deploy-check"])
    assert "bash deploy/check.sh" in runs(jobs["deploy-check"])
    build = jobs["build"]
    assert set(build["strategy"]["matrix"]["target"]) == {
        "control-plane",
        "data-plane",
        "worker",
        "edge",
    }
    assert build["permissions"]["packages"] == "write"
    assert any(u.startswith("docker/setup-buildx-action") for u in uses(build))
    push = next(
        s for s in build["steps"] if s.get("uses", "").startswith("docker/build-push-action")
    )
    assert push["with"]["target"] == "${{ matrix.target }}"
    assert push["with"]["file"] == "deploy/docker/Dockerfile"
    assert "ghcr.io" in wf["env"]["REGISTRY"]
    staging, prod = jobs["deploy-staging"], jobs["deploy-production"]
    assert "refs/heads/develop" in staging["if"]
    assert "refs/tags/v" in prod["if"]
    for job, env in ((staging, "staging"), (prod, "production")):
        assert job["environment"]["name"] == env
        assert job["env"]["TF_DIR"] == f"deploy/terraform/environments/{env}"
        script = runs(job)
        assert "terraform init" in script
        assert "terraform apply" in script
        assert "deploy/tools/smoke-test.sh" in script


def test_security_workflow_shape() -> None:
    wf = load("security.yml")
    jobs = wf["jobs"]
    all_uses = [u for j in jobs.values() for u in uses(j)]
    all_runs = "\n".join(runs(j) for j in jobs.values())
    assert any(u.startswith("github/codeql-action/init") for u in all_uses)
    assert "pip-audit" in all_runs
    assert "semgrep scan" in all_runs
    assert any(u.startswith("aquasecurity/trivy-action") for u in all_uses)
    assert any(u.startswith("anchore/sbom-action") for u in all_uses)
    assert any(u.startswith("sigstore/cosign-installer") for u in all_uses)
    assert "cosign sign --yes" in all_runs
    assert jobs["sign"]["permissions"]["id-token"] == "write"


def test_smoke_script_hits_health(run: Run) -> None:
    text = (ROOT / "deploy" / "tools" / "smoke-test.sh").read_text()
    assert "/health" in text
    assert "/ready" in text
    assert "/.well-known/dspace-version" in text
