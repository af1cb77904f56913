"""Malformed DSP bodies become BadRequestError with a reason and a JSON pointer to the problem."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from connector.core.dsp import (
    DSP_CONTEXT_0_8,
    DSP_CONTEXT_2025_1,
    ODRL_PROFILE_CONTEXT_2025_1,
    Catalog,
    ContractAgreementMessage,
    ContractNegotiation,
    ContractRequestMessage,
    Dataset,
    TransferRequestMessage,
    TransferStartMessage,
    VersionResponse,
)
from connector.core.errors import BadRequestError, ErrorCode
from connector.core.jsonld import DspVersion, check_context, decode

FIXTURES = Path(__file__).parents[2] / "fixtures" / "dsp"
V2025 = DspVersion.V2025_1


def _example(version: str, name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(next((FIXTURES / version).rglob(name)).read_text("utf-8"))
    return body


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """A context or schema must never be fetched: any connection attempt fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _rejects(body: object, model: type[Any], version: DspVersion = V2025) -> BadRequestError:
    with pytest.raises(BadRequestError) as info:
        decode(body, model, version)
    assert info.value.code is ErrorCode.BAD_REQUEST
    assert info.value.reasons
    assert info.value.reasons[0]
    return info.value


@pytest.mark.parametrize("body", [[], "text", 42, None])
def test_non_object_body_is_rejected(body: object) -> None:
    assert _rejects(body, ContractNegotiation).pointer == ""


def test_wrong_type_is_rejected() -> None:
    body = _example("2025-1", "contract-offer-message.json")
    error = _rejects(body, ContractRequestMessage)
    assert error.pointer == "/@type"
    assert "ContractOfferMessage" in error.reasons[0]


def test_missing_type_is_rejected() -> None:
    body = _example("2025-1", "contract-negotiation.json")
    del body["@type"]
    assert _rejects(body, ContractNegotiation).pointer == "/@type"


def test_missing_required_field_points_at_it() -> None:
    body = _example("2025-1", "contract-negotiation.json")
    del body["consumerPid"]
    error = _rejects(body, ContractNegotiation)
    assert error.pointer == "/consumerPid"
    assert "required" in error.reasons[0].lower()


def test_missing_nested_field_points_into_the_structure() -> None:
    body = _example("2025-1", "transfer-request-message.json")
    del body["dataAddress"]["endpointProperties"][1]["value"]
    assert (
        _rejects(body, TransferRequestMessage).pointer == "/dataAddress/endpointProperties/1/value"
    )


def test_nested_field_inside_a_union_points_into_the_structure() -> None:
    body = _example("2025-1", "dataset.json")
    del body["distribution"][0]["accessService"]["endpointURL"]
    assert (_rejects(body, Dataset).pointer or "").startswith("/distribution/0/accessService")


@pytest.mark.parametrize(
    ("mutate", "pointer"),
    [
        (lambda b: b.update(offer="urn:uuid:offer"), "/offer"),
        (lambda b: b.update(consumerPid=["a", "b"]), "/consumerPid"),
        (lambda b: b["offer"].update(permission={"action": "use"}), "/offer/permission"),
        (lambda b: b["offer"].update(permission=[]), "/offer/permission"),
        (lambda b: b["offer"].update({"@type": "Agreement"}), "/offer/@type"),
    ],
)
def test_malformed_structure_is_rejected(mutate: Any, pointer: str) -> None:
    body = _example("2025-1", "contract-request-message.json")
    mutate(body)
    assert _rejects(body, ContractRequestMessage).pointer == pointer


def test_prefixed_enum_value_is_rejected_in_2025_1() -> None:
    body = _example("2025-1", "contract-negotiation.json")
    body["state"] = "dspace:REQUESTED"
    assert _rejects(body, ContractNegotiation).pointer == "/state"


def test_schema_rule_beyond_the_model_is_enforced() -> None:
    # 2025-1 oneOf: a counter-request must not repeat callbackAddress (dsp.md §6).
    body = _example("2025-1", "contract-request-message.json")
    body["callbackAddress"] = "https://consumer.example/cb"
    assert _rejects(body, ContractRequestMessage).pointer == ""


def test_schema_check_can_be_relaxed_for_peer_responses() -> None:
    body = _example("2025-1", "contract-request-message.json")
    body["callbackAddress"] = "https://consumer.example/cb"
    message = decode(body, ContractRequestMessage, V2025, check_schema=False)
    assert message.callback_address == "https://consumer.example/cb"


