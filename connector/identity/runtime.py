"""Identity as a running process needs it: key ring, token issuer and verifier, guarded HTTP.

Built once per process from settings (`build_identity`) and passed down; the control plane uses
the verifier (inbound) and serves the DID document, workers use the issuer (outbound).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from redis.asyncio import Redis

from connector.http.outbound import GuardedHttp
from connector.identity.did import DidResolver, build_did_document
from connector.identity.keys import KeyRing, keyring_from_files, load_or_create_keyring
from connector.identity.presentations import PresentationVerifier
from connector.identity.replay import RedisReplayStore
from connector.identity.sts import DcpTokenIssuer
from connector.identity.tokens import (
    AuthProfile,
    DevTokenIssuer,
    TokenIssuer,
    TokenVerifier,
    check_profile,
)
from connector.identity.trust import TrustList
from connector.runtime.clock import utc_now
from connector.settings import Settings


def load_keyring(settings: Settings) -> KeyRing:
    """Operator-managed PEM files when configured, else a managed ring under <data dir>/keys."""
    grace = timedelta(seconds=settings.identity.rotation_grace_seconds)
    if settings.identity.key_path is not None:
        return keyring_from_files(
            settings.identity.key_path, settings.identity.previous_key_paths, grace=grace
        )
    return load_or_create_keyring(Path(settings.data_dir) / "keys", grace=grace)


@dataclass
class Identity:
    did: str
    participant_id: str
    profile: AuthProfile
    keyring: KeyRing
    issuer: TokenIssuer | DcpTokenIssuer | DevTokenIssuer
    verifier: TokenVerifier
    http: GuardedHttp
    # Published in our DID document: our Credential Service (DCP holder, decision 0023).
    services: tuple[dict[str, object], ...] = ()

    def did_document(self) -> dict[str, object]:
        return build_did_document(self.did, self.keyring.published(utc_now()), self.services)

    def authorization(self, audience: str) -> str:
        return f"Bearer {self.issuer.issue(audience)}"


def build_identity(
    settings: Settings, redis: Redis, *, http: GuardedHttp | None = None
) -> Identity:
    """Everything identity needs, for one process. Refuses the dev profile without the flag.

    Raises:
        InsecureProfileError: `dev` profile without `identity.allow_insecure`.
    """
    profile = check_profile(settings.identity.profile, settings.identity.allow_insecure)
    did = settings.identity.resolved_did(settings.server)
    participant_id = settings.identity.resolved_participant_id(settings.server)
    keyring = load_keyring(settings)
    http = http or GuardedHttp(settings.outbound)
    resolver = DidResolver(
        http,
        redis,
        ttl=settings.identity.did_cache_ttl_seconds,
        participant=participant_id,
        refresh_interval=settings.identity.did_refresh_interval_seconds,
        allow_http=settings.outbound.allow_http,
        allow_ip=settings.outbound.allow_http,
    )
    trust = TrustList.from_config(settings.identity.trust)
    dcp = settings.identity.dcp
    presentations = (
        PresentationVerifier(
            resolver,
            http,
            keyring,
            did,
            trust,
            utc_now,
            scopes=dcp.scopes,
            refuse_failures=dcp.credential_failures == "refuse",
            status_list_ttl=dcp.status_list_ttl_seconds,
            cache_seconds=dcp.presentation_cache_seconds,
            leeway=settings.identity.token_leeway_seconds,
        )
        if profile is AuthProfile.DCP
        else None
    )
    verifier = TokenVerifier(
        resolver,
        RedisReplayStore(redis, participant=participant_id),
        trust,
        did,
        utc_now,
        profile,
        leeway=settings.identity.token_leeway_seconds,
        presentations=presentations,
    )
    issuer: TokenIssuer | DcpTokenIssuer | DevTokenIssuer
    if profile is AuthProfile.DEV:
        issuer = DevTokenIssuer(participant_id)
    elif profile is AuthProfile.DCP:
        issuer = DcpTokenIssuer(keyring, did, dcp.scopes, clock=utc_now)
    else:
        issuer = TokenIssuer(keyring, did, clock=utc_now)
    services: tuple[dict[str, object], ...] = (
        {
            "id": f"{did}#credential-service",
            "type": "CredentialService",
            "serviceEndpoint": f"{settings.server.base_url()}/dcp",
        },
    )
    return Identity(did, participant_id, profile, keyring, issuer, verifier, http, services)
