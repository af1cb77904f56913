"""Validation of DSP bodies against the official JSON Schemas (2025-1 and 0.8), fully offline.

The schemas are vendored under `schemas/<version>/`; `$ref`s resolve through a local
`referencing.Registry` that has no retriever, so nothing is ever fetched (dsp.md §13.8)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import TYPE_CHECKING, Any, Final

from connector.core.dsp.version import DspVersion

if TYPE_CHECKING:
    from jsonschema import Draft201909Validator
    from referencing import Registry

# jsonschema and referencing are imported on first validation: the data plane imports the wire
# models but never validates, and saves their import (about 3 MB RSS).

__all__ = ["json_pointer", "schema_name_for", "schema_problems", "validate_against_schema"]

_BASE: Final[Mapping[DspVersion, str]] = {
    DspVersion.V2025_1: "https://w3id.org/dspace/2025/1/",
    DspVersion.V0_8: "https://w3id.org/dspace/schemas/v0.8/",
}

# 0.8 `$ref`s also point at a development branch on GitHub; it is the same contract schema.
_V08_ALIASES: Final[Mapping[str, str]] = {
    "https://raw.githubusercontent.com/International-Data-Spaces-Association/"
    "ids-specification/dcat-catalog-schema-and-shape/negotiation/message/schema/"
    "contract-schema.json": "negotiation/contract-schema.json",
}

_SHARED: Final[Mapping[str, str]] = {
    "CatalogRequestMessage": "catalog/catalog-request-message-schema.json",
    "DatasetRequestMessage": "catalog/dataset-request-message-schema.json",
    "Catalog": "catalog/catalog-schema.json",
    "Dataset": "catalog/dataset-schema.json",
    "CatalogError": "catalog/catalog-error-schema.json",
    "ContractRequestMessage": "negotiation/contract-request-message-schema.json",
    "ContractOfferMessage": "negotiation/contract-offer-message-schema.json",
    "ContractAgreementMessage": "negotiation/contract-agreement-message-schema.json",
    "ContractAgreementVerificationMessage": (
        "negotiation/contract-agreement-verification-message-schema.json"
    ),
    "ContractNegotiationEventMessage": "negotiation/contract-negotiation-event-message-schema.json",
    "ContractNegotiationTerminationMessage": (
        "negotiation/contract-negotiation-termination-message-schema.json"
    ),
    "ContractNegotiation": "negotiation/contract-negotiation-schema.json",
    "ContractNegotiationError": "negotiation/contract-negotiation-error-schema.json",
    "Offer": "negotiation/contract-schema.json#/definitions/Offer",
    "Agreement": "negotiation/contract-schema.json#/definitions/Agreement",
    "TransferRequestMessage": "transfer/transfer-request-message-schema.json",
    "TransferStartMessage": "transfer/transfer-start-message-schema.json",
    "TransferSuspensionMessage": "transfer/transfer-suspension-message-schema.json",
    "TransferCompletionMessage": "transfer/transfer-completion-message-schema.json",
    "TransferTerminationMessage": "transfer/transfer-termination-message-schema.json",
    "TransferProcess": "transfer/transfer-process-schema.json",
    "TransferError": "transfer/transfer-error-schema.json",
}

_SCHEMA_NAMES: Final[Mapping[DspVersion, Mapping[str, str]]] = {
    DspVersion.V2025_1: {
        **_SHARED,
        "MessageOffer": "negotiation/contract-schema.json#/definitions/MessageOffer",
        "DataService": "catalog/dataset-schema.json#/definitions/DataService",
        "Distribution": "catalog/dataset-schema.json#/definitions/Distribution",
        "DataAddress": "transfer/data-address-schema.json",
        "VersionResponse": "common/protocol-version-schema.json",
    },
    DspVersion.V0_8: _SHARED,
}


def schema_name_for(type_name: str, version: DspVersion) -> str:
    """The vendored schema path (optionally `#fragment`) for a DSP type name.

    Raises:
        KeyError: no schema exists for that type in that version.
    """
    return _SCHEMA_NAMES[version][type_name]


def _walk(node: Traversable, prefix: str) -> Iterator[tuple[str, Traversable]]:
    for child in node.iterdir():
        if child.is_dir():
            yield from _walk(child, f"{prefix}{child.name}/")
        elif child.name.endswith(".json"):
            yield f"{prefix}{child.name}", child


@cache
def _registry(version: DspVersion) -> Registry[Any]:
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT201909

    root = files("connector.core.dsp") / "schemas" / version.value
    resources: list[tuple[str, Resource[Any]]] = []
    for rel, path in _walk(root, ""):
        # 2025-1 writes `#definitions/…` in three transfer schemas; `referencing` needs `#/…`.
        text = path.read_text(encoding="utf-8").replace("#definitions/", "#/definitions/")
        contents = json.loads(text)
        resource = Resource.from_contents(contents, default_specification=DRAFT201909)
        uris = {_BASE[version] + rel}
        if isinstance(contents.get("$id"), str):
            uris.add(contents["$id"])
        if version is DspVersion.V0_8:
            uris.add(_BASE[version] + rel.rsplit("/", 1)[-1])
            uris.update(alias for alias, target in _V08_ALIASES.items() if target == rel)
        resources.extend((uri, resource) for uri in sorted(uris))
    return Registry().with_resources(resources)


@cache
def _validator(schema_name: str, version: DspVersion) -> Draft201909Validator:
    from jsonschema import Draft201909Validator

    path = _SCHEMA_NAMES[version].get(schema_name, schema_name)
    return Draft201909Validator({"$ref": _BASE[version] + path}, registry=_registry(version))


def json_pointer(path: Iterator[str | int] | Any) -> str:
    """RFC 6901 pointer for a sequence of keys/indexes (`""` is the whole document)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def schema_problems(body: object, schema_name: str, version: DspVersion) -> list[tuple[str, str]]:
    """(JSON pointer, message) for every violation, in document order; empty when valid.

    `schema_name` is a DSP type name (`"ContractRequestMessage"`) or a vendored path
    (`"negotiation/contract-schema.json#/definitions/Offer"`).
    """
    from referencing.exceptions import Unresolvable

    try:
        errors = list(_validator(schema_name, version).iter_errors(body))
    except Unresolvable as exc:
        # Only reachable through defects in the vendored 0.8 schemas (missing definitions).
        return [("", f"schema {schema_name} ({version}) has an unresolvable $ref: {exc}")]
    problems = [(json_pointer(e.absolute_path), e.message) for e in errors]
    return sorted(problems)


def validate_against_schema(body: object, schema_name: str, version: DspVersion) -> list[str]:
    """Human-readable violations (`"<pointer>: <message>"`) of `body`; empty when valid."""
    return [
        f"{pointer or '/'}: {message}"
        for pointer, message in schema_problems(body, schema_name, version)
    ]
