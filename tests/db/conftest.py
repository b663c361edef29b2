"""PostgreSQL for the database tests: a fresh schema per test on 127.0.0.1:5432 (trust auth, database `test`)
so runs never collide; skipped cleanly when no server answers. `OPENSCAN_TEST_PG` overrides the base URL."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text

PG = os.environ.get("OPENSCAN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_url():
    """A SQLAlchemy URL whose search_path is a new, empty schema (dropped afterwards)."""
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
