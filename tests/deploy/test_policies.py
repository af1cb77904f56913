"""Kyverno ClusterPolicy: valid against the cloudcoil model, and every rendered workload satisfies
its patterns (evaluated in Python by deploy/tools/kyverno_check.py, reading the policy file)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from tests.deploy.deploy_testlib import ROOT, SCENARIOS, Run, load_module, tool, workloads

pytestmark = pytest.mark.deploy

kyverno = load_module("kyverno_check", ROOT / "deploy" / "tools" / "kyverno_check.py")
POLICY_DIR = ROOT / "deploy" / "policies"
NAMESPACE = "connector-prod"


@pytest.fixture(scope="module")
def policies() -> list[Any]:
    loaded: list[Any] = kyverno.load_policies(POLICY_DIR)
    return loaded


def test_policy_is_a_valid_kyverno_clusterpolicy(run: Run) -> None:
    code = (
        "import sys, yaml\n"
        "from cloudcoil.models.kyverno.v1 import ClusterPolicy\n"
        "for doc in yaml.safe_load_all(open(sys.argv[1])):\n"
        "    p = ClusterPolicy.model_validate(doc)\n"
        "    print(p.metadata.name, len(p.spec.rules))\n"
    )
    proc = run(tool("python"), "-c", code, POLICY_DIR / "connector-security-policy.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("connector-security-policy 6"), proc.stdout


def test_a_broken_policy_fails_the_model(run: Run) -> None:
    code = (
        "import sys, yaml\n"
        "from cloudcoil.models.kyverno.v1 import ClusterPolicy\n"
        "doc = yaml.safe_load(open(sys.argv[1]))\n"
        "doc['spec']['validationFailureAction'] = 'Sometimes'\n"
        "try:\n"
        "    ClusterPolicy.model_validate(doc)\n"
        "except Exception:\n"
        "    sys.exit(0)\n"
        "sys.exit('accepted')\n"
    )
    proc = run(tool("python"), "-c", code, POLICY_DIR / "connector-security-policy.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_seed_rules_are_present(policies: list[Any]) -> None:
    rules = {r.name for p in policies for r in p.rules}
    assert {"require-security-context", "require-resource-limits", "disallow-privileged"} <= rules
    doc = yaml.safe_load((POLICY_DIR / "connector-security-policy.yaml").read_text())
    assert doc["spec"]["validationFailureAction"] == "Enforce"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_rendered_workload_satisfies_the_policy(
    scenario: str, rendered: dict[str, list[dict[str, Any]]], policies: list[Any]
) -> None:
    found = workloads(rendered[scenario])
    assert len(found) >= 6, "CP, DP, two workers and two hook Jobs"
    for obj, pod in found:
        errors = kyverno.check_pod(policies, pod, namespace=NAMESPACE)
        assert errors == [], f"{obj['kind']}/{obj['metadata']['name']}: {errors}"


def _set(d: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    for k in keys[:-1]:
        d = d[int(k)] if isinstance(d, list) else d.setdefault(k, {})
    if value is None:
        d.pop(keys[-1], None)
    else:
        d[keys[-1]] = value


MUTATIONS = [
    ("spec.securityContext.runAsUser", 0, "require-security-context"),
    ("spec.securityContext.runAsNonRoot", False, "require-security-context"),
    ("spec.securityContext", None, "require-security-context"),
    ("spec.containers.0.resources.limits.cpu", None, "require-resource-limits"),
    ("spec.containers.0.resources.requests", None, "require-resource-limits"),
    ("spec.containers.0.securityContext.privileged", True, "disallow-privileged"),
    (
        "spec.containers.0.securityContext.allowPrivilegeEscalation",
        True,
        "require-hardened-containers",
    ),
    (
        "spec.containers.0.securityContext.readOnlyRootFilesystem",
        False,
        "require-hardened-containers",
    ),
    (
        "spec.containers.0.securityContext.capabilities.drop",
        ["NET_RAW"],
        "require-hardened-containers",
    ),
    ("spec.securityContext.seccompProfile.type", "Unconfined", "require-seccomp-runtime-default"),
    ("spec.hostNetwork", True, "disallow-host-namespaces"),
]


@pytest.mark.parametrize(
    ("path", "value", "rule"), MUTATIONS, ids=[f"{m[0]}={m[1]}" for m in MUTATIONS]
)
def test_the_evaluator_catches_violations(
    path: str, value: Any, rule: str, rendered: dict[str, list[dict[str, Any]]], policies: list[Any]
) -> None:
    _, pod = workloads(rendered["prod"])[0]
    bad = copy.deepcopy(pod)
    _set(bad, path, value)
    errors = kyverno.check_pod(policies, bad, namespace=NAMESPACE)
    assert any(f"/{rule}:" in e for e in errors), errors


def test_rules_only_apply_to_connector_namespaces(
    rendered: dict[str, list[dict[str, Any]]], policies: list[Any]
) -> None:
    _, pod = workloads(rendered["prod"])[0]
    bad = copy.deepcopy(pod)
    bad["spec"]["containers"][0]["securityContext"]["privileged"] = True
    assert kyverno.check_pod(policies, bad, namespace="kube-system") == []


@pytest.mark.parametrize(
    ("pattern", "value", "ok"),
    [
        ("?*", "500m", True),
        ("?*", "", False),
        ("?*", None, False),
        (">0", 10001, True),
        (">0", 0, False),
        ("false", False, True),
        ("false", True, False),
        ("true", True, True),
        (True, True, True),
        ("RuntimeDefault", "RuntimeDefault", True),
        ("*", "anything", True),
        ("a|b", "b", True),
    ],
)
def test_scalar_pattern_semantics(pattern: Any, value: Any, ok: bool) -> None:
    assert kyverno.match_scalar(pattern, value) is ok


def test_equality_anchor_skips_missing_keys() -> None:
    pattern = {"spec": {"=(securityContext)": {"=(privileged)": "false"}}}
    assert kyverno.match(pattern, {"spec": {}}) == []
    assert kyverno.match(pattern, {"spec": {"securityContext": {}}}) == []
    assert kyverno.match(pattern, {"spec": {"securityContext": {"privileged": True}}}) != []
