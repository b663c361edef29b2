"""The HTTP pull worker with the real engine, against a real uvicorn server: cancel kills the engine's whole
process group; a user error (too few photos) fails the job without refunding the credit."""

from __future__ import annotations

import importlib.util
import io
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import psutil
import pytest
import requests

from openscancloud.jobs.worker import Worker

AUTH = ("openscan", "free")


def _engine_or_skip() -> None:
    if importlib.util.find_spec("openscancloud.engine.__main__") is None:
        pytest.skip("the reconstruction engine is not available yet")


@pytest.fixture
def server(tmp_path):
    """A real server without built-in workers; yields (url, public token, data dir)."""
    data_dir = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "openscancloud.service_cli", "serve", "--port", "0", "--workers", "0",
         "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
        env={**os.environ, "OPENSCAN_LEASE_SECONDS": "20"},
    )
    url = proc.stdout.readline().split()[-1]
    token = proc.stdout.readline().split()[-1]
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    yield url, token, data_dir
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def worker_token(data_dir: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "openscancloud.service_cli", "tokens", "create", "--kind", "worker",
                          "--label", "test", "--data-dir", str(data_dir)], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def submit(url: str, token: str, name: str, images: list[Path], quality: str = "standard") -> dict:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in images:
            zf.write(p, p.name)
    data = buf.getvalue()
    created = requests.get(f"{url}/createProject", auth=AUTH, params={
        "token": token, "project": name, "photos": len(images), "parts": 1, "filesize": len(data),
        "quality": quality}).json()
    assert requests.post(created["ulink"][0], data=data).status_code == 200
    assert requests.get(f"{url}/startProject", auth=AUTH, params={"token": token, "project": name}).status_code == 200
    return created


def info(url: str, token: str, name: str) -> dict:
    return requests.get(f"{url}/getProjectInfo", auth=AUTH, params={"token": token, "project": name}).json()


def engine_processes() -> list[psutil.Process]:
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if "openscancloud.engine" in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            pass
    return found


def test_cancel_kills_the_engine(server, photo_set):
    _engine_or_skip()
    url, token, data_dir = server
    images = sorted(photo_set("kermit").iterdir())
    created = submit(url, token, "cancel-me.zip", images)
    worker = Worker(url, worker_token(data_dir), name="test", poll_seconds=0.5)
    thread = threading.Thread(target=worker.run_once, daemon=True)
    thread.start()
    deadline = time.time() + 120
    while time.time() < deadline and not engine_processes():
        time.sleep(0.2)
    assert engine_processes(), "the engine never started"
    r = requests.post(f"{url}/api/v1/projects/{created['id']}/cancel", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert engine_processes() == []
    assert info(url, token, "cancel-me.zip")["status"] == "cancelled"


def test_user_error_from_engine_fails_without_refund(server, photo_set):
    _engine_or_skip()
    url, token, data_dir = server
    images = sorted(photo_set("kermit").iterdir())[:2]  # two photos cannot make a model
    before = requests.get(f"{url}/getTokenInfo", auth=AUTH, params={"token": token}).json()["credit"]
    submit(url, token, "two.zip", images, quality="preview")
    worker = Worker(url, worker_token(data_dir), name="test")
    assert worker.run_once() is True
    p = info(url, token, "two.zip")
    assert p["status"] == "failed" and p["error"] and p["dlink"] is None
    after = requests.get(f"{url}/getTokenInfo", auth=AUTH, params={"token": token}).json()["credit"]
    assert after < before  # the user's input was the problem: the credit stays used


def test_worker_command_idle_and_bad_token(server):
    url, _, data_dir = server
    cmd = [sys.executable, "-m", "openscancloud.service_cli", "worker", "--server", url, "--once"]
    idle = subprocess.run([*cmd, "--token", worker_token(data_dir)], capture_output=True, text=True, timeout=120)
    assert idle.returncode == 0, idle.stderr
    bad = subprocess.run([*cmd, "--token", "wrk_wrong"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "401" in bad.stderr and "not known" in bad.stderr
