"""The desktop app's remembered settings: server in the user config file, token in the OS keyring if one works.

The keyring is optional: on a machine without one (a headless Linux box, a locked-down desktop) the token goes
into the user config file (mode 0600), the same file the CLI reads, so both tools share one login.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from openscancloud.client.config import ClientPaths, read_config_file, write_config_file

log = logging.getLogger(__name__)
KEYRING_SERVICE = "openscan-cloud"


def _keyring():
    """The keyring module when a real backend is available, else None."""
    if os.environ.get("OPENSCAN_NO_KEYRING"):
        return None
    try:
        import keyring
        from keyring.backends import fail, null

        backend = keyring.get_keyring()
        if isinstance(backend, (fail.Keyring, null.Keyring)):
            return None
        return keyring
    except Exception:  # noqa: BLE001 - any keyring trouble means "no keyring"
        return None


@dataclass
class DesktopSettings:
    server: str = ""
    token: str = ""
    download_dir: str = ""
    token_in_keyring: bool = False


def load(paths: ClientPaths) -> DesktopSettings:
    try:
        values = read_config_file(paths.config_file)
    except ValueError:
        values = {}
    server = str(values.get("server") or "")
    token = str(values.get("token") or "")
    in_keyring = False
    kr = _keyring()
    if kr is not None and server and not token:
        try:
            token = kr.get_password(KEYRING_SERVICE, server) or ""
            in_keyring = bool(token)
        except Exception:  # noqa: BLE001
            log.info("keyring lookup failed", exc_info=True)
    return DesktopSettings(server, token, str(values.get("download_dir") or ""), in_keyring)


def save(paths: ClientPaths, settings: DesktopSettings) -> DesktopSettings:
    """Remember server and token; the token goes to the keyring when it round-trips there, else the file."""
    in_keyring = False
    kr = _keyring()
    if kr is not None and settings.server and settings.token:
        try:
            kr.set_password(KEYRING_SERVICE, settings.server, settings.token)
            in_keyring = kr.get_password(KEYRING_SERVICE, settings.server) == settings.token
        except Exception:  # noqa: BLE001
            in_keyring = False
    write_config_file(
        paths.config_file,
        {
            "server": settings.server or None,
            "token": None if in_keyring else (settings.token or None),
            "download_dir": settings.download_dir or None,
        },
    )
    settings.token_in_keyring = in_keyring
    return settings
