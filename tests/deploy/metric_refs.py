"""Metric names referenced by the alert rules and Grafana dashboards under ops/.

For a live cross-check against a running connector's `/metrics`::

    from metric_refs import referenced_metric_names   # load by path: tests/deploy/metric_refs.py
    missing = referenced_metric_names() - names_seen_in_scrape

`referenced_metric_names()` returns *series* names exactly as written in PromQL, so histograms
appear with their `_bucket` suffix (`http_request_duration_seconds_bucket`) and counters with
`_total` -- the same names the text exposition format carries. `referenced_metric_families()`
strips the histogram suffixes (`_bucket`, `_sum`, `_count`) to give family names.

Parsing uses promql-parser (from this venv, or from `.venv-tools` when only that has it); without
it a conservative tokenizer is used. Both give the same result for our expressions (tested).
Self-contained on purpose: stdlib + PyYAML only.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "ops" / "prometheus" / "rules.yml"
DASHBOARDS = ROOT / "ops" / "grafana" / "dashboards"

# Grafana macros are not PromQL: give them parseable values before parsing.
GRAFANA_MACROS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
    "atan2",
}


def expressions() -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every alert/recording rule and every dashboard target."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules.get("groups", []):
        for rule in group.get("rules", []):
            yield f"{RULES.name}:{rule.get('alert') or rule.get('record')}", rule["expr"]
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in _panels(json.loads(path.read_text()).get("panels", [])):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    yield f"{path.name}:{panel.get('title')}", _expand_macros(target["expr"])


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _expand_macros(expr: str) -> str:
    for macro, value in GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    return expr


def _promql_parser() -> ModuleType | None:
    try:
        import promql_parser

        module: ModuleType = promql_parser
        return module
    except ImportError:
        pass
    for site in sorted((ROOT / ".venv-tools" / "lib").glob("python3*/site-packages")):
        if (site / "promql_parser").exists():
            sys.path.append(str(site))
            try:
                import promql_parser

                found: ModuleType = promql_parser
                return found
            except ImportError:
                sys.path.remove(str(site))
    return None


def names_in_expr_ast(expr: str, parser: ModuleType) -> set[str]:
    found: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, parser.VectorSelector) and node.name:
            found.add(node.name)
        elif isinstance(node, parser.VectorSelector):
            for matcher in node.matchers.matchers:
                if matcher.name == "__name__":
                    found.add(matcher.value)

    parser.walk(parser.parse(expr), visit)
    return found


def names_in_expr_regex(expr: str) -> set[str]:
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # string literals
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range / subquery durations
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        token = match.group(0)
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or token.lower() in _KEYWORDS:
            continue  # function or aggregation call, or a keyword
        before = text[: match.start()]
        if re.search(r"[0-9.]$", before):
            continue  # the unit of a number/duration such as 26h or 1e-9
        names.add(token)
    return names


def referenced_metric_names(*, use_parser: bool = True) -> set[str]:
    """Series names referenced by ops/prometheus/rules.yml and ops/grafana/dashboards/*.json."""
    parser = _promql_parser() if use_parser else None
    names: set[str] = set()
    for _, expr in expressions():
        names |= names_in_expr_ast(expr, parser) if parser else names_in_expr_regex(expr)
    return names


def referenced_metric_families() -> set[str]:
    """Family names: histogram series suffixes stripped."""
    out = set()
    for name in referenced_metric_names():
        for suffix in HISTOGRAM_SUFFIXES:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        out.add(name)
    return out


if __name__ == "__main__":
    for metric in sorted(referenced_metric_names()):
        print(metric)
