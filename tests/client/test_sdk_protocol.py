"""The SDK's upload state machine.

Against the real server: progress reports, limits and credit checked before anything is sent, typed errors, a
name taken by other photos. Against `MiniCloud` (tests/client/conftest.py), a small stand-in speaking the same
part protocol, only what the real server cannot show on demand: a server without ranged uploads, and the exact
requests a resumed upload sends (the stand-in records every request). test_fake_contract.py holds the stand-in's
answers to the real server's.
"""

from __future__ import annotations

import hashlib
import threading
import zipfile

import pytest

from openscancloud.client import (
    Client,
    ConnectionFailed,
    InvalidToken,
    LimitExceeded,
    NotEnoughCredit,
    ProjectNotFound,
    ProjectNotReady,
    RetryPolicy,
    UploadCancelled,
)

FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


def make_client(url, token, paths, **kw):
    kw.setdefault("retry", FAST_RETRY)
    return Client(url, token, paths=paths, **kw)


def uploaded_zip_sha(client, name):
    record = client.store.load(client.server, client.token, name)
    return record.sha256, record.zip_path


def test_upload_progress_and_start(real_server, make_photos, client_paths):
    token = real_server.token()
    folder = make_photos(6)
    progress = []
    with make_client(real_server.url, token, client_paths, part_size=150_000, chunk_size=64_000) as client:
        info = client.token_info()
        assert info.limit_photos == 2000 and info.credit_gb == 50.0
        result = client.upload(folder, "set-1", progress=progress.append)
        assert result.parts == len(client.project_info("set-1").parts) > 2
        sha, zip_path = uploaded_zip_sha(client, "set-1")
        assert sha == result.sha256
        assert sorted(zipfile.ZipFile(zip_path).namelist()) == [f"img{i:03d}.jpg" for i in range(6)]
        # progress reports are monotone within a run and end at the total
        uploading = [p for p in progress if p.phase == "uploading"]
        assert uploading[-1].bytes_done == result.size
        assert all(a.bytes_done <= b.bytes_done for a, b in zip(uploading, uploading[1:]))
        assert {p.part_count for p in uploading} == {result.parts}
        client.start()
        started = client.project_info()
        assert started.status == "queued"  # no worker on this server
    assert hashlib.sha256(real_server.input_zip(started.raw["id"]).read_bytes()).hexdigest() == sha


def test_dropped_connection_resumes_mid_part(mini_cloud, drop_proxy, make_photos, client_paths):
    cloud = mini_cloud()
    proxy = drop_proxy(cloud.port)
    folder = make_photos(8)
    with make_client(proxy.url, cloud.token, client_paths, part_size=400_000, chunk_size=100_000) as client:
        proxy.drop_after(250_000)  # in the middle of part 0's third chunk
        result = client.upload(folder, "drop")
    assert proxy.drops == 1
    assert hashlib.sha256(cloud.assembled("drop")).hexdigest() == result.sha256
    # Resumed from the server's offset, not from zero: far less than twice the upload went upstream.
    assert proxy.upstream_bytes < result.size + 200_000
    heads = [r for r in cloud.requests if r[0] == "HEAD"]
    assert len(heads) >= result.parts + 1  # one probe per part plus one after the drop


def test_killed_process_continues_with_missing_parts_only(mini_cloud, make_photos, client_paths):
    cloud = mini_cloud()
    folder = make_photos(8)
    cancel = threading.Event()

    def stop_in_part_two(p):
        if p.phase == "uploading" and p.part_index == 2 and p.part_bytes_done > 50_000:
            cancel.set()

    with make_client(cloud.url, cloud.token, client_paths, part_size=200_000, chunk_size=40_000) as first:
        with pytest.raises(UploadCancelled):
            first.upload(folder, "killed", progress=stop_in_part_two, cancel=cancel)
    assert [p["complete"] for p in cloud.projects["killed"]["parts"][:2]] == [True, True]
    held_before = len(cloud.projects["killed"]["parts"][2]["data"])
    assert held_before >= 40_000
    cloud.requests.clear()

    # A new process: no project name given — the unfinished upload of the same folder is found and continued.
    with make_client(cloud.url, cloud.token, client_paths, part_size=200_000, chunk_size=40_000) as second:
        result = second.upload(folder)
    assert result.project == "killed" and result.resumed and result.parts_skipped == 2
    assert not [r for r in cloud.requests if r[1] == "createProject"]
    posts = [r for r in cloud.requests if r[0] == "POST"]
    assert not any(r[1].endswith("/0") or r[1].endswith("/1") for r in posts)
    first_range = next(r[2]["Content-Range"] for r in posts if r[1].endswith("/2"))
    assert first_range.startswith(f"bytes {held_before}-")
    assert hashlib.sha256(cloud.assembled("killed")).hexdigest() == result.sha256


