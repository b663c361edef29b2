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


def test_state_store_never_holds_the_token(mini_cloud, make_photos, client_paths):
    cloud = mini_cloud()
    with Client(cloud.url + "/", cloud.token, paths=client_paths) as client:
        client.upload(make_photos(2), "stateful")
        client.start()
    files = list((client_paths.state_dir / "projects").glob("*.json"))
    assert len(files) == 1 and cloud.token not in files[0].read_text()
    store = StateStore(client_paths.state_dir)
    # the same server spelled differently finds the same records
    (record,) = store.for_token(cloud.url.removeprefix("http://"), cloud.token)
    assert record.project == "stateful" and record.status == "started"
    assert not (client_paths.cache_dir / "uploads" / "stateful.zip").exists()  # cache freed after start
    assert store.for_token(cloud.url, "another-token") == []


def test_download_resumes_with_range(mini_cloud, make_photos, client_paths, tmp_path):
    cloud = mini_cloud()
    with Client(cloud.url, cloud.token, paths=client_paths, retry=RetryPolicy(attempts=2, base_delay=0.01)) as c:
        c.upload(make_photos(2), "ranged")
        c.start()
        full = cloud.result_zip("ranged")
        partial = tmp_path / "ranged.zip.part"
        partial.write_bytes(full[:1000])  # what an interrupted download left behind
        cloud.requests.clear()
        path = c.download(tmp_path)
    assert path.read_bytes() == full and not partial.exists()
    assert zipfile.is_zipfile(path)
    assert cloud.ranges == ["bytes=1000-"]  # only the missing bytes were fetched
