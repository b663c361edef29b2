"""The SQL of the polling path: what `getProjectInfo`, `GET /api/v1/projects/{id}` and the progress stream need,
in as few round trips as possible.

Every scanner, CLI and browser polls a project every few seconds while its job runs, so this path is the
server's hottest. The general ORM path costs a transaction (BEGIN, a connection ping, COMMIT) and four queries
(token, project, latest job, parts) through the ORM. Here:

* one statement reads the token, the project and its latest job together, plus two aggregates of its parts
  (count and newest receipt) that make the change tag (ETag) exact without reading the parts themselves;
* the parts themselves are a second, plain statement, only when the answer is really built;
* reads run on their own small connection pool in autocommit mode (a single SELECT needs no transaction, and
  on SQLite it must not take the write lock `BEGIN IMMEDIATE` of the main engine), without the per-checkout
  ping: a connection that died (database restart) fails the statement, the pool is invalidated by SQLAlchemy,
  and the read is retried once on a fresh connection;
* the average job duration behind the ETA is computed at most every few seconds per process.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Sequence

from sqlalchemy import Engine, bindparam, create_engine, event, func, select, tuple_
from sqlalchemy.exc import DBAPIError

from openscancloud.db.models import Job, Part, Project, Token

_P, _T, _J, _PARTS = Project.__table__, Token.__table__, Job.__table__, Part.__table__
_JJ = _J.alias("latest")
_LATEST_JOB = (
    select(_JJ.c.id).where(_JJ.c.project_id == _P.c.id).order_by(_JJ.c.queued_at.desc(), _JJ.c.id).limit(1)
    .correlate(_P).scalar_subquery()
)
_SNAPSHOT = select(
    _T.c.kind.label("t_kind"), _T.c.status.label("t_status"),
    *[c.label(f"p_{c.name}") for c in _P.c],
    *[c.label(f"j_{c.name}") for c in _J.c],
    select(func.count()).where(_PARTS.c.project_id == _P.c.id).scalar_subquery().label("parts_done"),
    select(func.max(_PARTS.c.received_at)).where(_PARTS.c.project_id == _P.c.id).scalar_subquery()
    .label("parts_last"),
).select_from(_T.join(_P, _P.c.token_id == _T.c.id).outerjoin(_J, _J.c.id == _LATEST_JOB))
BY_NAME = _SNAPSHOT.where(_T.c.token_hash == bindparam("h"), _P.c.name == bindparam("name"))
BY_ID = _SNAPSHOT.where(_T.c.token_hash == bindparam("h"), _P.c.id == bindparam("pid"))
PARTS = (
    select(_PARTS.c.index, _PARTS.c.size, _PARTS.c.sha256).where(_PARTS.c.project_id == bindparam("pid"))
    .order_by(_PARTS.c.index)
)
QUEUE_AHEAD = select(func.count()).where(
    _J.c.status == "queued",
    tuple_(_J.c.priority, _J.c.queued_at, _J.c.id) < tuple_(bindparam("pr"), bindparam("q"), bindparam("jid")),
)
RECENT = (
    select(_J.c.started_at, _J.c.finished_at)
    .where(_J.c.status == "done", _J.c.started_at.is_not(None), _J.c.finished_at.is_not(None))
    .order_by(_J.c.finished_at.desc()).limit(20)
)
_P_COLS = [c.name for c in _P.c]
_J_COLS = [c.name for c in _J.c]


@dataclass(frozen=True)
class Snapshot:
    """Token, project and latest job as read by one statement. `project`/`job` have the attribute names of the
    `db.models` classes (what `domain.reporting.render_project_view` reads); `job` is None before the first
    start. `parts_done`/`parts_last` summarise the complete parts for the change tag."""

    token_kind: str
    token_status: str
    project: Any
    job: Any | None
    parts_done: int
    parts_last: Any

    def version_key(self) -> tuple:
        """Everything the answer depends on except the clock: equal keys mean an equal answer (apart from the
        ETA estimate). Used for the ETag and by the progress stream to notice changes."""
        p, j = self.project, self.job
        return (tuple(getattr(p, c) for c in _P_COLS),
                None if j is None else tuple(getattr(j, c) for c in _J_COLS),
                self.parts_done, self.parts_last)


class PollReader:
    """Read-only access for the polling path (thread-safe; one per process, built with the app)."""

    def __init__(self, url: str, pool_size: int = 8, average_ttl: float = 10.0) -> None:
        self.engine: Engine = _read_engine(url, pool_size)
        self.pool_size = pool_size
        self.average_ttl = average_ttl
        self._average: tuple[float, float] | None = None  # (computed at monotonic, value)
        self._lock = threading.Lock()

    def _run(self, fn: Any) -> Any:
        """`fn(connection)` on a pooled autocommit connection; once more on a fresh one if the first had died."""
        for attempt in (1, 2):
            try:
                with self.engine.connect() as conn:
                    return fn(conn)
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")

    def snapshot(self, token_hash: str, *, name: str | None = None, project_id: str | None = None) -> Snapshot | None:
        """The project of this token (by name or id) with its latest job; None when there is no such pair (the
        caller then asks the domain layer, which explains why)."""
        stmt, params = (BY_ID, {"h": token_hash, "pid": project_id}) if project_id is not None else (
            BY_NAME, {"h": token_hash, "name": name})
        row = self._run(lambda conn: conn.execute(stmt, params).first())
        return None if row is None else _snapshot(row)

    def parts(self, project_id: str) -> Sequence[Any]:
        """(index, size, sha256) of the complete parts, in index order."""
        return self._run(lambda conn: conn.execute(PARTS, {"pid": project_id}).all())

    def queue_index(self, job: Any) -> int:
        """0-based place of a queued job in the claim order (priority, queued_at, id): the jobs before it."""
        if job.status != "queued":
            return 0
        params = {"pr": job.priority, "q": job.queued_at, "jid": job.id}
        return int(self._run(lambda conn: conn.execute(QUEUE_AHEAD, params).scalar()) or 0)

    def average_duration(self) -> float:
        """Mean duration of the last 20 finished jobs (600 s without any), recomputed every `average_ttl` s: an
        estimate that every poll of every active project needs, and that moves slowly."""
        now = time.monotonic()
        cached = self._average
        if cached is not None and now - cached[0] < self.average_ttl:
            return cached[1]
        rows = self._run(lambda conn: conn.execute(RECENT).all())
        durations = [(f - s).total_seconds() for s, f in rows]
        value = sum(durations) / len(durations) if durations else 600.0
        with self._lock:
            self._average = (now, value)
        return value

    def dispose(self) -> None:
        self.engine.dispose()


def _snapshot(row: Any) -> Snapshot:
    m = row._mapping
    project = SimpleNamespace(**{c: m[f"p_{c}"] for c in _P_COLS})
    job = SimpleNamespace(**{c: m[f"j_{c}"] for c in _J_COLS}) if m["j_id"] is not None else None
    return Snapshot(m["t_kind"], m["t_status"], project, job, int(m["parts_done"] or 0), m["parts_last"])


def _read_engine(url: str, pool_size: int) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False},
                               pool_size=pool_size, max_overflow=0)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None  # autocommit: each SELECT reads the newest WAL snapshot
            dbapi_conn.execute("PRAGMA busy_timeout=60000")

        return engine
    return create_engine(url, isolation_level="AUTOCOMMIT", pool_size=pool_size, max_overflow=0,
                         pool_reset_on_return=None)
