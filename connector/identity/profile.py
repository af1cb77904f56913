"""The auth profile (`identity.profile`): `secure` (signed did:web JWTs, the default), `dcp`
(secure plus DCP 1.0 verifiable presentations, decision 0022) or `dev`.

Its own module, apart from the token code, because every role checks it at start and the
data plane must not load joserfc and cryptography's OpenSSL bindings just for that.
"""

from __future__ import annotations

import logging
from enum import StrEnum

__all__ = ["AuthProfile", "InsecureProfileError", "check_profile"]

logger = logging.getLogger(__name__)


class AuthProfile(StrEnum):
    SECURE = "secure"
    DCP = "dcp"
    DEV = "dev"


class InsecureProfileError(RuntimeError):
    """The `dev` profile was selected without the explicit insecure flag."""


def check_profile(profile: AuthProfile | str, allow_insecure: bool) -> AuthProfile:
    """Validate the auth profile at startup; call on every start.

    Raises:
        InsecureProfileError: `dev` without `allow_insecure=True`.
    """
    chosen = AuthProfile(profile)
    if chosen is AuthProfile.DEV:
        if not allow_insecure:
            raise InsecureProfileError(
                "auth profile 'dev' accepts unsigned tokens; refusing to start. Set the explicit "
                "insecure flag (CONNECTOR_IDENTITY__ALLOW_INSECURE=true) for local dev/TCK only."
            )
        logger.warning(
            "INSECURE: auth profile 'dev' accepts unsigned 'Bearer dev:<participant-id>' tokens; "
            "never use it outside local development or conformance testing"
        )
    return chosen
