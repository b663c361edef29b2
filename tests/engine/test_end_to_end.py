"""One real reconstruction in the default suite: kermit, preset preview, through the worker's command line.

This exercises the `python -m openscancloud.engine ... --progress jsonl` contract exactly as the server's worker
uses it, then checks the outputs a person would look at.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pycolmap
import pytest
import trimesh
from scipy.spatial import cKDTree


NOISE_PHOTOS = ["zz_noise_0.jpg", "zz_noise_1.jpg"]  # photos of nothing: they cannot be placed


@pytest.fixture(scope="module")
def kermit_run(photo_set, tmp_path_factory):
    """kermit's 11 photos plus two photos of sensor noise (same size), so the run must say what it left out."""
    from PIL import Image

    root = tmp_path_factory.mktemp("kermit_e2e")
    images = root / "input"
    images.mkdir()
    for photo in photo_set("kermit").iterdir():
        (images / photo.name).write_bytes(photo.read_bytes())
    rng = np.random.default_rng(9)
    for name in NOISE_PHOTOS:
        Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(images / name, quality=90)
    out = root / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "openscancloud.engine", str(images), "-o", str(out), "--quality", "preview",
         "--work-dir", str(root / "work"), "--progress", "jsonl"],
        capture_output=True, text=True, timeout=600,
    )
    return proc, out


def test_jsonl_contract(kermit_run):
    proc, out = kermit_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = [json.loads(line) for line in proc.stdout.splitlines()]  # stdout holds JSON only
    progress = [e for e in events if e["event"] == "progress"]
    assert {e["stage"] for e in progress} >= {"ingest", "sparse", "dense", "mesh", "texture", "export"}
    overall = [e["progress"] for e in progress]
    assert overall == sorted(overall) and overall[-1] == pytest.approx(1.0)
    assert all(0.0 <= e["stage_fraction"] <= 1.0 and isinstance(e["message"], str) for e in progress)
    done = events[-1]
    assert done["event"] == "done"
    for key in ("obj", "mtl", "glb", "dense", "sparse", "report", "preview", "texture"):
        assert key in done["outputs"]
    # the photos of nothing are named in a warning, in the final event as in report.json
    report = json.loads((out / "report.json").read_text())
    assert done["warnings"] == report["warnings"]
    placed = [w for w in done["warnings"] if "could not be placed" in w]
    assert len(placed) == 1 and placed[0].startswith("2 of 13 photos could not be placed")
    assert all(name in placed[0] for name in NOISE_PHOTOS)
    # COLMAP's own log lines (I20261130 12:00:00.000 ...) go to the log files, never to the terminal
    assert not re.search(r"^[IWEF]\d{8} ", proc.stderr, re.MULTILINE), proc.stderr[-2000:]
    assert list((out / "logs").glob("colmap.*"))


def test_outputs(kermit_run):
    proc, out = kermit_run
    assert proc.returncode == 0
    report = json.loads((out / "report.json").read_text())
    assert report["images"]["used"] == 13
    assert 10 <= report["images"]["registered"] <= 11
    assert report["masks"]["mode"] == "none"
    assert report["preset"]["name"] == "preview"
    for stage in ("ingest", "masks", "sparse", "dense", "mesh", "texture", "export"):
        assert report["timings"][stage]["seconds"] >= 0
        assert report["timings"][stage]["peak_rss_mb"] > 0
    assert report["sparse"]["points"] > 300 and report["dense"]["points"] > 10000
    # the report says which dense path ran, and why the GPU one did not
    assert report["dense"]["method"] == ("cuda-patch-match" if pycolmap.has_cuda else "cpu-patch-match")
    if not pycolmap.has_cuda:
        assert "CUDA" in report["dense"]["fallback"]
    assert 0.5 < report["mesh"]["supported_fraction"] <= 1.0
    assert report["mesh"]["faces"] > 5000
    assert len(report["transform"]["matrix"]) == 4
    assert report["libraries"]["pycolmap"]
    assert report["total_seconds"] >= max(report["timings"][s]["seconds"] for s in report["timings"])

    glb = trimesh.load(out / "model.glb", force="mesh")
    assert len(glb.faces) == report["mesh"]["faces"]
    assert glb.visual.uv is not None and glb.visual.material.baseColorTexture is not None
    obj = trimesh.load(out / "model.obj", force="mesh")
    assert obj.visual.material.image is not None

    # the mesh lies near the sparse points (same frame, same place)
    rec = pycolmap.Reconstruction(str(out / "sparse"))
    assert rec.num_reg_images() == report["images"]["registered"]
    pts = np.array([p.xyz for p in rec.points3D.values()])
    dist, _ = cKDTree(obj.sample(200_000)).query(pts)
    scale = np.linalg.norm(obj.vertices.max(0) - obj.vertices.min(0))
    assert np.median(dist) < 0.02 * scale
    assert (out / "preview.png").stat().st_size > 10_000


