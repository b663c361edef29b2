"""Where the desktop app keeps the login: the token in a keyring when one works, else the config file."""

from __future__ import annotations

import keyring
import pytest
from keyring.backends import fail

from openscancloud.client.config import load_settings, read_config_file
from openscancloud.desktop import settings as desktop_settings


@pytest.fixture
def file_keyring(tmp_path):
    """A real keyring backend (keyrings.alt's file keyring) in a temporary file, restored afterwards."""
    alt = pytest.importorskip("keyrings.alt.file")

    class TrustedFileKeyring(alt.PlaintextKeyring):
        priority = 5  # stands in for an OS keyring (plain-text backends are not trusted by the app)

    backend = TrustedFileKeyring()
    backend.file_path = str(tmp_path / "keyring.cfg")
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_token_goes_to_the_keyring_when_there_is_one(file_keyring, client_paths):
    saved = desktop_settings.save(client_paths, desktop_settings.DesktopSettings("http://srv:8000", "prv_secret"))
    assert saved.token_in_keyring
    assert read_config_file(client_paths.config_file) == {"server": "http://srv:8000"}
    assert file_keyring.get_password("openscan-cloud", "http://srv:8000") == "prv_secret"
    loaded = desktop_settings.load(client_paths)
    assert (loaded.server, loaded.token, loaded.token_in_keyring) == ("http://srv:8000", "prv_secret", True)
    assert load_settings(env={}, paths=client_paths).token == "prv_secret"  # the CLI finds it as well


def test_plain_text_keyrings_are_not_trusted(tmp_path, client_paths):
    alt = pytest.importorskip("keyrings.alt.file")
    backend = alt.PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring.cfg")
    keyring.set_keyring(backend)
    saved = desktop_settings.save(client_paths, desktop_settings.DesktopSettings("http://srv:8000", "prv_secret"))
    assert not saved.token_in_keyring and not (tmp_path / "keyring.cfg").exists()
    keyring.set_keyring(fail.Keyring())


def test_without_a_keyring_the_config_file_holds_it_for_the_cli_too(client_paths):
    keyring.set_keyring(fail.Keyring())
    saved = desktop_settings.save(client_paths, desktop_settings.DesktopSettings("http://srv:8000", "prv_secret"))
    assert not saved.token_in_keyring
    settings = load_settings(env={}, paths=client_paths)  # what the CLI reads
    assert (settings.server, settings.token) == ("http://srv:8000", "prv_secret")
    assert (client_paths.config_file.stat().st_mode & 0o777) == 0o600
