"""Worker registry: a node registers with name/CPU/RAM/GPU, appears in `/status` (busy or idle) and in the admin
listing (online, current job, last seen); only admin tokens see the listing; a silent node goes offline."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

from openscancloud.domain.tokens import TokenKind


def test_registry_status_and_admin_listing(client, ctx, legacy, uploaded, photos_zip, public_token, worker_token):
    admin, _ = ctx.service.create_token(TokenKind.ADMIN, label="ops")
    h = {"Authorization": f"Bearer {worker_token}"}
    a = client.post("/api/v1/worker/register", json={"name": "gpu-box", "cpus": 16, "ram_mb": 65536,
                                                     "gpu": "NVIDIA RTX 4090"}, headers=h).json()["worker_id"]
    client.post("/api/v1/worker/register", json={"name": "cpu-box", "cpus": 4, "ram_mb": 8192}, headers=h)
    uploaded(public_token, "w.zip", photos_zip(3))
    assert legacy("startProject", token=public_token, project="w.zip").status_code == 200
    job = client.post("/api/v1/worker/claim", json={"worker_id": a}, headers=h).json()
    client.post(f"/api/v1/worker/jobs/{job['job_id']}/heartbeat",
                json={"attempt": 1, "worker_id": a, "stage": "sparse", "progress": 0.4}, headers=h)

    status = client.get("/status").json()
    assert status["workers_online"] == 2 and status["processing"] == 1 and status["workers_busy"] == 1
    # strangers learn counts only: names and hardware are in the admin listing below
    assert "gpu-box" not in client.get("/status").text and "4090" not in client.get("/api/v1/status").text

    assert client.get("/api/v1/admin/workers", headers=h).status_code == 403  # a worker token is not admin
    assert client.get("/api/v1/admin/workers", headers={"Authorization": f"Bearer {public_token}"}).status_code == 403
    listing = client.get("/api/v1/admin/workers", headers={"Authorization": f"Bearer {admin}"}).json()
    assert listing["online"] == 2
    gpu = next(w for w in listing["workers"] if w["name"] == "gpu-box")
    assert gpu["online"] is True and gpu["last_seen_seconds_ago"] < 60
    assert gpu["current_job"] == {"job_id": job["job_id"], "project_id": job["project_id"], "attempt": 1,
                                  "stage": "sparse", "progress": 40.0}

    with ctx.service.uow() as repo:  # cpu-box has not been heard from for 2 minutes
        idle = next(w for w in repo.workers() if w.name == "cpu-box")
        idle.last_seen_at -= timedelta(seconds=120)
    assert client.get("/status").json()["workers_online"] == 1
    listing = client.get("/api/v1/admin/workers", headers={"Authorization": f"Bearer {admin}"}).json()
    assert {w["name"]: w["online"] for w in listing["workers"]} == {"gpu-box": True, "cpu-box": False}
    assert client.get("/api/v1/admin/workers", params={"hours": 0.01},
                      headers={"Authorization": f"Bearer {admin}"}).json()["online"] == 1

    out = subprocess.run([sys.executable, "-m", "openscancloud.service_cli", "workers", "list", "--json",
                          "--data-dir", str(ctx.settings.data_dir)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert {w["name"] for w in json.loads(out.stdout)} == {"gpu-box", "cpu-box"}
