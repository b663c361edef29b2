"""Alembic migrations create the schema the models describe, on SQLite and (when reachable) PostgreSQL."""

from __future__ import annotations

from sqlalchemy import inspect, text

from openscancloud.db.database import Database
from openscancloud.db.models import Base
from openscancloud.db.repository import SqlRepository, unit_of_work



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


def test_postgres_upgrade_and_skip_locked_claim(pg_url):
    """Two concurrent transactions: the second claimer skips the row the first one holds."""
    scoped = Database(pg_url)
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
        scoped.dispose()


def test_postgres_advisory_lock_one_holder_at_a_time(pg_url):
    """`exclusive()` never waits: a second process (own engine) gets False while the first holds it, and the
    lock is free again after release — and after the holder's connection dies (kill -9 of a replica)."""
    a, b = Database(pg_url), Database(pg_url)
    try:
        with a.exclusive("maintenance") as first:
            assert first
            with b.exclusive("maintenance") as second:
                assert not second
            with b.exclusive("other-task") as other:
                assert other
        with b.exclusive("maintenance") as again:
            assert again
        conn = a.engine.connect()  # a holder whose connection is cut without unlocking
        from sqlalchemy import text

        from openscancloud.db.database import advisory_key

        assert conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": advisory_key("maintenance")}).scalar()
        with b.exclusive("maintenance") as while_held:
            assert not while_held
        conn.invalidate()  # closes the socket: PostgreSQL ends the session and drops its locks
        conn.close()
        import time

        deadline = time.time() + 10
        while True:
            with b.exclusive("maintenance") as after:
                if after or time.time() > deadline:
                    break
            time.sleep(0.1)
        assert after
    finally:
        a.dispose()
        b.dispose()


def test_sqlite_exclusive_is_always_granted(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'z.db'}")
    with db.exclusive("maintenance") as a, db.exclusive("maintenance") as b:
        assert a and b


def test_models_and_migrations_agree(tmp_path):
    """A model change without a migration fails here (alembic autogenerate finds no difference)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    db = Database(f"sqlite:///{tmp_path / 'y.db'}")
    db.upgrade()
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
