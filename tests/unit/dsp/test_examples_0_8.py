"""DSP 0.8 examples normalise to the 2025-1 models; 0.8 encoding keeps the 0.8 wire form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connector.core.dsp import (
    DSP_CONTEXT_0_8,
    MESSAGE_TYPES,
    ContractAgreementMessage,
    ContractNegotiation,
    ContractNegotiationEventMessage,
    ContractRequestMessage,
    Dataset,
    TransferRequestMessage,
    validate_against_schema,
)
from connector.core.errors import BadRequestError
from connector.core.jsonld import DspVersion, decode, encode

EXAMPLES = Path(__file__).parents[2] / "fixtures" / "dsp" / "0.8"
V08 = DspVersion.V0_8

# Examples that are wrong against 0.8's own rules, with the first problem we report.
DEFECTIVE: dict[str, str] = {
    # Offer without @id (0.8 PolicyClass requires it).
    "catalog.json": "/dcat:dataset/0/odrl:hasPolicy/0/@id",
    "contract-request-message.json": "/dspace:offer/@id",
    # DCAT illustrations: no dct:format, two access services, no policy on the Dataset.
    "dcat.distribution.example.json": "/dcat:distribution/0/dct:format",
    "dcat.distribution.example.option1.json": "/dcat:distribution/0/dct:format",
    "dcat.distribution.example.option2.json": "/odrl:hasPolicy",
    # Agreement without dspace:providerId / dspace:consumerId (0.8 Agreement requires both).
    "contract.agreement.message.http.transfer.json": "/dspace:agreement/dspace:providerId",
    # dataAddress is a string (shared/dsp-spec README).
    "transfer-start-message.json": "/dspace:dataAddress",
}

# Known gaps -> the only 0.8 schema problem the re-encoded body may have.
SCHEMA_GAPS: dict[str, str] = {
    # 0.8 required a callbackAddress on agreements; the 2025-1 model has none to write.
    "contract-agreement-message.json": "/: 'dspace:callbackAddress' is a required property",
    # 0.8 required a message hash; 2025-1 dropped it and we do not compute one.
    "contract-agreement-verification-message.json": (
        "/: 'dspace:hashedMessage' is a required property"
    ),
    # The example's own Offer lacks dspace:providerId (0.8 Offer requires it).
    "dataset.json": "/odrl:hasPolicy/0: ",
}

ALL = sorted(EXAMPLES.rglob("*.json"))
GOOD = [p for p in ALL if p.name not in DEFECTIVE]


def _load(path: Path) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return body


def _type(body: dict[str, Any]) -> str:
    return str(body["@type"]).split(":", 1)[1]


def test_every_example_is_classified() -> None:
    assert len(ALL) == 26
    assert {p.name for p in ALL} >= set(DEFECTIVE) | set(SCHEMA_GAPS)


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_example_parses_and_encodes_back_to_the_0_8_form(path: Path) -> None:
    body = _load(path)
    model = decode(body, MESSAGE_TYPES[_type(body)], V08)
    encoded = encode(model, V08)
    assert encoded["@context"] == DSP_CONTEXT_0_8
    assert encoded["@type"] == body["@type"]
    unprefixed = [
        k for k in encoded if not k.startswith(("@", "dspace:", "dcat:", "dct:", "odrl:"))
    ]
    assert unprefixed == []


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_reencoded_example_validates_against_the_0_8_schema(path: Path) -> None:
    body = _load(path)
    encoded = encode(decode(body, MESSAGE_TYPES[_type(body)], V08), V08)
    problems = validate_against_schema(encoded, _type(body), V08)
    if path.name in SCHEMA_GAPS:
        assert len(problems) == 1
        assert problems[0].startswith(SCHEMA_GAPS[path.name])
    else:
        assert problems == []


@pytest.mark.parametrize(("name", "pointer"), sorted(DEFECTIVE.items()))
def test_defective_example_is_rejected_with_a_pointer_into_the_0_8_body(
    name: str, pointer: str
) -> None:
    body = _load(next(EXAMPLES.rglob(name)))
    with pytest.raises(BadRequestError) as info:
        decode(body, MESSAGE_TYPES[_type(body)], V08)
    assert info.value.pointer == pointer


def test_0_8_terms_normalise_to_the_2025_1_names() -> None:
    body = _load(EXAMPLES / "negotiation" / "contract-agreement-message.json")
    message = decode(body, ContractAgreementMessage, V08)
    assert message.provider_pid == "urn:uuid:a343fcbf-99fc-4ce8-8e9b-148c97605aab"
    assert message.agreement.assigner == "urn:tsdshhs636378"
    assert message.agreement.assignee == "urn:jashd766"
    assert message.agreement.timestamp == "2023-01-01T01:00:00Z"
    assert message.agreement.permission is not None
    assert message.agreement.permission[0]["action"] == "use"


def test_0_8_enum_values_lose_their_prefix() -> None:
    negotiation = decode(
        _load(EXAMPLES / "negotiation" / "contract-negotiation.json"), ContractNegotiation, V08
    )
    event = decode(
        _load(EXAMPLES / "negotiation" / "contract-negotiation-event-message.json"),
        ContractNegotiationEventMessage,
        V08,
    )
    assert (negotiation.state, event.event_type) == ("REQUESTED", "ACCEPTED")
    assert encode(negotiation, V08)["dspace:state"] == "dspace:REQUESTED"


def test_0_8_node_references_and_single_values_are_unwrapped() -> None:
    dataset = decode(_load(EXAMPLES / "catalog" / "dataset.json"), Dataset, V08)
    assert len(dataset.has_policy) == 1
    assert dataset.distribution[0].format == "dspace:s3+push"
    assert dataset.distribution[0].access_service == "urn:uuid:4aa2dcc8-4d2d-569e-d634-8394a8834d77"


def test_0_8_reasons_become_strings_and_go_back_language_tagged() -> None:
    body = _load(EXAMPLES / "negotiation" / "contract-negotiation-error.json")
    error = decode(body, MESSAGE_TYPES["ContractNegotiationError"], V08)
    assert error.model_dump()["reason"] == ["Catalog not provisioned for this requester."]
    assert encode(error, V08)["dspace:reason"] == body["dspace:reason"]


def test_0_8_message_reencodes_as_valid_2025_1() -> None:
    body = _load(EXAMPLES / "transfer" / "transfer-request-message.json")
    message = decode(body, TransferRequestMessage, V08)
    assert (
        validate_against_schema(encode(message), "TransferRequestMessage", DspVersion.V2025_1) == []
    )


def test_0_8_request_keeps_callback_and_both_pids() -> None:
    body = _load(EXAMPLES / "negotiation" / "contract-request-message_initial.json")
    message = decode(body, ContractRequestMessage, V08)
    assert message.callback_address == "https://......"
    assert message.offer.id == "urn:uuid:2828282:3dd1add8-4d2d-569e-d634-8394a8836a89"
