"""Fixtures for the scale-out tests (PostgreSQL and S3 come from tests/conftest.py): the production-shaped
stack of `bench/scale/stack.py` (nginx + replicas + workers), each skipped cleanly when its binary/server is
absent. The bench modules are loaded by path (they are scripts, not a package)."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


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
def require_stack(stack_module, service_missing):
    missing = stack_module.missing_parts()
    if missing:
        service_missing("scale stack unavailable: " + ", ".join(missing))


@pytest.fixture
def s3_env(s3_endpoint):
    """OPENSCAN_* variables for S3 storage in a fresh bucket."""
    return {"OPENSCAN_STORAGE_URL": f"s3://osc-{uuid.uuid4().hex[:12]}/t", "OPENSCAN_S3_ENDPOINT_URL": s3_endpoint,
            "OPENSCAN_S3_ACCESS_KEY_ID": "test", "OPENSCAN_S3_SECRET_ACCESS_KEY": "test",
            "OPENSCAN_S3_CREATE_BUCKET": "true", "OPENSCAN_STALE_UPLOAD_HOURS": "0"}
