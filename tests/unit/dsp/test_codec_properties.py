"""Property tests: decode(encode(m)) == m for both wire versions."""

from __future__ import annotations

from typing import get_args

from hypothesis import given
from hypothesis import strategies as st

from connector.core.dsp import (
    ContractNegotiation,
    ContractNegotiationStateValue,
    ContractNegotiationTerminationMessage,
    DataAddress,
    EndpointProperty,
    TransferProcess,
    TransferProcessStateValue,
    TransferStartMessage,
)
from connector.core.jsonld import DspVersion, decode, encode

pids = st.text(min_size=1, max_size=40).map(lambda s: f"urn:uuid:{s}")
versions = st.sampled_from(list(DspVersion))
reasons = st.none() | st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=3)


@given(pids, pids, st.sampled_from(get_args(ContractNegotiationStateValue)), versions)
def test_contract_negotiation_round_trips(
    provider: str, consumer: str, state: ContractNegotiationStateValue, version: DspVersion
) -> None:
    model = ContractNegotiation(provider_pid=provider, consumer_pid=consumer, state=state)
    assert decode(encode(model, version), ContractNegotiation, version) == model


@given(pids, pids, st.sampled_from(get_args(TransferProcessStateValue)), versions)
def test_transfer_process_round_trips(
    provider: str, consumer: str, state: TransferProcessStateValue, version: DspVersion
) -> None:
    model = TransferProcess(provider_pid=provider, consumer_pid=consumer, state=state)
    assert decode(encode(model, version), TransferProcess, version) == model


@given(pids, pids, st.none() | st.text(max_size=10), reasons, versions)
def test_termination_round_trips(
    provider: str, consumer: str, code: str | None, reason: list[str] | None, version: DspVersion
) -> None:
    model = ContractNegotiationTerminationMessage(
        provider_pid=provider, consumer_pid=consumer, code=code, reason=reason
    )
    decoded = decode(encode(model, version), ContractNegotiationTerminationMessage, version)
    assert decoded == model


@given(
    pids,
    pids,
    st.lists(
        st.builds(EndpointProperty, name=st.text(max_size=10), value=st.text(max_size=10)),
        min_size=1,
        max_size=3,
    ),
    versions,
)
def test_transfer_start_with_data_address_round_trips(
    provider: str, consumer: str, properties: list[EndpointProperty], version: DspVersion
) -> None:
    address = DataAddress(
        endpoint_type="https://w3id.org/idsa/v4.1/HTTP",
        endpoint="https://p.example/data",
        endpoint_properties=properties,
    )
    model = TransferStartMessage(provider_pid=provider, consumer_pid=consumer, data_address=address)
    assert decode(encode(model, version), TransferStartMessage, version) == model
