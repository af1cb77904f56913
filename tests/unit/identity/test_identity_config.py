import pytest
from pydantic import SecretStr, ValidationError

from connector.identity.config import IdentityConfig, ManagementAuthConfig
from connector.identity.tokens import AuthProfile


def test_identity_defaults_are_secure():
    config = IdentityConfig()
    assert config.profile is AuthProfile.SECURE
    assert config.allow_insecure is False
    assert config.did_allow_http is False
    assert config.trust.require_capability_invocation is True
    with pytest.raises(ValidationError):
        IdentityConfig(max_token_lifetime_seconds=600)


def test_management_auth_needs_a_key_source():
    with pytest.raises(ValidationError, match="api_keys"):
        ManagementAuthConfig()
    assert ManagementAuthConfig(api_keys=(SecretStr("x" * 40),)).api_keys
    assert ManagementAuthConfig(generate_edge_key=True).generate_edge_key
