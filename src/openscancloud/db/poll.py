"""The SQL of the polling path: what `getProjectInfo`, `GET /api/v1/projects/{id}` and the progress stream
need, in one round trip.

Every scanner, CLI and browser polls a project every few seconds while its job runs, so this path is the
server's hottest. The general ORM path costs a transaction (BEGIN, a connection ping, COMMIT) and four to six
queries (token, project, latest job, parts, queue, recent durations) through the ORM. Here:

* one statement reads the token, the project, its latest job, its complete parts (as one aggregated string, only
  up to the listing limit), two part aggregates for the change tag, and the job's place in the queue;
* on PostgreSQL it runs on psycopg's native async connections (autocommit, a small pool per event loop, no thread
  hop); elsewhere (SQLite) on a separate autocommit SQLAlchemy pool in a few threads, which also keeps polls out
  of the main engine's `BEGIN IMMEDIATE` write lock;
* a connection that died (database restart) fails its statement, is dropped, and the read is retried once.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, NamedTuple

from sqlalchemy import (
    Engine,
    String,
    bindparam,
    case,
    cast,
    create_engine,
    event,
    func,
    literal_column,
    select,
    tuple_,
)
from sqlalchemy.exc import DBAPIError

from openscancloud.db.changes import ChangeFeed
from openscancloud.db.models import Job, Part, Project, Token

_P, _T, _J, _PARTS = Project.__table__, Token.__table__, Job.__table__, Part.__table__
_JJ = _J.alias("latest")
_LATEST_JOB = (
    select(_JJ.c.id).where(_JJ.c.project_id == _P.c.id).order_by(_JJ.c.queued_at.desc(), _JJ.c.id).limit(1)
    .correlate(_P).scalar_subquery()
)
_AHEAD = _J.alias("ahead")
_QUEUE_AHEAD = case((_J.c.status == "queued", select(func.count()).where(
    _AHEAD.c.status == "queued",
    tuple_(_AHEAD.c.priority, _AHEAD.c.queued_at, _AHEAD.c.id) < tuple_(_J.c.priority, _J.c.queued_at, _J.c.id),
).correlate(_J).scalar_subquery()), else_=0)
# "index:size:sha256,..." of the complete parts, only for projects within the listing limit (bound parameter)
_PARTS_LIST = case((_P.c.parts <= bindparam("parts_limit"), select(func.aggregate_strings(
    cast(_PARTS.c.index, String) + ":" + cast(_PARTS.c.size, String) + ":" + _PARTS.c.sha256, literal_column("','"),
)).where(_PARTS.c.project_id == _P.c.id).scalar_subquery()), else_=None)
_SNAPSHOT = select(
    _T.c.kind.label("t_kind"), _T.c.status.label("t_status"),
    *[c.label(f"p_{c.name}") for c in _P.c],
    *[c.label(f"j_{c.name}") for c in _J.c],
    select(func.count()).where(_PARTS.c.project_id == _P.c.id).scalar_subquery().label("parts_done"),
    select(func.max(_PARTS.c.received_at)).where(_PARTS.c.project_id == _P.c.id).scalar_subquery()
    .label("parts_last"),
    _PARTS_LIST.label("parts_list"),
    _QUEUE_AHEAD.label("queue_ahead"),
).select_from(_T.join(_P, _P.c.token_id == _T.c.id).outerjoin(_J, _J.c.id == _LATEST_JOB))
BY_NAME = _SNAPSHOT.where(_T.c.token_hash == bindparam("h"), _P.c.name == bindparam("name"))
BY_ID = _SNAPSHOT.where(_T.c.token_hash == bindparam("h"), _P.c.id == bindparam("pid"))
_P_COLS = [c.name for c in _P.c]
_J_COLS = [c.name for c in _J.c]


class PartRow(NamedTuple):
    index: int
    size: int
    sha256: str


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
    parts: tuple["PartRow", ...] | None  # complete parts in index order; None above the listing limit
    queue_ahead: int  # queued jobs before this project's job (0 unless it is queued)

    def version_key(self) -> tuple:
        """Everything the answer depends on except the clock: equal keys mean an equal answer (apart from the
        ETA estimate). Used for the ETag and by the progress stream to notice changes."""
        p, j = self.project, self.job  # attributes in column order (built that way by `_snapshot`)
        return (tuple(vars(p).values()), None if j is None else tuple(vars(j).values()),
                self.parts_done, self.parts_last, self.parts)


class PollReader:
    """Read access for the polling path, awaited from the event loop; one per process, built with the app.
    `make_reader` picks the implementation: native async psycopg on PostgreSQL (no thread hop at all), a
    small thread pool over SQLAlchemy elsewhere (SQLite)."""

    pool_size: int

    async def _first(self, stmt: Any, params: dict[str, Any]) -> Any: ...
    def close(self) -> None: ...

    def change_feed(self, on_change: Any, on_reset: Any, on_queue: Any) -> ChangeFeed | None:
        """A listener for this database's change notices, or None where there are none (SQLite)."""
        return None

    async def snapshot(self, token_hash: str, *, name: str | None = None, project_id: str | None = None,
                       parts_limit: int = 1000) -> Snapshot | None:
        """The project of this token (by name or id) with its latest job, its complete parts (when it has at
        most `parts_limit`) and its queue position, in one statement; None when there is no such pair (the caller
        then asks the domain layer, which explains why)."""
        params: dict[str, Any] = {"h": token_hash, "parts_limit": parts_limit}
        if project_id is not None:
            stmt, params["pid"] = BY_ID, project_id
        else:
            stmt, params["name"] = BY_NAME, name
        row = await self._first(stmt, params)
        return None if row is None else _snapshot(row, parts_limit)


