"""The worker HTTP API driven directly (register / claim / heartbeat / result upload / complete / fail):
lease expiry, attempts, cancel, priority order, credit refunds in the ledger, result download with Range."""

from __future__ import annotations

import hashlib
import io
import time
import zipfile

import pytest

OBJ = b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"


def result_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model.obj", OBJ)
        zf.writestr("report.json", '{"images_registered": 3}')
    return buf.getvalue()


def ledger(ctx, token):
    row = ctx.service.find_token(token)
    with ctx.service.uow() as repo:
        return [(e.kind, e.amount_gb) for e in repo.ledger(token_id=row.id)]


@pytest.fixture
def queued(uploaded, legacy, photos_zip):
    def run(token: str, name: str) -> str:
        uploaded(token, name, photos_zip(3))
        r = legacy("startProject", token=token, project=name)
        assert r.status_code == 200, r.text
        return name

    return run


@pytest.fixture
def new_worker(client, worker_token):
    def run(name: str = "w") -> tuple[dict, str]:
        headers = {"Authorization": f"Bearer {worker_token}"}
        r = client.post("/api/v1/worker/register", json={"name": name, "cpus": 2, "ram_mb": 1024, "gpu": None},
                        headers=headers)
        assert r.status_code == 200
        return headers, r.json()["worker_id"]

    return run


def claim(client, headers, worker_id):
    return client.post("/api/v1/worker/claim", json={"worker_id": worker_id}, headers=headers)


def beat(client, headers, job, **extra):
    body = {"attempt": job["attempt"], "stage": "sparse", "progress": 0.4, "message": "matching", **extra}
    return client.post(f"/api/v1/worker/jobs/{job['job_id']}/heartbeat", json=body, headers=headers)


def finish(client, headers, job, data: bytes | None = None):
    data = data or result_zip()
    up = client.put(job["result_url"], content=data)
    assert up.status_code == 200 and up.json()["sha256"] == hashlib.sha256(data).hexdigest()
    return client.post(f"/api/v1/worker/jobs/{job['job_id']}/complete",
                       json={"attempt": job["attempt"], "report": {"ok": True}}, headers=headers)


def test_worker_auth_required(client, public_token):
    assert client.post("/api/v1/worker/register", json={"name": "x"}).status_code == 401
    r = client.post("/api/v1/worker/register", json={"name": "x"}, headers={"Authorization": f"Bearer {public_token}"})
    assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")


