"""Render the whole Terraform stack offline and validate what it would install (issue 17).

Run with .venv-tools/bin/python. For every environment (deploy/terraform/environments/*.tfvars):

1. Terraform itself computes the Helm releases: the root module stack/ (all but versions.tf, which
   holds the providers and the backend) and each module's `variables.tf` + `values.tf`
   (everything a chart receives is computed from variables there; resources live in main.tf,
   providers in versions.tf) are copied into a scratch tree, and `terraform init -backend=false` +
   `terraform apply -var-file=<env>.tfvars` evaluate them: the one root module with each
   environment's values, as a deployment plans it (decision 0027). No provider is needed, so this
   runs without the registry; it is also a `terraform validate` of those files. (The providers
   helm/kubernetes/tls/random are not in the offline mirror, so the modules' main.tf files are
   validated only by `terraform fmt` and python-hcl2.)
2. Each release's chart is rendered with the Helm Go SDK and exactly those values: the
   connector chart and deploy/terraform/charts/valkey from the repository; the third-party charts
   (Temporal, CloudNativePG operator and cluster) from a vendored copy of the pinned version
   (HELM_CHARTS_VENDOR, default ../shared/vendor/helm-charts next to the repository).
3. The output is validated: built-in kinds against the Kubernetes 1.30 schemas
   (kubernetes-validate, strict); CloudNativePG resources against the CRDs of the vendored
   operator chart (JSON Schema); ServiceMonitor/PrometheusRule/PodMonitor with the cloudcoil
   models; every pod template against Pod Security `restricted` (pss_check.py) and, in
   `connector-*` namespaces, against our Kyverno policy (kyverno_check.py); every container has
   cpu/memory requests and limits; pods the CloudNativePG operator creates (instances,
   PgBouncer) get resources from the `Cluster`/`Pooler` specs, which are checked for them.

Subcommands: `render` (all of the above; manifests into var/deploy-check/terraform/<env>/),
`budget` (JSON: per environment the Postgres connection budget and the connector's pool sizing).
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TF = ROOT / "deploy" / "terraform"
OUT = ROOT / "var" / "deploy-check" / "terraform"
KUBE_VERSION = "1.30"
# Every environment is a tfvars file over the one root module (decision 0027).
ENVIRONMENTS = tuple(sorted(p.stem for p in (TF / "environments").glob("*.tfvars")))
# The API groups of the operators the stack installs or expects (KEDA, Prometheus Operator,
# cert-manager, CloudNativePG), as a cluster with them would serve.
API_VERSIONS = [
    "monitoring.coreos.com/v1",
    "keda.sh/v1alpha1",
    "cert-manager.io/v1",
    "postgresql.cnpg.io/v1",
]
# Secrets are never in tfvars; any value renders the same charts (they go into Secrets).
DUMMY_SECRETS = {
    "database_password": "render-only",
    "temporal_database_password": "render-only",
    "redis_password": "render-only",
    "management_api_keys": '["render-only"]',
}
# The operator whose CRDs validate the CloudNativePG resources (modules/postgres pins the same).
OPERATOR_CHART_VERSION = "0.29.0"
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kyverno_check  # noqa: E402
import pss_check  # noqa: E402


def vendor_dir() -> Path:
    return Path(
        os.environ.get("HELM_CHARTS_VENDOR", ROOT.parent / "shared" / "vendor" / "helm-charts")
    )


def terraform_bin() -> str:
    found = shutil.which("terraform") or str(ROOT / ".venv-tools" / "bin" / "terraform")
    return found


# ------------------------------------------------------------------------------- 1. Terraform
def values_tree(dest: Path) -> Path:
    """Copy what computes chart values (no resources, no providers) into `dest`; return the root."""
    for module in sorted((TF / "modules").iterdir()):
        for name in ("variables.tf", "values.tf"):
            if (module / name).exists():
                target = dest / "deploy/terraform/modules" / module.name / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(module / name, target)
    root = dest / "deploy/terraform/stack"
    root.mkdir(parents=True, exist_ok=True)
    for path in (TF / "stack").glob("*.tf"):
        if path.name != "versions.tf":
            shutil.copy(path, root / path.name)
    chart = dest / "deploy/helm/connector"
    chart.mkdir(parents=True, exist_ok=True)
    for path in (ROOT / "deploy/helm/connector").glob("values*.yaml"):
        shutil.copy(path, chart / path.name)
    return root


def terraform_outputs(env: str) -> dict[str, Any]:
    tf = terraform_bin()
    environ = {
        **os.environ,
        "TF_CLI_CONFIG_FILE": "",
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
    }
    with tempfile.TemporaryDirectory(prefix="tf-stack-") as tmp:
        root = values_tree(Path(tmp))
        tfvars = TF / "environments" / f"{env}.tfvars"
        secrets = [a for k, v in DUMMY_SECRETS.items() for a in ("-var", f"{k}={v}")]
        apply = [tf, "apply", "-auto-approve", "-input=false", "-no-color", "-lock=false"]
        for argv in (
            [tf, "init", "-backend=false", "-input=false", "-no-color"],
            [*apply, f"-var-file={tfvars}", *secrets],
        ):
            proc = subprocess.run(argv, cwd=root, env=environ, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(
                    f"{env}: {' '.join(argv[:2])} failed:\n{proc.stdout}{proc.stderr}"
                )
        proc = subprocess.run(
            [tf, "output", "-json"],
            cwd=root,
            env=environ,
            capture_output=True,
            text=True,
            check=True,
        )
    return {k: v["value"] for k, v in json.loads(proc.stdout).items()}


# ------------------------------------------------------------------------------- 2. Helm
def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of several values files: maps merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        elif value is None:
            out.pop(key, None)
        else:
            out[key] = copy.deepcopy(value)
    return out


def merged_values(release: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for text in release["values"]:
        merged = deep_merge(merged, yaml.safe_load(text) or {})
    return merged


CHART_CACHE = ROOT / "var" / "deploy-check" / "charts"


def chart_path(release: dict[str, Any]) -> Path:
    """Our charts from the repository; a third-party chart from the vendored copy of exactly the
    pinned version, else pulled once from its repository into var/deploy-check/charts."""
    if not release.get("repository"):
        return ROOT / release["chart"]
    name, version = release["chart"], release["version"]
    for candidate in sorted(vendor_dir().glob("*/Chart.yaml")) + sorted(
        CHART_CACHE.glob("*/*/Chart.yaml")
    ):
        meta = yaml.safe_load(candidate.read_text())
        if meta.get("name") == name and str(meta.get("version")) == version:
            return candidate.parent
    import helm_python as helm

    dest = CHART_CACHE / f"{name}-{version}"
    dest.mkdir(parents=True, exist_ok=True)
    try:
        helm.pull(name, repo_url=release["repository"], version=version, untar=True, untar_dir=dest)
    except Exception as exc:  # helm_python raises its own hierarchy
        raise FileNotFoundError(
            f"chart {name} {version} is neither in {vendor_dir()} (HELM_CHARTS_VENDOR) nor "
            f"pullable from {release['repository']}: {exc}"
        ) from exc
    return dest / name


class _KubeLoader(yaml.SafeLoader):
    """YAML as the API server reads it: a timestamp-looking scalar stays a string."""


_KubeLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def render(release: dict[str, Any]) -> list[dict[str, Any]]:
    import helm_python as helm
    from helm_python import _native

    chart = helm.Chart.load(str(chart_path(release)))
    try:
        values = merged_values(release)
        opts = {
            "name": release["name"],
            "namespace": release["namespace"],
            "api_versions": API_VERSIONS,
            "kube_version": f"v{KUBE_VERSION}.0",
            "is_install": True,
        }
        raw = _native.call_string("helm_render", chart._raw(), json.dumps(values), json.dumps(opts))
    finally:
        chart.close()
    result = json.loads(raw)
    if isinstance(result, dict) and isinstance(result.get("manifests"), dict):
        result = result["manifests"]
    docs: list[dict[str, Any]] = []
    for path in sorted(result):
        if path.endswith((".yaml", ".yml")):
            docs += [d for d in yaml.load_all(result[path], Loader=_KubeLoader) if d]
    # `helm test` pods are created only by `helm test`, never by an install (nor by Terraform).
    docs = [
        d
        for d in docs
        if "test" not in (d["metadata"].get("annotations") or {}).get("helm.sh/hook", "").split(",")
    ]
    for doc in docs:
        doc.setdefault("metadata", {}).setdefault("namespace", release["namespace"])
    return docs


def lint(release: dict[str, Any]) -> list[str]:
    import helm_python as helm

    report = helm.lint(
        str(chart_path(release)),
        strict=True,
        kube_version=f"v{KUBE_VERSION}.0",
        values=merged_values(release),
    )
    found = [str(m) for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    return found + [str(e) for e in report.get("errors") or []]


# ------------------------------------------------------------------------------- 3. validation
def is_builtin(api_version: str) -> bool:
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    return "." not in group or group.endswith(".k8s.io")


@functools.cache
def cnpg_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    operator = chart_path(
        {
            "chart": "cloudnative-pg",
            "version": OPERATOR_CHART_VERSION,
            "repository": "https://cloudnative-pg.github.io/charts",
        }
    )
    crds = operator / "templates" / "crds" / "crds.yaml"
    text = "\n".join(line for line in crds.read_text().splitlines() if "{{" not in line)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are 19,000 lines
    for crd in yaml.load_all(text, Loader=loader):
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        for version in crd["spec"]["versions"]:
            key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
            out[key] = version["schema"]["openAPIV3Schema"]
    return out


@functools.cache
def crd_models() -> dict[tuple[str, str], Any]:
    """cloudcoil models: validate.py's (KEDA, Prometheus Operator, cert-manager) + PodMonitor."""
    import validate
    from cloudcoil.models.prometheus_operator import v1 as prom

    models: dict[tuple[str, str], Any] = dict(validate.crd_models())
    models[("monitoring.coreos.com/v1", "PodMonitor")] = prom.PodMonitor.model_validate
    return models


