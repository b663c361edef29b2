"""Restart mid-upload: the API process is `kill -9`ed while a part is streaming in. After a restart the broken
part is not there (no half part is ever taken as complete), `startProject` refuses, and the client's retry of the
same link succeeds. On local disk + SQLite and on S3 (multipart, > one 8 MiB piece sent) + PostgreSQL."""

from __future__ import annotations

import hashlib
import io
import os
import random
import signal
import subprocess
import sys
import time
import zipfile

import httpx
import pytest

AUTH = ("openscan", "free")
MB = 1 << 20


def _zip_of(size: int) -> bytes:
    from PIL import Image

    img = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(img, "JPEG")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for i in range(3):
            zf.writestr(f"p{i}.jpg", img.getvalue())
        zf.writestr("notes.bin", random.Random(1).randbytes(size))
    return buf.getvalue()


class Server:
    def __init__(self, port: int, data_dir, env: dict[str, str]) -> None:
        self.port, self.data_dir, self.env = port, data_dir, env
        self.proc: subprocess.Popen | None = None

    def start(self) -> str:
        """Start `serve` and return the public token it prints once listening."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "openscancloud.service_cli", "serve", "--host", "127.0.0.1", "--port",
             str(self.port), "--workers", "0", "--data-dir", str(self.data_dir)],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for line in self.proc.stdout:  # type: ignore[union-attr]
            if line.startswith("public token: "):
                return line.split(": ", 1)[1].strip()
        raise RuntimeError("server did not come up")

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill9()


@pytest.fixture(params=["local+sqlite", "s3+postgres"])
def server_env(request, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENSCAN_")}
    env.update({"OPENSCAN_PART_LIMIT_BYTES": str(40 * MB), "OPENSCAN_MAINTENANCE_INTERVAL_SECONDS": "0"})
    if request.param == "s3+postgres":
        env["OPENSCAN_DATABASE_URL"] = request.getfixturevalue("pg_url")
        env.update(request.getfixturevalue("s3_env"))
    return request.param, env


def test_kill_api_while_part_streams_then_retry(server_env, tmp_path, stack_module):
    kind, env = server_env
    server = Server(stack_module.free_port(), tmp_path / "data", env)
    token = server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        data = _zip_of(12 * MB)
        info = httpx.get(f"{base}/createProject", auth=AUTH, params=dict(
            token=token, project="big.zip", photos=3, parts=1, filesize=len(data))).json()
        link = info["ulink"][0]
        sent = {"bytes": 0}

        def dying_stream():
            for i in range(0, len(data), MB):
                if sent["bytes"] >= 9 * MB and server.proc.poll() is None:
                    time.sleep(0.5)  # let the server take in what it has (S3: the first 8 MiB piece)
                    server.kill9()
                yield data[i:i + MB]
                sent["bytes"] += MB

        with pytest.raises(httpx.HTTPError):
            httpx.post(link, content=dying_stream(), timeout=30)
        assert sent["bytes"] >= 9 * MB

        server.start()  # the same process restarted (systemd would do this)
        head = httpx.head(link)
        assert head.status_code == 200 and head.headers["upload-complete"] == "?0"
        project = httpx.get(f"{base}/getProjectInfo", auth=AUTH, params=dict(token=token, project="big.zip")).json()
        assert project["parts"][0]["complete"] is False and project["status"] == "created"
        refused = httpx.get(f"{base}/startProject", auth=AUTH, params=dict(token=token, project="big.zip"))
        assert refused.status_code == 409 and refused.json()["missing_parts"] == [0]

        retry = httpx.post(link, content=data, timeout=60)  # the client's retry of the same link
        assert retry.status_code == 200, retry.text
        assert retry.json()["sha256"] == hashlib.sha256(data).hexdigest() and retry.json()["size"] == len(data)
        started = httpx.get(f"{base}/startProject", auth=AUTH, params=dict(token=token, project="big.zip"),
                            timeout=60)
        assert started.status_code == 200, started.text
    finally:
        server.stop()
