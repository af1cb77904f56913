"""`make load`'s report (tests/load/edge_load.py): numbers taken from k6's summary export, and
the quick and full runs each keep their own subsection of docs/benchmarks.md."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.load import edge_load
from tests.load.edge_load import ConsumerStandIn, report, write_doc

SUMMARY = {
    "metrics": {
        "http_req_duration{name:catalog}": {"med": 40.0, "p(90)": 300.0, "p(95)": 480.0},
        "http_req_duration{name:negotiation_request}": {"med": 900.0, "p(95)": 1500.0},
        "http_reqs{name:catalog}": {"count": 100},
        "http_reqs{name:negotiation_request}": {"count": 100},
        "http_req_failed{scenario:dsp}": {"value": 0.02},
        "errors": {"value": 0.02},
        "negotiations_started": {"count": 96},
        "negotiations_refused{status:503}": {"count": 4},
        "iterations": {"count": 100},
        "http_reqs": {"count": 200, "rate": 10.0},
        "vus_max": {"value": 200, "max": 200},
    }
}


def states(**values: int) -> dict[str, int]:
    out = dict.fromkeys(edge_load.STATES, 0)
    out.update(values)
    out["all"] = sum(values.values())
    return out


def test_the_report_judges_each_target_from_the_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    text = report(
        "Quick (3 min)",
        "make load QUICK=1",
        SUMMARY,
        99,
        states(FINALIZED=98, AGREED=2),
        30.0,
        ConsumerStandIn(port=1),
        10.0,
        100.0,
        10.0,
    )
    assert "Command: `make load QUICK=1`; k6 exit code 99." in text
    assert "| catalog | 100 | 40 | 300 | 480 |" in text
    assert "- catalog p95 < 500 ms: **met** (480 ms)" in text
    assert "- negotiation request p95 < 1 s: **MISSED** (1,500 ms)" in text
    assert "- errors < 1 %: **MISSED** (2.00%)" in text
    assert "Negotiation requests refused: 4 x 503." in text
    assert "Negotiations the load started (201): **96**" in text
    # The four answered 503 went ahead all the same; two are still AGREED.
    assert "4 of them were answered with a refusal" in text
    assert "**MISSED** (2 still open after 30 s)" in text
    # 20 s of CPU (stack and k6) over 100 iterations; 200 VUs / (1 s + 0.04 s + 1 s).
    assert "- Capacity: 200 ms of CPU per iteration" in text
    assert "2 cores complete at most 10.0 iterations/s" in text
    assert "needs 98 iterations/s" in text
    assert "at most 20 ms of CPU per iteration on 2 cores, or 19.6 cores" in text


def test_quick_and_full_runs_keep_their_own_subsections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Catalog\n\ncatalog text\n\n## Later\n\nlater text\n")
    monkeypatch.setattr(edge_load, "DOC", doc)
    write_doc("Quick (3 min)", "### Quick (3 min)\n\nquick 1\n")
    write_doc("Full (16 min)", "### Full (16 min)\n\nfull 1\n")
    variant = "Quick (3 min), CONNECTOR_ADMISSION__WAIT_SECONDS=20"
    write_doc(variant, f"### {variant}\n\nwaiting longer\n")
    write_doc("Quick (3 min)", "### Quick (3 min)\n\nquick 2\n")
    text = doc.read_text()
    # The plain runs first, then the ones with settings of their own.
    assert text.index("full 1") < text.index("quick 2") < text.index("waiting longer")
    assert text.count(edge_load.SECTION) == 1
    assert "quick 1" not in text
    assert text.index("full 1") < text.index("quick 2")
    assert "catalog text" in text
    assert "later text" in text
    assert text.index("## Later") < text.index(edge_load.SECTION)
