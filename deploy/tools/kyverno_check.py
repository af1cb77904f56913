"""A small evaluator for the subset of Kyverno `validate.pattern` syntax used in deploy/policies/.

No kyverno CLI is packaged for offline use, so deploy/check.sh and tests/deploy apply the policy's
own patterns to every rendered pod template with this module. Supported (Kyverno semantics):

- maps: every key must exist and match; `=(key)` (equality anchor) only applies if the key exists
- lists: every element of the resource list must match every element of the pattern list
- scalars: wildcards `*` / `?` (`"?*"` = non-empty), `|` alternatives, comparison operators
  `>`, `>=`, `<`, `<=`, `!` on numbers; booleans compare against "true"/"false" strings
- match: `kinds` containing Pod (applied to pod templates of workloads) and `namespaces` globs

Pure Python + PyYAML, importable from the main venv and from .venv-tools.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ANCHOR_EQ = ("=(", ")")


@dataclass
class Rule:
    name: str
    message: str
    pattern: dict[str, Any]
    kinds: list[str]
    namespaces: list[str] = field(default_factory=list)


@dataclass
class Policy:
    name: str
    rules: list[Rule]


def load_policies(directory: Path) -> list[Policy]:
    policies: list[Policy] = []
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") not in {"ClusterPolicy", "Policy"}:
                continue
            rules = []
            for r in doc["spec"]["rules"]:
                if "verifyImages" in r:
                    continue  # signatures are checked at admission in a cluster, not offline
                if "validate" not in r or "pattern" not in r["validate"]:
                    raise ValueError(
                        f"{path}: rule {r.get('name')} uses unsupported Kyverno features"
                    )
                kinds: list[str] = []
                namespaces: list[str] = []
                for m in r["match"].get("any", []) + r["match"].get("all", []):
                    kinds += m["resources"].get("kinds", [])
                    namespaces += m["resources"].get("namespaces", [])
                rules.append(
                    Rule(
                        r["name"],
                        r["validate"].get("message", ""),
                        r["validate"]["pattern"],
                        kinds,
                        namespaces,
                    )
                )
            policies.append(Policy(doc["metadata"]["name"], rules))
    if not policies:
        raise ValueError(f"no Kyverno policy in {directory}")
    return policies


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _compare(op: str, want: str, value: Any) -> bool:
    try:
        v = float(value)
        w = float(want)
    except (TypeError, ValueError):
        return False
    return {">": v > w, ">=": v >= w, "<": v < w, "<=": v <= w, "!": v != w}[op]


def match_scalar(pattern: Any, value: Any) -> bool:
    if value is None or isinstance(value, (dict, list)):
        return False
    if isinstance(pattern, bool):
        return _scalar_text(value) == _scalar_text(pattern)
    if isinstance(pattern, (int, float)):
        return _compare(">=", str(pattern), value) and _compare("<=", str(pattern), value)
    text = str(pattern)
    for alternative in text.split("|"):
        alt = alternative.strip()
        for op in (">=", "<=", ">", "<"):
            if alt.startswith(op):
                if _compare(op, alt[len(op) :], value):
                    return True
                break
        else:
            if alt.startswith("!") and alt != "!":
                if not fnmatch.fnmatchcase(_scalar_text(value), alt[1:]):
                    return True
            elif fnmatch.fnmatchcase(_scalar_text(value), alt):
                return True
    return False


def match(pattern: Any, value: Any, path: str = "") -> list[str]:
    """Errors (empty = match) of `value` against a Kyverno pattern."""
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return [f"{path or '/'}: expected an object"]
        errors: list[str] = []
        for key, sub in pattern.items():
            if key.startswith(ANCHOR_EQ[0]) and key.endswith(ANCHOR_EQ[1]):
                real = key[2:-1]
                if real in value:
                    errors += match(sub, value[real], f"{path}/{real}")
            elif key not in value:
                errors.append(f"{path}/{key}: required by the policy but missing")
            else:
                errors += match(sub, value[key], f"{path}/{key}")
        return errors
    if isinstance(pattern, list):
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        errors = []
        for i, element in enumerate(value):
            for sub in pattern:
                errors += match(sub, element, f"{path}/{i}")
        return errors
    if not match_scalar(pattern, value):
        return [f"{path}: {value!r} does not match {pattern!r}"]
    return []


def check_pod(policies: list[Policy], pod: dict[str, Any], namespace: str) -> list[str]:
    """Apply every Pod rule whose namespace globs match to a pod or a pod template."""
    errors: list[str] = []
    for policy in policies:
        for rule in policy.rules:
            if "Pod" not in rule.kinds:
                continue
            if rule.namespaces and not any(
                fnmatch.fnmatchcase(namespace, g) for g in rule.namespaces
            ):
                continue
            for err in match(rule.pattern, pod):
                errors.append(f"{policy.name}/{rule.name}: {err} ({rule.message})")
    return errors
