"""The rules for data addresses (`connector.data_address`), the offline half of the outbound
guard they use (`vet_offline`: never a DNS lookup), and the confinement of proxied sub-paths
(`dataplane.proxy`). Pure: no network, no services."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connector.core.errors import BadRequestError, NotFoundError, UnprocessableError
from connector.data_address import (
    FROM_COUNTERPARTY,
    check_destination,
    check_source,
    completes_on_first_read,
    destination_problems,
    is_finite,
    source_problems,
)
from connector.http.outbound import OutboundConfig, OutboundRefusedError, vet_offline
from connector.settings import DataPlaneSettings
from dataplane.proxy import ProxyOptions, PullRequest, confine_sub_path, proxied_url

OPEN = OutboundConfig(allow_http=True)
LOOPBACK = OutboundConfig(allow_http=True, allow_cidrs=("127.0.0.0/8",))


@pytest.fixture
def dataplane(tmp_path: Path) -> DataPlaneSettings:
    (tmp_path / "files").mkdir()
    return DataPlaneSettings(file_base_path=tmp_path / "files")


# --------------------------------------------------------------------------- vet_offline


@pytest.mark.parametrize(
    "url",
    [
        "gopher://x.example/",
        "file:///etc/passwd",
        "ftp://x.example/",
        "dict://x.example:11211/",
        "http://127.0.0.1/",
        "http://127.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://0/",
        "http://localhost/",
        "http://api.localhost/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://10.0.0.1/",
        "http://169.254.169.254/",
        "http://100.64.0.1/",
        "https://user:pw@x.example/",
        "http:///nohost",
    ],
)
def test_vet_offline_refuses_without_resolving(url: str) -> None:
    with pytest.raises(OutboundRefusedError):
        vet_offline(url, OPEN)


@pytest.mark.parametrize(
    "url", ["https://data.example/x", "http://data.example:8080/x", "https://8.8.8.8/"]
)
def test_vet_offline_leaves_host_names_to_the_resolving_check(url: str) -> None:
    vet_offline(url, OPEN)  # would need DNS to judge further: accepted here


def test_vet_offline_honours_the_allow_lists() -> None:
    for url in ("http://127.0.0.1:9/", "http://localhost:9/", "http://2130706433/"):
        vet_offline(url, LOOPBACK)
    vet_offline("https://erp.corp.internal/", OutboundConfig(allow_hosts=("erp.corp.internal",)))
    with pytest.raises(OutboundRefusedError, match="plain http"):
        vet_offline("http://data.example/", OutboundConfig())


# --------------------------------------------------------------------------- sources


def pointers(problems: list[Any]) -> list[str]:
    return [p.pointer for p in problems]


def test_a_file_source_is_confined_lexically_and_through_symlinks(
    dataplane: DataPlaneSettings, tmp_path: Path
) -> None:
    assert source_problems({"type": "file", "path": "a/b.bin"}, dataplane, OPEN) == []
    for path in ("/etc/passwd", "../x", "a/%2e%2e/x", "a\\b", "file:///etc/passwd", "", "a\x00"):
        assert pointers(source_problems({"type": "file", "path": path}, dataplane, OPEN)) == [
            "/path"
        ], path
    (tmp_path / "outside.txt").write_text("x")
    assert dataplane.file_base_path is not None
    (dataplane.file_base_path / "link").symlink_to(tmp_path / "outside.txt")
    assert pointers(source_problems({"type": "file", "path": "link"}, dataplane, OPEN)) == ["/path"]


def test_a_base_path_on_another_host_still_gets_the_lexical_rules(tmp_path: Path) -> None:
    elsewhere = DataPlaneSettings(file_base_path=tmp_path / "not-here")
    assert source_problems({"type": "file", "path": "x.bin"}, elsewhere, OPEN) == []
    assert pointers(source_problems({"type": "file", "path": "../x"}, elsewhere, OPEN)) == ["/path"]


def test_no_base_path_means_no_file_addresses() -> None:
    problems = source_problems({"type": "file", "path": "x"}, DataPlaneSettings(), OPEN)
    assert "dataplane.file_base_path" in problems[0].message


def test_every_problem_is_reported_with_the_first_pointer_on_the_error(
    dataplane: DataPlaneSettings,
) -> None:
    address = {
        "type": "http",
        "baseUrl": "gopher://x/",
        "proxyPath": "maybe",
        "headers": {"X-Ok": "1", "Bad Name": "x", "X-Bad": 5},
    }
    assert pointers(source_problems(address, dataplane, OPEN)) == [
        "/proxyPath",
        "/baseUrl",
        "/headers/Bad Name",
        "/headers/X-Bad",
    ]
    with pytest.raises(UnprocessableError) as raised:
        check_source(address, dataplane, OPEN, at="/dataAddress")
    assert raised.value.pointer == "/dataAddress/proxyPath"
    assert len(raised.value.reasons) == 4
    assert raised.value.reasons[1].startswith("/dataAddress/baseUrl: baseUrl refused")


def test_unknown_types_and_header_names_with_slashes(dataplane: DataPlaneSettings) -> None:
    assert pointers(source_problems({"type": "ftp"}, dataplane, OPEN)) == ["/type"]
    address = {"type": "http", "baseUrl": "https://x.example/", "headers": {"a/b~c": "v"}}
    assert pointers(source_problems(address, dataplane, OPEN)) == ["/headers/a~1b~0c"]


@pytest.mark.parametrize(
    ("address", "finite", "completes"),
    [
        ({"type": "file", "path": "x"}, True, True),
        ({"type": "s3", "bucket": "b", "key": "k"}, True, True),
        ({"type": "http", "baseUrl": "https://x/"}, False, True),
        ({"type": "http", "baseUrl": "https://x/", "finite": "true"}, True, True),
        ({"type": "http", "baseUrl": "https://x/", "completeOnFirstRead": True}, True, True),
        ({"type": "file", "path": "x", "completeOnFirstRead": "false"}, True, False),
        ({"type": "file", "path": "x", "finite": False}, False, True),
    ],
)
def test_finite_and_complete_on_first_read(
    address: dict[str, Any], finite: bool, completes: bool
) -> None:
    assert is_finite(address) is finite
    assert completes_on_first_read(address) is completes


# --------------------------------------------------------------------------- destinations


def test_a_counterparty_names_http_destinations_only(dataplane: DataPlaneSettings) -> None:
    for address in (
        {"endpointType": "AmazonS3", "bucketName": "b-1", "objectName": "k"},
        {"endpointType": "File", "path": "x"},
    ):
        problems = destination_problems(address, dataplane, OPEN, kinds=FROM_COUNTERPARTY)
        assert pointers(problems) == ["/endpointType"]
        assert destination_problems(address, dataplane, OPEN) == []  # our own data plane: fine
    http = {"endpointType": "https://w3id.org/idsa/v4.1/HTTP", "endpoint": "https://s.example/"}
    assert destination_problems(http, dataplane, OPEN, kinds=FROM_COUNTERPARTY) == []


def test_destination_fields_point_into_endpoint_properties(dataplane: DataPlaneSettings) -> None:
    address = {
        "endpointType": "HttpData",
        "endpoint": "http://10.0.0.7/in",
        "endpointProperties": [
            {"name": "authorization", "value": "t"},
            {"name": "https://w3id.org/edc/v0.0.1/ns/method", "value": "GET"},
        ],
    }
    with pytest.raises(UnprocessableError) as raised:
        check_destination(address, dataplane, OPEN, at="/dataDestination")
    assert raised.value.pointer == "/dataDestination/endpoint"
    assert raised.value.reasons[1].startswith("/dataDestination/endpointProperties/1/value:")


# --------------------------------------------------------------------------- sub-paths


@pytest.mark.parametrize(
    ("raw", "sent"),
    [
        ("a/b", "a/b"),
        ("a/b/", "a/b/"),
        ("caf%C3%A9", "caf%C3%A9"),
        ("a%20b", "a%20b"),
        ("a b", "a%20b"),
        ("100%25", "100%25"),
        ("a;b", "a%3Bb"),
        ("x.y..z", "x.y..z"),  # dots inside a name are fine
        ("%7Euser", "~user"),
    ],
)
def test_a_sub_path_is_re_encoded_from_checked_segments(raw: str, sent: str) -> None:
    assert confine_sub_path(raw) == sent


@pytest.mark.parametrize(
    "raw",
    [
        "..",
        ".",
        "...",
        "../../admin/secret",
        "a/../../b",
        "..%2F..%2Fadmin",
        "%2e%2e/admin",
        "%2E%2e/admin",
        ".%2E/admin",
        "%252e%252e/admin",
        "%25252e",
        "a%252Fb",
        "..\\..\\admin",
        "..%5C..%5Cadmin",
        "a%5Cb",
        "x%3Fy=1",
        "x%23y",
        "x%00",
        "x%0d%0aHeader:1",
        "x%09y",
        "..;/admin",
        ".;x/admin",
        "%EF%BC%8E%EF%BC%8E/admin",  # fullwidth full stops: NFKC '..'
        "a%EF%BC%8Fb",  # fullwidth solidus: NFKC '/'
        "%c0%ae%c0%ae/admin",  # overlong UTF-8
        "%ff",
        "a//b",
        "/a",
        "%20",
        "x" * 3000,
    ],
)
def test_a_sub_path_that_could_mean_something_else_is_refused(raw: str) -> None:
    with pytest.raises(BadRequestError):
        confine_sub_path(raw)


def test_the_proxied_url_stays_below_the_base_and_keeps_its_query() -> None:
    options = ProxyOptions(path=True, query=True)
    url = proxied_url(
        "https://h.example/api/v1?tenant=a", PullRequest(sub_path="x/y", query="p=2"), options
    )
    assert url == "https://h.example/api/v1/x/y?tenant=a&p=2"
    assert proxied_url("https://h.example/api/", PullRequest(sub_path="x"), options) == (
        "https://h.example/api/x"
    )
    with pytest.raises(BadRequestError, match="fixed by the source"):
        proxied_url("https://h.example/api?tenant=a", PullRequest(query="tenant=b"), options)
    with pytest.raises(NotFoundError):
        proxied_url("https://h.example/api", PullRequest(sub_path="x"), ProxyOptions())
    # Without proxyQueryParams a query is ignored, not forwarded.
    assert proxied_url("https://h.example/api", PullRequest(query="a=1"), ProxyOptions()) == (
        "https://h.example/api"
    )


def test_proxy_options_come_from_http_sources_only() -> None:
    assert ProxyOptions.of({"type": "http", "proxyPath": "true", "proxyMethod": True}) == (
        ProxyOptions(path=True, method=True)
    )
    assert ProxyOptions.of({"type": "file", "proxyPath": True}) == ProxyOptions()
