"""The whole Terraform stack renders (issue 17): Terraform computes every Helm release's values,
each chart (ours, Valkey, Temporal 1.6.0, CloudNativePG operator and cluster) renders with them
and the output passes Kubernetes 1.30 schemas, the CloudNativePG CRDs, Pod Security `restricted`
and, in `connector-*` namespaces, our Kyverno policy (deploy/tools/tf_stack.py)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from tests.deploy.deploy_testlib import ROOT, Run, load_module, tool

pytestmark = pytest.mark.deploy

TOOL = ROOT / "deploy" / "tools" / "tf_stack.py"
OUT = ROOT / "var" / "deploy-check" / "terraform"
pss = load_module("pss_check", ROOT / "deploy" / "tools" / "pss_check.py")


@pytest.fixture(scope="module")
def stack(run: Run) -> dict[str, dict[str, list[dict[str, Any]]]]:
    proc = run(tool("python"), TOOL, "render", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for env_dir in sorted(OUT.iterdir()):
        out[env_dir.name] = {
            p.stem: [d for d in yaml.safe_load_all(p.read_text()) if d]
            for p in sorted(env_dir.glob("*.yaml"))
        }
    return out


def kinds(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_every_environment_renders_every_release(stack: dict[str, Any]) -> None:
    """Each environments/<env>.tfvars, through the one root module stack/ (decision 0027)."""
    tfvars = {p.stem for p in (ROOT / "deploy" / "terraform" / "environments").glob("*.tfvars")}
    assert set(stack) == tfvars == {"dev", "staging", "production"}
    for env in stack:
        assert set(stack[env]) == {"cnpg", "postgres", "valkey", "temporal", "connector"}, env


def test_temporal_schema_settings_live_in_the_datastores(stack: dict[str, Any]) -> None:
    """Chart 1.6.0 refuses top-level schema.createDatabase/manageSchema: the schema Job creates
    no database (CloudNativePG does) and manages the schema of both stores."""
    docs = stack["production"]["temporal"]
    job = next(j for j in kinds(docs, "Job") if "schema" in j["metadata"]["name"])
    init = [c["name"] for c in job["spec"]["template"]["spec"]["initContainers"]]
    assert init == ["manage-schema-default-store", "manage-schema-visibility-store"], init
    assert all(d["metadata"]["namespace"] == "temporal-production" for d in docs)


def test_postgres_is_cloudnativepg_with_pooler_backups_and_temporal_databases(
    stack: dict[str, Any],
) -> None:
    docs = stack["production"]["postgres"]
    cluster = kinds(docs, "Cluster")[0]["spec"]
    assert cluster["instances"] == 3
    assert cluster["backup"]["barmanObjectStore"]["destinationPath"].startswith("s3://")
    assert cluster["postgresql"]["parameters"]["max_connections"] == "300"
    assert {d["spec"]["name"] for d in kinds(docs, "Database")} == {
        "temporal",
        "temporal_visibility",
        "connector_verify",
    }
    pooler = kinds(docs, "Pooler")[0]["spec"]
    assert pooler["pgbouncer"]["poolMode"] == "transaction"
    assert kinds(docs, "ScheduledBackup"), "no ScheduledBackup with a bucket configured"
    # the Temporal databases are in this Cluster, so its backups cover them (decision 0015)
    temporal_cm = kinds(stack["production"]["temporal"], "ConfigMap")
    assert any("postgres-rw.connector-prod.svc" in yaml.safe_dump(c) for c in temporal_cm)


def test_valkey_is_the_official_image(stack: dict[str, Any]) -> None:
    sts = kinds(stack["production"]["valkey"], "StatefulSet")[0]
    image = sts["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.startswith("docker.io/valkey/valkey:"), image


def test_connector_uses_the_pooler_and_a_direct_url_for_backups(stack: dict[str, Any]) -> None:
    cp = next(
        d
        for d in kinds(stack["production"]["connector"], "Deployment")
        if d["metadata"]["name"].endswith("-cp")
    )
    env = {e["name"]: e for e in cp["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CONNECTOR_BACKUP__VERIFY_DATABASE"]["value"] == "connector_verify"
    assert env["CONNECTOR_BACKUP__DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == (
        "backup-database-url"
    )
    assert env["CONNECTOR_BACKUP__TARGET"]["value"] == "s3"
    for kind in ("ServiceMonitor", "PrometheusRule"):
        for doc in kinds(stack["production"]["connector"], kind):
            assert doc["metadata"]["labels"]["release"] == "kube-prometheus-stack", kind


def test_temporal_ui_ingress_is_behind_oauth2_proxy(stack: dict[str, Any]) -> None:
    ingress = kinds(stack["production"]["temporal"], "Ingress")[0]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/auth-url"].startswith("https://")
    assert annotations["nginx.ingress.kubernetes.io/auth-signin"].startswith("https://")
    assert not kinds(stack["dev"]["temporal"], "Ingress")  # dev: port-forward only


def test_pod_security_checker_refuses_what_restricted_refuses() -> None:
    """pss_check is the gate of the stack check: it must refuse the usual offenders."""
    good: dict[str, Any] = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {
                "name": "c",
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }
    assert pss.check_pod({}, good) == []
    bad_cases: dict[str, dict[str, Any]] = {
        "no seccomp": {**good, "securityContext": {"runAsNonRoot": True}},
        "root": {**good, "securityContext": {**good["securityContext"], "runAsUser": 0}},
        "hostPath": {**good, "volumes": [{"name": "h", "hostPath": {"path": "/"}}]},
        "hostNetwork": {**good, "hostNetwork": True},
        "escalation": {**good, "containers": [{"name": "c", "securityContext": {}}]},
        "capability": {
            **good,
            "containers": [
                {
                    "name": "c",
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]},
                    },
                }
            ],
        },
    }
    for label, spec in bad_cases.items():
        assert pss.check_pod({}, spec), label


def test_main_tf_computes_no_chart_values() -> None:
    """Chart values must come from values.tf (variables only), or the render would not be what
    Terraform applies: every helm_release takes `values = local.<release>.values`."""
    for main in sorted((ROOT / "deploy" / "terraform" / "modules").glob("*/main.tf")):
        text = main.read_text()
        if "helm_release" in text:
            assert "yamlencode" not in text, main
            assert (
                "values     = local." in text
                or "values    = local." in text
                or ("values = local." in text)
            ), main


def test_the_runbook_recovery_renders(run: Run) -> None:
    """ops/runbooks/backup-and-restore.md recovers the Postgres cluster (Temporal's databases
    included) from the object store at a point in time: those values, on top of what Terraform
    passes in production, render with the vendored chart and pass the operator's CRDs."""
    code = (
        "import json, sys; sys.path.insert(0, 'deploy/tools'); import tf_stack as t, yaml\n"
        "rel = next(r for r in t.terraform_outputs('production')['releases'] "
        "if r['name'] == 'postgres')\n"
        "over = {'fullnameOverride': 'postgres-recovered', 'mode': 'recovery', 'recovery': {\n"
        "  'method': 'object_store', 'clusterName': 'postgres', 'provider': 's3',\n"
        "  'destinationPath': 's3://example-connector-prod-backups/cnpg/connector-prod',\n"
        "  's3': {'region': 'eu-central-1', 'inheritFromIAMRole': True},\n"
        "  'pitrTarget': {'time': '2026-12-07T01:00:00Z'}}}\n"
        "vals = rel['values'] + [yaml.safe_dump(over)]\n"
        "rel = dict(rel, name='postgres-recovered', values=vals)\n"
        "docs = t.render(rel)\n"
        "errors, counts = t.validate_docs(docs, 'recovery')\n"
        "print(json.dumps({'errors': errors, 'docs': docs}))\n"
    )
    proc = run(tool("python"), "-c", code, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["errors"] == [], result["errors"]
    cluster = kinds(result["docs"], "Cluster")[0]["spec"]
    recovery = cluster["bootstrap"]["recovery"]
    assert recovery["recoveryTarget"]["targetTime"] == "2026-12-07T01:00:00Z"
    (source,) = cluster["externalClusters"]
    assert source["name"] == recovery["source"]
    assert source["barmanObjectStore"]["destinationPath"].endswith("/cnpg/connector-prod")
    assert source["barmanObjectStore"]["serverName"] == "postgres"


def test_the_check_fails_on_the_defects_of_issue_17(run: Run) -> None:
    """The values the Temporal module used to pass: the chart refuses top-level
    schema.createDatabase, and pods without security contexts fail Pod Security `restricted`."""
    code = (
        "import json, sys; sys.path.insert(0, 'deploy/tools'); import tf_stack as t, yaml\n"
        "rel = next(r for r in t.terraform_outputs('dev')['releases'] if r['name'] == 'temporal')\n"
        "schema = {'createDatabase': {'enabled': False}, 'manageSchema': {'enabled': True}}\n"
        "old = dict(rel, values=rel['values'] + [yaml.safe_dump({'schema': schema})])\n"
        "try:\n"
        "    t.render(old)\n"
        "    refused = ''\n"
        "except Exception as exc:\n"
        "    refused = str(exc)\n"
        "bare = {'server': {'securityContext': None,\n"
        "                   'frontend': {'containerSecurityContext': None}}}\n"
        "docs = t.render(dict(rel, values=rel['values'] + [yaml.safe_dump(bare)]))\n"
        "errors, _ = t.validate_docs(docs, 'bare')\n"
        "print(json.dumps({'refused': refused, 'errors': errors}))\n"
    )
    proc = run(tool("python"), "-c", code, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert "schema.createDatabase' is no longer supported" in result["refused"], result["refused"]
    frontend = [e for e in result["errors"] if "temporal-frontend" in e and "Pod Security" in e]
    assert any("runAsNonRoot" in e for e in frontend), result["errors"]
    assert any("seccompProfile" in e for e in frontend), result["errors"]
    assert any("allowPrivilegeEscalation" in e for e in frontend), result["errors"]


def test_postgres_is_not_newer_than_the_workers_pg_dump(stack: dict[str, Any]) -> None:
    """pg_dump refuses a server of a newer major version: the worker image's pg_dump/pg_restore
    (deploy/docker/Dockerfile) must be at least the CloudNativePG cluster's major."""
    dockerfile = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    clients = {int(m) for m in re.findall(r"postgresql-client-(\d+)", dockerfile)}
    assert len(clients) == 1, clients
    (client,) = clients
    for env in ("dev", "staging", "production"):
        image = kinds(stack[env]["postgres"], "Cluster")[0]["spec"]["imageName"]
        server = int(image.rsplit(":", 1)[1].split(".")[0].split("-")[0])
        assert server <= client, (env, image, f"pg_dump {client}")
