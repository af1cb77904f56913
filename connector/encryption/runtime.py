"""The data key ring as a process gets it from its settings."""

from __future__ import annotations

from connector.encryption.keyring import DataKeys
from connector.settings import Settings

__all__ = ["data_keys"]


def data_keys(settings: Settings) -> DataKeys:
    """`encryption.key_file` when set (it must exist), else the managed ring
    `<data dir>/keys/data-keys.json`, generated on first use.

    Raises:
        KeyFileError: the file is missing (explicit path), unreadable, malformed, or accessible
            to group or others.
    """
    explicit = settings.encryption.key_file
    if explicit is not None:
        return DataKeys.open(explicit, create=False)
    return DataKeys.open(settings.encryption.resolved_key_file(settings.data_dir), create=True)
