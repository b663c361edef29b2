"""S3 storage for the storage tests, on the moto server of tests/conftest.py (skips when moto is not
installed). One server per session; every test gets its own bucket."""

from __future__ import annotations

import uuid

import pytest


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
