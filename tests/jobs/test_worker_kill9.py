"""The README's promise "a killed worker loses nothing", small enough for every `make test` (the big version with
replicas behind nginx, PostgreSQL and S3 is tests/scale/test_crash.py and bench/crash.py).

A real server, a real `openscan-cloud worker` process running the real engine on kermit (preset preview, photos
capped at 320 px). Three times, while the engine is working, the worker's whole process group gets `kill -9`
(no clean-up runs) and a fresh worker process is started. Afterwards the project is done exactly once: the job
ran 4 attempts, the result zip holds the model, the credit was charged once and never refunded, and no scratch
folder of a killed process is left behind.
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import psutil
import pytest
import requests

AUTH = ("openscan", "free")
KILLS = 3


def _service_cli(data_dir: Path, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "openscancloud.service_cli", *args, "--data-dir", str(data_dir)],
                         capture_output=True, text=True, check=True, timeout=120)
    return out.stdout


def _start_worker(url: str, token: str, work_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "openscancloud.service_cli", "worker", "--server", url, "--token", token,
         "--work-dir", str(work_dir), "--max-image-size", "320"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _engine_running(worker: subprocess.Popen) -> bool:
    try:
        children = psutil.Process(worker.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return False
    for child in children:
        try:
            if "openscancloud.engine" in " ".join(child.cmdline()):
                return True
        except psutil.Error:
            pass
    return False


def _kill9(worker: subprocess.Popen) -> None:
    """`kill -9` of the worker's process group; its engine child (own session) dies with it (PDEATHSIG)."""
    engines = psutil.Process(worker.pid).children(recursive=True)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(10)
    gone, alive = psutil.wait_procs(engines, timeout=15)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], "an engine outlived its killed worker"


def _status(url: str, token: str) -> dict:
    return requests.get(f"{url}/getProjectInfo", auth=AUTH, params={"token": token, "project": "crash.zip"},
                        timeout=30).json()


@pytest.fixture
def server(tmp_path):
    data_dir = tmp_path / "data"
    env = {**os.environ, "OPENSCAN_LEASE_SECONDS": "4", "OPENSCAN_MAX_ATTEMPTS": str(KILLS + 1),
           "OPENSCAN_QUALITY": "preview"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "openscancloud.service_cli", "serve", "--port", "0", "--workers", "0",
         "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True, env=env)
    url = proc.stdout.readline().split()[-1]
    proc.stdout.readline()  # the public token line
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    yield url, data_dir
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


@pytest.mark.timeout(900)
def test_kill9_of_the_worker_loses_nothing(server, photo_set, tmp_path):
    url, data_dir = server
    user = json.loads(_service_cli(data_dir, "tokens", "create", "--kind", "private", "--forename", "Ada",
                                   "--surname", "Lovelace", "--email", "ada@example.org", "--json"))
    worker_token = _service_cli(data_dir, "tokens", "create", "--kind", "worker", "--label", "crash").strip()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for photo in sorted(photo_set("kermit").iterdir()):
            zf.write(photo, photo.name)
    data = buf.getvalue()
    created = requests.get(f"{url}/createProject", auth=AUTH, params={
        "token": user["token"], "project": "crash.zip", "photos": 11, "parts": 1, "filesize": len(data)}).json()
    assert requests.post(created["ulink"][0], data=data).status_code == 200
    assert requests.get(f"{url}/startProject", auth=AUTH,
                        params={"token": user["token"], "project": "crash.zip"}).status_code == 200

    work_dir = tmp_path / "work"
    work_dir.mkdir()
    rng = random.Random(13)
    kills = 0
    worker = _start_worker(url, worker_token, work_dir)
    try:
        while kills < KILLS:
            deadline = time.monotonic() + 300
            while not _engine_running(worker) and time.monotonic() < deadline:
                assert _status(url, user["token"])["status"] in ("queued", "processing"), \
                    _status(url, user["token"])
                time.sleep(0.2)
            assert _engine_running(worker), f"the engine never started after {kills} kill(s)"
            time.sleep(rng.uniform(0.5, 4.0))  # somewhere inside the reconstruction
            _kill9(worker)
            kills += 1
            worker = _start_worker(url, worker_token, work_dir)  # the replacement waits for the lease to run out
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            project = _status(url, user["token"])
            if project["status"] not in ("queued", "processing"):
                break
            time.sleep(0.5)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(60)

    assert project["status"] == "done", project
    result = requests.get(project["dlink"], timeout=60)
    assert result.status_code == 200
    names = {n.rsplit("/", 1)[-1] for n in zipfile.ZipFile(io.BytesIO(result.content)).namelist()}
    assert {"model.obj", "model.glb", "report.json"} <= names
    db = sqlite3.connect(data_dir / "openscan.db")
    try:
        jobs = db.execute("SELECT status, attempt FROM jobs WHERE project_id = ?", (created["id"],)).fetchall()
        ledger = db.execute("SELECT kind, amount_gb FROM ledger WHERE project_id = ?", (created["id"],)).fetchall()
    finally:
        db.close()
    assert jobs == [("done", KILLS + 1)]  # one job, every kill cost exactly one attempt
    assert [kind for kind, _ in ledger] == ["charge"]  # charged once, never refunded
    assert ledger[0][1] == pytest.approx(-len(data) / 1e9)
    assert sorted(p.name for p in work_dir.iterdir() if p.name.startswith("osc-")) == []  # no scratch left
