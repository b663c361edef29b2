"""The whole legacy flow and a job cycle on PostgreSQL (skipped when no server at 127.0.0.1:5432)."""

from __future__ import annotations

import io
import zipfile

from fastapi.testclient import TestClient

from openscancloud.api.app import create_app
from openscancloud.domain.tokens import TokenKind
from openscancloud.settings import Settings

AUTH = ("openscan", "free")


def test_legacy_flow_and_job_on_postgres(tmp_path, pg_url):
    app = create_app(Settings(data_dir=tmp_path / "d", database_url=pg_url), maintenance=False)
    ctx = app.state.ctx
    user, _ = ctx.service.create_token(TokenKind.PRIVATE, forename="A", surname="B", email="a@b.org", credit_gb=1)
    wt, _ = ctx.service.create_token(TokenKind.WORKER, label="w")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.jpg", b"x" * 3000)
    data = buf.getvalue()
    with TestClient(app) as c:
        info = c.get("/createProject", params=dict(token=user, project="pg.zip", photos=1, parts=1,
                                                   filesize=len(data)), auth=AUTH).json()
        assert c.post(info["ulink"][0], content=data).status_code == 200
        assert c.get("/createProject", params=dict(token=user, project="pg.zip", photos=1, parts=1,
                                                   filesize=10), auth=AUTH).status_code == 409
        assert c.get("/startProject", params=dict(token=user, project="pg.zip"), auth=AUTH).status_code == 200
        h = {"Authorization": f"Bearer {wt}"}
        wid = c.post("/api/v1/worker/register", json={"name": "w"}, headers=h).json()["worker_id"]
        job = c.post("/api/v1/worker/claim", json={"worker_id": wid}, headers=h).json()
        assert c.post(f"/api/v1/worker/jobs/{job['job_id']}/heartbeat", json={"attempt": 1, "progress": 0.5},
                      headers=h).json() == {"cancel": False}
        assert c.put(job["result_url"], content=data).status_code == 200
        assert c.post(f"/api/v1/worker/jobs/{job['job_id']}/complete", json={"attempt": 1},
                      headers=h).status_code == 200
        p = c.get("/getProjectInfo", params=dict(token=user, project="pg.zip"), auth=AUTH).json()
        assert p["status"] == "done" and c.get(p["dlink"]).content == data
        assert ctx.maintenance.run_once() == {"leases_expired": 0, "projects_expired": 0, "projects_cleaned": 0}
        with ctx.db.exclusive("maintenance") as mine:  # another replica is in its round: this one skips
            assert mine
            import threading

            seen = {}
            t = threading.Thread(target=lambda: seen.update(ctx.maintenance.run_once()))
            t.start()
            t.join()
            assert seen["skipped"] == 1
        assert c.get("/getQueueEstimate", params=dict(token=user), auth=AUTH).json()["queue_length"] == 0
