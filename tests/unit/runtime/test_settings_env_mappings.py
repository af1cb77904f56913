"""`to_env` (how `connector up` and the CLI tests configure child processes) keeps free-form
mappings intact: a trusted issuer's DID is a key, and must come back exactly."""

from __future__ import annotations

from connector.settings import load_settings, to_env

ISSUER = "did:web:issuer.example%3A8443:dataspace"


def test_a_mapping_keyed_by_dids_survives_the_environment() -> None:
    settings = load_settings(
        env={},
        identity={"trust": {"trusted_issuers": {ISSUER: ["MembershipCredential"]}}},
        adapters=[{"type": "http", "config": {"timeout": 5}}],
    )
    env = to_env(settings)
    assert "CONNECTOR_IDENTITY__TRUST__TRUSTED_ISSUERS" in env
    assert not [k for k in env if "DID:WEB" in k]
    again = load_settings(env=env)
    assert again.identity.trust.trusted_issuers == {ISSUER: ("MembershipCredential",)}
    assert again == settings
