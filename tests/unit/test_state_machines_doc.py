"""docs/state-machines.md is what the transition tables say (regenerate: `make state-machines`)."""

from __future__ import annotations

from pathlib import Path

from connector.state_machines_doc import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "state-machines.md"


def test_the_document_matches_the_tables() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), "run `make state-machines`"


def test_every_state_has_a_row() -> None:
    text = render()
    for state in ("REQUESTED", "OFFERED", "ACCEPTED", "AGREED", "VERIFIED", "SUSPENDED"):
        assert f"\n| {state} | " in text
