"""Alembic migrations create the schema the models describe, on SQLite and (when reachable) PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from openscancloud.db.database import Database
from openscancloud.db.models import Base
from openscancloud.db.repository import SqlRepository, unit_of_work

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _check_schema(db: Database) -> None:
    db.upgrade()
    db.upgrade()  # idempotent
    insp = inspect(db.engine)
    assert set(Base.metadata.tables) <= set(insp.get_table_names())
    for name, table in Base.metadata.tables.items():
        assert {c.name for c in table.columns} == {c["name"] for c in insp.get_columns(name)}


def test_sqlite_upgrade_head(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    _check_schema(db)
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def _pg_or_skip() -> Database:
    try:
        db = Database(PG_URL)
        with db.engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception:
        pytest.skip("PostgreSQL at 127.0.0.1:5432 not reachable")
    return db


def test_postgres_upgrade_and_skip_locked_claim():
    """Two concurrent transactions: the second claimer skips the row the first one holds."""
    db = _pg_or_skip()
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS osc_test CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA osc_test")
    db.dispose()
    scoped = Database(PG_URL + "?options=-csearch_path%3Dosc_test")
    try:
        _check_schema(scoped)
        uow = unit_of_work(scoped)
        from datetime import datetime, timedelta

        with uow() as repo:
            tok = repo.add_token(kind="public", token_hash="h", hint="h", limit_photos=1, limit_filesize=1)
            now = datetime(2026, 1, 1)
            for i in range(2):
                repo.add_project(id=f"{i:032x}", token_id=tok.id, name=f"p{i}", status="queued", photos=1, parts=1,
                                 filesize=1, upload_expires_at=now)
                repo.add_job(id=f"{i:032x}", project_id=f"{i:032x}", status="queued", priority=1, quality="preview",
                             max_attempts=3, queued_at=now + timedelta(seconds=i))
        with scoped.transaction() as s1:
            first = SqlRepository(s1).next_claimable_job()
            with scoped.transaction() as s2:
                second = SqlRepository(s2).next_claimable_job()
                assert first.id != second.id
    finally:
        with scoped.engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA IF EXISTS osc_test CASCADE")
        scoped.dispose()


def test_models_and_migrations_agree(tmp_path):
    """A model change without a migration fails here (alembic autogenerate finds no difference)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    db = Database(f"sqlite:///{tmp_path / 'y.db'}")
    db.upgrade()
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
