"""Periodic maintenance with a moved clock: unstarted projects expire with a refund, data is deleted after the
retention period (public inputs kept for research), the public allowance is a rolling 24 hours."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from openscancloud.api.app import create_app
from openscancloud.db.models import utcnow
from openscancloud.domain.tokens import TokenKind
from openscancloud.settings import Settings

AUTH = ("openscan", "free")


@pytest.fixture
def env(tmp_path):
    app = create_app(Settings(data_dir=tmp_path / "d", public_daily_credit_gb=0.001), maintenance=False)
    with TestClient(app) as client:
        yield app.state.ctx, client


def shift(ctx, delta: timedelta) -> None:
    """Move the service's clock (the queue shares the same idea of now)."""
    ctx.service.clock = ctx.queue.clock = lambda: utcnow() + delta


def small_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.jpg", b"x" * 1000)
    return buf.getvalue()


def ledger_kinds(ctx, token):
    row = ctx.service.find_token(token)
    with ctx.service.uow() as repo:
        return [e.kind for e in repo.ledger(token_id=row.id)]


def test_unstarted_project_expires_with_refund(env):
    ctx, client = env
    token, _ = ctx.service.create_token(TokenKind.PRIVATE, forename="A", surname="B", email="a@b.org", credit_gb=1)
    info = client.get("/createProject", params=dict(token=token, project="late.zip", photos=1, parts=1,
                                                    filesize=len(small_zip())), auth=AUTH).json()
    client.post(info["ulink"][0], content=small_zip())
    assert ctx.maintenance.run_once()["projects_expired"] == 0
    shift(ctx, timedelta(seconds=ctx.settings.upload_link_seconds + 5))
    assert ctx.maintenance.run_once()["projects_expired"] == 1
    p = client.get("/getProjectInfo", params=dict(token=token, project="late.zip"), auth=AUTH).json()
    assert p["status"] == "expired" and "not started" in p["error"] and p["ulink"] == []
    assert ledger_kinds(ctx, token) == ["grant", "charge", "refund"]
    assert ctx.maintenance.run_once()["projects_expired"] == 0  # only once
    r = client.get("/startProject", params=dict(token=token, project="late.zip"), auth=AUTH)
    assert r.status_code == 409


def _done_project(ctx, client, token, name):
    data = small_zip()
    info = client.get("/createProject", params=dict(token=token, project=name, photos=1, parts=1,
                                                    filesize=len(data)), auth=AUTH).json()
    client.post(info["ulink"][0], content=data)
    client.get("/startProject", params=dict(token=token, project=name), auth=AUTH)
    wt, _ = ctx.service.create_token(TokenKind.WORKER, label="w")
    h = {"Authorization": f"Bearer {wt}"}
    wid = client.post("/api/v1/worker/register", json={"name": "w"}, headers=h).json()["worker_id"]
    job = client.post("/api/v1/worker/claim", json={"worker_id": wid}, headers=h).json()
    client.put(job["result_url"], content=data)
    client.post(f"/api/v1/worker/jobs/{job['job_id']}/complete", json={"attempt": 1}, headers=h)
    return info["id"]


def test_retention_cleanup(env):
    ctx, client = env
    private, _ = ctx.service.create_token(TokenKind.PRIVATE, forename="A", surname="B", email="a@b.org")
    public = ctx.service.public_token()
    pid_private = _done_project(ctx, client, private, "p.zip")
    pid_public = _done_project(ctx, client, public, "q.zip")
    dlink = client.get("/getProjectInfo", params=dict(token=private, project="p.zip"), auth=AUTH).json()["dlink"]
    assert client.get(dlink).status_code == 200
    assert ctx.storage.input_size(pid_public) is not None  # research copy
    assert ctx.storage.input_size(pid_private) is not None  # kept until retention: it can be reprocessed
    shift(ctx, timedelta(days=ctx.settings.retention_days, hours=1))
    assert ctx.maintenance.run_once()["projects_cleaned"] == 2
    assert ctx.storage.result_size(pid_private) is None and ctx.storage.result_size(pid_public) is None
    assert ctx.storage.input_size(pid_public) is not None
    assert ctx.storage.input_size(pid_private) is None  # private photos deleted with the result
    gone = client.get(dlink)
    assert gone.status_code == 410 and gone.json()["error"] == "link_expired"
    p = client.get("/getProjectInfo", params=dict(token=private, project="p.zip"), auth=AUTH).json()
    assert p["dlink"] is None


