"""Public surface of the policy package: every exported name exists (httpx style)."""

from __future__ import annotations

import connector.core.policy as policy


def test_every_exported_name_exists() -> None:
    assert sorted(policy.__all__) == sorted(set(policy.__all__))
    for name in policy.__all__:
        assert getattr(policy, name) is not None, name


def test_hand_built_models_with_prefixed_terms_still_match() -> None:
    permission = policy.Permission(action=policy.Action(name="odrl:use"))
    assert permission.action.covers("http://www.w3.org/ns/odrl/2/read")
