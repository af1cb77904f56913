"""Prometheus rules (promtool + unit tests for every alert), Grafana dashboards (committed JSON
Schema + PromQL parse), chart copies of ops/. That every metric they use is exported, with the
right type, test_prometheus_live.py checks against the running stack's /metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import metric_refs
from tests.deploy.deploy_testlib import ROOT, Run, tool, validate

pytestmark = pytest.mark.deploy

OPS = ROOT / "ops"
RULES = OPS / "prometheus" / "rules.yml"
RULES_TEST = OPS / "prometheus" / "rules_test.yml"
DASHBOARDS = sorted((OPS / "grafana" / "dashboards").glob("*.json"))
SCHEMA = OPS / "grafana" / "schema" / "dashboard.strict.schema.json"
CHART_FILES = ROOT / "deploy" / "helm" / "connector" / "files"

REQUIRED_ALERTS = {
    "ConnectorHighErrorRate",
    "ConnectorHighLatency",
    "ConnectorDown",
    "ConnectorNegotiationsStuck",
    "ConnectorTransferFailures",
    "ConnectorTaskQueueBacklogGrowing",
    "ConnectorAdmissionRefusing",
    "ConnectorBackupStale",
    "ConnectorBackupUnverified",
    "ConnectorBackupMissing",
    "ConnectorTaskQueueWithoutWorker",
}


def alerts() -> list[dict[str, Any]]:
    return [
        r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r
    ]


def test_promtool_check_rules(run: Run) -> None:
    proc = run(tool("promtool"), "check", "rules", RULES)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_rule_unit_tests(run: Run) -> None:
    proc = run(tool("promtool"), "test", "rules", RULES_TEST)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_detects_a_failing_expectation(run: Run, tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(RULES.read_text())
    bad = yaml.safe_load(RULES_TEST.read_text())
    bad["tests"] = [t for t in bad["tests"] if t["name"] == "connector down silent while up"]
    bad["tests"][0]["alert_rule_test"][0]["exp_alerts"] = [{"exp_labels": {"severity": "critical"}}]
    (tmp_path / "rules_test.yml").write_text(yaml.safe_dump(bad))
    proc = run(tool("promtool"), "test", "rules", tmp_path / "rules_test.yml")
    assert proc.returncode != 0


def test_required_alerts_exist_with_severity_and_runbook() -> None:
    names = {a["alert"] for a in alerts()}
    assert names >= REQUIRED_ALERTS
    for a in alerts():
        assert a["labels"]["severity"] in {"warning", "critical"}, a["alert"]
        assert a["annotations"]["summary"], a["alert"]
        assert a["annotations"]["description"], a["alert"]
        assert a["annotations"]["runbook"].startswith("ops/runbooks/"), a["alert"]
        assert (ROOT / a["annotations"]["runbook"]).name.endswith(".md")


def test_runbooks_exist_for_every_alert() -> None:
    missing = sorted(
        {
            a["annotations"]["runbook"]
            for a in alerts()
            if not (ROOT / a["annotations"]["runbook"]).exists()
            and not a["annotations"]["runbook"].endswith("backup-and-restore.md")
        }
    )
    assert missing == [], f"runbooks missing: {missing}"


def test_every_alert_is_tested_firing_and_silent() -> None:
    tests = yaml.safe_load(RULES_TEST.read_text())["tests"]
    firing: set[str] = set()
    silent: set[str] = set()
    for t in tests:
        for case in t.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {a["alert"] for a in alerts()}
    assert names - firing == set(), f"no firing test for {names - firing}"
    assert names - silent == set(), f"no not-firing test for {names - silent}"


def test_backup_stale_threshold_is_26h() -> None:
    rule = next(a for a in alerts() if a["alert"] == "ConnectorBackupStale")
    assert "26 * 3600" in rule["expr"]


def test_prometheus_config_for_compose(run: Run) -> None:
    proc = run(tool("promtool"), "check", "config", OPS / "prometheus" / "prometheus.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dashboards_validate_against_committed_schema(run: Run) -> None:
    assert DASHBOARDS, "no dashboard"
    proc = run(tool("check-jsonschema"), "--schemafile", SCHEMA, *DASHBOARDS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_schema_rejects_a_bad_dashboard(run: Run, tmp_path: Path) -> None:
    dash = json.loads(DASHBOARDS[0].read_text())
    dash["schemaVersion"] = "39"
    dash["unknownTopLevel"] = True
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dash))
    proc = run(tool("check-jsonschema"), "--schemafile", SCHEMA, bad)
    assert proc.returncode != 0


def test_every_expression_parses(run: Run) -> None:
    proc = validate(run, "promql")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dashboard_covers_the_required_panels() -> None:
    exprs = " ".join(
        e for w, e in metric_refs.expressions() if w.endswith(".json") or ".json:" in w
    )
    for needle in (
        "rate(http_requests_total",
        "histogram_quantile(0.50",
        "histogram_quantile(0.95",
        "connector_active_agreements_total",
        "connector_transfers_total",
        "connector_negotiations_total",
        "connector_task_queue_backlog",
        "time() - max(connector_backup_last_success_timestamp_seconds)",
    ):
        assert needle in exprs, needle
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        assert dash["uid"]


def test_metric_refs_parser_and_regex_agree() -> None:
    assert metric_refs.referenced_metric_names() == metric_refs.referenced_metric_names(
        use_parser=False
    )
    assert metric_refs._promql_parser() is not None, (
        "promql-parser must be importable (main venv or .venv-tools)"
    )


def test_chart_copies_are_identical_to_ops() -> None:
    assert (CHART_FILES / "prometheus" / "rules.yml").read_bytes() == RULES.read_bytes()
    chart_dashboards = sorted(p.name for p in (CHART_FILES / "dashboards").glob("*.json"))
    assert chart_dashboards == [p.name for p in DASHBOARDS]
    for path in DASHBOARDS:
        assert (CHART_FILES / "dashboards" / path.name).read_bytes() == path.read_bytes(), path.name


def test_grafana_provisioning() -> None:
    ds = yaml.safe_load(
        (OPS / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )
    assert ds["datasources"][0]["uid"] == "prometheus"
    prov = yaml.safe_load(
        (OPS / "grafana" / "provisioning" / "dashboards" / "connector.yaml").read_text()
    )
    assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
