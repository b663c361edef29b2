"""Fixtures for the scale-out tests: a fresh PostgreSQL schema, a moto S3 server, and the production-shaped
stack of `bench/scale/stack.py` (nginx + replicas + workers), each skipped cleanly when its binary/server is
absent. The bench modules are loaded by path (they are scripts, not a package)."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[2]
PG = os.environ.get("OPENSCAN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _load(name: str, path: Path):
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="session")
def stack_module():
    """bench/scale/stack.py (Stack, LegacyClient, ...)."""
    return _load("osc_scale_stack", REPO / "bench" / "scale" / "stack.py")


@pytest.fixture(scope="session")
def crash_module(stack_module):
    return _load("osc_crash_bench", REPO / "bench" / "crash.py")


@pytest.fixture
def require_stack(stack_module):
    missing = stack_module.missing_parts()
    if missing:
        pytest.skip("scale stack unavailable: " + ", ".join(missing))


@pytest.fixture
def pg_url():
    """A SQLAlchemy URL on a new, empty PostgreSQL schema (dropped afterwards)."""
    schema = f"osc_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception:
        admin.dispose()
        pytest.skip("PostgreSQL at 127.0.0.1:5432 not reachable")
    yield f"{PG}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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


@pytest.fixture
def s3_env(s3_endpoint):
    """OPENSCAN_* variables for S3 storage in a fresh bucket."""
    return {"OPENSCAN_STORAGE_URL": f"s3://osc-{uuid.uuid4().hex[:12]}/t", "OPENSCAN_S3_ENDPOINT_URL": s3_endpoint,
            "OPENSCAN_S3_ACCESS_KEY_ID": "test", "OPENSCAN_S3_SECRET_ACCESS_KEY": "test",
            "OPENSCAN_S3_CREATE_BUCKET": "true", "OPENSCAN_STALE_UPLOAD_HOURS": "0"}
