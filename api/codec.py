"""The codec endpoint for the Temporal UI (Temporal's remote codec protocol).

`POST /management/codec/decode` and `/encode` take and answer `{"payloads": [...]}`, the
`Payloads` protobuf as JSON (base64 `metadata` values and `data`), and run them through the
connector's payload codec (`connector.temporal.codec`): the UI shows histories in clear to an
operator while Temporal stores ciphertext. Payloads that are not ours (not `binary/encrypted`)
come back unchanged; so does everything for an `X-Namespace` other than ours.

Who may call it: an operator, authenticated like the management API (`X-Api-Key`, or an OIDC
bearer token when `management.oidc` is configured: the UI's "pass the user access token"), or
with the management key as the password of HTTP Basic credentials. The last is for a browser:
the UI cannot add an `X-Api-Key` header, but sends the browser's cached credentials with
"include cross-origin credentials"; `GET /management/codec/login` asks the browser for them once.

CORS: only `encryption.codec_origins` (default: the embedded UI's origin) get CORS headers, with
credentials allowed; preflights from other origins and requests naming another `Origin` are
refused (403). Like every management path, it is served on the management listener when
`management.port` is set.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from api.body import read_json
from api.security import require_api_key
from connector.core.errors import BadRequestError, ConnectorError, UnauthorizedError
from connector.encryption.keyring import DataKeys
from connector.http.errors import PROBLEM_JSON, error_response
from connector.identity.apikeys import ApiKeyVerifier
from connector.runtime.logging import get_logger
from connector.settings import Settings
from connector.temporal.codec import ENDPOINT_PATH, CodecError, EncryptionCodec

__all__ = ["PREFIX", "router"]

log = get_logger(__name__)

PREFIX: Final = ENDPOINT_PATH
BASIC_REALM: Final = 'Basic realm="connector codec", charset="UTF-8"'
ALLOWED_HEADERS: Final = "Content-Type, X-Namespace, Authorization, X-Api-Key"
PREFLIGHT_MAX_AGE: Final = "600"

router = APIRouter(prefix=PREFIX, tags=["codec"])


def _origins(request: Request) -> list[str]:
    settings: Settings = request.app.state.settings
    return settings.encryption.allowed_origins(settings.temporal)


def _cors(request: Request, response: Response) -> Response:
    origin = request.headers.get("origin")
    response.headers["Vary"] = "Origin"
    if origin is not None and origin in _origins(request):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
    return response


def _forbidden_origin(origin: str) -> JSONResponse:
    return JSONResponse(
        {
            "type": "urn:connector:error:forbidden",
            "title": "forbidden",
            "status": 403,
            "detail": f"origin {origin} may not call the codec endpoint",
            "errors": [f"origin {origin} may not call the codec endpoint"],
        },
        403,
        {"Vary": "Origin"},
        media_type=PROBLEM_JSON,
    )


def _basic_key(authorization: str) -> str | None:
    """The password of `Basic <base64(user:password)>` (the user name is ignored)."""
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, sep, password = decoded.partition(":")
    return password if sep else None


async def _operator(request: Request) -> str:
    """Basic credentials with the management key as password, else the management API's rules
    (`X-Api-Key`, OIDC bearer token)."""
    authorization = request.headers.get("authorization")
    if authorization is not None and authorization[:6].lower() == "basic ":
        verifier: ApiKeyVerifier = request.app.state.api_keys
        name = verifier.verify(_basic_key(authorization))
        if name is None:
            raise UnauthorizedError("missing or invalid X-Api-Key or credentials")
        return name
    return await require_api_key(request, request.headers.get("x-api-key"))


async def _convert(request: Request, operation: str) -> Response:
    origin = request.headers.get("origin")
    if origin is not None and origin not in _origins(request):
        return _forbidden_origin(origin)
    try:
        operator = await _operator(request)
        body = await read_json(request)
        if not isinstance(body, dict):
            raise BadRequestError("the body must be a JSON object with `payloads`")
        try:
            payloads = json_format.ParseDict(body, Payloads(), ignore_unknown_fields=False)
        except json_format.ParseError as exc:
            raise BadRequestError(f"not a Payloads message: {exc}") from None
        settings: Settings = request.app.state.settings
        namespace = request.headers.get("x-namespace")
        items = list(payloads.payloads)
        if namespace is None or namespace == settings.temporal.namespace:
            keys: DataKeys = request.app.state.data_keys
            codec = EncryptionCodec(keys)
            try:
                items = await (
                    codec.decode(items) if operation == "decode" else codec.encode(items)
                )
            except CodecError as exc:
                raise BadRequestError(str(exc)) from None
        log.info("codec endpoint", operation=operation, operator=operator, payloads=len(items))
        answer: dict[str, Any] = json_format.MessageToDict(Payloads(payloads=items))
        return _cors(request, JSONResponse({"payloads": answer.get("payloads", [])}))
    except ConnectorError as exc:
        return _cors(request, error_response(request, exc))


@router.post("/decode", summary="Decode payloads for the Temporal UI (remote codec protocol)")
async def decode(request: Request) -> Response:
    return await _convert(request, "decode")


@router.post("/encode", summary="Encode payloads for the Temporal UI (remote codec protocol)")
async def encode(request: Request) -> Response:
    return await _convert(request, "encode")


@router.options("/decode", include_in_schema=False)
@router.options("/encode", include_in_schema=False)
async def preflight(request: Request) -> Response:
    """CORS preflight (sent without credentials): allowed origins only."""
    origin = request.headers.get("origin")
    if origin is None or origin not in _origins(request):
        return _forbidden_origin(origin or "(none)")
    response = Response(status_code=204)
    response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
    response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
    return _cors(request, response)


@router.get("/login", include_in_schema=False)
async def login(request: Request) -> Response:
    """Opened once in the browser: answers 401 with a Basic challenge until the browser sends
    the management key as the password; the browser then keeps the credentials for this origin
    and sends them with the UI's codec requests ("include cross-origin credentials")."""
    authorization = request.headers.get("authorization") or ""
    if authorization[:6].lower() == "basic ":
        verifier: ApiKeyVerifier = request.app.state.api_keys
        if verifier.verify(_basic_key(authorization)) is not None:
            return PlainTextResponse(
                "The codec endpoint accepts this browser. In the Temporal UI, open the codec "
                "server settings, use this browser's setting with the endpoint "
                f"{str(request.url).removesuffix('/login')} and tick 'Include cross-origin "
                "credentials'.\n"
            )
    return PlainTextResponse(
        "Enter any user name and the management API key as the password.\n",
        401,
        {"WWW-Authenticate": BASIC_REALM},
    )
