"""Offline validation of the deployment artefacts (run with .venv-tools/bin/python).

Subcommands (each exits non-zero on failure; deploy/check.sh runs them all):

  render       render the chart for every scenario into var/deploy-check/rendered/<scenario>.yaml
  lint         `helm lint --strict` through the Helm Go SDK (helm-python-sdk)
  schema       values.schema.json: every values file passes, known-bad values fail rendering
  kube         kubernetes-validate (1.30, strict) on every built-in object of every scenario
  crds         cloudcoil pydantic models for CRD objects (ServiceMonitor, PrometheusRule,
               ScaledObject, TriggerAuthentication, Certificate) and the Kyverno ClusterPolicy
  policy       every rendered workload satisfies deploy/policies/*.yaml (patterns evaluated here)
  promql       every rule/dashboard expression parses with promql-parser
  hcl          Terraform parses (python-hcl2); module calls match module variables; secrets are
               `sensitive = true` and absent from *.tfvars; every environments/*.tfvars sets only
               variables of the root module stack/ and all it requires
  expect       structure (KEDA vs HPA fallback, hooks, probes, chart files == ops files)
  all          everything above, in order

The Helm engine is helm-python-sdk 0.2.2 (Helm v4.2.3 Go SDK via ctypes). `Chart.render()` has no
api_versions argument, so the private C ABI `helm_render` is called to make the CRD branches
(`.Capabilities.APIVersions.Has ...`) render; that is why the SDK is pinned.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "connector"
OUT = ROOT / "var" / "deploy-check" / "rendered"
KUBE_VERSION = "1.30"
RELEASE = "connector"
NAMESPACE = "connector-prod"

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kyverno_check  # noqa: E402  (sibling module, pure Python)

CRD_APIS = ["monitoring.coreos.com/v1", "keda.sh/v1alpha1", "cert-manager.io/v1"]

# scenario -> (values files layered on values.yaml, API versions the "cluster" serves)
SCENARIOS: dict[str, tuple[list[str], list[str]]] = {
    "default": ([], CRD_APIS),
    "default-no-crds": ([], []),
    "dev": (["values-dev.yaml"], []),
    "staging": (["values-staging.yaml"], CRD_APIS),
    "prod": (["values-prod.yaml"], CRD_APIS),
    "temporal-cloud": (["ci/temporal-cloud-values.yaml"], CRD_APIS),
}

# Values that values.schema.json must reject (each must make rendering fail).
BAD_VALUES: dict[str, dict[str, Any]] = {
    "replicaCount 0": {"controlPlane": {"replicaCount": 0}},
    "unknown top-level key": {"replicaCount": 3},
    "bad log level": {"config": {"logging": {"level": "verbose"}}},
    "bad log format": {"config": {"logging": {"format": "xml"}}},
    "temporal address without port": {"temporal": {"address": "temporal-frontend"}},
    "pool as string": {"config": {"database": {"pool": {"max": "ten"}}}},
    "privileged escalation allowed": {
        "containerSecurityContext": {"allowPrivilegeEscalation": True}
    },
    "runAsNonRoot false": {"podSecurityContext": {"runAsNonRoot": False}},
    "root uid": {"podSecurityContext": {"runAsUser": 0}},
    "no cpu limit": {"controlPlane": {"resources": {"limits": {"cpu": None}}}},
    "cpu limit not a quantity": {"dataPlane": {"resources": {"limits": {"cpu": "lots"}}}},
    "memory request not a quantity": {
        "workers": {
            "queues": [
                {
                    "name": "control",
                    "taskQueue": "connector.control",
                    "replicaCount": 1,
                    "resources": {
                        "requests": {"cpu": "1", "memory": "1 GB"},
                        "limits": {"cpu": "1", "memory": "1Gi"},
                    },
                    "autoscaling": {"enabled": False},
                    "pdb": {"enabled": False},
                }
            ]
        }
    },
    "bad task queue name": {
        "workers": {"queues": [{"name": "Bad_Name", "taskQueue": "connector.control"}]}
    },
    "bad pull policy": {"image": {"pullPolicy": "Sometimes"}},
    "bad environment": {"environment": "qa"},
}

BUILTIN_GROUPS = {
    "v1",
    "apps/v1",
    "batch/v1",
    "policy/v1",
    "autoscaling/v2",
    "networking.k8s.io/v1",
    "rbac.authorization.k8s.io/v1",
}


# ----------------------------------------------------------------------------------------- helpers
def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing for values files: maps merge recursively, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        elif value is None:
            out.pop(key, None)
        else:
            out[key] = copy.deepcopy(value)
    return out


def user_values(files: list[str]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for name in files:
        merged = deep_merge(merged, yaml.safe_load((CHART / name).read_text()) or {})
    return merged


def render(values: dict[str, Any] | None, api_versions: list[str]) -> dict[str, str]:
    """Render the chart; returns {template path: manifest text}. Raises helm_python errors."""
    import helm_python as helm
    from helm_python import _native

    chart = helm.Chart.load(str(CHART))
    try:
        if values:
            chart.validate_schema(values)
        opts = {
            "name": RELEASE,
            "namespace": NAMESPACE,
            "api_versions": api_versions,
            "kube_version": f"v{KUBE_VERSION}.0",
            "is_install": True,
        }
        raw = _native.call_string(
            "helm_render", chart._raw(), json.dumps(values) if values else None, json.dumps(opts)
        )
        result = json.loads(raw)
    finally:
        chart.close()
    if isinstance(result, dict) and "manifests" in result and isinstance(result["manifests"], dict):
        result = result["manifests"]
    return {k: v for k, v in result.items() if k.endswith((".yaml", ".yml")) and v.strip()}


def docs_of(manifests: dict[str, str]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(manifests):
        for doc in yaml.safe_load_all(manifests[path]):
            if doc:
                doc.setdefault("metadata", {}).setdefault("annotations", {})
                doc["metadata"]["annotations"].setdefault("connector.io/source", path)
                docs.append(doc)
    return docs


def strip_source(doc: dict[str, Any]) -> dict[str, Any]:
    d = copy.deepcopy(doc)
    ann = d.get("metadata", {}).get("annotations", {})
    ann.pop("connector.io/source", None)
    if not ann:
        d["metadata"].pop("annotations", None)
    return d


def scenario_docs(name: str) -> list[dict[str, Any]]:
    path = OUT / f"{name}.yaml"
    if not path.exists():
        cmd_render(argparse.Namespace())
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def ident(doc: dict[str, Any]) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


class Failures:
    def __init__(self, what: str) -> None:
        self.what = what
        self.items: list[str] = []

    def add(self, msg: str) -> None:
        self.items.append(msg)

    def done(self, ok_msg: str) -> int:
        if self.items:
            for item in self.items:
                print(f"FAIL [{self.what}] {item}", file=sys.stderr)  # noqa: T201 (CLI output)
            return 1
        print(f"ok   [{self.what}] {ok_msg}")  # noqa: T201 (CLI output)
        return 0


# --------------------------------------------------------------------------------------- commands
def cmd_render(_: argparse.Namespace) -> int:
    fails = Failures("render")
    OUT.mkdir(parents=True, exist_ok=True)
    counts = []
    for name, (files, apis) in SCENARIOS.items():
        try:
            manifests = render(user_values(files) or None, apis)
        except Exception as exc:  # helm_python raises its own hierarchy
            fails.add(f"{name}: {type(exc).__name__}: {exc}")
            continue
        docs = [strip_source(d) for d in docs_of(manifests)]
        # a stable multi-document stream for kubernetes-validate, checkov and humans
        (OUT / f"{name}.yaml").write_text(
            "".join("---\n" + yaml.safe_dump(d, sort_keys=False) for d in docs)
        )
        counts.append(f"{name}={len(docs)}")
    return fails.done("rendered " + ", ".join(counts) + f" -> {OUT.relative_to(ROOT)}")


def cmd_lint(_: argparse.Namespace) -> int:
    import helm_python as helm

    fails = Failures("helm lint")
    for files in ([], ["values-dev.yaml"], ["values-staging.yaml"], ["values-prod.yaml"]):
        report = (
            helm.lint(
                str(CHART),
                strict=True,
                kube_version=f"v{KUBE_VERSION}.0",
                values=user_values(files) or None,
            )
            if files
            else helm.lint(str(CHART), strict=True, kube_version=f"v{KUBE_VERSION}.0")
        )
        for msg in report.get("messages", []):
            if msg.get("severity", 0) >= 2:
                fails.add(f"{files or 'values.yaml'}: {msg}")
        for err in report.get("errors", []) or []:
            fails.add(f"{files or 'values.yaml'}: {err}")
    return fails.done("chart lints clean (strict) with values.yaml, dev, staging, prod")


def cmd_schema(_: argparse.Namespace) -> int:
    fails = Failures("values.schema.json")
    for label, bad in BAD_VALUES.items():
        try:
            render(bad, CRD_APIS)
        except Exception as exc:
            if "Values" not in type(exc).__name__ and "schema" not in str(exc).lower():
                fails.add(f"{label}: failed, but not on the schema: {type(exc).__name__}: {exc}")
            continue
        fails.add(f"{label}: {bad} was accepted")
    return fails.done(f"{len(BAD_VALUES)} invalid values rejected at render time")


def cmd_kube(_: argparse.Namespace) -> int:
    import kubernetes_validate

    fails = Failures(f"kubernetes-validate {KUBE_VERSION} --strict")
    n = 0
    for name in SCENARIOS:
        for doc in scenario_docs(name):
            if doc.get("apiVersion") not in BUILTIN_GROUPS:
                continue
            n += 1
            try:
                kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
            except Exception as exc:
                fails.add(f"{name}: {ident(doc)}: {type(exc).__name__}: {exc}")
    return fails.done(f"{n} built-in objects valid")


def crd_models() -> dict[tuple[str, str], Callable[[dict[str, Any]], Any]]:
    from cloudcoil.models.cert_manager import v1 as cm
    from cloudcoil.models.keda import v1alpha1 as keda
    from cloudcoil.models.kyverno import v1 as kyverno
    from cloudcoil.models.prometheus_operator import v1 as prom

    return {
        ("monitoring.coreos.com/v1", "ServiceMonitor"): prom.ServiceMonitor.model_validate,
        ("monitoring.coreos.com/v1", "PrometheusRule"): prom.PrometheusRule.model_validate,
        ("keda.sh/v1alpha1", "ScaledObject"): keda.ScaledObject.model_validate,
        ("keda.sh/v1alpha1", "TriggerAuthentication"): keda.TriggerAuthentication.model_validate,
        ("cert-manager.io/v1", "Certificate"): cm.Certificate.model_validate,
        ("kyverno.io/v1", "ClusterPolicy"): kyverno.ClusterPolicy.model_validate,
    }


def cmd_crds(_: argparse.Namespace) -> int:
    fails = Failures("CRD models (cloudcoil)")
    models = crd_models()
    seen: dict[str, int] = {}
    docs: list[tuple[str, dict[str, Any]]] = []
    for name in SCENARIOS:
        docs += [(name, d) for d in scenario_docs(name)]
    for path in sorted((ROOT / "deploy" / "policies").glob("*.yaml")):
        docs += [
            (str(path.relative_to(ROOT)), d) for d in yaml.safe_load_all(path.read_text()) if d
        ]
    for where, doc in docs:
        if doc.get("apiVersion") in BUILTIN_GROUPS:
            continue
        key = (doc.get("apiVersion"), doc.get("kind"))
        model = models.get(key)  # type: ignore[arg-type]
        if model is None:
            fails.add(f"{where}: {ident(doc)}: no model for {key}")
            continue
        try:
            model(doc)
        except Exception as exc:
            fails.add(f"{where}: {ident(doc)}: {exc}")
        seen[doc["kind"]] = seen.get(doc["kind"], 0) + 1
    for kind in (
        "ServiceMonitor",
        "PrometheusRule",
        "ScaledObject",
        "ClusterPolicy",
        "Certificate",
        "TriggerAuthentication",
    ):
        if not seen.get(kind):
            fails.add(f"no {kind} was validated: a CRD branch did not render")
    return fails.done(", ".join(f"{k}={v}" for k, v in sorted(seen.items())))


def workloads(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for doc in docs:
        if doc.get("kind") in {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}:
            yield doc, doc["spec"]["template"]
        elif doc.get("kind") == "CronJob":
            yield doc, doc["spec"]["jobTemplate"]["spec"]["template"]
        elif doc.get("kind") == "Pod":
            yield doc, doc


def cmd_policy(_: argparse.Namespace) -> int:
    fails = Failures("Kyverno policy (patterns evaluated in Python)")
    policies = kyverno_check.load_policies(ROOT / "deploy" / "policies")
    n = 0
    for name in SCENARIOS:
        for doc, pod in workloads(scenario_docs(name)):
            n += 1
            for err in kyverno_check.check_pod(policies, pod, namespace=NAMESPACE):
                fails.add(f"{name}: {ident(doc)}: {err}")
    if n == 0:
        fails.add("no workload rendered")
    return fails.done(f"{n} workloads x {sum(len(p.rules) for p in policies)} rules satisfied")


def promql_exprs() -> Iterator[tuple[str, str]]:
    """(where, expr) for every alert/record expression and every dashboard target."""
    rules = yaml.safe_load((ROOT / "ops" / "prometheus" / "rules.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            yield f"rules.yml:{rule.get('alert') or rule.get('record')}", rule["expr"]
    for path in sorted((ROOT / "ops" / "grafana" / "dashboards").glob("*.json")):
        dash = json.loads(path.read_text())
        for panel in _panels(dash.get("panels", [])):
            for target in panel.get("targets", []):
                if "expr" in target:
                    yield f"{path.name}:{panel.get('title')}", target["expr"]


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


GRAFANA_MACROS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def grafana_to_promql(expr: str) -> str:
    for macro, value in GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    return expr


def cmd_promql(_: argparse.Namespace) -> int:
    import promql_parser

    fails = Failures("PromQL (promql-parser)")
    n = 0
    for where, expr in promql_exprs():
        n += 1
        try:
            promql_parser.parse(grafana_to_promql(expr))
        except ValueError as exc:
            fails.add(f"{where}: {exc}: {expr!r}")
    return fails.done(f"{n} expressions parse")


def cmd_expect(_: argparse.Namespace) -> int:
    fails = Failures("chart expectations")
    for rel_src, rel_dst in [("ops/prometheus/rules.yml", "files/prometheus/rules.yml")] + [
        (f"ops/grafana/dashboards/{p.name}", f"files/dashboards/{p.name}")
        for p in (ROOT / "ops" / "grafana" / "dashboards").glob("*.json")
    ]:
        dst = CHART / rel_dst
        if not dst.exists() or dst.read_bytes() != (ROOT / rel_src).read_bytes():
            fails.add(f"{rel_dst} differs from {rel_src}: run deploy/tools/sync-chart-files.sh")
    by = {name: scenario_docs(name) for name in SCENARIOS}

    def kinds(name: str, kind: str) -> list[dict[str, Any]]:
        return [d for d in by[name] if d.get("kind") == kind]

    queues = ["connector.control", "connector.ops"]
    for name in SCENARIOS:
        deps = kinds(name, "Deployment")
        got = sorted(d["metadata"]["labels"].get("connector.io/task-queue", "") for d in deps)
        if [q for q in got if q] != queues:
            fails.add(f"{name}: worker Deployments for {got}, want {queues}")
        for d in deps:
            c = d["spec"]["template"]["spec"]["containers"][0]
            if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/live":
                fails.add(f"{name}: {ident(d)} liveness is not /live (process-only)")
            if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/ready":
                fails.add(f"{name}: {ident(d)} readiness is not /ready")
        hooks = {
            d["metadata"]["name"]: d["metadata"]["annotations"].get("helm.sh/hook", "")
            for d in kinds(name, "Job")
        }
        # pre-install too: readiness needs the schema; a later Job deadlocks `helm install --wait`
        if not any(
            "pre-install" in h and "pre-upgrade" in h and c.endswith("-migrate")
            for c, h in hooks.items()
        ):
            fails.add(f"{name}: no pre-install,pre-upgrade migrations hook Job ({hooks})")
        if not any(
            "post-install" in h and c.endswith("-temporal-bootstrap") for c, h in hooks.items()
        ):
            fails.add(f"{name}: no post-install temporal-bootstrap hook Job ({hooks})")
        if name != "dev" and len(kinds(name, "PodDisruptionBudget")) < 2 + len(queues):
            fails.add(f"{name}: expected a PDB for CP, DP and every worker queue")
    # KEDA when the API is served, HPA fallback when not
    so = kinds("default", "ScaledObject")
    if sorted(s["spec"]["triggers"][0]["metadata"]["taskQueue"] for s in so) != queues:
        fails.add("default: ScaledObjects should scale every worker queue on the temporal trigger")
    for s in so:
        if s["spec"]["triggers"][0]["type"] != "temporal":
            fails.add(f"default: {ident(s)} first trigger is not temporal")
    hpa_names = {h["metadata"]["name"] for h in kinds("default-no-crds", "HorizontalPodAutoscaler")}
    if kinds("default-no-crds", "ScaledObject") or not all(
        any(n.endswith(f"-worker-{q}") for n in hpa_names) for q in ("control", "ops")
    ):
        fails.add(
            f"default-no-crds: expected HPA fallback for every worker, got {sorted(hpa_names)}"
        )
    for h in kinds("default", "HorizontalPodAutoscaler"):
        b = h["spec"]["behavior"]
        if b["scaleDown"]["policies"] != [
            {"type": "Percent", "value": 10, "periodSeconds": 60}
        ] or b["scaleUp"]["policies"] != [{"type": "Percent", "value": 50, "periodSeconds": 60}]:
            fails.add(f"default: {ident(h)} does not carry the seed's behaviour policies")
    for kind in ("ServiceMonitor", "PrometheusRule"):
        if kinds("default-no-crds", kind):
            fails.add(f"default-no-crds: {kind} rendered without monitoring.coreos.com/v1")
    prom_rule = kinds("default", "PrometheusRule")
    if prom_rule:
        ops_rules = yaml.safe_load((ROOT / "ops" / "prometheus" / "rules.yml").read_text())
        if prom_rule[0]["spec"] != ops_rules:
            fails.add("PrometheusRule.spec differs from ops/prometheus/rules.yml")
    dash_cm = [
        d for d in kinds("default", "ConfigMap") if d["metadata"]["name"].endswith("-dashboards")
    ]
    for p in (ROOT / "ops" / "grafana" / "dashboards").glob("*.json"):
        if not dash_cm or json.loads(dash_cm[0]["data"].get(p.name, "null")) != json.loads(
            p.read_text()
        ):
            fails.add(f"dashboard ConfigMap does not carry {p.name} verbatim")
    return fails.done(
        "hooks, probes, KEDA/HPA fallback, seed HPA behaviour, chart files == ops files"
    )


TF = ROOT / "deploy" / "terraform"
# The one root module; environments/<env>.tfvars are its values (decision 0027).
TF_ROOT_MODULE = TF / "stack"
SECRET_WORDS = (
    "password",
    "api_key",
    "api_keys",
    "key_pem",
    "secret",
    "token",
    "database_url",
    "redis_url",
)


def is_secret_name(name: str) -> bool:
    """Password/API-key/credential-URL variables; `*_name` ones (tls_secret_name) are references."""
    return any(w in name for w in SECRET_WORDS) and not name.endswith("_name")


META_ARGS = {"source", "count", "for_each", "depends_on", "providers", "version"}


def hcl_load(path: Path) -> dict[str, Any]:
    import hcl2
    from hcl2.utils import SerializationOptions

    with path.open() as fh:
        return hcl2.load(
            fh,
            serialization_options=SerializationOptions(
                strip_string_quotes=True, explicit_blocks=False, with_comments=False
            ),
        )


def tf_module_variables(directory: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.tf")):
        for block in hcl_load(path).get("variable", []):
            out.update(block)
    return out


def cmd_hcl(_: argparse.Namespace) -> int:
    fails = Failures("Terraform (python-hcl2)")
    files = sorted(TF.rglob("*.tf")) + sorted(TF.rglob("*.tfvars"))
    parsed: dict[Path, dict[str, Any]] = {}
    for path in files:
        try:
            parsed[path] = hcl_load(path)
        except Exception as exc:
            fails.add(f"{path.relative_to(ROOT)}: {type(exc).__name__}: {exc}")
    dirs = sorted({p.parent for p in files if p.suffix == ".tf"})
    for d in dirs:
        variables = tf_module_variables(d)
        for name, spec in variables.items():
            if is_secret_name(name) and spec.get("sensitive") is not True:
                fails.add(f"{d.relative_to(ROOT)}: variable {name} must be sensitive = true")
        for path in sorted(d.glob("*.tf")):
            for block in parsed.get(path, {}).get("module", []):
                for mod_name, args in block.items():
                    src = args.get("source", "")
                    if not src.startswith("."):
                        continue
                    target = (d / src).resolve()
                    declared = tf_module_variables(target)
                    given = set(args) - META_ARGS
                    for extra in sorted(given - set(declared)):
                        fails.add(
                            f"{path.relative_to(ROOT)}: module {mod_name} passes undeclared {extra}"
                        )
                    for missing in sorted(
                        n for n, v in declared.items() if "default" not in v and n not in given
                    ):
                        fails.add(
                            f"{path.relative_to(ROOT)}: module {mod_name} misses required {missing}"
                        )
    for path in files:
        if path.suffix == ".tfvars":
            for key in parsed.get(path, {}):
                if is_secret_name(key):
                    fails.add(f"{path.relative_to(ROOT)}: secret {key} must come from TF_VAR_{key}")
            root_vars = tf_module_variables(TF_ROOT_MODULE)
            for key in parsed.get(path, {}):
                if key not in root_vars:
                    fails.add(
                        f"{path.relative_to(ROOT)}: {key} is not a variable of "
                        f"{TF_ROOT_MODULE.relative_to(ROOT)}"
                    )
            missing = sorted(
                n
                for n, v in root_vars.items()
                if "default" not in v and n not in parsed.get(path, {}) and not is_secret_name(n)
            )
            if missing:
                fails.add(f"{path.relative_to(ROOT)}: no value for {missing}")
    return fails.done(
        f"{len(files)} files parse; module wiring, sensitive secrets, tfvars complete"
    )


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "render": cmd_render,
    "lint": cmd_lint,
    "schema": cmd_schema,
    "kube": cmd_kube,
    "crds": cmd_crds,
    "policy": cmd_policy,
    "promql": cmd_promql,
    "hcl": cmd_hcl,
    "expect": cmd_expect,
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=[*COMMANDS, "all"])
    args = parser.parse_args()
    if args.command == "all":
        rc = 0
        for _name, fn in COMMANDS.items():
            rc |= fn(args)
        return rc
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