def make_reader(url: str, pool_size: int = 8) -> PollReader:
    if url.startswith(("postgresql+psycopg:", "postgresql:", "postgres:")):
        return AsyncPgReader(url, pool_size)
    return ThreadedReader(url, pool_size)


class ThreadedReader(PollReader):
    """SQLAlchemy on a read-only pool in autocommit mode, one thread per connection (SQLite)."""

    def __init__(self, url: str, pool_size: int = 8) -> None:
        self.engine: Engine = _read_engine(url, pool_size)
        self.pool_size = pool_size
        self.executor = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="poll-read")

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

    async def _first(self, stmt: Any, params: dict[str, Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, self._run, lambda conn: conn.execute(stmt, params).first())

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.engine.dispose()


class AsyncPgReader(PollReader):
    """psycopg's native async connections (autocommit) in a small pool of this process's event loop. The
    statements are compiled once from the SQLAlchemy definitions above; psycopg prepares them on the server
    after a few uses. A connection that fails (database restart) is dropped and the read retried once."""

    def __init__(self, url: str, pool_size: int = 8) -> None:
        from sqlalchemy.dialects.postgresql import psycopg as pg_dialect
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        self.connect_kwargs: dict[str, Any] = {
            k: v for k, v in {"host": parsed.host, "port": parsed.port, "user": parsed.username,
                              "password": parsed.password, "dbname": parsed.database}.items() if v is not None}
        self.connect_kwargs.update({k: v if isinstance(v, str) else v[-1] for k, v in parsed.query.items()})
        self.pool_size = pool_size
        dialect = pg_dialect.dialect()
        self._sql: dict[int, tuple[str, dict[str, Any]]] = {}
        for stmt in (BY_NAME, BY_ID):
            compiled = stmt.compile(dialect=dialect)
            self._sql[id(stmt)] = (str(compiled), dict(compiled.params))
        self._loop: Any = None
        self._idle: list[Any] = []
        self._slots: asyncio.Semaphore | None = None

    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (tests start several): connections of the old are unusable
            self._loop, self._idle, self._slots = loop, [], asyncio.Semaphore(self.pool_size)

    async def _execute(self, stmt: Any, params: dict[str, Any]) -> Any:
        import psycopg

        self._bind_loop()
        sql, defaults = self._sql[id(stmt)]
        values = {**defaults, **params}
        async with self._slots:  # type: ignore[union-attr]
            for attempt in (1, 2):
                conn = self._idle.pop() if self._idle else await psycopg.AsyncConnection.connect(
                    autocommit=True, **self.connect_kwargs)
                try:
                    cur = await conn.execute(sql, values)
                    # plain tuples (cheapest to build) named by the cursor's columns
                    row = await cur.fetchone()
                    result = None if row is None else dict(zip([c.name for c in cur.description], row))
                except psycopg.OperationalError:
                    # the server went away (restart, failover): the other idle connections are as dead as this one
                    stale, self._idle = self._idle, []
                    for dead in (conn, *stale):
                        await _close_quietly(dead)
                    if attempt == 2:
                        raise
                    continue
                except BaseException:
                    await _close_quietly(conn)
                    raise
                self._idle.append(conn)
                return result

    async def _first(self, stmt: Any, params: dict[str, Any]) -> Any:
        return await self._execute(stmt, params)

    def change_feed(self, on_change: Any, on_reset: Any, on_queue: Any) -> ChangeFeed | None:
        return ChangeFeed(self.connect_kwargs, on_change, on_reset, on_queue)

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            try:
                conn.pgconn.finish()  # synchronous close of the socket; no round trip needed
            except Exception:
                pass


async def _close_quietly(conn: Any) -> None:
    try:
        await conn.close()
    except Exception:
        pass


def _snapshot(row: Any, parts_limit: int) -> Snapshot:
    m = row._mapping if hasattr(row, "_mapping") else row  # SQLAlchemy Row, or a dict from the async reader
    project = SimpleNamespace(**{c: m[f"p_{c}"] for c in _P_COLS})
    job = SimpleNamespace(**{c: m[f"j_{c}"] for c in _J_COLS}) if m["j_id"] is not None else None
    listed = project.parts <= parts_limit
    return Snapshot(m["t_kind"], m["t_status"], project, job, int(m["parts_done"] or 0), m["parts_last"],
                    _parse_parts(m["parts_list"]) if listed else None, int(m["queue_ahead"] or 0))


def _parse_parts(text: str | None) -> tuple[PartRow, ...]:
    if not text:
        return ()
    rows = []
    for item in text.split(","):
        index, size, sha256 = item.split(":")
        rows.append(PartRow(int(index), int(size), sha256))
    rows.sort()
    return tuple(rows)


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
