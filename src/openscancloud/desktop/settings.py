"""The desktop app's remembered settings: server in the user config file, token in the OS keyring if one works.

The keyring is optional: on a machine without one (a headless Linux box, a locked-down desktop) the token goes
into the user config file (mode 0600), the same file the CLI reads, so both tools share one login.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from openscancloud.client.config import (
    KEYRING_SERVICE,
    ClientPaths,
    keyring_token,
    read_config_file,
    usable_keyring,
    write_config_file,
)

log = logging.getLogger(__name__)


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
    if server and not token:
        token = keyring_token(server) or ""
        in_keyring = bool(token)
    return DesktopSettings(server, token, str(values.get("download_dir") or ""), in_keyring)


def save(paths: ClientPaths, settings: DesktopSettings) -> DesktopSettings:
    """Remember server and token; the token goes to the keyring when it round-trips there, else the file."""
    in_keyring = False
    kr = usable_keyring()
    server = settings.server.rstrip("/")
    if kr is not None and server and settings.token:
        try:
            kr.set_password(KEYRING_SERVICE, server, settings.token)
            in_keyring = kr.get_password(KEYRING_SERVICE, server) == settings.token
        except Exception:  # noqa: BLE001 - a locked or broken keyring: fall back to the file
            log.info("keyring unavailable", exc_info=True)
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
