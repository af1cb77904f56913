"""`connector temporal-bootstrap` on Temporal Cloud (issue 17): Cloud manages namespaces, retention
and search attributes itself (tcld, Cloud UI) and refuses UpdateNamespace/AddSearchAttributes
through the frontend, so bootstrap only checks and reports. Against a real Temporal dev server
standing in for Cloud (`temporal.cloud = true`), and the same server self-hosted for contrast."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest
from temporalio.client import Client

from connector.core import search_attributes
from connector.settings import TemporalSettings
from connector.temporal.client import bootstrap, is_temporal_cloud

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("address", "cloud"),
    [
        ("connector.a1b2c.tmprl.cloud:7233", True),
        ("eu-central-1.aws.api.temporal.io:7233", True),
        ("temporal-frontend.temporal-production.svc.cluster.local:7233", False),
        ("127.0.0.1:7233", False),
        ("tmprl.cloud.example.com:7233", False),
    ],
)
def test_cloud_is_detected_from_the_address(address: str, cloud: bool) -> None:
    assert is_temporal_cloud(TemporalSettings(address=address)) is cloud
    # the setting wins over the address
    assert is_temporal_cloud(TemporalSettings(address=address, cloud=not cloud)) is (not cloud)


async def _namespace(address: str, retention: timedelta) -> str:
    name = f"cloudy-{uuid.uuid4().hex[:8]}"
    client = await Client.connect(address, namespace="default")
    request = RegisterNamespaceRequest(namespace=name)
    request.workflow_execution_retention_period.FromTimedelta(retention)
    await client.workflow_service.register_namespace(request)
    return name


async def _state(address: str, name: str) -> tuple[timedelta, set[str]]:
    client = await Client.connect(address, namespace=name)
    described = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=name)
    )
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=name)
    )
    retention = described.config.workflow_execution_retention_ttl.ToTimedelta()
    return retention, set(listed.custom_attributes) & set(search_attributes.KEYWORDS)


async def test_on_cloud_bootstrap_changes_nothing_and_reports(temporal_address: str) -> None:
    name = await _namespace(temporal_address, timedelta(days=1))
    before = await _state(temporal_address, name)
    settings = TemporalSettings(
        address=temporal_address, namespace=name, cloud=True, retention_days=30
    )
    client = await Client.connect(temporal_address, namespace=name)

    notes = await bootstrap(client, settings)

    assert await _state(temporal_address, name) == before
    assert before[0] == timedelta(days=1)
    text = "\n".join(notes)
    assert "Temporal Cloud" in text, notes
    assert "tcld namespace retention" in text, notes
    if set(search_attributes.KEYWORDS) - before[1]:
        assert "search attributes missing" in text, notes


async def test_on_cloud_a_missing_namespace_fails_with_the_fix(temporal_address: str) -> None:
    name = f"absent-{uuid.uuid4().hex[:8]}"
    client = await Client.connect(temporal_address, namespace=name)
    with pytest.raises(RuntimeError, match="tcld namespace create"):
        await bootstrap(
            client, TemporalSettings(address=temporal_address, namespace=name, cloud=True)
        )


async def test_self_hosted_bootstrap_still_applies_retention_and_attributes(
    temporal_address: str,
) -> None:
    name = await _namespace(temporal_address, timedelta(days=1))
    settings = TemporalSettings(address=temporal_address, namespace=name, retention_days=30)
    assert not is_temporal_cloud(settings)
    await bootstrap(await Client.connect(temporal_address, namespace="default"), settings)
    retention, attrs = await _state(temporal_address, name)
    assert retention == timedelta(days=30)
    assert attrs == set(search_attributes.KEYWORDS)
