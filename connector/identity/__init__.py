"""Effectful identity: keys, did:web, self-issued tokens, replay set, trust list, API keys
(identity.md §1.8, §2, §4.2)."""
