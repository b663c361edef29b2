"""Fixtures shared by every test package: where the photo sets live, a fresh PostgreSQL schema, an S3 server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATASETS_DIR = Path(os.environ.get("OPENSCAN_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))
POSTGRES_URL = os.environ.get("OPENSCAN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def dataset_images(name: str) -> Path:
    """The `images/` folder of a photo set in ../shared/datasets, or skip the test when it is absent."""
    images = DATASETS_DIR / name / "images"
    if not images.is_dir():
        pytest.skip(f"photo set {name!r} not found under {DATASETS_DIR}")
    return images


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    if not DATASETS_DIR.is_dir():
        pytest.skip(f"no photo sets at {DATASETS_DIR}")
    return DATASETS_DIR


SETS_DIR = Path(os.environ.get("OPENSCAN_SETS", REPO_ROOT.parent / "sets"))


@pytest.fixture(scope="session")
def synthetic_set():
    """Factory fixture: `synthetic_set("small_plain_static")` → the folder of a set rendered by the synthetic
    generator into ../sets (images/ + ground_truth/); skips when it is absent or not finished (no DONE file)."""

    def find(name: str) -> Path:
        root = SETS_DIR / name
        if not (root / "DONE").is_file():
            pytest.skip(f"synthetic set {name!r} not rendered under {SETS_DIR}")
        return root

    return find


@pytest.fixture(scope="session")
def photo_set():
    """Factory fixture: `photo_set("kermit")` → Path of its images folder (skips when absent)."""
    return dataset_images


@pytest.fixture
def pg_url():
    """A SQLAlchemy URL whose search_path is a new, empty PostgreSQL schema (dropped afterwards), so runs never
    collide; skips cleanly when no server answers. `OPENSCAN_TEST_PG` overrides the base URL."""
    from sqlalchemy import create_engine, text

    schema = f"osc_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception:
        admin.dispose()
        pytest.skip("PostgreSQL at 127.0.0.1:5432 not reachable")
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3-compatible server: moto's server mode on 127.0.0.1, one per session (skips without moto)."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"})
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.skip("moto server did not start")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)
