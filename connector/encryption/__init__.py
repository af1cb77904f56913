"""Secrets at rest: the data key ring and what it encrypts (docs/security.md "Secrets at rest").

- `keyring`: symmetric AES-256 data keys in one JSON file, per-purpose subkeys, rotation.
- `aead`: AES-256-GCM for small values (sealed EDR tokens) and a chunked stream format for
  files (backup archives), never holding a whole file in memory.
- `values`: sealing the secret properties of a DataAddress before it is written to Postgres.

The Temporal payload codec built on the same ring lives in `connector.temporal.codec`.
"""
