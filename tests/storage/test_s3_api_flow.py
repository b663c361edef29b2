"""The server on S3 storage (moto server mode): legacy raw-POST parts stream through the API into the bucket,
our signed links keep their rules (4 h expiry → 410, tampering → 403), the worker's input and the user's
download are presigned S3 GETs behind a 307, and v1 clients can PUT parts straight to S3 by presigned URL."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from openscancloud.api.app import create_app
from openscancloud.domain.tokens import TokenKind
from openscancloud.settings import Settings

AUTH = ("openscan", "free")


def _photo_zip(n: int = 3) -> bytes:
    import random

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(n):
            img = io.BytesIO()
            Image.frombytes("RGB", (48, 32), random.Random(i).randbytes(48 * 32 * 3)).save(img, "JPEG", quality=95)
            zf.writestr(f"p{i}.jpg", img.getvalue())
    return buf.getvalue()


@pytest.fixture
def app(tmp_path, s3_settings):
    settings = Settings(data_dir=tmp_path / "data", part_limit_bytes=4096, maintenance_interval_seconds=0,
                        **s3_settings)
    return create_app(settings, maintenance=False)


def _chunked(data: bytes, size: int = 1000):
    for i in range(0, len(data), size):
        yield data[i:i + size]


def test_legacy_flow_on_s3(app):
    ctx = app.state.ctx
    user, _ = ctx.service.create_token(TokenKind.PRIVATE, forename="A", surname="B", email="a@b.org", credit_gb=1)
    wt, _ = ctx.service.create_token(TokenKind.WORKER, label="w")
    data = _photo_zip()
    parts = -(-len(data) // 4096)
    with TestClient(app) as c:
        info = c.get("/createProject", params=dict(token=user, project="s3.zip", photos=3, parts=parts,
                                                   filesize=len(data)), auth=AUTH).json()
        link0 = info["ulink"][0]
        assert c.post(link0.replace("s=", "s=0"), content=b"x").status_code == 403
        for i, link in enumerate(info["ulink"]):
            r = c.post(link, content=_chunked(data[i * 4096:(i + 1) * 4096]))  # chunked transfer encoding
            assert r.status_code == 200, r.text
        assert c.post(link0, content=b"x" * 5000).status_code == 413  # over the part limit
        keys = ctx.storage.all_keys()
        assert sorted(k.rsplit("/", 1)[-1] for k in keys) == [f"{i}.part" for i in range(parts)]
        assert c.get("/startProject", params=dict(token=user, project="s3.zip"), auth=AUTH).json() == {
            "status": "started", "project": "s3.zip", "id": info["id"]}
        assert [k.rsplit("/", 1)[-1] for k in ctx.storage.all_keys()] == ["input.zip"]  # parts gone

        h = {"Authorization": f"Bearer {wt}"}
        wid = c.post("/api/v1/worker/register", json={"name": "w", "cpus": 2}, headers=h).json()["worker_id"]
        job = c.post("/api/v1/worker/claim", json={"worker_id": wid}, headers=h).json()
        r = c.get(job["input_url"], follow_redirects=False)
        assert r.status_code == 307
        assert httpx.get(r.headers["location"]).content == data  # straight from S3
        assert c.put(job["result_url"], content=b"RESULT" * 100).status_code == 200
        assert c.post(f"/api/v1/worker/jobs/{job['job_id']}/complete", json={"attempt": 1},
                      headers=h).status_code == 200
        p = c.get("/getProjectInfo", params=dict(token=user, project="s3.zip"), auth=AUTH).json()
        assert p["status"] == "done"
        r = c.get(p["dlink"], follow_redirects=False)
        assert r.status_code == 307
        assert httpx.get(r.headers["location"]).content == b"RESULT" * 100
        assert httpx.get(r.headers["location"], headers={"Range": "bytes=0-5"}).content == b"RESULT"
        head = c.head(p["dlink"])  # HEAD is answered by the API itself
        assert head.status_code == 200 and head.headers["content-length"] == "600"
        assert c.get(p["dlink"].replace("s=", "s=0")).status_code == 403
        # the photos stay beside the result until the retention cleanup (so the project can be reprocessed)
        assert sorted(k.rsplit("/", 1)[-1] for k in ctx.storage.all_keys()) == ["input.zip", "result.zip"]


def test_signed_upload_links_still_expire_on_s3(app):
    ctx = app.state.ctx
    token = ctx.service.public_token()
    with TestClient(app) as c:
        info = c.get("/createProject", params=dict(token=token, project="late.zip", photos=1, parts=1,
                                                   filesize=10), auth=AUTH).json()
        with ctx.service.uow() as repo:  # the link was issued 4 h ago
            project = repo.project_by_id(info["id"])
            project.upload_expires_at -= timedelta(hours=5)
        # the link's own expiry (signed into it) is still in the future: re-read links from the API
        link = c.get("/getProjectInfo", params=dict(token=token, project="late.zip"), auth=AUTH).json()["ulink"][0]
        assert c.post(link, content=b"0123456789").status_code == 410
        assert ctx.storage.all_keys() == []


def test_presigned_put_parts_v1(app):
    ctx = app.state.ctx
    user, _ = ctx.service.create_token(TokenKind.PRIVATE, forename="A", surname="B", email="a@b.org", credit_gb=1)
    h = {"Authorization": f"Bearer {user}"}
    data = _photo_zip(2)
    parts = -(-len(data) // 4096)
    with TestClient(app) as c:
        project = c.post("/api/v1/projects", json={"photos": 2, "filesize": len(data), "parts": parts},
                         headers=h).json()
        pid = project["id"]
        for i in range(parts):
            signed = c.post(f"/api/v1/projects/{pid}/parts/{i}/presign", headers=h).json()
            assert signed["method"] == "PUT" and signed["expires_at"] == project["upload_expires_at"]
            assert httpx.put(signed["url"], content=data[i * 4096:(i + 1) * 4096]).status_code == 200
            done = c.post(f"/api/v1/projects/{pid}/parts/{i}/complete", headers=h)
            assert done.status_code == 200 and done.json()["size"] == len(data[i * 4096:(i + 1) * 4096])
        again = c.post(f"/api/v1/projects/{pid}/parts/0/complete", headers=h)
        assert again.status_code == 409 and again.json()["code"] == "part_not_uploaded"
        assert c.post(f"/api/v1/projects/{pid}/parts/{parts}/presign", headers=h).status_code == 404
        assert c.post(f"/api/v1/projects/{pid}/start", headers=h).status_code == 202
        assert c.post(f"/api/v1/projects/{pid}/parts/0/presign", headers=h).json()["code"] == "not_uploading"


def test_presign_unavailable_on_local_storage(tmp_path):
    app = create_app(Settings(data_dir=tmp_path / "d", maintenance_interval_seconds=0), maintenance=False)
    user, _ = app.state.ctx.service.create_token(TokenKind.PRIVATE, forename="A", surname="B", email="a@b.org")
    h = {"Authorization": f"Bearer {user}"}
    with TestClient(app) as c:
        pid = c.post("/api/v1/projects", json={"photos": 1, "filesize": 10, "parts": 1}, headers=h).json()["id"]
        r = c.post(f"/api/v1/projects/{pid}/parts/0/presign", headers=h)
        assert r.status_code == 409 and r.json()["code"] == "presign_unavailable"