def test_rerun_resumes_from_work_dir(kermit_run, photo_set):
    proc, out = kermit_run
    assert proc.returncode == 0
    again = subprocess.run(
        [sys.executable, "-m", "openscancloud.engine", str(out.parent / "input"), "-o", str(out.parent / "out2"),
         "--quality", "preview", "--work-dir", str(out.parent / "work"), "--progress", "jsonl"],
        capture_output=True, text=True, timeout=600,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    report = json.loads((out.parent / "out2" / "report.json").read_text())
    for stage in ("ingest", "masks", "sparse", "dense", "mesh", "texture"):
        assert report["timings"][stage]["resumed"], stage
    first = json.loads((out / "report.json").read_text())
    assert report["mesh"] == first["mesh"]


def test_user_error_exit_code(tmp_path):
    bad = tmp_path / "two"
    bad.mkdir()
    (bad / "a.jpg").write_text("no photo")
    proc = subprocess.run([sys.executable, "-m", "openscancloud.engine", str(bad), "-o", str(tmp_path / "o"),
                           "--progress", "jsonl"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    last = json.loads(proc.stdout.splitlines()[-1])
    assert last["event"] == "error" and last["user_error"] is True
    assert "at least 3" in last["message"]


def test_cli_reconstruct_reports_one_sentence(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = subprocess.run([sys.executable, "-m", "openscancloud.cli", "reconstruct", str(empty), "-o",
                           str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Error:" in proc.stderr and "no files" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_sigterm_stops_promptly(photo_set, tmp_path):
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "openscancloud.engine", str(photo_set("kermit")), "-o", str(tmp_path / "o"),
         "--quality", "preview", "--progress", "jsonl"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    # wait until the engine is inside a heavy stage
    for line in proc.stdout:
        if json.loads(line).get("stage") == "sparse":
            break
    time.sleep(1.0)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rest = proc.stdout.read()
    code = proc.wait(timeout=60)
    assert time.monotonic() - t0 < 30
    assert code == 130
    last = json.loads(rest.strip().splitlines()[-1])
    assert last["event"] == "error" and last.get("cancelled") is True


def test_internal_failure_exit_code(photo_set, tmp_path):
    """Anything that is not the photos' fault (here: the output path is a file, so no folder can be made there)
    ends with exit 1, a final JSON `error` event with one sentence and `user_error: false`; the traceback goes
    to stderr only, so the worker parsing stdout never sees it."""
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the output folder should go")
    proc = subprocess.run([sys.executable, "-m", "openscancloud.engine", str(photo_set("kermit")), "-o",
                           str(blocked), "--progress", "jsonl"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    events = [json.loads(line) for line in proc.stdout.splitlines()]  # stdout is JSON lines only
    last = events[-1]
    assert last["event"] == "error" and last["user_error"] is False
    assert last["message"].startswith("The reconstruction failed unexpectedly (")
    assert "not-a-folder" in last["message"] and "\n" not in last["message"]
    assert "Traceback" in proc.stderr and "Traceback" not in proc.stdout
    assert blocked.read_text() == "a file where the output folder should go"  # nothing overwritten
