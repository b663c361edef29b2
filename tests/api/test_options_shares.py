"""Project options through every entry (REST, legacy, worker claim → engine flags), reprocessing without a new
upload, per-file downloads, share links (no token, revocable) and the ETA measured on this server's jobs."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from openscancloud.jobs.worker import engine_option_args

ENGINE_REPORT = {"images": {"used": 3}, "mesh": {"faces": 1},
                 "timings": {s: {"seconds": sec} for s, sec in
                             {"ingest": 3, "masks": 3, "sparse": 30, "dense": 30, "mesh": 9, "texture": 12,
                              "export": 3}.items()}}


def result_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model.obj", "mtllib model.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
        zf.writestr("model.mtl", "newmtl m\nmap_Kd material_0.png\n")
        zf.writestr("material_0.png", b"\x89PNG fake texture")
        zf.writestr("model.glb", b"glTF binary")
        zf.writestr("model.stl", b"solid model")
        zf.writestr("preview.png", b"\x89PNG preview")
        zf.writestr("report.json", json.dumps(ENGINE_REPORT))
        zf.writestr("sparse/cameras.bin", b"\0")
    return buf.getvalue()


@pytest.fixture
def bearer(private_token):
    return {"Authorization": f"Bearer {private_token}"}


@pytest.fixture
def worker(client, worker_token):
    headers = {"Authorization": f"Bearer {worker_token}"}
    r = client.post("/api/v1/worker/register", json={"name": "w", "cpus": 2, "ram_mb": 1024}, headers=headers)
    return headers, r.json()["worker_id"]


def create(client, bearer, data: bytes, **options):
    n = -(-len(data) // 4096)
    r = client.post("/api/v1/projects", json={"photos": 3, "filesize": len(data), "parts": n, **options},
                    headers=bearer)
    assert r.status_code == 201, r.text
    project = r.json()
    for i, link in enumerate(project["ulink"]):
        assert client.put(link, content=data[i * 4096:(i + 1) * 4096]).status_code == 200
    return project


def claim_and_finish(client, worker, report=None):
    headers, worker_id = worker
    job = client.post("/api/v1/worker/claim", json={"worker_id": worker_id}, headers=headers).json()
    assert client.put(job["result_url"], content=result_zip()).status_code == 200
    r = client.post(f"/api/v1/worker/jobs/{job['job_id']}/complete",
                    json={"attempt": job["attempt"], "report": report or {"engine": ENGINE_REPORT}}, headers=headers)
    assert r.status_code == 200, r.text
    return job


def test_options_reach_the_worker_as_engine_flags(client, bearer, worker, photos_zip):
    project = create(client, bearer, photos_zip(3), quality="preview", masks="off", texture_size=1024,
                     target_faces=5000, formats=["glb", "usdz", "glb"])
    assert project["options"] == {"quality": "preview", "masks": "off", "texture_size": 1024,
                                  "target_faces": 5000, "formats": ["glb", "usdz"]}
    assert client.post(f"/api/v1/projects/{project['id']}/start", headers=bearer).status_code == 202
    headers, worker_id = worker
    job = client.post("/api/v1/worker/claim", json={"worker_id": worker_id}, headers=headers).json()
    assert job["options"]["masks"] == "off"
    assert engine_option_args(job) == ["--quality", "preview", "--masks", "off", "--texture-size", "1024",
                                       "--target-faces", "5000", "--formats", "glb,usdz"]
    # a server that predates options sends only the quality
    assert engine_option_args({"quality": "high"}) == ["--quality", "high"]


def test_legacy_create_takes_the_same_options(legacy, client, public_token, bearer):
    r = legacy("createProject", token=public_token, project="opts", photos=3, parts=1, filesize=100,
               quality="high", masks="user", target_faces="20000", formats="stl,obj")
    assert r.status_code == 200, r.text
    info = legacy("getProjectInfo", token=public_token, project="opts").json()
    assert info["options"] == {"quality": "high", "masks": "user", "texture_size": None, "target_faces": 20000,
                               "formats": ["stl", "obj"]}


@pytest.mark.parametrize("options, words", [
    ({"quality": "ultra"}, "quality must be one of preview, standard, high"),
    ({"masks": "maybe"}, "masks must be one of auto, off, user"),
    ({"texture_size": 100}, "texture_size must be between 256 and 16,384 pixels"),
    ({"target_faces": 10}, "target_faces must be between 1,000 and 5,000,000 triangles"),
    ({"formats": ["glb", "fbx"]}, "formats must name one or more of glb, obj, ply, stl, usdz (got fbx)"),
])
def test_impossible_options_are_refused_before_the_upload(client, bearer, options, words):
    r = client.post("/api/v1/projects", json={"photos": 3, "filesize": 100, "parts": 1, **options}, headers=bearer)
    assert r.status_code == 422 and words in r.json()["detail"]
    assert client.get("/api/v1/projects", headers=bearer).json()["projects"] == []


def test_reprocess_runs_again_with_other_options_without_upload(client, ctx, bearer, worker, photos_zip):
    project = create(client, bearer, photos_zip(3), quality="preview")
    pid = project["id"]
    client.post(f"/api/v1/projects/{pid}/start", headers=bearer)
    credit_after_first = client.get("/api/v1/token", headers=bearer).json()["credit"]
    claim_and_finish(client, worker)
    assert client.get(f"/api/v1/projects/{pid}", headers=bearer).json()["status"] == "done"
    # the photos stayed on the server
    assert ctx.storage.input_size(pid) is not None
    r = client.post(f"/api/v1/projects/{pid}/reprocess", json={"quality": "high", "formats": ["stl"]}, headers=bearer)
    assert r.status_code == 202, r.text
    again = r.json()
    assert again["status"] == "queued" and again["options"]["quality"] == "high" and again["ulink"] == []
    assert again["dlink"] is None  # the old result is gone with the new run
    token = client.get("/api/v1/token", headers=bearer).json()
    assert token["credit"] == pytest.approx(credit_after_first - project["credit_charged"])
    headers, worker_id = worker
    job = client.post("/api/v1/worker/claim", json={"worker_id": worker_id}, headers=headers).json()
    assert engine_option_args(job)[:2] == ["--quality", "high"] and job["options"]["formats"] == ["stl"]
    # an active project cannot be reprocessed; a reset one has no photos left
    r = client.post(f"/api/v1/projects/{pid}/reprocess", json={}, headers=bearer)
    assert r.status_code == 409 and "only a done, failed or cancelled project" in r.json()["detail"]
    client.post(f"/api/v1/projects/{pid}/cancel", headers=bearer)
    client.post(f"/api/v1/projects/{pid}/reset", headers=bearer)
    r = client.post(f"/api/v1/projects/{pid}/reprocess", json={}, headers=bearer)
    assert r.status_code == 409


def test_files_and_share_links(client, bearer, worker, photos_zip):
    project = create(client, bearer, photos_zip(3))
    pid = project["id"]
    client.post(f"/api/v1/projects/{pid}/start", headers=bearer)
    claim_and_finish(client, worker)
    files = client.get(f"/api/v1/projects/{pid}/files", headers=bearer).json()
    downloads = {d["name"]: d for d in files["downloads"]}
    assert list(downloads) == ["model.glb", "model-obj.zip", "model.stl", "preview.png", "report.json"]
    r = client.get(downloads["model.glb"]["url"])  # signed: no token needed
    assert r.status_code == 200 and r.content == b"glTF binary"
    assert r.headers["content-type"] == "model/gltf-binary" and "attachment" in r.headers["content-disposition"]
    bundle = zipfile.ZipFile(io.BytesIO(client.get(downloads["model-obj.zip"]["url"]).content))
    assert sorted(bundle.namelist()) == ["material_0.png", "model.mtl", "model.obj"]
    forged = downloads["model.glb"]["url"].replace("model.glb", "model.stl")
    assert client.get(forged).status_code == 403

    share = client.post(f"/api/v1/projects/{pid}/shares", headers=bearer).json()
    assert "/#/share/" in share["url"]
    view = client.get(share["api"])
    assert view.status_code == 200 and view.json()["name"] == project["name"]
    glb = next(f for f in view.json()["files"] if f["name"] == "model.glb")
    assert client.get(glb["url"] + "&inline=true").content == b"glTF binary"
    assert client.get(share["api"][:-4] + "0000").status_code == 403
    r = client.post(f"/api/v1/projects/{pid}/shares/{share['id']}/revoke", headers=bearer)
    assert r.json()["revoked"] is True
    r = client.get(share["api"])
    assert r.status_code == 404 and "revoked" in r.json()["detail"]
    assert client.get(glb["url"]).status_code == 404


def test_eta_is_unknown_without_history_then_measured(client, ctx, bearer, worker, photos_zip):
    first = create(client, bearer, photos_zip(3), quality="preview")
    client.post(f"/api/v1/projects/{first['id']}/start", headers=bearer)
    view = client.get(f"/api/v1/projects/{first['id']}", headers=bearer).json()
    assert view["eta_seconds"] is None and view["eta_basis"].startswith("unknown")
    claim_and_finish(client, worker)

    second = create(client, bearer, photos_zip(3), quality="preview")
    client.post(f"/api/v1/projects/{second['id']}/start", headers=bearer)
    view = client.get(f"/api/v1/projects/{second['id']}", headers=bearer).json()
    assert view["eta_seconds"] >= 90 and "median of 1 recent preview job" in view["eta_basis"]
    headers, worker_id = worker
    job = client.post("/api/v1/worker/claim", json={"worker_id": worker_id}, headers=headers).json()
    client.post(f"/api/v1/worker/jobs/{job['job_id']}/heartbeat",
                json={"attempt": job["attempt"], "stage": "mesh", "progress": 0.7}, headers=headers)
    running = client.get(f"/api/v1/projects/{second['id']}", headers=bearer).json()
    # the mesh stage just started: mesh (9 s) + texture (12 s) + export (3 s) are left (no overhead measured)
    assert 23 <= running["eta_seconds"] <= 25
