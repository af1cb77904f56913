"""One error vocabulary for the whole connector (STYLE.md §8).

    ConnectorError(code: ErrorCode, reasons: list[str])
    ├─ BadRequestError     bad_request    invalid JSON / schema / policy-invalid input
    │  └─ UnprocessableError unprocessable well-formed but semantically invalid (a bad policy)
    ├─ UnauthorizedError   unauthorized   missing/invalid token or key, wrong audience
    ├─ ForbiddenError      forbidden      authenticated, but a policy or rule denies it
    ├─ NotFoundError       not_found      unknown id, or one the caller may not see
    ├─ MethodNotAllowedError method_not_allowed
    │                                     a method the path does not serve (carries `allow`)
    ├─ ConflictError       conflict       illegal state transition, id taken, still referenced
    │  └─ IllegalTransitionError
    ├─ TooLargeError       too_large      request body over the limit
    ├─ UnsupportedMediaTypeError unsupported_media_type
    │                                     a body that is not JSON on a JSON route
    ├─ RateLimitedError    rate_limited   caller over its rate (carries retry_after seconds)
    ├─ RangeNotSatisfiableError range_not_satisfiable
    │                                     a byte range outside the object (carries its size)
    ├─ UnavailableError    unavailable    a dependency (Temporal, Postgres, Redis) is unreachable
    └─ UnexpectedError     unexpected     a bug; the wire carries only an error id

The mapping of codes to HTTP statuses per surface lives in `connector/http/errors.py` (one place).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

__all__ = [
    "BadRequestError",
    "ConflictError",
    "ConnectorError",
    "ErrorCode",
    "ForbiddenError",
    "IllegalTransitionError",
    "MethodNotAllowedError",
    "NotFoundError",
    "RangeNotSatisfiableError",
    "RateLimitedError",
    "TooLargeError",
    "UnauthorizedError",
    "UnavailableError",
    "UnexpectedError",
    "UnprocessableError",
    "UnsupportedMediaTypeError",
]


class ErrorCode(StrEnum):
    BAD_REQUEST = "bad_request"
    UNPROCESSABLE = "unprocessable"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    TOO_LARGE = "too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    RATE_LIMITED = "rate_limited"
    RANGE_NOT_SATISFIABLE = "range_not_satisfiable"
    UNAVAILABLE = "unavailable"
    UNEXPECTED = "unexpected"


class ConnectorError(Exception):
    """Base of every error the connector raises on purpose."""

    code: ErrorCode = ErrorCode.UNEXPECTED

    def __init__(self, *reasons: str, pointer: str | None = None) -> None:
        self.reasons: list[str] = [r for r in reasons if r] or [self.code.value.replace("_", " ")]
        # JSON pointer to the offending part of the input, when one is known (problem+json).
        self.pointer = pointer
        super().__init__("; ".join(self.reasons))


class BadRequestError(ConnectorError):
    code = ErrorCode.BAD_REQUEST


class UnprocessableError(BadRequestError):
    """Well-formed input that is semantically invalid (management: 422; DSP: 400)."""

    code = ErrorCode.UNPROCESSABLE


class UnauthorizedError(ConnectorError):
    code = ErrorCode.UNAUTHORIZED


class ForbiddenError(ConnectorError):
    code = ErrorCode.FORBIDDEN


class NotFoundError(ConnectorError):
    code = ErrorCode.NOT_FOUND


class ConflictError(ConnectorError):
    code = ErrorCode.CONFLICT


class IllegalTransitionError(ConflictError):
    """A message that the state machine does not allow in the current state or from this sender."""


class MethodNotAllowedError(ConnectorError):
    """The path exists, the method does not (405 with `Allow`, RFC 9110 §15.5.6)."""

    code = ErrorCode.METHOD_NOT_ALLOWED

    def __init__(self, *reasons: str, allow: tuple[str, ...] = ()) -> None:
        super().__init__(*reasons)
        self.allow = allow


class TooLargeError(ConnectorError):
    code = ErrorCode.TOO_LARGE


class UnsupportedMediaTypeError(ConnectorError):
    """A request body in a media type the route does not read (415, RFC 9110 §15.5.16)."""

    code = ErrorCode.UNSUPPORTED_MEDIA_TYPE


class RateLimitedError(ConnectorError):
    code = ErrorCode.RATE_LIMITED

    def __init__(self, *reasons: str, retry_after: int = 1) -> None:
        super().__init__(*reasons)
        self.retry_after = retry_after


class RangeNotSatisfiableError(ConnectorError):
    """No byte of the requested range lies within the object (data plane: 416 with
    `Content-Range: bytes */<size>`, RFC 9110 §15.5.17)."""

    code = ErrorCode.RANGE_NOT_SATISFIABLE

    def __init__(self, *reasons: str, size: int) -> None:
        super().__init__(*reasons)
        self.size = size


class UnavailableError(ConnectorError):
    code = ErrorCode.UNAVAILABLE


class OverloadedError(UnavailableError):
    """A new process refused while the engine is behind (decision 0032): 503 with its own
    `Retry-After`."""

    def __init__(self, *reasons: str, retry_after: int = 1) -> None:
        super().__init__(*reasons)
        self.retry_after = retry_after


class UnexpectedError(ConnectorError):
    code = ErrorCode.UNEXPECTED


ERROR_TYPES: Final[dict[ErrorCode, type[ConnectorError]]] = {
    ErrorCode.BAD_REQUEST: BadRequestError,
    ErrorCode.UNPROCESSABLE: UnprocessableError,
    ErrorCode.UNAUTHORIZED: UnauthorizedError,
    ErrorCode.FORBIDDEN: ForbiddenError,
    ErrorCode.NOT_FOUND: NotFoundError,
    ErrorCode.METHOD_NOT_ALLOWED: MethodNotAllowedError,
    ErrorCode.CONFLICT: ConflictError,
    ErrorCode.TOO_LARGE: TooLargeError,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: UnsupportedMediaTypeError,
    ErrorCode.RATE_LIMITED: RateLimitedError,
    ErrorCode.RANGE_NOT_SATISFIABLE: RangeNotSatisfiableError,
    ErrorCode.UNAVAILABLE: UnavailableError,
    ErrorCode.UNEXPECTED: UnexpectedError,
}
