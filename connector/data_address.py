"""Data addresses: the one set of rules for sources and push destinations.

The management API applies them when an asset is created or replaced (422, pointer to the
field), the transfer routes to push destinations, and the data plane when a flow starts and
again when a source is opened: one function everywhere, so an address accepted when it is
stored is not refused later for its shape, and one refused later was never accepted.

Source shapes (`type` + fields; docs/security.md §6a):
- `{"type": "file", "path": "<relative to dataplane.file_base_path>"}`
- `{"type": "http", "baseUrl": "https://...", "headers": {...}, "proxyPath": false,
  "proxyQueryParams": false, "proxyMethod": false, "proxyBody": false}`
- `{"type": "s3", "bucket": "...", "key": "..."}` (endpoint and credentials from settings)
- any type: `finite` (default: true for file and S3, false for HTTP) and `completeOnFirstRead`
  (default true: the first whole read of a finite pull completes the transfer).

Nothing here contacts the network: host names are judged by the outbound guard when they are
resolved; IP literals, numeric IPv4 forms and `localhost` already here (`vet_offline`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from connector.core.errors import UnprocessableError
from connector.http.outbound import OutboundConfig, OutboundRefusedError, vet_offline
from connector.identity.paths import PathEscapeError, confine_path
from connector.settings import DataPlaneSettings

__all__ = [
    "FLAGS",
    "FROM_COUNTERPARTY",
    "PROXY_FLAGS",
    "PROXY_METHODS",
    "TO_PROVIDER",
    "DestinationKind",
    "Problem",
    "check_destination",
    "check_source",
    "completes_on_first_read",
    "destination_kind",
    "destination_problems",
    "flag",
    "is_finite",
    "source_problems",
]

DestinationKind = Literal["http", "s3", "file"]
#: Push destinations a counterparty may name: HTTP only (our data plane would write files and
#: S3 objects into our own base path and with our own credentials).
FROM_COUNTERPARTY: Final[tuple[DestinationKind, ...]] = ("http",)
#: What a consumer may ask a provider to push to (an EDC provider also writes to S3).
TO_PROVIDER: Final[tuple[DestinationKind, ...]] = ("http", "s3")

#: Options of an HTTP source (the reference connector's names) and of every source.
PROXY_FLAGS: Final = ("proxyPath", "proxyQueryParams", "proxyMethod", "proxyBody")
FLAGS: Final = (*PROXY_FLAGS, "finite", "completeOnFirstRead")
#: Methods a consumer may use on a source with `proxyMethod`; without it only GET and HEAD.
PROXY_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
_PUSH_METHODS: Final = ("POST", "PUT", "PATCH")

_MAX_URL: Final = 4096
_MAX_HEADERS: Final = 64
# RFC 9110 §5.6.2 token; values: visible ASCII, space and tab (no CR, LF or NUL).
_TOKEN_RE: Final = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_VALUE_RE: Final = re.compile(r"^[\t\x20-\x7e\x80-\uffff]*$")
# Set by the data plane itself from the body it streams: a fixed value would corrupt it.
_RESERVED_HEADERS: Final = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer"}
)
# S3 bucket naming rules (3-63 characters, lowercase, digits, dots, hyphens; not an IP).
_BUCKET_RE: Final = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_LIKE_RE: Final = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_URI_RE: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True, slots=True)
class Problem:
    """One refused field: `pointer` is a JSON pointer relative to the address."""

    pointer: str
    message: str


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def flag(address: Mapping[str, Any], name: str) -> bool | None:
    """A boolean option: JSON `true`/`false` or the strings `"true"`/`"false"` (the reference
    connector keeps data address properties as strings); None when absent or malformed."""
    value = address.get(name)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _kind(address: Mapping[str, Any]) -> str:
    return str(address.get("type", "")).lower()


def is_finite(address: Mapping[str, Any]) -> bool:
    """Whether the data ends: `finite` if given; else true when `completeOnFirstRead` is set,
    and otherwise true for files and S3 objects, false for an HTTP source (an API)."""
    explicit = flag(address, "finite")
    if explicit is not None:
        return explicit
    if flag(address, "completeOnFirstRead"):
        return True
    return _kind(address) in ("file", "s3")


def completes_on_first_read(address: Mapping[str, Any]) -> bool:
    """Whether the first whole read of a finite pull completes its transfer (default true)."""
    value = flag(address, "completeOnFirstRead")
    return True if value is None else value


# --------------------------------------------------------------------------- fields


def _url_problems(
    url: object, pointer: str, outbound: OutboundConfig, *, what: str
) -> list[Problem]:
    if not isinstance(url, str) or not url:
        return [Problem(pointer, f"{what} must be a non-empty URL")]
    if len(url) > _MAX_URL:
        return [Problem(pointer, f"{what} is longer than {_MAX_URL} characters")]
    if "#" in url:
        return [Problem(pointer, f"{what} must not have a fragment")]
    try:
        vet_offline(url, outbound)
    except OutboundRefusedError as exc:
        return [Problem(pointer, f"{what} refused: {'; '.join(exc.reasons)}")]
    return []


def _file_problems(path: object, pointer: str, dataplane: DataPlaneSettings) -> list[Problem]:
    if not isinstance(path, str) or not path:
        return [Problem(pointer, "path must be a non-empty relative file path")]
    if _URI_RE.match(path):
        return [Problem(pointer, "path must be a file path relative to the base, not a URI")]
    base: Path | None = dataplane.file_base_path
    if base is None:
        return [Problem(pointer, "file addresses are disabled (no dataplane.file_base_path)")]
    try:
        # The same check the data plane makes (symlinks included where the base exists here;
        # the file itself may come later, and is looked for when a transfer runs).
        confine_path(base, path)
    except PathEscapeError as exc:
        return [Problem(pointer, f"path {exc.reasons[0]}")]
    except FileNotFoundError:
        pass  # the base lives on the data plane's host only; the lexical rules held
    except OSError as exc:
        return [Problem(pointer, f"path refused: {exc.strerror}")]
    return []


def _bucket_problems(bucket: object, pointer: str) -> list[Problem]:
    if not isinstance(bucket, str) or not bucket:
        return [Problem(pointer, "an S3 address needs a bucket")]
    if not _BUCKET_RE.match(bucket) or ".." in bucket or _IP_LIKE_RE.match(bucket):
        return [Problem(pointer, f"{bucket!r} is not a valid S3 bucket name")]
    return []


def _key_problems(key: object, pointer: str) -> list[Problem]:
    if not isinstance(key, str) or not key:
        return [Problem(pointer, "an S3 address needs a key")]
    if len(key.encode("utf-8", "surrogatepass")) > 1024:
        return [Problem(pointer, "an S3 key is at most 1024 bytes")]
    if any(unicodedata.category(c) == "Cc" for c in key):
        return [Problem(pointer, "an S3 key must not contain control characters")]
    if any(segment in (".", "..") for segment in key.split("/")):
        # Some S3-compatible stores and proxies normalise these: another object than named.
        return [Problem(pointer, "an S3 key must not contain '.' or '..' segments")]
    return []


def _header_problems(headers: object, pointer: str) -> list[Problem]:
    if headers is None:
        return []
    if not isinstance(headers, dict):
        return [Problem(pointer, "headers must be an object of header names to strings")]
    if len(headers) > _MAX_HEADERS:
        return [Problem(pointer, f"at most {_MAX_HEADERS} headers")]
    problems: list[Problem] = []
    for name, value in headers.items():
        at = f"{pointer}/{_escape(str(name))}"
        if not _TOKEN_RE.match(str(name)):
            problems.append(Problem(at, f"{name!r} is not a valid header name"))
        elif str(name).lower() in _RESERVED_HEADERS:
            problems.append(Problem(at, f"header {name!r} is set by the data plane"))
        elif not isinstance(value, str) or not _VALUE_RE.match(value):
            problems.append(Problem(at, "a header value must be a string without CR, LF or NUL"))
    return problems


def _flag_problems(address: Mapping[str, Any], kind: str) -> list[Problem]:
    problems: list[Problem] = []
    for name in FLAGS:
        if name not in address:
            continue
        if flag(address, name) is None:
            problems.append(Problem(f"/{name}", f"{name} must be true or false"))
        elif name in PROXY_FLAGS and kind != "http":
            problems.append(Problem(f"/{name}", f"{name} applies to HTTP sources only"))
    if flag(address, "finite") is False and flag(address, "completeOnFirstRead") is True:
        problems.append(
            Problem("/completeOnFirstRead", "completeOnFirstRead needs a finite source")
        )
    return problems


# --------------------------------------------------------------------------- sources


def source_problems(
    address: Mapping[str, Any], dataplane: DataPlaneSettings, outbound: OutboundConfig
) -> list[Problem]:
    """Everything wrong with an asset's data address (a data-plane source); [] if usable."""
    kind = _kind(address)
    if kind not in ("file", "http", "s3"):
        return [Problem("/type", f"unsupported data address type {address.get('type')!r}")]
    problems = _flag_problems(address, kind)
    if kind == "file":
        problems += _file_problems(address.get("path"), "/path", dataplane)
    elif kind == "s3":
        bucket_field = "bucketName" if "bucketName" in address else "bucket"
        key_field = "objectName" if "objectName" in address else "key"
        problems += _bucket_problems(address.get(bucket_field), f"/{bucket_field}")
        problems += _key_problems(address.get(key_field), f"/{key_field}")
    else:
        url_field = "endpoint" if "baseUrl" not in address and "endpoint" in address else "baseUrl"
        problems += _url_problems(address.get(url_field), f"/{url_field}", outbound, what=url_field)
        problems += _header_problems(address.get("headers"), "/headers")
    return problems


