"""What a consumer's pull request may add to an HTTP source: sub-path, query, method, body.

An HTTP source forwards nothing of the consumer's request unless its data address says so, with
the reference connector's option names (docs/security.md §6a):

- `proxyPath`: `/public/<id>/<sub/path>` reads `<baseUrl>/<sub/path>`. The sub-path is taken
  from the raw request target and confined to the base path: each segment is percent-decoded
  once and refused if it is `.` or `..` (also `%2e%2e`, `..;x`, fullwidth dots, `...`), if it
  contains `/`, `\\`, `?`, `#`, NUL or another control character (so `%2F`, `%5C`, `%3F`,
  `%23`, `%00` are refused), if it still decodes further (`%252e`: double encoding), or if it
  is not UTF-8. What is sent is re-encoded from the checked segments, and the result is
  checked to start with the base path.
- `proxyQueryParams`: the consumer's query string is appended to the base URL's own; a
  parameter the base URL fixes cannot be given again. Without it the query is ignored.
- `proxyMethod`: the consumer's method (GET, HEAD, POST, PUT, PATCH, DELETE) is used; without
  it only GET and HEAD are accepted (405 with `Allow` otherwise).
- `proxyBody`: the consumer's body is streamed to the source (never buffered), with its
  `Content-Type`; without it a body is not forwarded.

The provider's `headers` go only to URLs below the base; the consumer's own headers (its
access token above all) are never forwarded, except `Range` (one range) and, with
`proxyBody`, `Content-Type` and `Content-Length`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, quote, unquote, unquote_to_bytes, urlsplit, urlunsplit

import httpx

from connector.core.errors import BadRequestError, NotFoundError
from connector.data_address import PROXY_METHODS, flag

__all__ = [
    "ProxyOptions",
    "PullRequest",
    "allowed_methods",
    "confine_sub_path",
    "proxied_url",
]

_MAX_SUB_PATH: Final = 2048
_MAX_QUERY: Final = 4096
# What may stay unencoded in a segment we send (RFC 3986 pchar without ";", which some servers
# read as a path parameter: `..;/` is `..` to Tomcat).
_SAFE: Final = "-._~!$&'()*+,=:@"
_FORBIDDEN: Final = frozenset("/\\?#")
# RFC 3986 query characters (pct-encoded included): no space, CR, LF, '#', quotes or brackets.
_QUERY_RE: Final = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*$")


@dataclass(frozen=True, slots=True)
class ProxyOptions:
    path: bool = False
    query: bool = False
    method: bool = False
    body: bool = False

    @classmethod
    def of(cls, address: Mapping[str, Any]) -> ProxyOptions:
        if str(address.get("type", "")).lower() != "http":
            return cls()
        return cls(
            path=bool(flag(address, "proxyPath")),
            query=bool(flag(address, "proxyQueryParams")),
            method=bool(flag(address, "proxyMethod")),
            body=bool(flag(address, "proxyBody")),
        )


@dataclass(frozen=True, slots=True)
class PullRequest:
    """The parts of a consumer's request to `/public/<id>[/<sub-path>]` a source may use.

    `sub_path` is the raw (still percent-encoded) target after `/public/<id>/`, `query` the raw
    query string; `body` streams the request body."""

    method: str = "GET"
    sub_path: str | None = None
    query: str = ""
    body: AsyncIterator[bytes] | None = None
    content_type: str | None = None
    content_length: str | None = None

    @property
    def plain(self) -> bool:
        """A GET of the whole source: nothing but the token (and maybe a Range) in it."""
        return self.method == "GET" and not self.sub_path and not self.query


def allowed_methods(options: ProxyOptions) -> tuple[str, ...]:
    return PROXY_METHODS if options.method else ("GET", "HEAD")


def _dots_only(text: str) -> bool:
    return text != "" and text.strip(".") == ""


def _checked_segment(raw: str) -> str:
    """One raw segment, percent-decoded once, or BadRequestError."""
    try:
        decoded = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequestError("sub-path segments must be UTF-8") from None
    for form in (decoded, unicodedata.normalize("NFKC", decoded)):
        if any(c in _FORBIDDEN or unicodedata.category(c) == "Cc" for c in form):
            raise BadRequestError(
                "sub-path segments must not contain '/', '\\', '?', '#' or control characters "
                "(also percent-encoded)"
            )
        if not form.strip():
            raise BadRequestError("empty sub-path segments are not allowed")
        if _dots_only(form.split(";", 1)[0].strip(" \t")):
            raise BadRequestError("'.' and '..' sub-path segments are not allowed")
    if unquote(decoded) != decoded:
        raise BadRequestError("sub-path segments must not be percent-encoded twice")
    return decoded


def confine_sub_path(raw: str) -> str:
    """The sub-path re-encoded from checked segments (a trailing `/` is kept).

    Raises:
        BadRequestError: a segment that could leave the base path or means something else
            to the source than to us (see the module docstring).
    """
    if len(raw) > _MAX_SUB_PATH:
        raise BadRequestError(f"sub-path longer than {_MAX_SUB_PATH} characters")
    segments = raw.split("/")
    trailing = len(segments) > 1 and segments[-1] == ""
    if trailing:
        segments = segments[:-1]
    if any(s == "" for s in segments):
        raise BadRequestError("empty sub-path segments are not allowed")
    encoded = [quote(_checked_segment(s), safe=_SAFE) for s in segments]
    return "/".join(encoded) + ("/" if trailing else "")


def _forwarded_query(base_query: str, query: str) -> str:
    if len(query) > _MAX_QUERY or not _QUERY_RE.match(query):
        raise BadRequestError("the query string has characters that must be percent-encoded")
    fixed = {name for name, _ in parse_qsl(base_query, keep_blank_values=True)}
    for name, _ in parse_qsl(query, keep_blank_values=True):
        if name in fixed:
            raise BadRequestError(f"query parameter {name!r} is fixed by the source")
    return f"{base_query}&{query}" if base_query else query


def proxied_url(base_url: str, request: PullRequest, options: ProxyOptions) -> str:
    """The URL to read for `request`: the base URL, or below it (see the module docstring).

    Raises:
        NotFoundError: a sub-path on a source without `proxyPath`.
        BadRequestError: a sub-path or query that is refused.
    """
    if not request.sub_path and not (options.query and request.query):
        return base_url
    scheme, netloc, path, base_query, _fragment = urlsplit(base_url)
    if request.sub_path:
        if not options.path:
            raise NotFoundError("this source serves no sub-paths")
        prefix = path.rstrip("/") + "/"
        path = prefix + confine_sub_path(request.sub_path)
    else:
        prefix = path
    query = base_query
    if options.query and request.query:
        query = _forwarded_query(base_query, request.query)
    url = urlunsplit((scheme, netloc, path, query, ""))
    # Belt and braces: what the HTTP client will send must still lie below the base path.
    sent = httpx.URL(url).raw_path.split(b"?", 1)[0]
    base = httpx.URL(urlunsplit((scheme, netloc, prefix, "", ""))).raw_path
    if not sent.startswith(base):
        raise BadRequestError("the sub-path leaves the source's base path")
    return url
