"""A real server with its built-in worker, driven exactly like the firmware, turns the
kermit photo set into a textured mesh with the REAL engine."""

from __future__ import annotations

import io
import math
import tempfile
import time
import zipfile
from pathlib import Path

import requests

AUTH = ("openscan", "free")


def firmware_zip(images: Path) -> bytes:
    """What the firmware's _build_project_archive does: JPEGs, flat names, deflated."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(images.iterdir()):
            if path.suffix.lower() in (".jpg", ".jpeg"):
                zf.write(path, path.name)
    return buf.getvalue()


def test_firmware_end_to_end_with_real_engine(start_server, photo_set):
    images = photo_set("kermit")
    data = firmware_zip(images)
    part_limit = math.ceil(len(data) / 3)  # a small part limit: the upload needs three parts
    server = start_server(workers=1, part_limit_bytes=part_limit, quality="preview")
    token = server.public_token
    base = server.url

    info = requests.get(f"{base}/getTokenInfo", params={"token": token}, auth=AUTH, timeout=30).json()
    assert len(data) <= info["limit_filesize"]
    name = f"kermit-{int(time.time() * 1000)}.zip"
    parts = math.ceil(len(data) / part_limit)
    created = requests.get(f"{base}/createProject", auth=AUTH, timeout=30, params={
        "token": token, "photos": 11, "filesize": len(data), "parts": parts, "project": name}).json()
    assert created["status"] == "created" and len(created["ulink"]) == parts == 3

    for i, link in enumerate(created["ulink"]):
        piece = data[i * part_limit:(i + 1) * part_limit]

        def stream(piece=piece):  # the firmware streams a generator: chunked transfer encoding
            for j in range(0, len(piece), 64 * 1024):
                yield piece[j:j + 64 * 1024]

        up = requests.post(link, data=stream(), headers={"Content-type": "application/octet-stream"}, timeout=60)
        assert up.status_code == 200, up.text

    r = requests.get(f"{base}/startProject", auth=AUTH, params={"token": token, "project": name}, timeout=60)
    assert r.status_code == 200 and r.json()["status"] == "started"

    deadline = time.time() + 900
    seen = set()
    while True:
        p = requests.get(f"{base}/getProjectInfo", auth=AUTH, params={"token": token, "project": name},
                         timeout=30).json()
        seen.add(p["status"])
        if p["status"] in ("done", "failed", "cancelled", "expired") or time.time() > deadline:
            break
        time.sleep(2)
    assert p["status"] == "done", f"{p['status']}: {p.get('error')}\n{p.get('log_tail')}\n{''.join(server.output[-40:])}"
    assert "processing" in seen or "queued" in seen
    assert p["dlink"] and p["progress"] == 100

    result = requests.get(p["dlink"], timeout=120)
    assert result.status_code == 200
    with zipfile.ZipFile(io.BytesIO(result.content)) as zf:
        names = set(zf.namelist())
        assert {"model.obj", "model.glb", "report.json"} <= names
        with tempfile.TemporaryDirectory() as tmp:
            zf.extractall(tmp)
            import trimesh

            mesh = trimesh.load(Path(tmp) / "model.glb", force="mesh")
            assert len(mesh.vertices) > 100 and len(mesh.faces) > 100
