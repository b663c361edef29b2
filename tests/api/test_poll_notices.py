"""Polls answered from memory on PostgreSQL (api.poll_cache + db.changes): while a project is unchanged a poll
— 200 or 304 — costs no database read, and every kind of change, made by another connection as another replica
or a worker would, is seen within moments; a lost LISTEN connection means reads, never stale answers."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from openscancloud.api.app import create_app
from types import SimpleNamespace

from openscancloud.api.poll_cache import PollCache
from openscancloud.db.changes import ChangeFeed
from openscancloud.domain.tokens import TokenKind, hash_token
from openscancloud.settings import Settings


def _until(condition: Any, seconds: float = 5.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"not within {seconds} s")


@pytest.fixture
def pg_app(tmp_path, pg_url):
    app = create_app(Settings(data_dir=tmp_path / "d", database_url=pg_url), maintenance=False)
    other = create_engine(pg_url)  # another replica's connection: its writes reach this process only as notices
    with TestClient(app) as client:
        yield app.state.ctx, client, other
    other.dispose()


def _processing_project(ctx, client, other, token: str) -> str:
    pid = client.post("/api/v1/projects", json={"name": "n.zip", "photos": 3, "filesize": 100, "parts": 1},
                      headers={"Authorization": f"Bearer {token}"}).json()["id"]
    with other.begin() as conn:
        conn.execute(text("UPDATE projects SET status='processing' WHERE id=:p"), {"p": pid})
        conn.execute(text(
            "INSERT INTO jobs (id, project_id, status, priority, quality, attempt, max_attempts, cancel_requested,"
            " progress, user_error, queued_at, started_at, stage) VALUES ('j1', :p, 'running', 0, 'standard', 1, 3,"
            " false, 0.2, false, now(), now(), 'sparse')"), {"p": pid})
    return pid


def test_unchanged_projects_revalidate_from_memory_and_changes_are_seen(pg_app):
    ctx, client, other = pg_app
    token, _ = ctx.service.create_token(TokenKind.PRIVATE, label="poller", credit_gb=1)
    bearer = {"Authorization": f"Bearer {token}"}
    pid = _processing_project(ctx, client, other, token)
    cache = ctx.poller.cache
    assert cache is not None
    client.get(f"/api/v1/projects/{pid}", headers=bearer)  # starts the change feed
    _until(lambda: cache.feed.healthy)
    first = client.get(f"/api/v1/projects/{pid}", headers=bearer)
    tag = first.headers["etag"]
    hits = cache.hits
    for _ in range(5):
        r = client.get(f"/api/v1/projects/{pid}", headers={**bearer, "If-None-Match": tag})
        assert r.status_code == 304 and r.headers["etag"] == tag
    again = client.get(f"/api/v1/projects/{pid}", headers=bearer)
    assert again.status_code == 200 and again.headers["etag"] == tag
    assert again.json() == first.json() | {"eta_seconds": again.json()["eta_seconds"]}
    assert cache.hits == hits + 6  # no database read for any of them

    def changed(statement: str, **params: Any) -> Any:
        nonlocal tag
        with other.begin() as conn:
            conn.execute(text(statement), {"p": pid, **params})
        r = _until(lambda: (lambda a: a if a.status_code != 304 else None)(
            client.get(f"/api/v1/projects/{pid}", headers={**bearer, "If-None-Match": tag})))
        assert r.status_code == 200 and r.headers["etag"] != tag
        tag = r.headers["etag"]
        return r.json()

    assert changed("UPDATE jobs SET progress=0.6, stage='dense' WHERE project_id=:p")["stage"] == "dense"
    assert changed("UPDATE projects SET name='renamed.zip' WHERE id=:p")["name"] == "renamed.zip"
    parts = changed("INSERT INTO parts (project_id, index, size, sha256, received_at) VALUES (:p, 0, 100, :h, now())",
                    h="ab" * 32)["parts"]
    assert parts[0]["complete"] is True
    # the legacy endpoint is revalidated from memory too, and sees the same changes
    legacy = dict(token=token, project="renamed.zip")
    ltag = client.get("/getProjectInfo", params=legacy, auth=("openscan", "free")).headers["etag"]
    assert client.get("/getProjectInfo", params=legacy, auth=("openscan", "free"),
                      headers={"If-None-Match": ltag}).status_code == 304
    with other.begin() as conn:
        conn.execute(text("UPDATE jobs SET progress=0.9 WHERE project_id=:p"), {"p": pid})
    _until(lambda: client.get("/getProjectInfo", params=legacy, auth=("openscan", "free"),
                              headers={"If-None-Match": ltag}).status_code == 200)
    # a revoked token is refused at once, not answered 304 from memory
    tag = client.get(f"/api/v1/projects/{pid}", headers=bearer).headers["etag"]
    assert client.get(f"/api/v1/projects/{pid}", headers={**bearer, "If-None-Match": tag}).status_code == 304
    with other.begin() as conn:
        conn.execute(text("UPDATE tokens SET status='revoked' WHERE token_hash=:h"),
                     {"h": hash_token(token)})
    r = _until(lambda: (lambda a: a if a.status_code != 304 else None)(
        client.get(f"/api/v1/projects/{pid}", headers={**bearer, "If-None-Match": tag})))
    assert r.status_code in (401, 403), r.text


def test_a_lost_listener_means_database_reads_until_it_is_back(pg_app):
    ctx, client, other = pg_app
    token, _ = ctx.service.create_token(TokenKind.PRIVATE, label="poller", credit_gb=1)
    bearer = {"Authorization": f"Bearer {token}"}
    pid = _processing_project(ctx, client, other, token)
    feed = ctx.poller.cache.feed
    client.get(f"/api/v1/projects/{pid}", headers=bearer)
    _until(lambda: feed.healthy)
    tag = client.get(f"/api/v1/projects/{pid}", headers=bearer).headers["etag"]
    first_backend = feed.backend_pid
    with other.begin() as conn:  # the database drops the LISTEN connection (restart, failover, idle killer)
        conn.execute(text("SELECT pg_terminate_backend(:b)"), {"b": first_backend})
        conn.execute(text("UPDATE jobs SET progress=0.7 WHERE project_id=:p"), {"p": pid})
    # the change made as the listener died cannot arrive as a notice; it is seen as soon as the feed notices
    # the lost connection (here: moments; a silently broken network: the ping, ≤ 2 × ping_seconds)
    r = _until(lambda: (lambda a: a if a.status_code != 304 else None)(
        client.get(f"/api/v1/projects/{pid}", headers={**bearer, "If-None-Match": tag})), seconds=2)
    assert r.status_code == 200 and r.json()["progress"] == 70.0
    _until(lambda: feed.healthy and feed.backend_pid != first_backend, seconds=15)
    tag = client.get(f"/api/v1/projects/{pid}", headers=bearer).headers["etag"]
    hits = ctx.poller.cache.hits
    assert client.get(f"/api/v1/projects/{pid}", headers={**bearer, "If-None-Match": tag}).status_code == 304
    assert ctx.poller.cache.hits == hits + 1


def test_a_queued_project_is_read_again_when_the_queue_moves(pg_app):
    ctx, client, other = pg_app
    token, _ = ctx.service.create_token(TokenKind.PRIVATE, label="poller", credit_gb=1)
    bearer = {"Authorization": f"Bearer {token}"}
    pid = client.post("/api/v1/projects", json={"name": "q.zip", "photos": 3, "filesize": 100, "parts": 1},
                      headers=bearer).json()["id"]
    rival = client.post("/api/v1/projects", json={"name": "r.zip", "photos": 3, "filesize": 100, "parts": 1},
                        headers=bearer).json()["id"]
    insert = ("INSERT INTO jobs (id, project_id, status, priority, quality, attempt, max_attempts, cancel_requested,"
              " progress, user_error, queued_at) VALUES (:j, :p, 'queued', :prio, 'standard', 1, 3, false, 0, false,"
              " now())")
    with other.begin() as conn:
        conn.execute(text("UPDATE projects SET status='queued' WHERE id=:p"), {"p": pid})
        conn.execute(text(insert), {"j": "jq", "p": pid, "prio": 0})
    cache = ctx.poller.cache
    client.get(f"/api/v1/projects/{pid}", headers=bearer)
    _until(lambda: cache.feed.healthy)
    client.get(f"/api/v1/projects/{pid}", headers=bearer)
    key = next(iter(cache._entries))
    assert cache._entries[key].queued and cache._entries[key].snap.queue_ahead == 0
    with other.begin() as conn:  # a job of another project jumps the queue (a higher priority)
        conn.execute(text(insert), {"j": "jr", "p": rival, "prio": -10})
    _until(lambda: key not in cache._entries)
    client.get(f"/api/v1/projects/{pid}", headers=bearer)
    assert cache._entries[key].snap.queue_ahead == 1


def _snap(project_id: str) -> SimpleNamespace:
    return SimpleNamespace(project=SimpleNamespace(id=project_id), job=None)


def test_a_read_overtaken_by_a_notice_is_not_kept():
    """The race the sequence numbers exist for: a read starts, the project changes and its notice arrives, then
    the read (older than the change) finishes — it must not be kept."""
    cache = PollCache()
    feed = cache.feed = ChangeFeed({}, on_change=cache.forget, on_reset=cache.clear, on_queue=cache.forget_queued)
    feed.ensure_started = lambda: None  # no database here: the feed is driven by hand
    feed.healthy = True
    mark = cache.mark()
    feed._notice("p1")  # arrives while the read is under way
    cache.store("k1", mark, 'W/"old"', _snap("p1"))
    assert cache.lookup("k1") is None
    mark = cache.mark()
    cache.store("k1", mark, 'W/"new"', _snap("p1"))
    cache.store("k2", mark, 'W/"other"', _snap("p2"))
    assert cache.lookup("k1").etag == 'W/"new"'
    feed._notice("p1")  # a later change removes it; other projects keep theirs
    assert cache.lookup("k1") is None and cache.lookup("k2").etag == 'W/"other"'
    queued = SimpleNamespace(project=SimpleNamespace(id="p3"), job=SimpleNamespace(status="queued"))
    mark = cache.mark()
    feed._notice("#queue")  # the queue moved during the read of a queued project: not kept
    cache.store("k3", mark, 'W/"q"', queued)
    assert cache.lookup("k3") is None
    cache.store("k3", cache.mark(), 'W/"q"', queued)
    feed._notice("#queue")  # and forgotten when it moves later; unqueued projects stay
    assert cache.lookup("k3") is None and cache.lookup("k2") is not None
    feed._notice("*")  # a token changed: nothing is trusted
    assert len(cache) == 0
    feed.healthy = False
    cache.store("k4", cache.mark(), 'W/"x"', _snap("p4"))
    assert len(cache) == 0


def test_without_the_triggers_every_poll_reads(pg_app):
    """A database whose triggers are missing (dropped by hand, restored from a dump without them): the feed says
    so once and turns itself off for good; polls read the database and see every change at once."""
    ctx, client, other = pg_app
    with other.begin() as conn:
        conn.execute(text("DROP TRIGGER osc_changes ON jobs"))
    token, _ = ctx.service.create_token(TokenKind.PRIVATE, label="poller", credit_gb=1)
    bearer = {"Authorization": f"Bearer {token}"}
    pid = _processing_project(ctx, client, other, token)
    cache = ctx.poller.cache
    client.get(f"/api/v1/projects/{pid}", headers=bearer)
    _until(lambda: cache.feed.disabled)
    for progress in (0.3, 0.4, 0.5):
        tag = client.get(f"/api/v1/projects/{pid}", headers=bearer).headers["etag"]
        with other.begin() as conn:
            conn.execute(text("UPDATE jobs SET progress=:g WHERE project_id=:p"), {"g": progress, "p": pid})
        r = client.get(f"/api/v1/projects/{pid}", headers={**bearer, "If-None-Match": tag})
        assert r.status_code == 200 and r.json()["progress"] == progress * 100
    assert cache.hits == 0 and cache.feed._task.done()
