"""A real uvicorn server (the same configuration `serve` uses: h11 with header limits, the limits middleware)
running the app in a thread on a free 127.0.0.1 port, on SQLite or on a fresh PostgreSQL schema.

The tests in this package are the regression tests of docs/security.md: each one plays a hostile user."""

from __future__ import annotations

import io
import random
import socket
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest
from PIL import Image

from openscancloud.api.app import create_app
from openscancloud.api.context import AppContext
from openscancloud.api.limits import uvicorn_config
from openscancloud.domain.tokens import TokenKind
from openscancloud.settings import Settings

AUTH = ("openscan", "free")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    ctx: AppContext
    public_token: str
    server: Any
    thread: threading.Thread

    def private_token(self, email: str = "ada@example.org") -> str:
        token, _ = self.ctx.service.create_token(TokenKind.PRIVATE, forename="Ada", surname="L", email=email)
        return token

    def legacy(self, cmd: str, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.url}/{cmd}", params=params, auth=AUTH, timeout=60)

    def create(self, token: str, name: str, data: bytes, part_size: int | None = None, **extra: Any) -> dict:
        part_size = part_size or self.ctx.settings.part_limit_bytes
        parts = max(1, -(-len(data) // part_size))
        r = self.legacy("createProject", token=token, project=name, photos=3, parts=parts, filesize=len(data),
                        **extra)
        assert r.status_code == 200, r.text
        return r.json()

    def upload(self, token: str, name: str, data: bytes, part_size: int | None = None, **extra: Any) -> dict:
        part_size = part_size or self.ctx.settings.part_limit_bytes
        info = self.create(token, name, data, part_size, **extra)
        for i, link in enumerate(info["ulink"]):
            r = httpx.post(link, content=data[i * part_size:(i + 1) * part_size], timeout=60)
            assert r.status_code == 200, r.text
        return info

    def finish_job(self, result: bytes = b"result") -> dict:
        """Act as a worker: claim the next job, upload `result`, complete it. Returns the claim."""
        wtoken, _ = self.ctx.service.create_token(TokenKind.WORKER, label="w")
        h = {"Authorization": f"Bearer {wtoken}"}
        wid = httpx.post(f"{self.url}/api/v1/worker/register", json={"name": "w"}, headers=h).json()["worker_id"]
        job = httpx.post(f"{self.url}/api/v1/worker/claim", json={"worker_id": wid}, headers=h).json()
        assert httpx.put(job["result_url"], content=result, timeout=60).status_code == 200
        r = httpx.post(f"{self.url}/api/v1/worker/jobs/{job['job_id']}/complete", json={"attempt": job["attempt"]},
                       headers=h)
        assert r.status_code == 200, r.text
        return job

    def project(self, project_id: str) -> Any:
        with self.ctx.service.uow() as repo:
            return repo.project_by_id(project_id)


def photos_zip(n: int = 4, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(n):
            img = io.BytesIO()  # noise: does not compress, so the zip has a realistic size
            Image.frombytes("RGB", (64, 48), random.Random(seed * 1000 + i).randbytes(64 * 48 * 3)).save(
                img, "JPEG", quality=95)
            zf.writestr(f"photo_{i:03d}.jpg", img.getvalue())
    return buf.getvalue()


def start_live(settings: Settings, protocol: str | None = None) -> LiveServer:
    """`protocol`: None = what `serve` picks (httptools when installed), "h11" = the guarded h11 protocol."""
    from openscancloud.api.limits import guarded_h11

    app = create_app(settings, maintenance=False)
    port = free_port()
    config = uvicorn_config(app, settings, "127.0.0.1", port, log_level="warning")
    if protocol == "h11":
        config.http = guarded_h11(settings.header_timeout_seconds)
    import uvicorn

    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    ctx = app.state.ctx
    return LiveServer(f"http://127.0.0.1:{port}", ctx, ctx.service.public_token(), server, thread)


@pytest.fixture
def live(tmp_path: Path) -> Callable[..., LiveServer]:
    """`live(**settings)` → a running server on SQLite (stopped after the test)."""
    servers: list[LiveServer] = []

    def make(protocol: str | None = None, **overrides: Any) -> LiveServer:
        values = dict(data_dir=tmp_path / f"data{len(servers)}", part_limit_bytes=1_000_000,
                      maintenance_interval_seconds=0, webhook_backoff_seconds=0.05)
        values.update(overrides)
        servers.append(start_live(Settings(**values), protocol))
        return servers[-1]

    yield make
    for s in servers:
        s.server.should_exit = True
        s.thread.join(timeout=15)


@pytest.fixture(params=["sqlite", "postgresql"])
def live_db(request, live) -> Callable[..., LiveServer]:
    """Like `live`, once on SQLite and once on PostgreSQL (skipped when no PostgreSQL answers)."""
    if request.param == "sqlite":
        return live
    pg_url = request.getfixturevalue("pg_url")
    return lambda **overrides: live(database_url=pg_url, **overrides)


def race(n: int, action: Callable[[int], Any]) -> list[Any]:
    """Run `action(i)` in n threads released together by a barrier; returns the results in order and
    re-raises the first exception of any thread."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = action(i)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    if errors:
        raise errors[0]
    assert not any(t.is_alive() for t in threads), "a racing request never finished"
    return results


@pytest.fixture
def make_zip() -> Callable[..., bytes]:
    """`make_zip(n, seed)` → a zip of n small noise JPEGs."""
    return photos_zip


@pytest.fixture
def racer() -> Callable[[int, Callable[[int], Any]], list[Any]]:
    """`racer(n, action)`: see `race`."""
    return race
