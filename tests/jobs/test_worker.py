"""The HTTP pull worker with the real engine, against a real uvicorn server: cancel kills the engine's whole
process group; a user error (too few photos) fails the job without refunding the credit."""

from __future__ import annotations

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


def private_token(data_dir: Path) -> str:
    """A private token: its projects are reached over REST with the token alone (public ones need their key)."""
    out = subprocess.run([sys.executable, "-m", "openscancloud.service_cli", "tokens", "create", "--kind", "private",
                          "--forename", "Ada", "--surname", "Lovelace", "--email", "ada@example.org",
                          "--data-dir", str(data_dir)], capture_output=True, text=True, check=True)
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
    url, _, data_dir = server
    token = private_token(data_dir)
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
    url, token, data_dir = server
    images = sorted(photo_set("kermit").iterdir())[:2]  # two photos cannot make a model
    before = requests.get(f"{url}/getTokenInfo", auth=AUTH, params={"token": token}).json()["credit"]
    created = submit(url, token, "two.zip", images, quality="preview")
    worker = Worker(url, worker_token(data_dir), name="test")
    assert worker.run_once() is True
    p = info(url, token, "two.zip")
    assert p["status"] == "failed" and p["error"] and p["dlink"] is None
    after = requests.get(f"{url}/getTokenInfo", auth=AUTH, params={"token": token}).json()["credit"]
    assert created["credit"] > 0
    assert after == pytest.approx(before - created["credit"], abs=1e-9)  # the user's input was the problem:
    # exactly the charge of this upload stays used, nothing was refunded


def test_engine_warnings_reach_the_project_status(server, photo_set, tmp_path):
    """kermit plus two photos of sensor noise: the real engine places 11 of 13, the worker stores the warning with
    the report and getProjectInfo / REST show it beside status done."""
    import numpy as np
    from PIL import Image

    url, _, data_dir = server
    token = private_token(data_dir)
    images = sorted(photo_set("kermit").iterdir())
    rng = np.random.default_rng(5)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(tmp_path / f"noise{i}.jpg")
    created = submit(url, token, "partial.zip", [*images, tmp_path / "noise0.jpg", tmp_path / "noise1.jpg"],
                     quality="preview")
    worker = Worker(url, worker_token(data_dir), name="test", max_image_size=320)
    assert worker.run_once() is True
    p = info(url, token, "partial.zip")
    assert p["status"] == "done", p.get("error")
    placed = [w for w in p["warnings"] if "could not be placed" in w]
    assert len(placed) == 1 and "noise0.jpg" in placed[0] and "noise1.jpg" in placed[0]
    rest = requests.get(f"{url}/api/v1/projects/{created['id']}", headers={"Authorization": f"Bearer {token}"})
    assert rest.json()["warnings"] == p["warnings"]
    assert p["report"]["warnings"] == p["warnings"]


def test_worker_command_idle_and_bad_token(server):
    url, _, data_dir = server
    cmd = [sys.executable, "-m", "openscancloud.service_cli", "worker", "--server", url, "--once"]
    idle = subprocess.run([*cmd, "--token", worker_token(data_dir)], capture_output=True, text=True, timeout=120)
    assert idle.returncode == 0, idle.stderr
    bad = subprocess.run([*cmd, "--token", "wrk_wrong"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "401" in bad.stderr and "not known" in bad.stderr


def test_worker_that_lost_its_lease_kills_its_engine_and_lets_go(tmp_path, photo_set):
    """Worker A hangs (SIGSTOP) past its lease; the job is claimed again (attempt 2). When A wakes up its
    heartbeat gets 409: it kills its engine and gives the job up without reporting anything."""
    data_dir = tmp_path / "data"
    srv = subprocess.Popen(
        [sys.executable, "-m", "openscancloud.service_cli", "serve", "--port", "0", "--workers", "0",
         "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
        env={**os.environ, "OPENSCAN_LEASE_SECONDS": "3"},
    )
    worker_a = None
    try:
        url = srv.stdout.readline().split()[-1]
        token = srv.stdout.readline().split()[-1]
        threading.Thread(target=srv.stdout.read, daemon=True).start()
        wtoken = worker_token(data_dir)
        created = submit(url, token, "hang.zip", sorted(photo_set("kermit").iterdir()))
        worker_a = subprocess.Popen(
            [sys.executable, "-m", "openscancloud.service_cli", "worker", "--server", url, "--token", wtoken,
             "--once", "--work-dir", str(tmp_path / "a")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        a = psutil.Process(worker_a.pid)
        deadline = time.time() + 120
        engines: list[psutil.Process] = []
        while time.time() < deadline and not engines:
            engines = [p for p in a.children(recursive=True) if "openscancloud.engine" in " ".join(p.cmdline())]
            time.sleep(0.2)
        assert engines, "worker A never started the engine"
        os.killpg(worker_a.pid, signal.SIGSTOP)  # A hangs; its engine (own session) keeps running
        time.sleep(4.5)
        h = {"Authorization": f"Bearer {wtoken}"}
        wid = requests.post(f"{url}/api/v1/worker/register", json={"name": "b"}, headers=h).json()["worker_id"]
        claim = requests.post(f"{url}/api/v1/worker/claim", json={"worker_id": wid}, headers=h)
        assert claim.status_code == 200 and claim.json()["attempt"] == 2
        assert claim.json()["project_id"] == created["id"]
        os.killpg(worker_a.pid, signal.SIGCONT)
        _, err = worker_a.communicate(timeout=60)
        assert worker_a.returncode == 0, err
        assert "lost its lease" in err
        time.sleep(0.5)
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in engines)
        assert info(url, token, "hang.zip")["status"] == "processing"  # B owns it now; A reported nothing
    finally:
        if worker_a is not None and worker_a.poll() is None:
            os.killpg(worker_a.pid, signal.SIGCONT)
            os.killpg(worker_a.pid, signal.SIGKILL)
        os.killpg(srv.pid, signal.SIGTERM)
        srv.wait(timeout=30)
