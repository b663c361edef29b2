"""The polling path: ETag / 304, the progress stream (server-sent events), the bound on huge part counts and
the paged parts listing, and that the fast lane refuses exactly what the general path refused."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import text

from openscancloud.api.app import create_app
from openscancloud.domain.tokens import TokenKind
from openscancloud.settings import Settings

AUTH = ("openscan", "free")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _sql(ctx, statement: str, **params: Any) -> None:
    with ctx.db.engine.begin() as conn:
        conn.execute(text(statement), params)


def test_rest_etag_304_and_change(client, ctx, private_token):
    pid = client.post("/api/v1/projects", json={"name": "e.zip", "photos": 3, "filesize": 5000, "parts": 2},
                      headers=_bearer(private_token)).json()["id"]
    first = client.get(f"/api/v1/projects/{pid}", headers=_bearer(private_token))
    tag = first.headers["etag"]
    assert first.status_code == 200 and tag.startswith('W/"')
    again = client.get(f"/api/v1/projects/{pid}", headers={**_bearer(private_token), "If-None-Match": tag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag
    # the strong form of the same tag and a list containing it match too (weak comparison)
    for header in (tag.removeprefix("W/"), f'"nope", {tag}', "*"):
        r = client.get(f"/api/v1/projects/{pid}", headers={**_bearer(private_token), "If-None-Match": header})
        assert r.status_code == 304, header
    # an upload of a part changes the answer, so the old tag no longer matches
    link = first.json()["ulink"][0]
    assert client.post(link, content=b"x" * 4096).status_code == 200
    changed = client.get(f"/api/v1/projects/{pid}", headers={**_bearer(private_token), "If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["etag"] != tag
    assert changed.json()["parts"][0]["complete"] is True
    # a resumable (partial) upload lives only in storage and changes the tag as well
    tag2 = changed.headers["etag"]
    r = client.post(first.json()["ulink"][1], content=b"y" * 100, headers={"Content-Range": "bytes 0-99/904"})
    assert r.status_code in (200, 202, 308)
    after = client.get(f"/api/v1/projects/{pid}", headers={**_bearer(private_token), "If-None-Match": tag2})
    assert after.status_code == 200 and after.json()["parts"][1]["size"] == 100


def test_job_progress_changes_the_tag_but_the_clock_alone_does_not(client, ctx, private_token):
    pid = client.post("/api/v1/projects", json={"name": "p.zip", "photos": 3, "filesize": 100, "parts": 1},
                      headers=_bearer(private_token)).json()["id"]
    _sql(ctx, "UPDATE projects SET status='processing' WHERE id=:p", p=pid)
    _sql(ctx, "INSERT INTO jobs (id, project_id, status, priority, quality, attempt, max_attempts, cancel_requested,"
              " progress, user_error, queued_at, started_at, stage) VALUES ('j1', :p, 'running', 0, 'standard', 1, 3,"
              " false, 0.2, false, :t, :t, 'sparse')", p=pid, t=ctx.service.clock())
    r1 = client.get(f"/api/v1/projects/{pid}", headers=_bearer(private_token))
    assert r1.json()["progress"] == 20.0 and r1.json()["stage"] == "sparse"
    time.sleep(1.1)  # the ETA estimate drifts with the clock: still 304
    r2 = client.get(f"/api/v1/projects/{pid}", headers={**_bearer(private_token), "If-None-Match": r1.headers["etag"]})
    assert r2.status_code == 304
    _sql(ctx, "UPDATE jobs SET progress=0.5, stage='dense' WHERE id='j1'")
    r3 = client.get(f"/api/v1/projects/{pid}", headers={**_bearer(private_token), "If-None-Match": r1.headers["etag"]})
    assert r3.status_code == 200 and r3.json()["progress"] == 50.0 and r3.json()["stage"] == "dense"


def test_legacy_answer_has_an_etag_too(legacy, client, public_token):
    legacy("createProject", token=public_token, project="l.zip", photos=3, parts=1, filesize=100)
    r = legacy("getProjectInfo", token=public_token, project="l.zip")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    again = client.get("/getProjectInfo", params={"token": public_token, "project": "l.zip"}, auth=AUTH,
                       headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304


def test_fast_lane_refuses_like_the_general_path(legacy, client, ctx, public_token, private_token):
    legacy("createProject", token=private_token, project="mine.zip", photos=3, parts=1, filesize=100)
    pid = legacy("getProjectInfo", token=private_token, project="mine.zip").json()["id"]
    # legacy: Basic auth, unknown token, missing token, unknown project, another token's project
    r = client.get("/getProjectInfo", params={"token": private_token, "project": "mine.zip"}, auth=("x", "y"))
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
    assert legacy("getProjectInfo", token="prv_unknown", project="mine.zip").status_code == 401
    assert legacy("getProjectInfo", project="mine.zip").status_code == 401
    r = legacy("getProjectInfo", token=private_token, project="other.zip")
    assert r.status_code == 404 and r.json()["error"] == "unknown_project" and "other.zip" in r.json()["message"]
    assert legacy("getProjectInfo", token=public_token, project="mine.zip").status_code == 404
    r = legacy("getProjectInfo", token=private_token, project="../etc")
    assert r.status_code == 422 and r.json()["status"] == "error"
    # REST: no bearer, another token's project, unknown id (problem+json like every v1 error)
    r = client.get(f"/api/v1/projects/{pid}")
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")
    other, _ = ctx.service.create_token(TokenKind.PRIVATE)
    r = client.get(f"/api/v1/projects/{pid}", headers=_bearer(other))
    assert r.status_code == 403 and r.json()["code"] == "not_your_project"
    assert client.get("/api/v1/projects/nope", headers=_bearer(private_token)).status_code == 404
    # a revoked token is refused at once (the fast read sees the token's status)
    ctx.service.revoke_token(ctx.service.find_token(private_token).id)
    r = legacy("getProjectInfo", token=private_token, project="mine.zip")
    assert r.status_code == 403 and "revoked" in r.json()["message"]
    # a worker token may not read projects
    worker, _ = ctx.service.create_token(TokenKind.WORKER)
    assert legacy("getProjectInfo", token=worker, project="mine.zip").status_code in (403, 404)
    # POST getProjectInfo (form) still works through the router
    legacy("createProject", token=public_token, project="pub.zip", photos=3, parts=1, filesize=100)
    r = client.post("/getProjectInfo", data={"token": public_token, "project": "pub.zip"}, auth=AUTH)
    assert r.status_code == 200 and r.json()["project"] == "pub.zip"


def test_public_token_on_rest_takes_the_domain_path(client, ctx, public_token):
    """REST access of public projects has extra rules (per-project key) that live in the domain layer: without
    the key the fast path answers like an unknown id; with it, the same JSON with an ETag, and a 304 after."""
    created = client.post("/api/v1/projects", json={"name": "pub.zip", "photos": 3, "filesize": 100, "parts": 1},
                          headers=_bearer(public_token))
    pid, key = created.json()["id"], created.json()["project_key"]
    r = client.get(f"/api/v1/projects/{pid}", headers=_bearer(public_token))
    assert r.status_code == 404 and "X-Project-Key" in r.json()["detail"]
    r = client.get(f"/api/v1/projects/{pid}", headers={**_bearer(public_token), "X-Project-Key": key})
    assert r.status_code == 200 and r.json()["id"] == pid and r.json()["project_key"] == key and r.headers["etag"]
    again = client.get(f"/api/v1/projects/{pid}", headers={**_bearer(public_token), "X-Project-Key": key,
                                                          "If-None-Match": r.headers["etag"]})
    assert again.status_code == 304


def test_huge_part_count_is_bounded_and_paged(tmp_path):
    settings = Settings(data_dir=tmp_path / "d", part_limit_bytes=4096, maintenance_interval_seconds=0,
                        private_credit_gb=5.0, poll_parts_limit=100)
    app = create_app(settings, maintenance=False)
    ctx = app.state.ctx
    token, _ = ctx.service.create_token(TokenKind.PRIVATE)
    with TestClient(app) as client:
        r = client.get("/createProject", params=dict(token=token, project="many.zip", photos=3, parts=10_000,
                                                     filesize=10_000 * 4000), auth=AUTH)
        assert r.status_code == 200 and len(r.json()["ulink"]) == 10_000  # createProject still hands out all
        first_link = r.json()["ulink"][0]
        assert client.post(first_link, content=b"z" * 4000).status_code == 200
        info = client.get("/getProjectInfo", params={"token": token, "project": "many.zip"}, auth=AUTH)
        body = info.json()
        assert len(info.content) < 3000, len(info.content)
        assert body["parts_total"] == 10_000 and body["ulink"] == [] and body["parts"] == []
        assert body["parts_complete"] == 1 and body["parts_listing"].endswith(f"/api/v1/projects/{body['id']}/parts")
        page = client.get(f"/api/v1/projects/{body['id']}/parts", params={"offset": 0, "limit": 3},
                          headers=_bearer(token)).json()
        assert page["parts_total"] == 10_000 and [p["index"] for p in page["parts"]] == [0, 1, 2]
        assert page["parts"][0]["complete"] is True and page["parts"][0]["ulink"] == first_link
        assert page["parts"][1]["complete"] is False and page["parts"][1]["ulink"].split("?")[0].endswith("/1")
        last = client.get(f"/api/v1/projects/{body['id']}/parts", params={"offset": 9_998, "limit": 1000},
                          headers=_bearer(token)).json()
        assert [p["index"] for p in last["parts"]] == [9_998, 9_999]
        assert client.get(f"/api/v1/projects/{body['id']}/parts", params={"limit": 5000},
                          headers=_bearer(token)).status_code == 422
    ctx.db.dispose()


# --- the progress stream, over a real uvicorn server ----------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=["sqlite", "postgresql"])
def live(request, tmp_path):
    """A real uvicorn server (SQLite or PostgreSQL) with a fast event interval; yields (base, ctx, token)."""
    db = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    settings = Settings(data_dir=tmp_path / "data", maintenance_interval_seconds=0, private_credit_gb=5.0,
                        database_url=db, events_interval_seconds=0.1, events_keepalive_seconds=0.3)
    app = create_app(settings, maintenance=False)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    ctx = app.state.ctx
    token, _ = ctx.service.create_token(TokenKind.PRIVATE)
    yield f"http://127.0.0.1:{port}", ctx, token
    server.should_exit = True
    thread.join(timeout=10)


def _events(lines: Any) -> Any:
    """(event, data) pairs and keep-alive comments of a text/event-stream, in order."""
    event = None
    for line in lines:
        if line.startswith(":"):
            yield ("comment", line)
        elif line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            yield (event, json.loads(line[6:]))


def test_event_stream_pushes_changes_and_ends_at_a_terminal_state(live):
    base, ctx, token = live
    with httpx.Client(base_url=base, headers=_bearer(token), timeout=20) as http:
        pid = http.post("/api/v1/projects", json={"name": "s.zip", "photos": 3, "filesize": 100, "parts": 1}).json()["id"]
        _sql(ctx, "UPDATE projects SET status='processing' WHERE id=:p", p=pid)
        _sql(ctx, "INSERT INTO jobs (id, project_id, status, priority, quality, attempt, max_attempts, "
                  "cancel_requested, progress, user_error, queued_at, started_at, stage) VALUES ('js', :p, 'running',"
                  " 0, 'standard', 1, 3, false, 0.1, false, :t, :t, 'sparse')", p=pid, t=ctx.service.clock())
        seen: list[tuple[str, Any]] = []
        with http.stream("GET", f"/api/v1/projects/{pid}/events") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            for item in _events(stream.iter_lines()):
                seen.append(item)
                statuses = [d for e, d in seen if e == "status"]
                if len(statuses) == 1 and item[0] == "status":
                    # the first event is exactly the JSON of GET /api/v1/projects/{id}
                    assert item[1] == http.get(f"/api/v1/projects/{pid}").json() | {"eta_seconds": item[1]["eta_seconds"]}
                if item[0] == "comment" and len(statuses) == 1:
                    _sql(ctx, "UPDATE jobs SET progress=0.6, stage='dense' WHERE id='js'")
                if len(statuses) == 2 and item[0] == "status":
                    with ctx.db.engine.begin() as conn:  # one transaction: the stream must not see half of it
                        conn.execute(text("UPDATE jobs SET status='failed', progress=1.0 WHERE id='js'"))
                        conn.execute(text("UPDATE projects SET status='failed', error='engine said no' WHERE id=:p"),
                                     {"p": pid})
        statuses = [d for e, d in seen if e == "status"]
        assert [s["status"] for s in statuses] == ["processing", "processing", "failed"]
        assert statuses[0]["progress"] == 10.0 and statuses[1]["progress"] == 60.0 and statuses[1]["stage"] == "dense"
        assert statuses[2]["error"] == "engine said no"
        assert ("comment", ": keep-alive") in seen  # silence between changes is filled with keep-alive comments
        # a stream on a project that is already finished sends its state once and ends
        with http.stream("GET", f"/api/v1/projects/{pid}/events") as stream:
            items = list(_events(stream.iter_lines()))
        assert [e for e, _ in items] == ["status"] and items[0][1]["status"] == "failed"


def test_event_stream_refusals_and_deletion(live):
    base, ctx, token = live
    with httpx.Client(base_url=base, timeout=20) as http:
        assert http.get("/api/v1/projects/x/events").status_code == 401
        r = http.get("/api/v1/projects/nope/events", headers=_bearer(token))
        assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
        pid = http.post("/api/v1/projects", json={"name": "d.zip", "photos": 3, "filesize": 100, "parts": 1},
                        headers=_bearer(token)).json()["id"]
        with http.stream("GET", f"/api/v1/projects/{pid}/events", headers=_bearer(token)) as stream:
            items = []
            for item in _events(stream.iter_lines()):
                items.append(item)
                if len(items) == 1:
                    assert http.delete(f"/api/v1/projects/{pid}", headers=_bearer(token)).status_code == 204
        assert items[0][0] == "status" and items[-1][0] == "error" and items[-1][1]["status"] == 404


def test_postgres_read_connections_recover_after_the_server_dropped_them(tmp_path, pg_url):
    """A database restart kills the polling path's idle connections: the next poll reconnects instead of
    failing (the dead ones are dropped and the read is retried once)."""
    import uuid

    from sqlalchemy import create_engine

    name = f"poll_recover_{uuid.uuid4().hex[:8]}"  # tells this test's connections apart from any other's
    settings = Settings(data_dir=tmp_path / "d", maintenance_interval_seconds=0, private_credit_gb=5.0,
                        database_url=f"{pg_url}&application_name={name}")
    app = create_app(settings, maintenance=False)
    ctx = app.state.ctx
    token, _ = ctx.service.create_token(TokenKind.PRIVATE)
    with TestClient(app) as client:
        pid = client.post("/api/v1/projects", json={"name": "r.zip", "photos": 3, "filesize": 100, "parts": 1},
                          headers=_bearer(token)).json()["id"]
        first = client.get(f"/api/v1/projects/{pid}", headers=_bearer(token))
        assert first.status_code == 200
        admin = create_engine(pg_url)
        with admin.begin() as conn:  # the reader's connections: their last statement was the poll snapshot
            killed = conn.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                "AND state = 'idle' AND application_name = :name AND query LIKE 'SELECT tokens.kind AS t_kind%'"),
                {"name": name}).scalar()
        admin.dispose()
        assert killed >= 1
        again = client.get(f"/api/v1/projects/{pid}", headers=_bearer(token))
        assert again.status_code == 200 and again.content == first.content
    ctx.db.dispose()
