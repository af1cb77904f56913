"""k6 load test (inspected offline, never run here) and the checkov scan of everything."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from tests.deploy.deploy_testlib import ROOT, Run, tool, validate

pytestmark = pytest.mark.deploy

K6_SCRIPT = ROOT / "ops" / "load" / "catalog-negotiation.js"


def k6_inspect(run: Run, *args: str) -> dict[str, Any]:
    proc = run(tool("k6"), "inspect", *args, K6_SCRIPT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    loaded: dict[str, Any] = json.loads(proc.stdout)
    return loaded


def test_k6_inspect_smoke_profile(run: Run) -> None:
    opts = k6_inspect(run)
    assert set(opts["scenarios"]) == {"dsp"}
    th = opts["thresholds"]
    # The seed's limits, each on the requests it is about (tagged), not the whole scenario.
    assert th["http_req_duration{name:catalog}"] == ["p(95)<500"]
    assert th["http_req_duration{name:negotiation_request}"] == ["p(95)<1000"]
    assert "http_req_failed{scenario:dsp}" in th
    assert "errors" in th
    with_reads = k6_inspect(run, "-e", "MANAGEMENT_RATE=2")
    assert set(with_reads["scenarios"]) == {"dsp", "management"}
    req = k6_inspect(run, "--execution-requirements")
    assert req["maxVUs"] <= 5, "the default profile is a smoke test"


def test_k6_load_profile_is_the_seeds_ramp(run: Run) -> None:
    opts = k6_inspect(run, "-e", "PROFILE=load")
    stages = opts["scenarios"]["dsp"]["stages"]
    assert [s["target"] for s in stages] == [100, 100, 200, 200, 0]


def test_k6_script_speaks_dsp_2025_1() -> None:
    js = K6_SCRIPT.read_text()
    for needle in (
        "/catalog/request",
        "/negotiations/request",
        "'CatalogRequestMessage'",
        "'ContractRequestMessage'",
        "__ENV.DSP_TOKEN",
        "Bearer",
        "__ENV.API_KEY",
        "'X-Api-Key'",
        "/management/v1/",
        "https://w3id.org/dspace/2025/1/context.jsonld",
        "callbackAddress",
    ):
        assert needle in js, needle
    assert "jslib.k6.io" not in js, "no remote modules"
    assert not re.search(r"import .* from 'https?:", js), "no remote modules"


def test_run_script_defaults() -> None:
    sh = (ROOT / "ops" / "load" / "run.sh").read_text()
    assert 'exec "$K6" run --no-usage-report' in sh
    assert 'BASE_URL="${BASE_URL:-http://127.0.0.1:3000}"' in sh


def test_checkov_on_rendered_manifests_dockerfile_terraform_workflows(run: Run) -> None:
    assert validate(run, "render").returncode == 0
    proc = run(
        tool("checkov"),
        "--config-file",
        ".checkov.yaml",
        "-o",
        "json",
        "-d",
        "var/deploy-check/rendered",
        "-d",
        "deploy/terraform",
        "-d",
        ".github/workflows",
        "-d",
        "deploy/docker",
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    decoder = json.JSONDecoder()
    text, idx, reports = proc.stdout, 0, []
    while idx < len(text):
        while idx < len(text) and text[idx].isspace():
            idx += 1
        if idx >= len(text):
            break
        obj, idx = decoder.raw_decode(text, idx)
        reports += obj if isinstance(obj, list) else [obj]
    passed: dict[str, int] = {}
    for r in reports:
        assert r["summary"]["failed"] == 0, r["check_type"]
        assert r["summary"]["parsing_errors"] == 0, r["check_type"]
        passed[r["check_type"]] = max(passed.get(r["check_type"], 0), r["summary"]["passed"])
    assert {"kubernetes", "dockerfile", "terraform", "github_actions"} <= {
        k for k, v in passed.items() if v > 0
    }


def test_checkov_skips_are_justified() -> None:
    cfg = yaml.safe_load((ROOT / ".checkov.yaml").read_text())
    assert cfg["skip-download"] is True
    lines = (ROOT / ".checkov.yaml").read_text().splitlines()
    for check in cfg.get("skip-check", []):
        i = next(n for n, line in enumerate(lines) if line.strip() == f"- {check}")
        assert lines[i - 1].strip().startswith("#"), f"{check} has no justification comment"
