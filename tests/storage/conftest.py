"""A real S3-compatible server for the storage tests: moto's server mode on 127.0.0.1 (skips when moto is not
installed). One server per session; every test gets its own bucket."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"})
    url = f"http://127.0.0.1:{port}"
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
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def s3_settings(s3_endpoint, tmp_path):
    """Keyword arguments for `Settings(...)` that put storage in a fresh bucket of the moto server."""
    return dict(storage_url=f"s3://osc-{uuid.uuid4().hex[:12]}/t", s3_endpoint_url=s3_endpoint,
                s3_access_key_id="test", s3_secret_access_key="test", s3_create_bucket=True)


@pytest.fixture
def s3_storage(s3_settings, tmp_path):
    from openscancloud.settings import Settings
    from openscancloud.storage import make_storage

    return make_storage(Settings(data_dir=tmp_path / "data", **s3_settings))