def test_catalog_with_a_policy_is_rejected() -> None:
    body = _example("2025-1", "catalog.json")
    body["hasPolicy"] = body["dataset"][0]["hasPolicy"]
    _rejects(body, Catalog)


def test_catalog_offer_with_target_is_rejected() -> None:
    body = _example("2025-1", "dataset.json")
    body["hasPolicy"][0]["target"] = body["@id"]
    assert _rejects(body, Dataset).pointer == "/hasPolicy"


def test_agreement_without_assignee_is_rejected() -> None:
    body = _example("2025-1", "contract-agreement-message.json")
    del body["agreement"]["assignee"]
    assert _rejects(body, ContractAgreementMessage).pointer == "/agreement/assignee"


@pytest.mark.parametrize(
    ("context", "pointer"),
    [
        (["https://evil.example/context.jsonld"], "/@context/0"),
        ([DSP_CONTEXT_2025_1, "https://evil.example/context.jsonld"], "/@context/1"),
        (["http://w3id.org/dspace/2025/1/context.jsonld"], "/@context/0"),
        ([{"providerPid": "https://evil.example/pid"}], "/@context/0"),
        ({"@vocab": "https://evil.example/"}, "/@context"),
        ([DSP_CONTEXT_0_8], "/@context/0"),
        ([ODRL_PROFILE_CONTEXT_2025_1], "/@context"),
        ([], "/@context"),
    ],
)
def test_unknown_or_remote_context_is_rejected_and_never_fetched(
    context: object, pointer: str
) -> None:
    body = _example("2025-1", "contract-negotiation.json")
    body["@context"] = context
    error = _rejects(body, ContractNegotiation)
    assert error.pointer == pointer
    assert "unknown @context" in error.reasons[0]


def test_nested_context_is_rejected() -> None:
    body = _example("2025-1", "catalog.json")
    body["dataset"][0]["@context"] = {"hasPolicy": "https://evil.example/p"}
    error = _rejects(body, Catalog)
    assert error.pointer == "/dataset/0/@context"
    assert "unknown @context" in error.reasons[0]


def test_missing_context_is_rejected() -> None:
    body = _example("2025-1", "contract-negotiation.json")
    del body["@context"]
    assert _rejects(body, ContractNegotiation).pointer == "/@context"


def test_allow_listed_profile_context_and_string_form_are_accepted() -> None:
    body = _example("2025-1", "contract-negotiation.json")
    body["@context"] = [DSP_CONTEXT_2025_1, ODRL_PROFILE_CONTEXT_2025_1]
    assert decode(body, ContractNegotiation, V2025).state == "REQUESTED"
    # pyld compacts a one-element context array to a string (dsp.md §2); accept it.
    body["@context"] = DSP_CONTEXT_2025_1
    assert decode(body, ContractNegotiation, V2025).state == "REQUESTED"
    assert check_context(DSP_CONTEXT_2025_1, V2025) == [DSP_CONTEXT_2025_1]


def test_2025_1_context_is_rejected_on_the_0_8_path() -> None:
    body = _example("0.8", "contract-negotiation.json")
    body["@context"] = [DSP_CONTEXT_2025_1]
    assert _rejects(body, ContractNegotiation, DspVersion.V0_8).pointer == "/@context/0"


def test_0_8_errors_point_at_the_prefixed_names() -> None:
    body = _example("0.8", "transfer-request-message.json")
    del body["dspace:agreementId"]
    assert _rejects(body, TransferRequestMessage, DspVersion.V0_8).pointer == "/dspace:agreementId"
    body = _example("0.8", "transfer-request-message.json")
    body["dspace:dataAddress"]["dspace:endpointProperties"][0]["dspace:value"] = 7
    assert (
        _rejects(body, TransferRequestMessage, DspVersion.V0_8).pointer
        == "/dspace:dataAddress/dspace:endpointProperties/0/dspace:value"
    )


def test_0_8_wrong_type_is_rejected() -> None:
    body = _example("0.8", "transfer-process.json")
    assert _rejects(body, TransferStartMessage, DspVersion.V0_8).pointer == "/@type"


def test_version_response_is_validated_without_context() -> None:
    body = _example("2025-1", "protocol-version.json")
    assert len(decode(body, VersionResponse, V2025).protocol_versions) == 3
    body["protocolVersions"][0]["binding"] = "MQTT"
    assert _rejects(body, VersionResponse).pointer == "/protocolVersions/0/binding"
    assert _rejects({"protocolVersions": []}, VersionResponse).pointer == "/protocolVersions"
