"""Helm chart: render (Helm Go SDK), lint, values schema, k8s schemas, CRD models, structure."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.deploy.deploy_testlib import RENDERED, ROOT, SCENARIOS, Run, tool, validate, workloads

pytestmark = pytest.mark.deploy

QUEUES = ["connector.control", "connector.ops"]


def kinds(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def by_name(docs: list[dict[str, Any]], kind: str, suffix: str) -> dict[str, Any]:
    found = [d for d in kinds(docs, kind) if d["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, (
        f"{kind} *{suffix}: {[d['metadata']['name'] for d in kinds(docs, kind)]}"
    )
    return found[0]


def test_every_scenario_renders(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name in SCENARIOS:
        assert {
            "Deployment",
            "Service",
            "ConfigMap",
            "Job",
            "NetworkPolicy",
            "ServiceAccount",
            "Role",
            "RoleBinding",
        } <= {d["kind"] for d in rendered[name]}, name
    assert {
        "ServiceMonitor",
        "PrometheusRule",
        "ScaledObject",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    } <= {d["kind"] for d in rendered["default"]}
    assert {"Ingress", "Certificate"} <= {d["kind"] for d in rendered["prod"]}


def test_helm_lint_strict(run: Run) -> None:
    proc = validate(run, "lint")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_values_schema_rejects_invalid_values(run: Run) -> None:
    proc = validate(run, "schema")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_bad_value_fails_rendering(run: Run) -> None:
    code = (
        "import sys; sys.path.insert(0, 'deploy/tools'); import validate\n"
        "try:\n"
        "    validate.render({'controlPlane': {'replicaCount': 0}}, [])\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc); sys.exit(0)\n"
        "sys.exit('rendered with replicaCount 0')\n"
    )
    proc = run(tool("python"), "-c", code)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "HelmValuesError" in proc.stdout, proc.stdout
    assert "replicaCount" in proc.stdout, proc.stdout


def test_kubernetes_validate_strict_1_30(run: Run, rendered: dict[str, Any]) -> None:
    files = sorted(RENDERED.glob("*.yaml"))
    proc = run(tool("kubernetes-validate"), "-k", "1.30", "--strict", "--quiet", *files)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = validate(run, "kube")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_crd_objects_validate_against_cloudcoil_models(run: Run, rendered: dict[str, Any]) -> None:
    proc = validate(run, "crds")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for kind in (
        "ServiceMonitor",
        "PrometheusRule",
        "ScaledObject",
        "ClusterPolicy",
        "Certificate",
    ):
        assert f"{kind}=" in proc.stdout, proc.stdout


def test_chart_expectations(run: Run, rendered: dict[str, Any]) -> None:
    proc = validate(run, "expect")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_one_worker_deployment_per_task_queue(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name in SCENARIOS:
        workers = {
            d["metadata"]["labels"].get("connector.io/task-queue"): d
            for d in kinds(rendered[name], "Deployment")
        }
        assert sorted(q for q in workers if q) == QUEUES, name
        for queue in QUEUES:
            container = workers[queue]["spec"]["template"]["spec"]["containers"][0]
            assert container["args"][2:5] == ["worker", "--queue", queue]
            assert container["image"].endswith("-worker")
            assert workers[queue]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 25


def test_roles_ports_and_probes(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["default"]
    for suffix, role, port in (("-cp", "control-plane", 3000), ("-dp", "data-plane", 3001)):
        c = by_name(docs, "Deployment", suffix)["spec"]["template"]["spec"]["containers"][0]
        assert c["args"] == ["--config", "/etc/connector/config.yaml", role]
        assert c["image"].endswith(f"-{role}")
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports == {"http": port, "metrics": 9090}
        # liveness is process-only (a dependency outage restarts nothing), readiness checks them
        assert c["livenessProbe"]["httpGet"] == {"path": "/live", "port": "http"}
        assert c["startupProbe"]["httpGet"] == {"path": "/live", "port": "http"}
        assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    w = by_name(docs, "Deployment", "-worker-control")["spec"]["template"]["spec"]["containers"][0]
    assert {p["name"]: p["containerPort"] for p in w["ports"]} == {"health": 3002, "metrics": 9090}


def test_env_contract(rendered: dict[str, list[dict[str, Any]]]) -> None:
    c = by_name(rendered["default"], "Deployment", "-cp")["spec"]["template"]["spec"]["containers"][
        0
    ]
    env = {e["name"]: e for e in c["env"]}
    for secret in (
        "CONNECTOR_DATABASE__URL",
        "CONNECTOR_REDIS__URL",
        "CONNECTOR_MANAGEMENT__API_KEYS",
    ):
        assert "secretKeyRef" in env[secret]["valueFrom"], secret
    for name in (
        "CONNECTOR_TEMPORAL__ADDRESS",
        "CONNECTOR_TEMPORAL__NAMESPACE",
        "CONNECTOR_SERVER__PORT",
        "CONNECTOR_SERVER__PUBLIC_URL",
        "CONNECTOR_DATAPLANE__PORT",
        "CONNECTOR_DATAPLANE__PUBLIC_URL",
        "CONNECTOR_METRICS__PORT",
        "CONNECTOR_LOGGING__LEVEL",
        "CONNECTOR_LOGGING__FORMAT",
        "CONNECTOR_IDENTITY__PARTICIPANT_ID",
        "CONNECTOR_IDENTITY__DID",
        "CONNECTOR_IDENTITY__KEY_PATH",
        "CONNECTOR_DATABASE__POOL__MIN",
        "CONNECTOR_DATABASE__POOL__MAX",
        "CONNECTOR_DATA_DIR",
    ):
        assert "value" in env[name], name
    assert env["CONNECTOR_TEMPORAL__ADDRESS"]["value"].rsplit(":", 1)[1] == "7233"
    assert c["args"][:2] == ["--config", "/etc/connector/config.yaml"]
    cm = by_name(rendered["default"], "ConfigMap", "-config")
    config = yaml.safe_load(cm["data"]["config.yaml"])
    assert {
        "server",
        "database",
        "redis",
        "temporal",
        "logging",
        "identity",
        "adapters",
    } <= set(config)
    assert "url" not in config["database"], "secrets must not be in the ConfigMap"


def test_hardening_on_every_workload(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name in SCENARIOS:
        for obj, pod in workloads(rendered[name]):
            spec = pod["spec"]
            where = f"{name}:{obj['kind']}/{obj['metadata']['name']}"
            assert spec["securityContext"]["runAsNonRoot"] is True, where
            assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
            assert spec["automountServiceAccountToken"] is False, where
            mounts = {m["mountPath"] for c in spec["containers"] for m in c["volumeMounts"]}
            assert "/tmp" in mounts, where
            tmp = next(v for v in spec["volumes"] if v["name"] == "tmp")
            assert "emptyDir" in tmp, where
            for c in spec["containers"]:
                sc = c["securityContext"]
                assert sc["readOnlyRootFilesystem"] is True, where
                assert sc["allowPrivilegeEscalation"] is False, where
                assert sc["capabilities"]["drop"] == ["ALL"], where
                for kind in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(c["resources"][kind]), where


def test_keda_scaledobjects_use_the_temporal_scaler(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objs = {
        s["spec"]["triggers"][0]["metadata"]["taskQueue"]: s
        for s in kinds(rendered["default"], "ScaledObject")
    }
    assert sorted(objs) == QUEUES
    for queue, so in objs.items():
        trigger = so["spec"]["triggers"][0]
        assert trigger["type"] == "temporal"
        assert trigger["metadata"]["endpoint"].endswith(":7233")
        assert trigger["metadata"]["namespace"] == "connector"
        assert int(trigger["metadata"]["targetQueueSize"]) >= 1
        assert so["spec"]["scaleTargetRef"]["name"].endswith(queue.split(".")[1])
        assert so["spec"]["cooldownPeriod"] >= 60
    assert objs["connector.control"]["spec"]["minReplicaCount"] >= 2, (
        "update-with-start needs a live worker"
    )


def test_hpa_fallback_without_keda(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["default-no-crds"]
    assert not kinds(docs, "ScaledObject")
    names = {h["metadata"]["name"] for h in kinds(docs, "HorizontalPodAutoscaler")}
    for q in ("control", "ops"):
        assert any(n.endswith(f"-worker-{q}") for n in names), names
    worker_hpas = [
        h for h in kinds(docs, "HorizontalPodAutoscaler") if "-worker-" in h["metadata"]["name"]
    ]
    for h in worker_hpas:
        assert h["spec"]["minReplicas"] >= 1


def test_hpa_behaviour_is_the_seeds(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for suffix in ("-cp", "-dp"):
        hpa = by_name(rendered["default"], "HorizontalPodAutoscaler", suffix)
        b = hpa["spec"]["behavior"]
        assert b["scaleDown"] == {
            "stabilizationWindowSeconds": 300,
            "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}],
        }
        assert b["scaleUp"] == {
            "stabilizationWindowSeconds": 60,
            "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}],
        }


def test_network_policy(rendered: dict[str, list[dict[str, Any]]]) -> None:
    np = kinds(rendered["default"], "NetworkPolicy")[0]["spec"]
    assert np["policyTypes"] == ["Ingress", "Egress"]
    egress_ports = {
        (p["protocol"], p["port"]) for rule in np["egress"] for p in rule.get("ports", [])
    }
    assert {
        ("UDP", 53),
        ("TCP", 53),
        ("TCP", 5432),
        ("TCP", 6379),
        ("TCP", 7233),
        ("TCP", 443),
    } <= egress_ports
    ingress_ports = {p["port"] for rule in np["ingress"] for p in rule.get("ports", [])}
    assert {3000, 3001, 9090} <= ingress_ports


def test_helm_hooks(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name in SCENARIOS:
        jobs = {j["metadata"]["name"]: j for j in kinds(rendered[name], "Job")}
        migrate = next(j for n, j in jobs.items() if n.endswith("-migrate"))
        boot = next(j for n, j in jobs.items() if n.endswith("-temporal-bootstrap"))
        assert "pre-upgrade" in migrate["metadata"]["annotations"]["helm.sh/hook"]
        assert migrate["spec"]["template"]["spec"]["containers"][0]["args"][0] == "migrate"
        assert boot["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
        assert boot["spec"]["template"]["spec"]["containers"][0]["args"][0] == "temporal-bootstrap"
        assert int(migrate["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
            boot["metadata"]["annotations"]["helm.sh/hook-weight"]
        )
        for job in (migrate, boot):
            pod = job["spec"]["template"]["spec"]
            # pre-install hooks run before the release's ServiceAccount and ConfigMap exist
            assert "serviceAccountName" not in pod, name
            assert pod["automountServiceAccountToken"] is False, name
            assert not any("configMap" in v for v in pod["volumes"]), name
            assert "--config" not in pod["containers"][0]["args"], name
    # Migrations run before any pod of the release, in every scenario: readiness needs the
    # schema, so a post-install Job would deadlock `helm install --wait` (issue 17).
    for name in SCENARIOS:
        hook = by_name(rendered[name], "Job", "-migrate")["metadata"]["annotations"]
        assert hook["helm.sh/hook"] == "pre-install,pre-upgrade", name
    # The chart-made (dev) Secret does not exist pre-install: the dev hook gets the URL inlined.
    dev_env = {
        e["name"]: e
        for e in by_name(rendered["dev"], "Job", "-migrate")["spec"]["template"]["spec"][
            "containers"
        ][0]["env"]
    }
    assert dev_env["CONNECTOR_DATABASE__URL"]["value"].startswith("postgresql://")
    prod_env = {
        e["name"]: e
        for e in by_name(rendered["prod"], "Job", "-migrate")["spec"]["template"]["spec"][
            "containers"
        ][0]["env"]
    }
    assert "secretKeyRef" in prod_env["CONNECTOR_DATABASE__URL"]["valueFrom"]


def test_monitoring_objects_come_from_ops(rendered: dict[str, list[dict[str, Any]]]) -> None:
    rule = kinds(rendered["default"], "PrometheusRule")[0]
    assert rule["spec"] == yaml.safe_load((ROOT / "ops" / "prometheus" / "rules.yml").read_text())
    dash = by_name(rendered["default"], "ConfigMap", "-dashboards")
    assert dash["metadata"]["labels"]["grafana_dashboard"] == "1"
    for path in (ROOT / "ops" / "grafana" / "dashboards").glob("*.json"):
        assert json.loads(dash["data"][path.name]) == json.loads(path.read_text())
    sm = kinds(rendered["default"], "ServiceMonitor")[0]
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    scraped = [
        s
        for s in kinds(rendered["default"], "Service")
        if s["metadata"]["labels"].get("connector.io/scrape") == "true"
    ]
    assert len(scraped) == 2 + len(QUEUES)  # control plane, data plane, a worker per queue
    assert all(any(p["name"] == "metrics" for p in s["spec"]["ports"]) for s in scraped)
    for name in ("dev", "default-no-crds"):
        assert not kinds(rendered[name], "ServiceMonitor")
        assert not kinds(rendered[name], "PrometheusRule")


def test_temporal_cloud_api_key(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["temporal-cloud"]
    auth = kinds(docs, "TriggerAuthentication")
    assert len(auth) == 1
    assert auth[0]["spec"]["secretTargetRef"][0]["parameter"] == "apiKey"
    for so in kinds(docs, "ScaledObject"):
        trigger = so["spec"]["triggers"][0]
        assert trigger["authenticationRef"]["name"] == auth[0]["metadata"]["name"]
        assert trigger["metadata"]["enableTLS"] == "true"
    c = by_name(docs, "Deployment", "-worker-control")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    assert (
        env["CONNECTOR_TEMPORAL__API_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "temporal-api-key"
    )
    assert "CONNECTOR_TEMPORAL__API_KEY" not in {
        e["name"]
        for e in by_name(rendered["default"], "Deployment", "-cp")["spec"]["template"]["spec"][
            "containers"
        ][0]["env"]
    }


def test_secret_only_for_dev(rendered: dict[str, list[dict[str, Any]]]) -> None:
    assert kinds(rendered["dev"], "Secret"), "dev uses the chart-made Secret"
    for name in ("default", "staging", "prod", "temporal-cloud"):
        assert not kinds(rendered[name], "Secret"), f"{name} must use an existing Secret"


def test_ingress_and_certificate(rendered: dict[str, list[dict[str, Any]]]) -> None:
    ing = kinds(rendered["prod"], "Ingress")[0]["spec"]
    paths = {p["path"]: p["backend"]["service"]["name"] for p in ing["rules"][0]["http"]["paths"]}
    assert paths["/dsp"].endswith("-cp")
    assert paths["/.well-known"].endswith("-cp")
    assert paths["/public"].endswith("-dp")
    assert "/management" not in paths, "the management API must not be exposed publicly by default"
    cert = kinds(rendered["prod"], "Certificate")[0]["spec"]
    assert cert["secretName"] == ing["tls"][0]["secretName"]
    assert cert["dnsNames"] == [ing["rules"][0]["host"]]


def test_management_api_on_its_own_port_in_prod_only(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    def control_plane(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
        service = by_name(docs, "Service", "-cp")
        deployment = by_name(docs, "Deployment", "-cp")
        return service, deployment["spec"]["template"]["spec"]["containers"][0]

    service, container = control_plane(rendered["prod"])
    assert {"name": "management", "port": 3100, "targetPort": "management", "protocol": "TCP"} in (
        service["spec"]["ports"]
    )
    assert {"name": "management", "containerPort": 3100, "protocol": "TCP"} in container["ports"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["CONNECTOR_MANAGEMENT__PORT"] == "3100"
    policy = kinds(rendered["prod"], "NetworkPolicy")[0]["spec"]
    management_rules = [
        rule
        for rule in policy["ingress"]
        if any(p.get("port") == 3100 for p in rule.get("ports", []))
    ]
    assert len(management_rules) == 1
    (peer,) = management_rules[0]["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "operators"}
    for rule in policy["ingress"]:  # the ingress controller never reaches it
        if any(
            "namespaceSelector" in peer and "ingress-nginx" in json.dumps(peer)
            for peer in rule.get("from", [])
        ):
            assert all(p.get("port") != 3100 for p in rule["ports"])

    service, container = control_plane(rendered["default"])
    assert [p["name"] for p in service["spec"]["ports"]] == ["http", "metrics"]
    assert "CONNECTOR_MANAGEMENT__PORT" not in {e["name"] for e in container["env"]}


def _render(run: Run, values: dict[str, Any], apis: list[str]) -> tuple[int, str]:
    """Render the chart with `values` (Helm SDK in the tools venv): (rc, manifests or error)."""
    code = (
        "import json, sys; sys.path.insert(0, 'deploy/tools'); import validate\n"
        "values, apis = json.loads(sys.argv[1]), json.loads(sys.argv[2])\n"
        "try:\n"
        "    out = validate.render(values, apis)\n"
        "except Exception as exc:\n"
        "    print(exc); sys.exit(3)\n"
        "print(json.dumps(out))\n"
    )
    proc = run(tool("python"), "-c", code, json.dumps(values), json.dumps(apis))
    return proc.returncode, proc.stdout + proc.stderr


def test_keda_older_than_2_17_1_is_refused(run: Run) -> None:
    """KEDA 2.17.0 rejects our ScaledObjects (fallback + cpu trigger): the chart refuses at render
    time; 2.17.1 and later render, and so does the CPU HPA fallback without KEDA."""
    apis = ["keda.sh/v1alpha1"]
    rc, out = _render(run, {"keda": {"version": "2.17.0"}}, apis)
    assert rc == 3, out
    assert "KEDA 2.17.0 is too old" in out, out
    assert ">= 2.17.1" in out, out
    for ok in ("2.17.1", "v2.18.0"):
        rc, out = _render(run, {"keda": {"version": ok}}, apis)
        assert rc == 0, (ok, out)
        assert "ScaledObject" in out, ok
    rc, out = _render(run, {"keda": {"version": "2.17.0", "enabled": False}}, apis)
    assert rc == 0, out
    chart = yaml.safe_load((ROOT / "deploy" / "helm" / "connector" / "Chart.yaml").read_text())
    assert chart["annotations"]["connector.io/requires-keda"] == ">=2.17.1"


def test_web_egress_excludes_link_local_and_private_ranges(
    rendered: dict[str, list[dict[str, Any]]], run: Run
) -> None:
    policy = kinds(rendered["prod"], "NetworkPolicy")[0]
    web = [
        r for r in policy["spec"]["egress"] if {p["port"] for p in r.get("ports", [])} == {443, 80}
    ]
    assert len(web) == 1, policy["spec"]["egress"]
    peers = web[0]["to"]
    v4 = next(p["ipBlock"] for p in peers if p["ipBlock"]["cidr"] == "0.0.0.0/0")
    for blocked in ("169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"):
        assert blocked in v4["except"], blocked
    v6 = next(p["ipBlock"] for p in peers if p["ipBlock"]["cidr"] == "::/0")
    assert {"fe80::/10", "fc00::/7"} <= set(v6["except"])
    # the allow list re-admits a private destination (an in-cluster object store)
    rc, out = _render(run, {"networkPolicy": {"web": {"allowCidrs": ["10.20.0.0/16"]}}}, [])
    assert rc == 0, out
    manifests = json.loads(out)
    policy = next(
        d
        for text in manifests.values()
        for d in yaml.safe_load_all(text)
        if d and d["kind"] == "NetworkPolicy"
    )
    web = [
        r for r in policy["spec"]["egress"] if {p["port"] for p in r.get("ports", [])} == {443, 80}
    ]
    assert {"ipBlock": {"cidr": "10.20.0.0/16"}} in web[0]["to"]


def test_monitoring_objects_carry_the_kube_prometheus_stack_release_label(
    rendered: dict[str, list[dict[str, Any]]], run: Run
) -> None:
    for kind in ("ServiceMonitor", "PrometheusRule"):
        (doc,) = kinds(rendered["default"], kind)
        assert doc["metadata"]["labels"]["release"] == "kube-prometheus-stack", kind
    rc, out = _render(
        run,
        {"metrics": {"serviceMonitor": {"labels": {"release": "prom"}}}},
        ["monitoring.coreos.com/v1"],
    )
    assert rc == 0, out
    monitors = [
        d
        for text in json.loads(out).values()
        for d in yaml.safe_load_all(text)
        if d and d["kind"] == "ServiceMonitor"
    ]
    assert monitors[0]["metadata"]["labels"]["release"] == "prom"
