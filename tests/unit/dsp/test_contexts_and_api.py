"""Vendored contexts, the version enum and the public surface of connector.core.dsp."""

from __future__ import annotations

from typing import Any

import pytest

import connector.core.dsp as dsp
from connector.core.dsp import DSP_CONTEXT_0_8, DSP_CONTEXT_2025_1, ODRL_PROFILE_CONTEXT_2025_1
from connector.core.errors import BadRequestError
from connector.core.jsonld import VENDORED_CONTEXTS, DspVersion, document_loader, load_context

# Present in the 2025-1 schema but not in its context (only reachable as `dcat:servesDataset`).
SCHEMA_ONLY_TERMS = {"servesDataset"}


def _terms(node: Any, into: set[str]) -> set[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            into.add(key)
            _terms(value, into)
    elif isinstance(node, list):
        for value in node:
            _terms(value, into)
    return into


def _wire_models() -> list[type[dsp.DspModel]]:
    return [
        obj
        for name in dsp.__all__
        if isinstance(obj := getattr(dsp, name), type)
        and issubclass(obj, dsp.DspModel)
        and obj.__module__ != "connector.core.dsp.version"
    ]


def test_dunder_all_lists_exactly_the_public_members() -> None:
    public = {
        name
        for name, value in vars(dsp).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("connector")
    }
    assert set(dsp.__all__) >= public - {"catalog", "common", "negotiation", "transfer"}
    assert all(hasattr(dsp, name) for name in dsp.__all__)
    assert dsp.DSP_VERSION == "2025-1"


def test_version_enum_carries_path_segment_and_context() -> None:
    assert [v.value for v in DspVersion] == ["2025-1", "0.8"]
    assert DspVersion.V2025_1.path_segment == "/dsp/2025-1"
    assert DspVersion.V0_8.path_segment == "/dsp/0.8"
    assert DspVersion.V2025_1.context_url == DSP_CONTEXT_2025_1
    assert DspVersion.V0_8.context_url == DSP_CONTEXT_0_8


@pytest.mark.parametrize("url", sorted(VENDORED_CONTEXTS))
def test_every_vendored_context_loads(url: str) -> None:
    assert "@context" in load_context(url)
    assert document_loader(url)["document"] == load_context(url)


def test_loader_returns_fresh_copies() -> None:
    load_context(DSP_CONTEXT_2025_1)["@context"].clear()
    assert load_context(DSP_CONTEXT_2025_1)["@context"]


@pytest.mark.parametrize(
    "url",
    [
        "https://w3id.org/dspace/2024/1/context.json",
        "https://evil.example/ctx",
        "file:///etc/passwd",
    ],
)
def test_loader_refuses_anything_not_vendored(url: str) -> None:
    with pytest.raises(BadRequestError, match="unknown @context"):
        load_context(url)


def test_every_model_term_is_defined_by_the_vendored_2025_1_contexts() -> None:
    terms = _terms(load_context(DSP_CONTEXT_2025_1), set())
    terms = _terms(load_context(ODRL_PROFILE_CONTEXT_2025_1), terms)
    used = {
        info.alias or name for model in _wire_models() for name, info in model.model_fields.items()
    }
    undefined = {t for t in used if not t.startswith("@")} - terms
    assert undefined == SCHEMA_ONLY_TERMS


def test_every_model_type_is_defined_by_the_2025_1_context() -> None:
    terms = _terms(load_context(DSP_CONTEXT_2025_1), set())
    terms = _terms(load_context(ODRL_PROFILE_CONTEXT_2025_1), terms)
    types = {t for model in _wire_models() if (t := dsp.dsp_type_of(model))}
    assert types - terms == set()
    assert set(dsp.MESSAGE_TYPES) <= types
