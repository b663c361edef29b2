"""The client against the real server (uvicorn on a free port): interrupted uploads resume and the server's
assembled zip is byte-identical to the one the client built."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time

import pytest

from openscancloud.client import Client, LimitExceeded, ProjectNotFound, RetryPolicy

FAST_RETRY = RetryPolicy(attempts=8, base_delay=0.05, max_delay=0.5)


def sha256_file(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_connection_cut_mid_part_resumes_and_zip_is_identical(real_server, drop_proxy, photo_set, client_paths):
    token = real_server.token()
    proxy = drop_proxy(real_server.port)
    images = photo_set("kermit")
    with Client(proxy.url, token, paths=client_paths, part_size=500_000, chunk_size=128 * 1024,
                retry=FAST_RETRY) as client:
        proxy.drop_after(700_000)  # inside part 1 (bytes 500 000–999 999), mid-chunk
        result = client.upload(images, "kermit-cut")
        assert proxy.drops == 1
        assert result.parts == 4  # 1.9 MB in parts of 500 kB
        before_start = client.project_info("kermit-cut")
        assert [p.complete for p in before_start.parts] == [True] * result.parts
        assert [p.sha256 for p in before_start.parts] == [s["sha256"] for s in
                                                          client.store.load(client.server, token,
                                                                            "kermit-cut").parts]
        client.start()
        info = client.project_info("kermit-cut")
        assert info.status == "queued"  # no worker on this server
    # Only the cut chunk was sent twice: the rest continued from the server's offset.
    assert proxy.upstream_bytes < result.size + 2 * 128 * 1024 + 64 * 1024
    assembled = real_server.input_zip(info.raw["id"])
    assert sha256_file(assembled) == result.sha256


def test_killed_cli_continues_against_real_server(real_server, drop_proxy, photo_set, client_paths, tmp_path):
    token = real_server.token()
    proxy = drop_proxy(real_server.port)
    proxy.throttle = 0.05  # slow enough to be killed mid-upload
    env = {**os.environ, "OPENSCAN_SERVER": proxy.url, "OPENSCAN_TOKEN": token}
    cmd = [sys.executable, "-m", "openscancloud.client", "upload", str(photo_set("kermit")),
           "--project", "kermit-kill", "--part-size", "500000", "--no-start"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with Client(real_server.url, token, paths=client_paths) as watcher:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                parts = watcher.project_info("kermit-kill").parts
            except ProjectNotFound:
                parts = []
            if parts and parts[0].complete and parts[1].size > 0:
                break
            time.sleep(0.05)
        proc.kill()
        proc.wait(10)
        parts = watcher.project_info("kermit-kill").parts
        assert parts[0].complete and not all(p.complete for p in parts)

        proxy.throttle = 0
        rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        assert "continued" in rerun.stderr
        record = json.loads(next((client_paths.state_dir / "projects").glob("*.json")).read_text())
        start = subprocess.run([sys.executable, "-m", "openscancloud.client", "status", "kermit-kill", "--json"],
                               env=env, capture_output=True, text=True, timeout=60)
        assert json.loads(start.stdout)["status"] == "uploading"  # every part uploaded, not started
        watcher.start("kermit-kill")
        info = watcher.project_info("kermit-kill")
    assert sha256_file(real_server.input_zip(info.raw["id"])) == record["sha256"]


def test_limits_refused_before_upload_on_real_server(real_server, photo_set, client_paths):
    token = real_server.token(limit_photos=5)
    with Client(real_server.url, token, paths=client_paths) as client:
        assert client.token_info().limit_photos == 5
        with pytest.raises(LimitExceeded, match="at most 5"):
            client.upload(photo_set("kermit"), "too-many")
        with pytest.raises(ProjectNotFound):
            client.project_info("too-many")


def test_rest_v1_transport(real_server, drop_proxy, photo_set, client_paths):
    from openscancloud.client import InvalidToken, ProjectExists

    token = real_server.token()
    proxy = drop_proxy(real_server.port)
    with Client(proxy.url, token, paths=client_paths, api="v1", chunk_size=128 * 1024, retry=FAST_RETRY) as client:
        info = client.token_info()
        assert info.part_limit == 500_000  # the SDK adapts its parts to the server's limit
        proxy.drop_after(300_000)
        result = client.upload(photo_set("kermit"), "kermit-v1")
        assert proxy.drops == 1 and result.parts == 4
        client.start()
        project = client.project_info()
        assert project.status == "queued"  # no worker on this server
        with pytest.raises(ProjectExists):
            client.create_project("kermit-v1", photos=11, parts=4, filesize=result.size)
    assert sha256_file(real_server.input_zip(project.raw["id"])) == result.sha256
    with Client(real_server.url, "prv_wrong", paths=client_paths, api="v1") as client:
        with pytest.raises(InvalidToken):
            client.token_info()


def test_server_restart_mid_upload_is_ridden_out(server_factory, drop_proxy, photo_set, client_paths):
    """Stopping and restarting the server while a part is on its way: the SDK backs off, retries, asks the
    restarted server for its offset and finishes; the assembled zip is identical."""
    import threading

    server = server_factory(OPENSCAN_PART_LIMIT_BYTES="500000")
    token = server.token()
    proxy = drop_proxy(server.port)
    proxy.throttle = 0.01
    restarted = threading.Event()
    retries: list[str] = []

    def restart_once(p):
        if p.phase == "retrying":
            retries.append(p.message)
        if p.phase == "uploading" and p.part_index == 1 and not restarted.is_set():
            restarted.set()
            threading.Thread(target=lambda: (server.stop(), time.sleep(1.0), server.start()), daemon=True).start()

    patient = RetryPolicy(attempts=60, base_delay=0.2, max_delay=2.0)  # rides out a restart of up to ~2 min
    with Client(proxy.url, token, paths=client_paths, chunk_size=64 * 1024, retry=patient) as client:
        result = client.upload(photo_set("kermit"), "kermit-restart", progress=restart_once)
        client.start()
        info = client.project_info()
    assert restarted.is_set() and server.proc.poll() is None
    assert retries, "the upload should have met the stopped server"
    assert sha256_file(server.input_zip(info.raw["id"])) == result.sha256
