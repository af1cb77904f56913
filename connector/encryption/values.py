"""Seal the secret properties of a DataAddress before it is stored in Postgres.

What a consumer receives in a TransferStartMessage (the EDR: `authorization`, `refreshToken`)
and the credentials of a push destination are `endpointProperties` of a DataAddress. They are
stored sealed (`connector.encryption.aead.seal_value`, purpose `edr`) with the transfer id and
the property name as associated data; everything else (endpoint, type, `authType`, `expiresIn`)
stays readable for the management views. Encrypted, not hashed: the consumer must hand the
token on (`GET /management/v1/transfers/{id}/edr`) and present it to the provider's data plane.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from connector.encryption.aead import is_sealed, open_value, seal_value
from connector.encryption.keyring import DataKeys

__all__ = ["SECRET_PROPERTY_NAMES", "is_secret_property", "open_address", "seal_address"]

#: Compared case-insensitively with the last segment of the property name (after `/`, `#`, `:`),
#: so `authorization`, `edc:authorization` and `https://w3id.org/edc/v0.0.1/ns/authorization`
#: are all sealed.
SECRET_PROPERTY_NAMES: Final = frozenset(
    {
        "authorization",
        "refreshtoken",
        "refresh_token",
        "token",
        "accesstoken",
        "access_token",
        "password",
        "secret",
        "clientsecret",
        "client_secret",
        "apikey",
        "api_key",
    }
)


def is_secret_property(name: object) -> bool:
    if not isinstance(name, str):
        return False
    last = name
    for separator in ("/", "#", ":"):
        last = last.rsplit(separator, 1)[-1]
    return last.lower() in SECRET_PROPERTY_NAMES


def _context(owner: str, name: str) -> bytes:
    return f"edr|{owner}|{name}".encode()


def _map_secrets(address: Mapping[str, Any], owner: str, change: Any) -> dict[str, Any]:
    out = dict(address)
    props = out.get("endpointProperties")
    if isinstance(props, list):
        out["endpointProperties"] = [
            {**p, "value": change(p["value"], _context(owner, p["name"]))}
            if isinstance(p, dict)
            and is_secret_property(p.get("name"))
            and isinstance(p.get("value"), str)
            else p
            for p in props
        ]
    return out


def seal_address(keys: DataKeys, address: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """`address` with every secret property value sealed (already sealed ones kept), bound to
    `owner` (the transfer's own pid)."""

    def seal(value: str, context: bytes) -> str:
        return value if is_sealed(value) else seal_value(keys, "edr", value, context)

    return _map_secrets(address, owner, seal)


def open_address(keys: DataKeys, address: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """`address` with its sealed values opened (values stored before sealing pass unchanged).

    Raises:
        DecryptionError: a value does not open (another transfer's, tampered, key removed).
    """
    return _map_secrets(
        address, owner, lambda value, context: open_value(keys, "edr", value, context)
    )
