"""DSP 0.8 wire form <-> compacted 2025-1 form, as plain dict rewriting (dsp.md §2, §12).

0.8 compacts with prefixes (`dspace:providerPid`, `dcat:dataset`, `odrl:permission`), types
(`dspace:ContractRequestMessage`, `dcat:Catalog`, `odrl:Offer`), enum values (`dspace:REQUESTED`)
and language-tagged reasons. The table below is keyed by the 2025-1 `@type` of each object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["Paths", "from_v08", "to_v08", "v08_type"]

# Normalised path -> original path, so that errors point into the body the peer actually sent.
Paths = dict[tuple[str | int, ...], tuple[str | int, ...]]

_ODRL: Final = "odrl"  # pseudo-type: ODRL rule/constraint dicts (no @type of their own)


@dataclass(frozen=True)
class _Term:
    wire: str
    child: str | None = None  # 2025-1 type of nested objects
    many: bool = False  # a JSON-LD set: 0.8 peers may send a single value
    iri: bool = False  # 0.8 peers may send a node reference `{"@id": …}`
    enum: bool = False  # value is a `dspace:`-prefixed term in 0.8
    lang: bool = False  # items are `{"@value", "@language"}` in 0.8


_PIDS: Final = {
    "providerPid": _Term("dspace:providerPid"),
    "consumerPid": _Term("dspace:consumerPid"),
}
_CODE_REASON: Final = {
    "code": _Term("dspace:code"),
    "reason": _Term("dspace:reason", many=True, lang=True),
}
_POLICY: Final = {
    "target": _Term("odrl:target", iri=True),
    # 0.8 named the parties dspace:providerId / dspace:consumerId (2024-1 moved to odrl:assigner).
    "assigner": _Term("dspace:providerId", iri=True),
    "assignee": _Term("dspace:consumerId", iri=True),
    "timestamp": _Term("dspace:timestamp"),
    "profile": _Term("odrl:profile"),
    "permission": _Term("odrl:permission", child=_ODRL, many=True),
    "prohibition": _Term("odrl:prohibition", child=_ODRL, many=True),
    "obligation": _Term("odrl:obligation", child=_ODRL, many=True),
}
_CALLBACK: Final = {"callbackAddress": _Term("dspace:callbackAddress")}

TERMS: Final[Mapping[str, Mapping[str, _Term]]] = {
    "CatalogRequestMessage": {"filter": _Term("dspace:filter", many=True)},
    "DatasetRequestMessage": {"dataset": _Term("dspace:dataset", iri=True)},
    "Catalog": {
        "participantId": _Term("dspace:participantId"),
        "dataset": _Term("dcat:dataset", child="Dataset", many=True),
        "service": _Term("dcat:service", child="DataService", many=True),
        "catalog": _Term("dcat:catalog", child="Catalog", many=True),
        "distribution": _Term("dcat:distribution", child="Distribution", many=True),
    },
    "Dataset": {
        "hasPolicy": _Term("odrl:hasPolicy", child="Offer", many=True),
        "distribution": _Term("dcat:distribution", child="Distribution", many=True),
    },
    "Distribution": {
        "format": _Term("dct:format", iri=True),
        "accessService": _Term("dcat:accessService", child="DataService", iri=True),
        "hasPolicy": _Term("odrl:hasPolicy", child="Offer", many=True),
    },
    "DataService": {
        "endpointURL": _Term("dcat:endpointURL"),
        "endpointDescription": _Term("dcat:endpointDescription"),
        "servesDataset": _Term("dcat:servesDataset", child="Dataset", many=True),
    },
    "CatalogError": _CODE_REASON,
    "Offer": _POLICY,
    "Agreement": _POLICY,
    "ContractRequestMessage": {
        **_PIDS,
        **_CALLBACK,
        "offer": _Term("dspace:offer", child="Offer"),
    },
    "ContractOfferMessage": {**_PIDS, **_CALLBACK, "offer": _Term("dspace:offer", child="Offer")},
    "ContractAgreementMessage": {
        **_PIDS,
        "agreement": _Term("dspace:agreement", child="Agreement"),
    },
    "ContractAgreementVerificationMessage": _PIDS,
    "ContractNegotiationEventMessage": {**_PIDS, "eventType": _Term("dspace:eventType", enum=True)},
    "ContractNegotiationTerminationMessage": {**_PIDS, **_CODE_REASON},
    "ContractNegotiation": {**_PIDS, "state": _Term("dspace:state", enum=True)},
    "ContractNegotiationError": {**_PIDS, **_CODE_REASON},
    "TransferRequestMessage": {
        "consumerPid": _PIDS["consumerPid"],
        **_CALLBACK,
        "agreementId": _Term("dspace:agreementId", iri=True),
        "format": _Term("dct:format", iri=True),
        "dataAddress": _Term("dspace:dataAddress", child="DataAddress"),
    },
    "TransferStartMessage": {
        **_PIDS,
        "dataAddress": _Term("dspace:dataAddress", child="DataAddress"),
    },
    "TransferSuspensionMessage": {**_PIDS, **_CODE_REASON},
    "TransferCompletionMessage": _PIDS,
    "TransferTerminationMessage": {**_PIDS, **_CODE_REASON},
    "TransferProcess": {**_PIDS, "state": _Term("dspace:state", enum=True)},
    "TransferError": {**_PIDS, **_CODE_REASON},
    "DataAddress": {
        "endpointType": _Term("dspace:endpointType"),
        "endpoint": _Term("dspace:endpoint"),
        "endpointProperties": _Term(
            "dspace:endpointProperties", child="EndpointProperty", many=True
        ),
    },
    "EndpointProperty": {"name": _Term("dspace:name"), "value": _Term("dspace:value")},
}

_TYPES_0_8: Final[Mapping[str, str]] = {
    "Catalog": "dcat:Catalog",
    "Dataset": "dcat:Dataset",
    "Distribution": "dcat:Distribution",
    "DataService": "dcat:DataService",
    "Offer": "odrl:Offer",
    "Agreement": "odrl:Agreement",
}

# ODRL terms that appear inside rules and constraints (all `odrl:` in 0.8).
_ODRL_KEYS: Final = frozenset(
    {
        "action", "constraint", "duty", "permission", "prohibition", "obligation", "and", "or",
        "xone", "andSequence", "leftOperand", "operator", "rightOperand", "rightOperandReference",
        "target", "assigner", "assignee", "unit", "dataType", "refinement", "consequence", "remedy",
    }
)  # fmt: skip
_ODRL_LIST_KEYS: Final = frozenset(
    {"constraint", "duty", "permission", "prohibition", "obligation", "and", "or", "xone",
     "andSequence", "refinement", "consequence", "remedy"}
)  # fmt: skip
_ODRL_VOCAB_KEYS: Final = frozenset({"action", "operator", "leftOperand"})


def v08_type(type_name: str) -> str:
    """The 0.8 `@type` for a 2025-1 type name (`Offer` -> `odrl:Offer`)."""
    return _TYPES_0_8.get(type_name, f"dspace:{type_name}")


def _strip_prefix(value: str) -> str:
    prefix, sep, rest = value.partition(":")
    return rest if sep and prefix in ("dspace", "dcat", "odrl", "dct") else value


# ---- 0.8 -> 2025-1 --------------------------------------------------------------------------


def from_v08(body: Mapping[str, Any], type_name: str) -> tuple[dict[str, Any], Paths]:
    """Rewrite a 0.8 body (without `@context`) into the compacted 2025-1 shape.

    Returns the new body and the path map for error pointers. Unknown properties pass through.
    """
    paths: Paths = {}
    return _node_from(body, type_name, (), (), paths), paths


def _node_from(
    node: Mapping[str, Any], type_name: str, orig: tuple[Any, ...], norm: tuple[Any, ...],
    paths: Paths,
) -> dict[str, Any]:  # fmt: skip
    if type_name == _ODRL:
        return _odrl_from(node, orig, norm, paths)
    terms = TERMS.get(type_name, {})
    by_wire = {t.wire: (term, t) for term, t in terms.items()}
    # Absent terms too, so that "field required" points at the 0.8 name the peer left out.
    paths.update({(*norm, term): (*orig, t.wire) for term, t in terms.items()})
    out: dict[str, Any] = {}
    for key, value in node.items():
        term, spec = by_wire.get(key, (key, None))
        if spec is None and type_name in ("Offer", "Agreement"):
            # 2024-1 style `odrl:assigner`, and every other ODRL key on the policy itself.
            term = _strip_prefix(key) if key.startswith("odrl:") else key
            spec = terms.get(term)
        paths[(*norm, term)] = (*orig, key)
        if key == "@type" and isinstance(value, str):
            out[term] = _strip_prefix(value)
        elif spec is None:
            out[term] = value
        else:
            out[term] = _value_from(value, spec, (*orig, key), (*norm, term), paths)
    return out


def _value_from(
    value: Any, spec: _Term, orig: tuple[Any, ...], norm: tuple[Any, ...], paths: Paths
) -> Any:
    if spec.many:
        if not isinstance(value, list):
            paths[(*norm, 0)] = orig
            return [_scalar_from(value, spec, orig, (*norm, 0), paths)]
        result = []
        for i, item in enumerate(value):
            paths[(*norm, i)] = (*orig, i)
            result.append(_scalar_from(item, spec, (*orig, i), (*norm, i), paths))
        return result
    if isinstance(value, list) and len(value) == 1 and spec.child is not None:
        # `dcat:accessService: [{…}]` in 0.8 examples; our model holds exactly one.
        return _scalar_from(value[0], spec, (*orig, 0), norm, paths)
    return _scalar_from(value, spec, orig, norm, paths)


def _scalar_from(
    value: Any, spec: _Term, orig: tuple[Any, ...], norm: tuple[Any, ...], paths: Paths
) -> Any:
    if isinstance(value, dict):
        if spec.iri and set(value) <= {"@id", "@type"} and isinstance(value.get("@id"), str):
            return value["@id"]
        if spec.lang and isinstance(value.get("@value"), str):
            return value["@value"]
        if spec.child is not None:
            return _node_from(value, spec.child, orig, norm, paths)
        return value
    if spec.enum and isinstance(value, str):
        return _strip_prefix(value)
    return value


def _odrl_from(
    node: Mapping[str, Any], orig: tuple[Any, ...], norm: tuple[Any, ...], paths: Paths
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        term = _strip_prefix(key) if key.startswith("odrl:") else key
        paths[(*norm, term)] = (*orig, key)
        if term in _ODRL_LIST_KEYS:
            items = value if isinstance(value, list) else [value]
            out[term] = [
                _odrl_from(v, (*orig, key, i), (*norm, term, i), paths)
                if isinstance(v, dict)
                else v
                for i, v in enumerate(items)
            ]
        elif term in _ODRL_VOCAB_KEYS and isinstance(value, str) and value.startswith("odrl:"):
            out[term] = value.removeprefix("odrl:")
        else:
            out[term] = value
    return out


# ---- 2025-1 -> 0.8 --------------------------------------------------------------------------


def to_v08(body: Mapping[str, Any], type_name: str) -> dict[str, Any]:
    """Rewrite a compacted 2025-1 body (without `@context`) into the 0.8 wire form."""
    if type_name == _ODRL:
        return _odrl_to(body)
    terms = TERMS.get(type_name, {})
    out: dict[str, Any] = {}
    for key, value in body.items():
        spec = terms.get(key)
        if key == "@type" and isinstance(value, str):
            out[key] = v08_type(value)
        elif spec is None and type_name in ("Offer", "Agreement") and key in _ODRL_KEYS:
            out[f"odrl:{key}"] = _odrl_value_to(key, value)
        elif spec is None:
            out[key] = value
        elif isinstance(value, list):
            out[spec.wire] = [_scalar_to(v, spec) for v in value]
        elif spec.child == "DataService":
            # The 0.8 Distribution schema wants an array of DataService objects.
            out[spec.wire] = [{"@id": value} if isinstance(value, str) else _scalar_to(value, spec)]
        else:
            out[spec.wire] = _scalar_to(value, spec)
    return out


def _scalar_to(value: Any, spec: _Term) -> Any:
    if isinstance(value, dict) and spec.child is not None:
        return to_v08(value, spec.child)
    if spec.lang and isinstance(value, str):
        return {"@value": value, "@language": "en"}
    if spec.enum and isinstance(value, str):
        return f"dspace:{value}"
    return value


def _odrl_to(node: Mapping[str, Any]) -> dict[str, Any]:
    return {(f"odrl:{k}" if k in _ODRL_KEYS else k): _odrl_value_to(k, v) for k, v in node.items()}


def _odrl_value_to(key: str, value: Any) -> Any:
    if key in _ODRL_LIST_KEYS and isinstance(value, list):
        return [_odrl_to(v) if isinstance(v, dict) else v for v in value]
    if key in _ODRL_VOCAB_KEYS and isinstance(value, str) and ":" not in value:
        return f"odrl:{value}"
    return value