def _raise(problems: list[Problem], at: str) -> None:
    if problems:
        raise UnprocessableError(
            *(f"{at}{p.pointer}: {p.message}" for p in problems),
            pointer=at + problems[0].pointer,
        )


def check_source(
    address: Mapping[str, Any],
    dataplane: DataPlaneSettings,
    outbound: OutboundConfig,
    *,
    at: str = "",
) -> None:
    """`source_problems` as an error; `at` is the address's pointer in the request body.

    Raises:
        UnprocessableError: every problem as "<pointer>: <message>", pointer of the first.
    """
    _raise(source_problems(address, dataplane, outbound), at)


# --------------------------------------------------------------------------- destinations


def destination_kind(address: Mapping[str, Any]) -> DestinationKind | None:
    """http, s3 or file for a push destination (DSP `endpointType` or an internal `type`)."""
    lowered = str(address.get("endpointType") or address.get("type") or "").lower()
    if lowered in ("amazons3", "s3"):
        return "s3"
    if lowered == "file":
        return "file"
    if "http" in lowered or lowered == "":
        return "http"
    return None


def _property(address: Mapping[str, Any], *names: str) -> tuple[object, str] | None:
    """(value, pointer) of the first endpoint property or top-level field called one of
    `names` (also under the EDC namespace)."""
    props = address.get("endpointProperties")
    if isinstance(props, list):
        for i, prop in enumerate(props):
            if not isinstance(prop, dict):
                continue
            name = str(prop.get("name", "")).removeprefix("https://w3id.org/edc/v0.0.1/ns/")
            if name in names:
                return prop.get("value"), f"/endpointProperties/{i}/value"
    for name in names:
        if name in address:
            return address.get(name), f"/{_escape(name)}"
    return None


