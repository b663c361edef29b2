"""Change notices from PostgreSQL: which projects changed, as soon as the change commits, whoever made it.

The polling path answers polls of unchanged projects from a per-process table of snapshots without a database
read (`api.poll_cache.PollCache`). That is only right if the process hears of every change to a project
— made by another API replica, a worker reporting progress, an admin, a maintenance sweep. Migration 0004
installs triggers on `projects`, `jobs`, `parts` and `tokens` that send `pg_notify('osc_changes', project id)`
(`'*'` for a token: it may guard many projects; `'#queue'` when a job enters, leaves or moves in the queue, which
moves every queued project's place); PostgreSQL delivers a notice after its transaction commits, and only once
per transaction and payload. This module keeps one `LISTEN` connection per process and passes each notice on.

What keeps a cache built on it honest:

* `healthy` is true only while the LISTEN connection is up, the triggers exist, and the connection has answered
  a ping within the last `ping_seconds`. Nothing may be trusted while it is false; when it becomes true again
  the subscriber is told to forget everything (`on_reset`): notices sent while nobody listened are lost.
* `sequence` grows with every notice. A reader notes it before a database read (`mark`) and keeps what it read
  only if no notice for that project arrived in between (`changed_since`); a notice that arrives later removes
  the entry. So a tag read before a change is never kept after that change's notice.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

log = logging.getLogger("openscancloud.changes")

CHANNEL = "osc_changes"
EVERYTHING = "*"
QUEUE = "#queue"
TABLES = ("projects", "jobs", "parts", "tokens")
_TRIGGERS_PRESENT = (
    "SELECT count(*) FROM pg_trigger WHERE tgname = 'osc_changes' AND tgrelid IN "
    "(to_regclass('projects'), to_regclass('jobs'), to_regclass('parts'), to_regclass('tokens'))"
)
MAX_TRACKED = 100_000  # projects whose last notice is remembered; beyond it, every older mark counts as stale


class ChangeFeed:
    """One LISTEN connection of this process's event loop, started by the first `ensure_started` (a poll)."""

    def __init__(self, connect_kwargs: dict[str, Any], on_change: Callable[[str], None],
                 on_reset: Callable[[], None], on_queue: Callable[[], None] = lambda: None,
                 ping_seconds: float = 5.0) -> None:
        self.connect_kwargs = connect_kwargs
        self.on_change = on_change
        self.on_reset = on_reset
        self.on_queue = on_queue
        self.ping_seconds = ping_seconds
        self.healthy = False
        self.sequence = 0
        self.backend_pid: int | None = None  # of the LISTEN connection (tests end it to prove recovery)
        self._last_notice: dict[str, int] = {}
        self._floor = 0  # marks below this are stale for every project (a '*' notice, a reset, an overflow)
        self._last_queue_notice = 0
        self._task: asyncio.Task[None] | None = None
        self._conn: Any = None  # the LISTEN connection while it is open
        self._loop: Any = None
        self.disabled = False

    # --- what a reader uses ------------------------------------------------------------------------------
    def mark(self) -> int | None:
        """The sequence before a read, or None when notices cannot be trusted now."""
        return self.sequence if self.healthy else None

    def changed_since(self, project_id: str, mark: int | None, queued: bool = False) -> bool:
        """True when a notice for `project_id` (or for everything; for the queue when `queued`) may have arrived
        after `mark` was taken."""
        if mark is None or not self.healthy or mark < self._floor:
            return True
        if queued and self._last_queue_notice > mark:
            return True
        return self._last_notice.get(project_id, -1) > mark

    # --- the listening task ------------------------------------------------------------------------------
    def ensure_started(self) -> None:
        """Start listening in the running event loop (tests and uvicorn's reloads start new loops)."""
        if self.disabled:
            return
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._task is not None and not self._task.done():
            return
        self._loop, self.healthy = loop, False
        self._task = loop.create_task(self._run(), name="change-feed")

    def close(self) -> None:
        """Stop listening; the connection is closed at once (the loop may end before the task sees its cancel)."""
        self.healthy = False
        if self._task is not None and not self._task.done():
            self._task.cancel()
        conn, self._conn = self._conn, None
        if conn is not None:
            _finish(conn)

    async def _run(self) -> None:
        import psycopg

        backoff = 0.5
        while True:
            conn = None
            try:
                conn = self._conn = await psycopg.AsyncConnection.connect(
                    autocommit=True, keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=2,
                    **self.connect_kwargs)
                if not await self._triggers_present(conn):
                    log.warning("change notices are off: the database has no osc_changes triggers (migration "
                                "0004); every poll reads the database")
                    self.disabled = True  # for good: not looked for again on every poll
                    self._conn = None
                    await conn.close()
                    return
                await conn.execute(f"LISTEN {CHANNEL}")
                self.backend_pid = conn.info.backend_pid
                self._forget_all()  # what was cached before this LISTEN may have missed a notice
                self.healthy, backoff = True, 0.5
                while True:
                    async for notice in conn.notifies(timeout=self.ping_seconds):
                        self._notice(notice.payload)
                    await asyncio.wait_for(conn.execute("SELECT 1"), self.ping_seconds)  # still there?
            except asyncio.CancelledError:
                self.healthy = False
                if conn is not None:
                    _finish(conn)
                raise
            except Exception as exc:  # connection lost, server restart, ping timeout
                was_healthy, self.healthy = self.healthy, False
                self._forget_all()
                if was_healthy:
                    log.warning("change notices interrupted (%s); polls read the database until they are back", exc)
                if conn is not None:
                    _finish(conn)
                self._conn = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    @staticmethod
    async def _triggers_present(conn: Any) -> bool:
        cur = await conn.execute(_TRIGGERS_PRESENT)
        row = await cur.fetchone()
        return row is not None and row[0] == len(TABLES)

    def _notice(self, payload: str) -> None:
        if payload == EVERYTHING:
            self._forget_all()
            return
        self.sequence += 1
        if payload == QUEUE:
            self._last_queue_notice = self.sequence
            self.on_queue()
            return
        if len(self._last_notice) >= MAX_TRACKED:
            self._floor = self.sequence
            self._last_notice.clear()
        self._last_notice[payload] = self.sequence
        self.on_change(payload)

    def _forget_all(self) -> None:
        """Nothing read before now may be kept (a '*' notice, a (re)connected listener)."""
        self.sequence += 1
        self._floor = self.sequence
        self._last_notice.clear()
        self.on_reset()


def _finish(conn: Any) -> None:
    """Close a psycopg connection's socket without a round trip (safe to repeat)."""
    try:
        conn.pgconn.finish()
    except Exception:
        pass


__all__ = ["ChangeFeed", "CHANNEL", "EVERYTHING", "QUEUE"]
