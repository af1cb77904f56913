"""Everything `encode` emits validates against the official schemas (2025-1; 0.8 where usable)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from connector.core.dsp import (
    DSP_CONTEXT_2025_1,
    Agreement,
    Auth,
    Catalog,
    CatalogError,
    CatalogRequestMessage,
    ContractAgreementMessage,
    ContractAgreementVerificationMessage,
    ContractNegotiation,
    ContractNegotiationError,
    ContractNegotiationEventMessage,
    ContractNegotiationTerminationMessage,
    ContractOfferMessage,
    ContractRequestMessage,
    DataAddress,
    DataService,
    Dataset,
    DatasetRequestMessage,
    Distribution,
    DspModel,
    EndpointProperty,
    Offer,
    TransferCompletionMessage,
    TransferError,
    TransferProcess,
    TransferRequestMessage,
    TransferStartMessage,
    TransferSuspensionMessage,
    TransferTerminationMessage,
    Version,
    VersionResponse,
    dsp_type_of,
    validate_against_schema,
)
from connector.core.jsonld import DspVersion, encode

PROVIDER_PID = "urn:uuid:a343fcbf-99fc-4ce8-8e9b-148c97605aab"
CONSUMER_PID = "urn:uuid:32541fe6-c580-409e-85a8-8a9a32fbe833"
DATASET_ID = "urn:uuid:3dd1add8-4d2d-569e-d634-8394a8836a88"
SERVICE_ID = "urn:uuid:4aa2dcc8-4d2d-569e-d634-8394a8834d77"
PIDS = {"provider_pid": PROVIDER_PID, "consumer_pid": CONSUMER_PID}
RULES = [
    {
        "action": "use",
        # `lt`, not `lteq`: the 0.8 operator enum lacks `lteq`.
        "constraint": [{"leftOperand": "dateTime", "operator": "lt", "rightOperand": "2030-01-01"}],
    }
]
LOGICAL_RULES = [
    {
        "action": "use",
        "constraint": [
            {
                "or": [
                    {"leftOperand": "purpose", "operator": "eq", "rightOperand": "research"},
                    {"leftOperand": "spatial", "operator": "isAnyOf", "rightOperand": ["EU"]},
                ]
            }
        ],
    }
]


def catalog_offer(offer_id: str = "urn:uuid:offer-1") -> Offer:
    return Offer(id=offer_id, permission=RULES, assigner="urn:example:provider")


def message_offer() -> Offer:
    return Offer(
        id="urn:uuid:offer-1", target=DATASET_ID, permission=LOGICAL_RULES, prohibition=RULES
    )


def data_address() -> DataAddress:
    return DataAddress(
        endpoint_type="https://w3id.org/idsa/v4.1/HTTP",
        endpoint="https://provider.example/data",
        endpoint_properties=[
            EndpointProperty(name="authorization", value="TOKEN"),
            EndpointProperty(name="authType", value="bearer"),
        ],
    )


def dataset() -> Dataset:
    return Dataset(
        id=DATASET_ID,
        has_policy=[catalog_offer()],
        distribution=[
            Distribution(format="HttpData-PULL", access_service=SERVICE_ID),
            Distribution(
                format="HttpData-PUSH",
                access_service=DataService(id=SERVICE_ID, endpoint_url="https://p.example/dsp"),
                has_policy=[catalog_offer("urn:uuid:offer-2")],
            ),
        ],
    )


def catalog() -> Catalog:
    service = DataService(id=SERVICE_ID, endpoint_url="https://provider.example/dsp/2025-1")
    nested = Catalog(
        id="urn:uuid:sub",
        service=[DataService(id="urn:uuid:sub-svc", endpoint_url="https://p.example/sub")],
        distribution=[Distribution(format="Catalog", access_service="urn:uuid:sub-svc")],
    )
    return Catalog(
        id="urn:uuid:catalog",
        participant_id="did:web:provider.example",
        dataset=[dataset()],
        service=[service],
        catalog=[nested],
    )


INSTANCES: list[DspModel] = [
    CatalogRequestMessage(),
    CatalogRequestMessage(filter=[]),
    DatasetRequestMessage(dataset=DATASET_ID),
    catalog(),
    Catalog(id="urn:uuid:empty", participant_id="did:web:provider.example"),
    dataset(),
    CatalogError(),
    CatalogError(code="404", reason=["unknown dataset"]),
    ContractRequestMessage(
        consumer_pid=CONSUMER_PID, offer=message_offer(), callback_address="https://c.example/cb"
    ),
    ContractRequestMessage(**PIDS, offer=message_offer()),
    ContractOfferMessage(
        provider_pid=PROVIDER_PID, offer=message_offer(), callback_address="https://p.example"
    ),
    ContractOfferMessage(**PIDS, offer=message_offer()),
    ContractAgreementMessage(
        **PIDS,
        agreement=Agreement(
            id="urn:uuid:agreement",
            target=DATASET_ID,
            assigner="did:web:provider.example",
            assignee="did:web:consumer.example",
            timestamp="2025-01-01T00:00:00Z",
            permission=RULES,
            obligation=RULES,
        ),
    ),
    ContractAgreementVerificationMessage(**PIDS),
    ContractNegotiationEventMessage(**PIDS, event_type="ACCEPTED"),
    ContractNegotiationEventMessage(**PIDS, event_type="FINALIZED"),
    ContractNegotiationTerminationMessage(**PIDS),
    ContractNegotiationTerminationMessage(**PIDS, code="policy", reason=["denied"]),
    *[
        ContractNegotiation(**PIDS, state=state)
        for state in ("REQUESTED", "OFFERED", "ACCEPTED", "AGREED", "VERIFIED", "FINALIZED")
    ],
    ContractNegotiation(**PIDS, state="TERMINATED"),
    ContractNegotiationError(**PIDS, code="400", reason=["illegal transition"]),
    TransferRequestMessage(
        consumer_pid=CONSUMER_PID,
        agreement_id="urn:uuid:agreement",
        format="HttpData-PULL",
        callback_address="https://c.example/cb",
    ),
    TransferRequestMessage(
        consumer_pid=CONSUMER_PID,
        agreement_id="urn:uuid:agreement",
        format="HttpData-PUSH",
        callback_address="https://c.example/cb",
        data_address=data_address(),
    ),
    TransferStartMessage(**PIDS),
    TransferStartMessage(**PIDS, data_address=data_address()),
    TransferSuspensionMessage(**PIDS, code="pause", reason=["maintenance"]),
    TransferCompletionMessage(**PIDS),
    TransferTerminationMessage(**PIDS, reason=[{"detail": "any JSON is allowed"}]),
    *[
        TransferProcess(**PIDS, state=state)
        for state in ("REQUESTED", "STARTED", "SUSPENDED", "COMPLETED", "TERMINATED")
    ],
    TransferError(**PIDS, code="400", reason=["illegal transition"]),
]

# 0.8 schemas that cannot accept a 2025-1 model: a broken schema, or fields 2025-1 removed.
V08_UNSUPPORTED = {
    "Catalog",  # the 0.8 catalog schema has additionalProperties:false and a missing $ref
    "ContractAgreementMessage",  # 0.8 requires dspace:callbackAddress
    "ContractAgreementVerificationMessage",  # 0.8 requires dspace:hashedMessage
}


def _name(model: DspModel) -> str:
    return dsp_type_of(type(model)) or type(model).__name__


def test_instances_cover_every_message_type() -> None:
    from connector.core.dsp import MESSAGE_TYPES

    assert {_name(m) for m in INSTANCES} == set(MESSAGE_TYPES)


@pytest.mark.parametrize("model", INSTANCES, ids=_name)
def test_2025_1_encoding_validates(model: DspModel) -> None:
    body = encode(model, DspVersion.V2025_1)
    assert body["@context"] == [DSP_CONTEXT_2025_1]
    assert validate_against_schema(body, _name(model), DspVersion.V2025_1) == []


def _v08_instances() -> list[DspModel]:
    # 0.8 required callbackAddress on every request and offer, counter messages included.
    counters = [
        ContractRequestMessage(**PIDS, offer=message_offer(), callback_address="https://c.example"),
        ContractOfferMessage(**PIDS, offer=message_offer(), callback_address="https://p.example"),
    ]
    usable = [
        m
        for m in INSTANCES
        if _name(m) not in V08_UNSUPPORTED and getattr(m, "callback_address", "") is not None
    ]
    return usable + counters


@pytest.mark.parametrize("model", _v08_instances(), ids=_name)
def test_0_8_encoding_validates(model: DspModel) -> None:
    body = encode(model, DspVersion.V0_8)
    assert validate_against_schema(body, _name(model), DspVersion.V0_8) == []


def test_version_response_is_plain_json_and_validates() -> None:
    response = VersionResponse(
        protocol_versions=[
            Version(version="2025-1", path="/dsp/2025-1"),
            Version(
                version="0.8",
                path="/dsp/0.8",
                service_id="svc",
                identifier_type="did:web",
                auth=Auth(protocol="DCP", version="1.0", profile=["vc11-sl2021/jwt"]),
            ),
        ]
    )
    body = encode(response)
    assert "@context" not in body
    assert body["protocolVersions"][0] == {
        "version": "2025-1",
        "path": "/dsp/2025-1",
        "binding": "HTTPS",
    }
    assert validate_against_schema(body, "VersionResponse", DspVersion.V2025_1) == []


def test_data_address_validates_on_its_own() -> None:
    body = data_address().to_wire()
    assert validate_against_schema(body, "DataAddress", DspVersion.V2025_1) == []
    assert data_address().property("authType") == "bearer"
    assert data_address().property("missing") is None


def test_offer_policy_dict_round_trips() -> None:
    offer = message_offer()
    assert Offer.from_policy(offer.policy) == offer
    assert offer.policy["@type"] == "Offer"
    assert validate_against_schema(offer.policy, "MessageOffer", DspVersion.V2025_1) == []


@pytest.mark.parametrize("error_type", [ContractNegotiationError, TransferError])
def test_error_bodies_need_both_pids(error_type: type[DspModel]) -> None:
    with pytest.raises(ValidationError):
        error_type.model_validate({"providerPid": PROVIDER_PID, "reason": ["x"]})


@pytest.mark.parametrize(
    "error_type",
    [
        ContractNegotiationError,
        TransferError,
        ContractNegotiationTerminationMessage,
        TransferTerminationMessage,
        TransferSuspensionMessage,
    ],
)
def test_reason_is_never_an_empty_list(error_type: type[DspModel]) -> None:
    with pytest.raises(ValidationError):
        error_type.model_validate({**PIDS, "reason": []})


def test_catalog_error_reason_is_never_an_empty_list() -> None:
    with pytest.raises(ValidationError):
        CatalogError(reason=[])


def test_optional_arrays_are_absent_rather_than_empty() -> None:
    with pytest.raises(ValidationError):
        Catalog(id="urn:uuid:c", participant_id="p", dataset=[])
    with pytest.raises(ValidationError):
        DataAddress(endpoint_type="x", endpoint_properties=[])
    assert "dataset" not in encode(Catalog(id="urn:uuid:c", participant_id="p"))


def test_catalog_offers_must_not_name_a_target() -> None:
    with pytest.raises(ValidationError, match="target"):
        Dataset(
            id=DATASET_ID,
            has_policy=[message_offer()],
            distribution=[Distribution(format="f", access_service=SERVICE_ID)],
        )


def test_request_and_offer_need_a_callback_or_the_peer_pid() -> None:
    with pytest.raises(ValidationError, match="callbackAddress"):
        ContractRequestMessage(consumer_pid=CONSUMER_PID, offer=message_offer())
    with pytest.raises(ValidationError, match="callbackAddress"):
        ContractOfferMessage(provider_pid=PROVIDER_PID, offer=message_offer())


def test_models_are_immutable() -> None:
    process = TransferProcess(**PIDS, state="STARTED")
    with pytest.raises(ValidationError):
        process.state = "COMPLETED"  # type: ignore[misc]