def pod_templates(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if doc.get("kind") in POD_KINDS:
        return [doc["spec"]["template"]]
    if doc.get("kind") == "CronJob":
        return [doc["spec"]["jobTemplate"]["spec"]["template"]]
    if doc.get("kind") == "Pod":
        return [doc]
    return []


def has_limits(resources: dict[str, Any] | None) -> bool:
    r = resources or {}
    return all(
        (r.get(part) or {}).get(res) for part in ("requests", "limits") for res in ("cpu", "memory")
    )


def validate_docs(docs: list[dict[str, Any]], where: str) -> tuple[list[str], dict[str, int]]:
    import jsonschema
    import kubernetes_validate

    errors: list[str] = []
    counts: dict[str, int] = {}
    policies = kyverno_check.load_policies(ROOT / "deploy" / "policies")
    schemas = cnpg_schemas()
    models = crd_models()
    for doc in docs:
        kind, api = doc.get("kind", ""), doc.get("apiVersion", "")
        ident = f"{where}: {kind}/{doc.get('metadata', {}).get('name')}"
        namespace = doc["metadata"].get("namespace", "")
        if is_builtin(api):
            try:
                kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
                counts["kubernetes 1.30 schema"] = counts.get("kubernetes 1.30 schema", 0) + 1
            except Exception as exc:
                errors.append(f"{ident}: {type(exc).__name__}: {exc}")
        elif (api, kind) in schemas:
            try:
                jsonschema.validate(doc, schemas[(api, kind)])
                counts["CloudNativePG CRD"] = counts.get("CloudNativePG CRD", 0) + 1
            except jsonschema.ValidationError as exc:
                errors.append(f"{ident}: CRD schema: {exc.message} at {list(exc.absolute_path)}")
        elif (api, kind) in models:
            try:
                models[(api, kind)](doc)
                counts["CRD model (cloudcoil)"] = counts.get("CRD model (cloudcoil)", 0) + 1
            except Exception as exc:
                errors.append(f"{ident}: {exc}")
        else:
            errors.append(f"{ident}: no schema for {api} {kind}")
        for pod in pod_templates(doc):
            counts["pod templates"] = counts.get("pod templates", 0) + 1
            for err in pss_check.check_pod(pod.get("metadata") or {}, pod["spec"]):
                errors.append(f"{ident}: Pod Security restricted: {err}")
            for key in ("initContainers", "containers"):
                for c in pod["spec"].get(key) or []:
                    if not has_limits(c.get("resources")):
                        errors.append(
                            f"{ident}: {c.get('name')}: cpu/memory requests+limits missing"
                        )
            if namespace.startswith("connector-"):
                for err in kyverno_check.check_pod(policies, pod, namespace=namespace):
                    errors.append(f"{ident}: Kyverno: {err}")
        # Pods the operator creates from these specs (instances, join/initdb jobs, PgBouncer).
        if kind == "Cluster" and not has_limits(doc["spec"].get("resources")):
            errors.append(f"{ident}: spec.resources needs cpu/memory requests and limits")
        if kind == "Pooler":
            containers = (doc["spec"].get("template") or {}).get("spec", {}).get("containers", [])
            if not containers or not all(has_limits(c.get("resources")) for c in containers):
                errors.append(f"{ident}: spec.template containers need requests and limits")
    return errors, counts


# ------------------------------------------------------------------------------- commands
def cmd_render(_: argparse.Namespace) -> int:
    failures: list[str] = []
    summary: list[str] = []
    # only the environments that exist now: the test reads OUT as the set of environments
    shutil.rmtree(OUT, ignore_errors=True)
    for env in ENVIRONMENTS:
        try:
            outputs = terraform_outputs(env)
        except RuntimeError as exc:
            failures.append(str(exc))
            continue
        env_failures = len(failures)
        env_out = OUT / env
        env_out.mkdir(parents=True)
        totals: dict[str, int] = {}
        for release in outputs["releases"]:
            where = f"{env}/{release['name']}"
            try:
                docs = render(release)
            except Exception as exc:  # helm_python raises its own hierarchy
                failures.append(f"{where}: render failed: {type(exc).__name__}: {exc}")
                continue
            (env_out / f"{release['name']}.yaml").write_text(
                "".join("---\n" + yaml.safe_dump(d, sort_keys=False) for d in docs)
            )
            if not release.get("repository"):  # our own charts: helm lint --strict too
                failures += [f"{where}: helm lint: {m}" for m in lint(release)]
            errors, counts = validate_docs(docs, where)
            failures += errors
            for k, v in counts.items():
                totals[k] = totals.get(k, 0) + v
        names = ", ".join(r["name"] for r in outputs["releases"])
        if len(failures) > env_failures:
            continue
        summary.append(
            f"{env}: {names} ({', '.join(f'{k} {v}' for k, v in sorted(totals.items()))})"
        )
    for line in failures:
        print(f"FAIL [terraform stack] {line}", file=sys.stderr)  # noqa: T201 (CLI output)
    for line in summary:
        print(f"ok   [terraform stack] {line}")  # noqa: T201 (CLI output)
    return 1 if failures else 0


def connector_clients(values: dict[str, Any]) -> dict[str, int]:
    """The most Postgres connections each connector role can hold: replicas at most x pool max."""
    pool = int(values["config"]["database"]["pool"]["max"])

    def most(spec: dict[str, Any]) -> int:
        auto = spec.get("autoscaling") or {}
        return int(auto["maxReplicas"]) if auto.get("enabled") else int(spec["replicaCount"])

    roles = {
        "control-plane": most(values["controlPlane"]),
        "data-plane": most(values["dataPlane"]),
    }
    for queue in values["workers"]["queues"]:
        roles[f"worker-{queue['name']}"] = most(queue)
    return {role: replicas * pool for role, replicas in roles.items()}


def cmd_budget(_: argparse.Namespace) -> int:
    report: dict[str, Any] = {}
    for env in ENVIRONMENTS:
        outputs = terraform_outputs(env)
        connector = next(r for r in outputs["releases"] if r["name"] == "connector")
        # as Helm computes them: the chart's values.yaml, then the values Terraform passes
        defaults = yaml.safe_load((chart_path(connector) / "values.yaml").read_text())
        values = deep_merge(defaults, merged_values(connector))
        clients = connector_clients(values)
        pool = int(values["config"]["database"]["pool"]["max"])
        ops_workers = clients["worker-ops"] // pool
        report[env] = {
            "budget": outputs["connection_budget"],
            "connector_clients": clients,
            # direct sessions of one backup run: the snapshot holder, pg_dump, pg_restore --jobs=2
            # (3) and the comparison; every ops worker may run one
            "backup_sessions": 6 * ops_workers,
        }
    print(json.dumps(report, indent=2))  # noqa: T201 (CLI output)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["render", "budget"])
    args = parser.parse_args()
    return {"render": cmd_render, "budget": cmd_budget}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