def test_full_job_cycle_and_download(client, legacy, ctx, queued, new_worker, private_token):
    queued(private_token, "cycle.zip")
    headers, wid = new_worker()
    r = claim(client, headers, wid)
    assert r.status_code == 200
    job = r.json()
    assert job["attempt"] == 1 and job["quality"] == "standard" and job["lease_seconds"] > 0
    # the input zip by its signed link is exactly what was uploaded (joined parts)
    inp = client.get(job["input_url"])
    assert inp.status_code == 200 and zipfile.ZipFile(io.BytesIO(inp.content)).namelist()[0] == "photo_000.jpg"
    assert claim(client, headers, wid).status_code == 204  # nothing else waiting

    assert beat(client, headers, job, log_tail="line 1\nline 2").json() == {"cancel": False}
    info = legacy("getProjectInfo", token=private_token, project="cycle.zip").json()
    assert info["status"] == "processing" and info["stage"] == "sparse" and info["progress"] == 40.0
    assert info["dlink"] is None and info["log_tail"] == "line 1\nline 2"

    data = result_zip()
    assert finish(client, headers, job, data).status_code == 200
    info = legacy("getProjectInfo", token=private_token, project="cycle.zip").json()
    assert info["status"] == "done" and info["progress"] == 100 and info["dlink"]
    full = client.get(info["dlink"])
    assert full.status_code == 200 and full.content == data and full.headers["accept-ranges"] == "bytes"
    assert zipfile.ZipFile(io.BytesIO(full.content)).read("model.obj") == OBJ
    part = client.get(info["dlink"], headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == data[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(data)}"
    tail = client.get(info["dlink"], headers={"Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == data[-5:]
    assert client.get(info["dlink"], headers={"Range": f"bytes={len(data)}-"}).status_code == 416
    assert client.get(info["dlink"].replace("s=", "s=0")).status_code == 403
    # the credit stays charged (it was used), the ledger shows exactly one charge
    assert [k for k, _ in ledger(ctx, private_token)] == ["grant", "charge"]
    # v1 lists the result files
    files = client.get(f"/api/v1/projects/{info['id']}/files",
                       headers={"Authorization": f"Bearer {private_token}"}).json()
    assert {f["name"] for f in files["files"]} == {"model.obj", "report.json"}


def test_lease_expiry_another_worker_finishes(tmp_path, photos_zip):
    """A worker that stops heart-beating loses the job; a second worker claims attempt 2 and finishes it."""
    from fastapi.testclient import TestClient

    from openscancloud.api.app import create_app
    from openscancloud.domain.tokens import TokenKind
    from openscancloud.settings import Settings

    app = create_app(Settings(data_dir=tmp_path / "d", lease_seconds=1), maintenance=False)
    ctx = app.state.ctx
    user = ctx.service.public_token()
    wtoken, _ = ctx.service.create_token(TokenKind.WORKER, label="w")
    h = {"Authorization": f"Bearer {wtoken}"}
    auth = ("openscan", "free")
    with TestClient(app) as c:
        data = photos_zip(2)
        info = c.get("/createProject", params=dict(token=user, project="l.zip", photos=2, parts=1,
                                                   filesize=len(data)), auth=auth).json()
        c.post(info["ulink"][0], content=data)
        assert c.get("/startProject", params=dict(token=user, project="l.zip"), auth=auth).status_code == 200
        a = c.post("/api/v1/worker/register", json={"name": "a"}, headers=h).json()["worker_id"]
        b = c.post("/api/v1/worker/register", json={"name": "b"}, headers=h).json()["worker_id"]
        job_a = claim(c, h, a).json()
        assert claim(c, h, b).status_code == 204  # leased to a
        time.sleep(1.3)  # a crashed: no heartbeat
        r = claim(c, h, b)
        assert r.status_code == 200
        job_b = r.json()
        assert job_b["job_id"] == job_a["job_id"] and job_b["attempt"] == 2
        # the stale attempt is told to stop and cannot upload or complete
        assert beat(c, h, job_a).status_code == 409
        assert c.put(job_a["result_url"], content=b"late").status_code == 409
        assert c.post(f"/api/v1/worker/jobs/{job_a['job_id']}/complete", json={"attempt": 1}, headers=h).status_code == 409
        assert finish(c, h, job_b).status_code == 200
        p = c.get("/getProjectInfo", params=dict(token=user, project="l.zip"), auth=auth).json()
        assert p["status"] == "done" and p["dlink"]


def test_attempts_exhausted_fail_with_refund(tmp_path, photos_zip):
    from fastapi.testclient import TestClient

    from openscancloud.api.app import create_app
    from openscancloud.domain.tokens import TokenKind
    from openscancloud.settings import Settings

    app = create_app(Settings(data_dir=tmp_path / "d", lease_seconds=1, max_attempts=2), maintenance=False)
    ctx = app.state.ctx
    user, _ = ctx.service.create_token(TokenKind.PRIVATE, forename="A", surname="B", email="a@b.org", credit_gb=1)
    wtoken, _ = ctx.service.create_token(TokenKind.WORKER, label="w")
    h = {"Authorization": f"Bearer {wtoken}"}
    auth = ("openscan", "free")
    with TestClient(app) as c:
        data = photos_zip(2)
        info = c.get("/createProject", params=dict(token=user, project="x.zip", photos=2, parts=1,
                                                   filesize=len(data)), auth=auth).json()
        c.post(info["ulink"][0], content=data)
        c.get("/startProject", params=dict(token=user, project="x.zip"), auth=auth)
        w = c.post("/api/v1/worker/register", json={"name": "a"}, headers=h).json()["worker_id"]
        for attempt in (1, 2):
            assert claim(c, h, w).json()["attempt"] == attempt
            time.sleep(1.3)
        ctx.maintenance.run_once()
        p = c.get("/getProjectInfo", params=dict(token=user, project="x.zip"), auth=auth).json()
        assert p["status"] == "failed" and "interrupted 2 times" in p["error"]
        assert [k for k, _ in ledger(ctx, user)] == ["grant", "charge", "refund"]
        assert c.get("/getTokenInfo", params=dict(token=user), auth=auth).json()["credit"] == pytest.approx(1.0)


def test_cancel_reaches_the_worker_and_refunds(client, ctx, queued, new_worker, private_token):
    queued(private_token, "c.zip")
    headers, wid = new_worker()
    job = claim(client, headers, wid).json()
    auth = {"Authorization": f"Bearer {private_token}"}
    r = client.post(f"/api/v1/projects/{job['project_id']}/cancel", headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert beat(client, headers, job).json() == {"cancel": True}
    assert finish_refused(client, headers, job)
    assert [k for k, _ in ledger(ctx, private_token)] == ["grant", "charge", "refund"]
    assert client.get(f"/api/v1/projects/{job['project_id']}", headers=auth).json()["status"] == "cancelled"


def finish_refused(client, headers, job) -> bool:
    up = client.put(job["result_url"], content=result_zip())
    done = client.post(f"/api/v1/worker/jobs/{job['job_id']}/complete", json={"attempt": job["attempt"]},
                       headers=headers)
    return up.status_code == 409 and done.status_code == 409


def test_reset_while_processing_cancels_the_job(client, legacy, queued, new_worker, public_token):
    queued(public_token, "rp.zip")
    headers, wid = new_worker()
    job = claim(client, headers, wid).json()
    assert legacy("resetProject", token=public_token, project="rp.zip").json()["status"] == "created"
    assert beat(client, headers, job).json() == {"cancel": True}


def test_priority_private_before_public_then_age(client, queued, new_worker, public_token, private_token):
    queued(public_token, "pub-old.zip")
    queued(public_token, "pub-new.zip")
    queued(private_token, "priv.zip")
    headers, wid = new_worker()
    names = []
    for _ in range(3):
        job = claim(client, headers, wid).json()
        with client.app.state.ctx.service.uow() as repo:
            names.append(repo.project_by_id(job["project_id"]).name)
    assert names == ["priv.zip", "pub-old.zip", "pub-new.zip"]
    assert claim(client, headers, wid).status_code == 204


@pytest.mark.parametrize("user_error, refunded", [(True, False), (False, True)])
def test_fail_user_vs_internal_error(client, ctx, legacy, queued, new_worker, private_token, user_error, refunded):
    queued(private_token, "f.zip")
    headers, wid = new_worker()
    job = claim(client, headers, wid).json()
    msg = "Only 2 of 3 photos could be matched; take more overlapping photos."
    r = client.post(f"/api/v1/worker/jobs/{job['job_id']}/fail",
                    json={"attempt": job["attempt"], "message": msg, "user_error": user_error}, headers=headers)
    assert r.status_code == 200
    info = legacy("getProjectInfo", token=private_token, project="f.zip").json()
    assert info["status"] == "failed" and info["error"] == msg and info["dlink"] is None
    kinds = [k for k, _ in ledger(ctx, private_token)]
    assert kinds == (["grant", "charge", "refund"] if refunded else ["grant", "charge"])
    # reset after a user error returns nothing (the credit was used), after an internal error nothing is left
    r = legacy("resetProject", token=private_token, project="f.zip").json()
    assert r["refunded"] == 0


def test_complete_requires_result(client, queued, new_worker, public_token):
    queued(public_token, "nr.zip")
    headers, wid = new_worker()
    job = claim(client, headers, wid).json()
    r = client.post(f"/api/v1/worker/jobs/{job['job_id']}/complete", json={"attempt": 1}, headers=headers)
    assert r.status_code == 409 and "result" in r.json()["detail"]