def test_public_allowance_is_rolling_24h(env):
    """The public token is charged when a project starts (announcing one is free); what was charged comes back
    24 hours later."""
    ctx, client = env  # allowance 0.001 GB = 1 MB
    public = ctx.service.public_token()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("a.jpg", bytes(range(256)) * 2343)  # ~600 kB that do not compress
    data = buf.getvalue()
    assert 590_000 < len(data) < 610_000
    made = client.get("/createProject", params=dict(token=public, project="a.zip", photos=1, parts=1,
                                                    filesize=len(data)), auth=AUTH)
    assert made.status_code == 200
    assert client.post(made.json()["ulink"][0], content=data).status_code == 200
    assert client.get("/startProject", params=dict(token=public, project="a.zip"), auth=AUTH).status_code == 200
    r = client.get("/createProject", params=dict(token=public, project="b.zip", photos=1, parts=1,
                                                 filesize=600_000), auth=AUTH)
    assert r.status_code == 402
    shift(ctx, timedelta(hours=24, minutes=1))
    assert client.get("/getTokenInfo", params=dict(token=public), auth=AUTH).json()["credit"] == pytest.approx(0.001)
    r = client.get("/createProject", params=dict(token=public, project="b.zip", photos=1, parts=1,
                                                 filesize=600_000), auth=AUTH)
    assert r.status_code == 200


def test_download_link_expires_with_the_retention_period(env):
    """The signed result link is valid until the retention period ends, judged by the server's clock: moved to an
    hour before the end it still downloads, a minute after it answers 410 with a sentence, even before the
    periodic clean-up has deleted anything."""
    ctx, client = env
    private, _ = ctx.service.create_token(TokenKind.PRIVATE, forename="A", surname="B", email="a@b.org")
    pid = _done_project(ctx, client, private, "kept.zip")
    dlink = client.get("/getProjectInfo", params=dict(token=private, project="kept.zip"), auth=AUTH).json()["dlink"]
    retention = timedelta(days=ctx.settings.retention_days)
    shift(ctx, retention - timedelta(hours=1))
    r = client.get(dlink)
    assert r.status_code == 200 and zipfile.ZipFile(io.BytesIO(r.content)).read("a.jpg") == b"x" * 1000
    shift(ctx, retention + timedelta(minutes=1))
    r = client.get(dlink)
    assert r.status_code == 410
    assert r.json() == {"status": "error", "error": "link_expired",
                        "message": "This link has expired; ask for a new one (getProjectInfo)."}
    assert ctx.storage.result_size(pid) is not None  # refused by its date, not because the file is gone
    tampered = dlink.replace("&s=", "&s=0")
    assert client.get(tampered).status_code == 403


def test_upload_link_expires_after_its_lifetime(env):
    ctx, client = env
    token, _ = ctx.service.create_token(TokenKind.PRIVATE, forename="A", surname="B", email="a@b.org", credit_gb=1)
    data = small_zip()
    info = client.get("/createProject", params=dict(token=token, project="slow.zip", photos=1, parts=1,
                                                    filesize=len(data)), auth=AUTH).json()
    shift(ctx, timedelta(seconds=ctx.settings.upload_link_seconds - 60))
    assert client.head(info["ulink"][0]).status_code == 200  # still valid a minute before the end
    shift(ctx, timedelta(seconds=ctx.settings.upload_link_seconds + 60))
    r = client.post(info["ulink"][0], content=data)
    assert r.status_code == 410 and r.json()["error"] == "link_expired"
    assert "expired" in r.json()["message"]
    p = client.get("/getProjectInfo", params=dict(token=token, project="slow.zip"), auth=AUTH).json()
    assert [part["size"] for part in p["parts"]] == [0]  # nothing was written through the dead link
