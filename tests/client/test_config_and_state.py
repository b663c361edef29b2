"""Settings precedence (flags > environment > config file), the local state store, and resumed downloads."""

from __future__ import annotations

import zipfile

import pytest

from openscancloud.client import Client, RetryPolicy
from openscancloud.client.config import ClientPaths, load_settings, parse_basic_auth, write_config_file
from openscancloud.client.state import StateStore


def test_settings_precedence(tmp_path):
    paths = ClientPaths(tmp_path / "c", tmp_path / "s", tmp_path / "k")
    write_config_file(paths.config_file, {"server": "http://file", "token": "file-token", "basic_auth": "none",
                                          "part_size": 1234})
    assert (paths.config_file.stat().st_mode & 0o777) == 0o600  # it may hold a token
    s = load_settings(env={}, paths=paths)
    assert (s.server, s.token, s.basic_auth, s.part_size, s.api) == ("http://file", "file-token", None, 1234,
                                                                     "legacy")
    s = load_settings(env={"OPENSCAN_SERVER": "http://env", "OPENSCAN_API": "V1"}, paths=paths)
    assert (s.server, s.token, s.api) == ("http://env", "file-token", "v1")
    s = load_settings(server="http://flag", basic_auth="u:p:w", env={"OPENSCAN_SERVER": "http://env"}, paths=paths)
    assert (s.server, s.basic_auth) == ("http://flag", ("u", "p:w"))
    assert load_settings(env={}, paths=ClientPaths(tmp_path / "x", tmp_path / "y", tmp_path / "z")).basic_auth == (
        "openscan", "free")
    with pytest.raises(ValueError, match="USER:PASSWORD"):
        parse_basic_auth("justone")
    write_config_file(paths.config_file, {"token": None})
    assert "token" not in paths.config_file.read_text()
    paths.config_file.write_text("server = [broken")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_settings(env={}, paths=paths)


def test_state_store_never_holds_the_token(real_server, make_photos, client_paths):
    token = real_server.token()
    with Client(real_server.url + "/", token, paths=client_paths) as client:
        client.upload(make_photos(2), "stateful")
        client.start()
    files = list((client_paths.state_dir / "projects").glob("*.json"))
    assert len(files) == 1 and token not in files[0].read_text()
    store = StateStore(client_paths.state_dir)
    # the same server spelled differently finds the same records
    (record,) = store.for_token(real_server.url.removeprefix("http://"), token)
    assert record.project == "stateful" and record.status == "started"
    assert not (client_paths.cache_dir / "uploads" / "stateful.zip").exists()  # cache freed after start
    assert store.for_token(real_server.url, "another-token") == []


def test_download_resumes_with_range(kermit_done, processing_server, drop_proxy, client_paths, tmp_path):
    """What an interrupted download left behind (`NAME.zip.part`) is continued: only the missing bytes travel."""
    assert kermit_done["result"].returncode == 0, kermit_done["result"].stderr[-2000:]
    proxy = drop_proxy(processing_server.port)
    with Client(proxy.url, kermit_done["token"], paths=client_paths,
                retry=RetryPolicy(attempts=2, base_delay=0.01)) as c:
        full = processing_server.result_zip(c.project_info("kermit-done").raw["id"]).read_bytes()
        (tmp_path / "kermit-done.zip.part").write_bytes(full[: len(full) - 50_000])
        path = c.download(tmp_path, "kermit-done")
    assert path.read_bytes() == full and not (tmp_path / "kermit-done.zip.part").exists()
    assert zipfile.is_zipfile(path)
    assert proxy.downstream_bytes < 50_000 + 20_000  # the last 50 kB and the answers' headers, not the file