def test_server_without_ranged_uploads_gets_whole_parts(mini_cloud, drop_proxy, make_photos, client_paths):
    cloud = mini_cloud(ranged=False)
    proxy = drop_proxy(cloud.port)
    with make_client(proxy.url, cloud.token, client_paths, part_size=300_000, chunk_size=50_000) as client:
        proxy.drop_after(350_000)  # inside part 1: it is sent again from its start
        result = client.upload(make_photos(6), "whole")
    assert proxy.drops == 1
    assert hashlib.sha256(cloud.assembled("whole")).hexdigest() == result.sha256
    assert not any("Content-Range" in r[2] for r in cloud.requests if r[0] == "POST")


def test_limits_are_checked_before_anything_is_uploaded(real_server, make_photos, client_paths):
    folder = make_photos(4)  # about 400 kB
    for limits, error, words in [
        ({"limit_photos": 3}, LimitExceeded, "at most 3"),
        ({"limit_filesize": 100_000}, LimitExceeded, "MB"),
        ({"credit_gb": 0.0001}, NotEnoughCredit, "credit"),
    ]:
        token = real_server.token(**limits)
        with make_client(real_server.url, token, client_paths) as client:
            with pytest.raises(error) as err:
                client.upload(folder, "too-much")
            assert words in str(err.value)
            with pytest.raises(ProjectNotFound):
                client.project_info("too-much")  # nothing was created


def test_errors_are_typed_sentences(real_server, client_paths):
    token = real_server.token()
    with make_client(real_server.url, "prv_wrong", client_paths) as client, pytest.raises(InvalidToken) as err:
        client.token_info()
    assert err.value.status_code == 401
    assert "did not accept the token" in str(err.value) and "This token is not known to this server." in str(err.value)
    with make_client(real_server.url, token, client_paths, basic_auth=("x", "y")) as client:
        with pytest.raises(InvalidToken, match="Basic"):
            client.token_info()
    with make_client(real_server.url, token, client_paths, part_size=100_000) as client:
        client.create_project("half", photos=2, parts=2, filesize=150_000)
        with pytest.raises(ProjectNotReady, match="Parts 0, 1 are missing"):
            client.start("half")
    # nothing listening: a ConnectionFailed after the retries, as one sentence
    with make_client("http://127.0.0.1:9", token, client_paths) as client:
        with pytest.raises(ConnectionFailed) as err:
            client.status()
    assert "could not connect" in str(err.value)


def test_retries_back_off_exponentially(client_paths):
    """A server that accepts connections and closes them at once: exactly `attempts` tries, the pauses between
    them growing as base·2^n (no jitter here, so the floor is exact), then ConnectionFailed."""
    import socket
    import time

    arrivals: list[float] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def accept_and_drop():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            arrivals.append(time.monotonic())
            conn.close()

    threading.Thread(target=accept_and_drop, daemon=True).start()
    policy = RetryPolicy(attempts=4, base_delay=0.2, max_delay=5.0, jitter=False)
    try:
        with make_client(f"http://127.0.0.1:{listener.getsockname()[1]}", "prv_x", client_paths,
                         retry=policy) as client, pytest.raises(ConnectionFailed) as err:
            client.token_info()
    finally:
        listener.close()
    assert "Traceback" not in str(err.value) and str(err.value).endswith(".")
    assert len(arrivals) == 4, arrivals
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    for gap, pause in zip(gaps, (0.2, 0.4, 0.8)):
        assert gap >= pause, gaps
    assert gaps[0] < gaps[1] < gaps[2], gaps


def test_name_taken_by_other_photos(real_server, drop_proxy, make_photos, client_paths, tmp_path):
    from openscancloud.client import ProjectExists
    from openscancloud.client.config import ClientPaths

    token = real_server.token()
    with make_client(real_server.url, token, client_paths) as client:
        first = client.upload(make_photos(3, name="a"), "taken")
    other_machine = ClientPaths(tmp_path / "o1", tmp_path / "o2", tmp_path / "o3")
    with make_client(real_server.url, token, other_machine) as client, pytest.raises(ProjectExists) as err:
        client.upload(make_photos(5, name="b"), "taken")
    assert "already exists" in str(err.value) and "choose another name" in str(err.value)
    # the same photos under the same name from another machine: recognised and continued (nothing re-sent)
    proxy = drop_proxy(real_server.port)
    with make_client(proxy.url, token, other_machine) as client:
        result = client.upload(tmp_path / "a", "taken")
    assert result.resumed and result.parts_skipped == result.parts and result.sha256 == first.sha256
    assert proxy.upstream_bytes < 20_000 < first.size  # requests only, no photo bytes
