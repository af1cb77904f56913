"""Offline schema validation: local `$ref` resolution, pointers, no fetching."""

from __future__ import annotations

import socket

import pytest

from connector.core.dsp import DspVersion, schema_name_for, validate_against_schema
from connector.core.dsp.validation import json_pointer, schema_problems

V2025 = DspVersion.V2025_1
GOOD_ERROR = {
    "@context": ["https://w3id.org/dspace/2025/1/context.jsonld"],
    "@type": "TransferError",
    "providerPid": "urn:uuid:p",
    "consumerPid": "urn:uuid:c",
    "reason": ["x"],
}


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_cross_file_refs_with_the_known_anchor_defect_resolve_locally() -> None:
    # transfer-error-schema.json refs transfer-schema.json#definitions/… (missing "/").
    assert validate_against_schema(GOOD_ERROR, "TransferError", V2025) == []


def test_problems_carry_pointers() -> None:
    body = {**GOOD_ERROR, "reason": [], "consumerPid": 7}
    assert schema_problems(body, "TransferError", V2025) == [
        ("/consumerPid", "7 is not of type 'string'"),
        ("/reason", "[] should be non-empty"),
    ]
    assert validate_against_schema({}, "TransferError", V2025)[0].startswith("/: ")


def test_schema_can_be_named_by_path_or_fragment() -> None:
    assert schema_name_for("Offer", V2025) == "negotiation/contract-schema.json#/definitions/Offer"
    offer = {"@id": "urn:o", "permission": [{"action": "use"}]}
    assert validate_against_schema(offer, schema_name_for("Offer", V2025), V2025) == []
    assert validate_against_schema({**offer, "target": "x"}, "Offer", V2025) != []


def test_unknown_schema_names_are_reported_not_fetched() -> None:
    problems = validate_against_schema({}, "https://example.com/remote.json", V2025)
    assert len(problems) == 1
    assert "unresolvable" in problems[0]
    with pytest.raises(KeyError):
        schema_name_for("NoSuchMessage", V2025)


def test_0_8_schemas_resolve_their_inconsistent_ids_locally() -> None:
    offer = {
        "@id": "urn:o",
        "@type": "odrl:Offer",
        "dspace:providerId": "urn:p",
        "odrl:permission": [{"odrl:action": "odrl:use"}],
    }
    dataset = {
        "@context": "https://w3id.org/dspace/v0.8/context.json",
        "@id": "urn:d",
        "@type": "dcat:Dataset",
        "odrl:hasPolicy": [offer],
        "dcat:distribution": [{"dct:format": "f", "dcat:accessService": [{"@id": "urn:s"}]}],
    }
    assert validate_against_schema(dataset, "Dataset", DspVersion.V0_8) == []


def test_the_broken_0_8_catalog_schema_reports_instead_of_crashing() -> None:
    problems = validate_against_schema({"@id": "urn:c"}, "Catalog", DspVersion.V0_8)
    assert problems


def test_json_pointer_escapes_per_rfc_6901() -> None:
    assert json_pointer(["a/b", "c~d", 0]) == "/a~1b/c~0d/0"
    assert json_pointer([]) == ""
