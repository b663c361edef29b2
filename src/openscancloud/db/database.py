"""Engine/session creation and schema migration.

SQLite: WAL mode, a busy timeout and every transaction opened with `BEGIN IMMEDIATE`, so that two processes
never both believe they claimed the same job (SQLite's write lock serialises them). PostgreSQL: ordinary
transactions; the job claim adds `FOR UPDATE SKIP LOCKED`.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class Database:
    """Owns the SQLAlchemy engine and hands out short transactions (`with db.transaction() as s:`)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = _make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any exception."""
        with self._sessions() as session:
            with session.begin():
                yield session

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Try to become the one process doing `name` right now (e.g. periodic maintenance).

        PostgreSQL: a session-level `pg_try_advisory_lock` on a connection held for the duration — it never
        waits, and PostgreSQL drops it by itself if the holder dies (kill -9, lost network). Yields whether this
        process got it. SQLite (one machine): always True; its steps are safe in parallel anyway.
        """
        if self.is_sqlite:
            yield True
            return
        key = advisory_key(name)
        with self.engine.connect() as conn:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()

    def upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision (`alembic upgrade head`)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.attributes["connection_url"] = self.url
        with self.engine.begin() as conn:
            if not self.is_sqlite:  # several API processes may start at once: one migrates, others wait
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(73170001)")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def dispose(self) -> None:
        self.engine.dispose()


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for `pg_advisory_lock` derived from a readable name."""
    return int.from_bytes(hashlib.sha256(f"openscancloud:{name}".encode()).digest()[:8], "big", signed=True)


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None  # let us emit BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
