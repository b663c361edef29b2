"""Priority on the scaled-out configuration (PostgreSQL + S3): with a busy queue — one worker busy, five public
projects waiting — a private-token project submitted after them is the next one any worker gets; the public
ones follow in submission order."""

from __future__ import annotations

import io
import uuid
import zipfile

from fastapi.testclient import TestClient
from PIL import Image

from openscancloud.api.app import create_app
from openscancloud.domain.tokens import TokenKind
from openscancloud.settings import Settings

AUTH = ("openscan", "free")


def _zip() -> bytes:
    img = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 200, 10)).save(img, "JPEG")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(3):
            zf.writestr(f"p{i}.jpg", img.getvalue())
    return buf.getvalue()


def test_private_after_five_public_is_claimed_first(tmp_path, pg_url, s3_endpoint):
    settings = Settings(data_dir=tmp_path / "d", database_url=pg_url, maintenance_interval_seconds=0,
                        storage_url=f"s3://osc-{uuid.uuid4().hex[:12]}", s3_endpoint_url=s3_endpoint,
                        s3_access_key_id="test", s3_secret_access_key="test", s3_create_bucket=True)
    app = create_app(settings, maintenance=False)
    ctx = app.state.ctx
    public = ctx.service.public_token()
    private, _ = ctx.service.create_token(TokenKind.PRIVATE, forename="P", surname="Q", email="p@q.org", credit_gb=5)
    worker, _ = ctx.service.create_token(TokenKind.WORKER, label="w")
    h = {"Authorization": f"Bearer {worker}"}
    data = _zip()

    def submit(c: TestClient, token: str, name: str) -> str:
        info = c.get("/createProject", params=dict(token=token, project=name, photos=3, parts=1, filesize=len(data)),
                     auth=AUTH).json()
        assert c.post(info["ulink"][0], content=data).status_code == 200
        assert c.get("/startProject", params=dict(token=token, project=name), auth=AUTH).status_code == 200
        return info["id"]

    with TestClient(app) as c:
        busy_id = submit(c, public, "busy.zip")
        a = c.post("/api/v1/worker/register", json={"name": "a"}, headers=h).json()["worker_id"]
        b = c.post("/api/v1/worker/register", json={"name": "b"}, headers=h).json()["worker_id"]
        assert c.post("/api/v1/worker/claim", json={"worker_id": a}, headers=h).json()["project_id"] == busy_id
        publics = [submit(c, public, f"pub-{i}.zip") for i in range(5)]
        mine = submit(c, private, "private.zip")
        estimate = c.get("/getQueueEstimate", params=dict(token=private), auth=AUTH).json()
        assert estimate["queue_length"] == 6 and estimate["position"] == 1
        order = []
        while (r := c.post("/api/v1/worker/claim", json={"worker_id": b}, headers=h)).status_code == 200:
            order.append(r.json()["project_id"])
        assert order == [mine, *publics]
