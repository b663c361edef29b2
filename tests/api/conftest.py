"""Fixtures for the HTTP tests: a real app on a temporary SQLite database and data dir, driven in-process."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any, Callable

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from openscancloud.api.app import create_app
from openscancloud.settings import Settings

AUTH = ("openscan", "free")


def _jpeg(i: int) -> bytes:
    import random

    buf = io.BytesIO()  # noise does not compress: a few KB per photo, so zips span several 4 KB parts
    Image.frombytes("RGB", (48, 32), random.Random(i).randbytes(48 * 32 * 3)).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def build_zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", part_limit_bytes=4096, maintenance_interval_seconds=0,
                    public_daily_credit_gb=10.0, private_credit_gb=5.0)


@pytest.fixture
def app(settings: Settings):
    return create_app(settings, maintenance=False)


@pytest.fixture
def ctx(app):
    return app.state.ctx


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


@pytest.fixture
def public_token(ctx) -> str:
    return ctx.service.public_token()


@pytest.fixture
def private_token(ctx) -> str:
    from openscancloud.domain.tokens import TokenKind

    token, _ = ctx.service.create_token(TokenKind.PRIVATE, forename="Ada", surname="Lovelace", email="ada@example.org")
    return token


@pytest.fixture
def worker_token(ctx) -> str:
    from openscancloud.domain.tokens import TokenKind

    token, _ = ctx.service.create_token(TokenKind.WORKER, label="test worker")
    return token


@pytest.fixture
def legacy(client) -> Callable[..., Any]:
    """`legacy("createProject", token=..., project=...)` → response (GET + Basic auth, like the firmware)."""

    def call(cmd: str, auth: Any = AUTH, **params: Any):
        return client.get(f"/{cmd}", params=params, auth=auth)

    return call


@pytest.fixture
def photos_zip() -> Callable[..., bytes]:
    """`photos_zip(n)` → bytes of a zip with n small JPEG photos."""

    def make(n: int = 3, extra: dict[str, bytes] | None = None) -> bytes:
        entries = {f"photo_{i:03d}.jpg": _jpeg(i) for i in range(n)}
        entries.update(extra or {})
        return build_zip(entries)

    return make


@pytest.fixture
def uploaded(legacy, client):
    """`uploaded(token, name, data)`: createProject + upload every part; returns the createProject JSON."""

    def run(token: str, name: str, data: bytes, part_size: int = 4096) -> dict[str, Any]:
        chunks = [data[i:i + part_size] for i in range(0, len(data), part_size)]
        r = legacy("createProject", token=token, project=name, photos=3, parts=len(chunks), filesize=len(data))
        assert r.status_code == 200, r.text
        info = r.json()
        for link, chunk in zip(info["ulink"], chunks):
            up = client.post(link, content=chunk, headers={"Content-Type": "application/octet-stream"})
            assert up.status_code == 200, up.text
        return info

    return run