def destination_problems(
    address: Mapping[str, Any],
    dataplane: DataPlaneSettings,
    outbound: OutboundConfig,
    *,
    kinds: Collection[DestinationKind] = ("http", "s3", "file"),
) -> list[Problem]:
    """Everything wrong with a push destination; `kinds` are the types accepted where it came
    from (from a counterparty: HTTP only, since our data plane would write files and S3
    objects with our own base path and credentials)."""
    kind = destination_kind(address)
    type_field = "/endpointType" if "endpointType" in address else "/type"
    if kind is None or kind not in kinds:
        accepted = ", ".join(sorted(kinds))
        given = address.get("endpointType") or address.get("type")
        message = f"push destination type {given!r} is not accepted ({accepted})"
        return [Problem(type_field, message)]
    if kind == "file":
        found = _property(address, "path")
        value, pointer = found if found is not None else (None, "/path")
        return _file_problems(value, pointer, dataplane)
    if kind == "s3":
        bucket = _property(address, "bucketName", "bucket") or (None, "/bucketName")
        key = _property(address, "objectName", "key") or (None, "/objectName")
        return _bucket_problems(*bucket) + _key_problems(*key)
    url_field = "baseUrl" if "endpoint" not in address and "baseUrl" in address else "endpoint"
    problems = _url_problems(
        address.get(url_field), f"/{url_field}", outbound, what="a push destination's endpoint"
    )
    method = _property(address, "method")
    if method is not None and str(method[0]).upper() not in _PUSH_METHODS:
        problems.append(Problem(method[1], f"a push uses {', '.join(_PUSH_METHODS)}"))
    return problems


def check_destination(
    address: Mapping[str, Any],
    dataplane: DataPlaneSettings,
    outbound: OutboundConfig,
    *,
    kinds: Collection[DestinationKind] = ("http", "s3", "file"),
    at: str = "",
) -> None:
    """`destination_problems` as an error; `at` is the address's pointer in the request body.

    Raises:
        UnprocessableError: every problem as "<pointer>: <message>", pointer of the first.
    """
    _raise(destination_problems(address, dataplane, outbound, kinds=kinds), at)
