"""L4, L5, L8 (file modes) and the admin commands' data directory: workers touch only their own jobs, finishing
a big part does not stall the server, data is private to the server's user, and `tokens public` never prints a
token from a folder the server does not use."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

from openscancloud.domain.tokens import TokenKind
from openscancloud.storage.local import LocalStorage

AUTH = ("openscan", "free")


def _worker(srv, label: str) -> tuple[dict, str]:
    token, _ = srv.ctx.service.create_token(TokenKind.WORKER, label=label)
    h = {"Authorization": f"Bearer {token}"}
    wid = httpx.post(f"{srv.url}/api/v1/worker/register", json={"name": label}, headers=h).json()["worker_id"]
    return h, wid


def test_a_worker_token_cannot_touch_a_job_another_worker_holds(live, make_zip):
    srv = live()
    token = srv.private_token()
    srv.upload(token, "held.zip", make_zip(3))
    assert srv.legacy("startProject", token=token, project="held.zip").status_code == 200
    owner_h, owner_id = _worker(srv, "owner")
    thief_h, thief_id = _worker(srv, "thief")
    job = httpx.post(f"{srv.url}/api/v1/worker/claim", json={"worker_id": owner_id}, headers=owner_h).json()
    base = f"{srv.url}/api/v1/worker/jobs/{job['job_id']}"
    for path, body in [("heartbeat", {"attempt": 1, "worker_id": thief_id, "progress": 0.9}),
                       ("heartbeat", {"attempt": 1}),
                       ("fail", {"attempt": 1, "message": "sabotage"}),
                       ("complete", {"attempt": 1})]:
        r = httpx.post(f"{base}/{path}", json=body, headers=thief_h)
        assert r.status_code == 403 and r.json()["code"] == "not_your_job", (path, r.text)
    with srv.ctx.service.uow() as repo:
        row = repo.job_by_id(job["job_id"])
        assert row.status == "running" and row.progress == 0.0 and row.error is None
    r = httpx.post(f"{base}/heartbeat", json={"attempt": 1, "worker_id": owner_id, "progress": 0.5}, headers=owner_h)
    assert r.status_code == 200 and r.json() == {"cancel": False}


def test_finishing_a_large_part_does_not_stall_the_event_loop(tmp_path):
    """The sha256 of a completed Content-Range part is computed off the event loop: a ticker keeps running
    while it is hashed. Compared with the time the hash itself takes, in the same run."""
    storage = LocalStorage(tmp_path / "storage")
    pid, size = "a" * 32, 120_000_000
    block = os.urandom(1 << 20)

    async def body(n: int):
        for i in range(0, n, len(block)):
            yield block[:min(len(block), n - i)]

    async def main() -> tuple[float, float]:
        await storage.append_part(pid, 0, 0, size, body(size - 1), size)
        gaps: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            last = time.perf_counter()
            while not stop.is_set():
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        offset, part = await storage.append_part(pid, 0, size - 1, size, body(1), size)
        finishing = time.perf_counter() - started
        stop.set()
        await task
        assert part is not None and offset == size
        return max(gaps), finishing

    longest_gap, finishing = asyncio.run(main())
    digest = hashlib.sha256()
    t0 = time.perf_counter()
    with open(tmp_path / "storage" / "projects" / pid / "parts" / "0.part", "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    hashing = time.perf_counter() - t0
    assert longest_gap < max(hashing, finishing) / 2, (longest_gap, hashing, finishing)


def _serve(data_dir: Path, cwd: Path) -> tuple[subprocess.Popen, str, str]:
    proc = subprocess.Popen([sys.executable, "-m", "openscancloud.service_cli", "serve", "--port", "0",
                             "--workers", "0", "--data-dir", str(data_dir)], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = token = None
    deadline = time.time() + 60
    while (url is None or token is None) and time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if m := re.match(r"listening on (\S+)", line):
            url = m.group(1)
        if m := re.match(r"public token: (\S+)", line):
            token = m.group(1)
    assert url and token, "server did not start"
    return proc, url, token


def _admin(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "OPENSCAN_DATA_DIR"}
    return subprocess.run([sys.executable, "-m", "openscancloud.service_cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_data_files_are_private_and_admin_commands_use_the_servers_data_dir(tmp_path, make_zip):
    data_dir, elsewhere = tmp_path / "srv-data", tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc, url, public = _serve(data_dir, tmp_path)
    try:
        data = make_zip(3)
        info = httpx.get(f"{url}/createProject", params={"token": public, "project": "modes.zip", "photos": 3,
                                                         "parts": 1, "filesize": len(data)}, auth=AUTH).json()
        assert httpx.post(info["ulink"][0], content=data).status_code == 200
        assert httpx.get(f"{url}/startProject", params={"token": public, "project": "modes.zip"},
                         auth=AUTH).status_code == 200
        paths = [data_dir, *data_dir.rglob("*")]
        assert any(p.name == "input.zip" for p in paths) and any(p.name == "secret.key" for p in paths)
        for p in paths:
            mode = stat.S_IMODE(p.stat().st_mode)
            assert mode & 0o077 == 0, f"{p.relative_to(tmp_path)} is {oct(mode)}"

        # an admin command run from another folder without --data-dir refuses instead of making a new one
        r = _admin(["tokens", "public"], cwd=elsewhere)
        assert r.returncode == 2 and "no server data in" in r.stderr and "--data-dir" in r.stderr
        assert r.stdout == "" and not (elsewhere / "data").exists()
        # with the server's folder it says which one it used and prints the token the server accepts
        r = _admin(["tokens", "public", "--data-dir", str(data_dir)], cwd=elsewhere)
        assert r.returncode == 0 and r.stdout.strip() == public
        assert f"data directory: {data_dir.resolve()}" in r.stderr
        ok = httpx.get(f"{url}/getTokenInfo", params={"token": r.stdout.strip()}, auth=AUTH)
        assert ok.status_code == 200

        # token requests through the CLI: listed, then approved (no SMTP: the token is printed)
        assert httpx.get(f"{url}/requestToken", params={"mail": "kim@example.org", "forename": "Kim",
                                                        "lastname": "Lee"}, auth=AUTH).status_code == 200
        listing = _admin(["tokens", "requests", "--data-dir", str(data_dir)], cwd=elsewhere)
        assert listing.returncode == 0 and "pending" in listing.stdout and "Kim Lee <kim@example.org>" in listing.stdout
        req_id = re.search(r"^\s*(\d+)\s+pending", listing.stdout, re.M).group(1)
        approved = _admin(["tokens", "approve", req_id, "--data-dir", str(data_dir)], cwd=elsewhere)
        assert approved.returncode == 0 and "cannot send mail" in approved.stdout
        token = approved.stdout.strip().splitlines()[-1]
        assert httpx.get(f"{url}/getTokenInfo", params={"token": token}, auth=AUTH).json()["kind"] == "private"
        again = _admin(["tokens", "approve", req_id, "--data-dir", str(data_dir)], cwd=elsewhere)
        assert again.returncode == 1 and "already approved" in again.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=30)
