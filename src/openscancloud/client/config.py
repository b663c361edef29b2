"""Where the client keeps its files, and the user's saved settings (server, token).

Settings come, in order of precedence, from command-line flags, the environment (`OPENSCAN_SERVER`,
`OPENSCAN_TOKEN`, `OPENSCAN_BASIC_AUTH=user:password` or `none`, `OPENSCAN_API=legacy|v1`,
`OPENSCAN_PART_SIZE`), and the user config file `config.toml` in the
platform's config folder (via platformdirs when installed); a token the desktop app saved in the OS keyring is
found too. `OPENSCAN_CLIENT_HOME` puts every client file (config,
upload state, zip cache) under one folder instead — handy for portable installs and tests.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

APP_NAME = "openscan-cloud"
DEFAULT_BASIC_AUTH = ("openscan", "free")


@dataclass(frozen=True)
class ClientPaths:
    config_dir: Path
    state_dir: Path
    cache_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @classmethod
    def default(cls, env: Mapping[str, str] | None = None) -> ClientPaths:
        env = os.environ if env is None else env
        home = env.get("OPENSCAN_CLIENT_HOME")
        if home:
            base = Path(home).expanduser()
            return cls(base / "config", base / "state", base / "cache")
        try:
            import platformdirs
        except ImportError:  # platformdirs is optional: fall back to the XDG layout
            base = Path.home()
            return cls(base / ".config" / APP_NAME, base / ".local" / "state" / APP_NAME, base / ".cache" / APP_NAME)
        return cls(
            Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
            Path(platformdirs.user_state_dir(APP_NAME, appauthor=False)),
            Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)),
        )


@dataclass(frozen=True)
class ClientSettings:
    """The connection settings after flags, environment and config file were merged."""

    server: str | None = None
    token: str | None = None
    basic_auth: tuple[str, str] | None = DEFAULT_BASIC_AUTH
    part_size: int | None = None
    api: str = "legacy"


def parse_basic_auth(value: str | None) -> tuple[str, str] | None:
    """`user:password` → tuple; `none`/`off`/empty → None (no Basic auth header)."""
    if value is None or value.strip().lower() in {"", "none", "off", "no", "false"}:
        return None
    user, sep, password = value.partition(":")
    if not sep:
        raise ValueError("Basic auth must be written as USER:PASSWORD (or 'none').")
    return (user, password)


def read_config_file(path: Path) -> dict[str, object]:
    """The user's config file as a dict; a missing file is an empty config, a broken one a clear error."""
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"The config file {path} is not valid TOML ({exc}).") from None


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def write_config_file(path: Path, values: Mapping[str, str | int | None]) -> None:
    """Merge `values` into the config file (None removes a key). Only flat string/int keys are used."""
    current = read_config_file(path)
    for key, value in values.items():
        if value is None:
            current.pop(key, None)
        else:
            current[key] = value
    lines = ["# OpenScan Cloud client settings (see docs/clients.md)"]
    for key, value in sorted(current.items()):
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            continue
        lines.append(f"{key} = {value if isinstance(value, int) else _toml_string(value)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        os.chmod(tmp, 0o600)  # may hold a token
    except OSError:
        pass
    os.replace(tmp, path)


KEYRING_SERVICE = "openscan-cloud"


def usable_keyring():
    """The `keyring` module when a real OS keyring backs it (priority ≥ 1: Secret Service, macOS Keychain, Windows
    Credential Manager...), else None. Plain-text or failing backends do not count: then the config file is used.
    `OPENSCAN_NO_KEYRING=1` turns the keyring off."""
    if os.environ.get("OPENSCAN_NO_KEYRING"):
        return None
    try:
        import keyring

        backend = keyring.get_keyring()
        return keyring if float(getattr(backend, "priority", 0)) >= 1 else None
    except Exception:  # noqa: BLE001 - any keyring trouble means "no keyring"
        return None


def keyring_token(server: str) -> str | None:
    """The token the desktop app saved in the OS keyring for `server`, if any."""
    kr = usable_keyring()
    if kr is None or not server:
        return None
    try:
        return kr.get_password(KEYRING_SERVICE, server.rstrip("/")) or None
    except Exception:  # noqa: BLE001
        return None


def load_settings(
    *,
    server: str | None = None,
    token: str | None = None,
    basic_auth: str | None = None,
    part_size: int | None = None,
    api: str | None = None,
    env: Mapping[str, str] | None = None,
    paths: ClientPaths | None = None,
) -> ClientSettings:
    """Merge flags > environment > config file into one `ClientSettings`."""
    env = os.environ if env is None else env
    paths = paths or ClientPaths.default(env)
    file_values = read_config_file(paths.config_file)

    def pick(flag: str | None, env_name: str, key: str) -> str | None:
        if flag:
            return flag
        if env.get(env_name):
            return env[env_name]
        value = file_values.get(key)
        return str(value) if value not in (None, "") else None

    server_value = pick(server, "OPENSCAN_SERVER", "server")
    token_value = pick(token, "OPENSCAN_TOKEN", "token") or keyring_token(server_value or "")
    auth_text = pick(basic_auth, "OPENSCAN_BASIC_AUTH", "basic_auth")
    size_value = part_size or env.get("OPENSCAN_PART_SIZE") or file_values.get("part_size")
    return ClientSettings(
        server=server_value,
        token=token_value,
        basic_auth=DEFAULT_BASIC_AUTH if auth_text is None else parse_basic_auth(auth_text),
        part_size=int(size_value) if size_value else None,
        api=(pick(api, "OPENSCAN_API", "api") or "legacy").lower(),
    )
