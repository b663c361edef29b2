"""Texture benchmark: how close does the textured model look to photos it has never seen?

    python bench/texture_metric.py --runs bench/work/texture --sets synth_bust,kermit \\
        --engine old=/path/to/main/src --engine new=src

Protocol (held-out views): the geometry (ingest, cameras, mesh) comes from one engine run per set, kept in
``RUNS/SET/work`` (``python -m openscancloud.engine IMAGES -o RUNS/SET/out --work-dir RUNS/SET/work``).  Every
8th registered photo (at least two) is left out of *texturing only*: the texture stage of each engine (a child
process with that engine's sources first on ``PYTHONPATH``, so old and new run in the same benchmark) bakes the
same mesh from the remaining photos.  The textured model is then ray-cast from each held-out camera at the
photo's own resolution (long side capped at ``--eval-size``) and compared with the undistorted photo inside
the model's silhouette (eroded by a few pixels, so that silhouette misalignment does not count as texture):

* PSNR (dB, RGB) and SSIM (grey, Gaussian window σ = 1.5) — fidelity;
* sharpness ratio — mean squared image gradient of the render ÷ that of the photo (1.0 = as sharp as the photo,
  lower = blurred, clearly above 1 = ghosting/noise);
* seam score — mean colour jump (8-bit levels, RGB mean) between the two sides of every chart border of the
  atlas, sampled along the shared 3D edge half a texel inside each chart (0 = invisible seams).

Bake time and the bake's peak RSS are measured on the child process.  Results go to ``RUNS/texture_<q>.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DEFAULT_DATASETS = Path(os.environ.get("OPENSCAN_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))
HOLDOUT_EVERY = 8
MIN_HOLDOUT = 2
SILHOUETTE_ERODE_PX = 4
PSNR_CAP_DB = 99.0


# --------------------------------------------------------------------------------------------------------------
# Image comparisons (pure numpy/OpenCV: unit-tested on their own)
# --------------------------------------------------------------------------------------------------------------


def psnr(rendered: np.ndarray, photo: np.ndarray, mask: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB over the masked pixels (all channels); capped for identical images."""
    diff = rendered[mask].astype(np.float64) - photo[mask].astype(np.float64)
    mse = float(np.mean(diff * diff)) if diff.size else float("nan")
    if mse <= 255.0 ** 2 * 10 ** (-PSNR_CAP_DB / 10):
        return PSNR_CAP_DB
    return 10.0 * math.log10(255.0 ** 2 / mse)


def exposure_matched(rendered: np.ndarray, photo: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`rendered` with a per-channel gain and offset (least squares over the mask) that best match the photo.

    A held-out photo has its own exposure and white balance, which no texture built from the other photos can
    know; PSNR after this match measures the texture, PSNR before it also the exposure difference."""
    out = rendered.astype(np.float64).copy()
    for c in range(rendered.shape[2]):
        r, p = out[..., c][mask], photo[..., c][mask].astype(np.float64)
        A = np.stack([r, np.ones_like(r)], 1)
        (gain, offset), *_ = np.linalg.lstsq(A, p, rcond=None)
        out[..., c] = out[..., c] * gain + offset
    return np.clip(out, 0, 255)


def _grey(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float64) if img.ndim == 3 else img.astype(np.float64)


def ssim(rendered: np.ndarray, photo: np.ndarray, mask: np.ndarray) -> float:
    """Mean structural similarity (Wang et al. 2004, Gaussian window σ = 1.5, grey) over masked pixels whose
    whole window lies inside the mask."""
    x, y = _grey(rendered), _grey(photo)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(a: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(a, (11, 11), 1.5)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    inner = cv2.erode(mask.astype(np.uint8), np.ones((11, 11), np.uint8)).astype(bool)
    return float(s[inner].mean()) if inner.any() else float("nan")


def gradient_energy(img: np.ndarray, mask: np.ndarray) -> float:
    """Mean squared Sobel gradient of the grey image over the masked pixels (a sharpness measure)."""
    g = _grey(img)
    gx = cv2.Sobel(g, cv2.CV_64F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_64F, 0, 1, ksize=3)
    inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return float(np.mean((gx * gx + gy * gy)[inner])) if inner.any() else float("nan")


def sharpness_ratio(rendered: np.ndarray, photo: np.ndarray, mask: np.ndarray) -> float:
    return gradient_energy(rendered, mask) / max(gradient_energy(photo, mask), 1e-9)


def sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear texture lookup at OBJ-convention uvs (v up) → float colours (n, channels)."""
    th, tw = texture.shape[:2]
    mx = (uv[:, 0] * tw - 0.5).astype(np.float32)
    my = ((1.0 - uv[:, 1]) * th - 0.5).astype(np.float32)
    n = len(mx)
    cols = 2048
    rows = max(1, (n + cols - 1) // cols)
    pad = rows * cols - n
    mx2 = np.concatenate([mx, np.zeros(pad, np.float32)]).reshape(rows, cols)
    my2 = np.concatenate([my, np.zeros(pad, np.float32)]).reshape(rows, cols)
    out = cv2.remap(texture, mx2, my2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(-1, texture.shape[2] if texture.ndim == 3 else 1)[:n].astype(np.float32)


def seam_score(vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, texture: np.ndarray,
               samples_per_edge: int = 8) -> tuple[float, float]:
    """(seam score, raw jump) in 8-bit levels across the atlas' chart borders.

    A chart border is a 3D edge shared by two triangles whose uvs differ there.  Along it, each side is sampled
    half a texel inside its own triangle: the raw jump is the mean |Δ colour| between the two sides.  Part of
    that is the texture's own gradient over one texel (larger in a coarser atlas), so the score subtracts the
    jump between ½ and 1½ texels inside each side: what remains is the seam itself (0 = invisible)."""
    _, vid = np.unique(vertices, axis=0, return_inverse=True)
    vid = vid.reshape(-1)
    rows = []
    for a, b in ((0, 1), (1, 2), (2, 0)):
        ga, gb = vid[faces[:, a]], vid[faces[:, b]]
        lo, hi = np.minimum(ga, gb), np.maximum(ga, gb)
        flip = ga > gb
        rows.append(np.stack([lo, hi, np.arange(len(faces)), np.where(flip, b, a), np.where(flip, a, b)], 1))
    e = np.concatenate(rows)
    e = e[np.lexsort((e[:, 2], e[:, 1], e[:, 0]))]
    i = np.nonzero((e[1:, 0] == e[:-1, 0]) & (e[1:, 1] == e[:-1, 1]))[0]
    f1, f2 = e[i, 2], e[i + 1, 2]
    uv1a, uv1b = uvs[faces[f1, e[i, 3]]], uvs[faces[f1, e[i, 4]]]
    uv2a, uv2b = uvs[faces[f2, e[i + 1, 3]]], uvs[faces[f2, e[i + 1, 4]]]
    border = (np.abs(uv1a - uv2a).max(1) > 1e-7) | (np.abs(uv1b - uv2b).max(1) > 1e-7)
    if not border.any():
        return 0.0, 0.0
    f1, f2 = f1[border], f2[border]
    uv1a, uv1b, uv2a, uv2b = uv1a[border], uv1b[border], uv2a[border], uv2b[border]
    size = float(max(texture.shape[:2]))
    c1, c2 = uvs[faces[f1]].mean(1), uvs[faces[f2]].mean(1)

    def inward(p: np.ndarray, centre: np.ndarray, texels: float) -> np.ndarray:
        d = centre - p
        return p + d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True) * size, 1e-12) * texels

    across, within = [], []
    for t in (np.arange(samples_per_edge) + 0.5) / samples_per_edge:
        p1, p2 = uv1a * (1 - t) + uv1b * t, uv2a * (1 - t) + uv2b * t
        s1, s2 = sample_texture(texture, inward(p1, c1, 0.5)), sample_texture(texture, inward(p2, c2, 0.5))
        d1, d2 = sample_texture(texture, inward(p1, c1, 1.5)), sample_texture(texture, inward(p2, c2, 1.5))
        across.append(np.abs(s1 - s2).mean(1))
        within.append(0.5 * (np.abs(s1 - d1).mean(1) + np.abs(s2 - d2).mean(1)))
    jump = float(np.mean(np.concatenate(across)))
    return max(0.0, jump - float(np.mean(np.concatenate(within)))), jump


# --------------------------------------------------------------------------------------------------------------
# Rendering the textured model from a photo's camera
# --------------------------------------------------------------------------------------------------------------


def render_from_camera(vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray, texture: np.ndarray,
                       K: np.ndarray, R: np.ndarray, t: np.ndarray, width: int, height: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(BGR render, hit mask) of the textured mesh through a pinhole camera (no shading: texture colour only)."""
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(vertices.astype(np.float32)), o3d.core.Tensor(faces.astype(np.uint32)))
    E = np.eye(4)
    E[:3, :3], E[:3, 3] = R, t
    rays = o3d.t.geometry.RaycastingScene.create_rays_pinhole(o3d.core.Tensor(K), o3d.core.Tensor(E), width, height)
    ans = scene.cast_rays(rays)
    hit = np.isfinite(ans["t_hit"].numpy())
    img = np.zeros((height, width, 3), np.uint8)
    if hit.any():
        pid = ans["primitive_ids"].numpy().astype(np.int64)[hit]
        b = ans["primitive_uvs"].numpy()[hit]
        tri = uvs[faces[pid]]
        uv = tri[:, 0] * (1 - b[:, 0:1] - b[:, 1:2]) + tri[:, 1] * b[:, 0:1] + tri[:, 2] * b[:, 1:2]
        img[hit] = np.clip(sample_texture(texture, uv), 0, 255).astype(np.uint8)
    return img, hit


@dataclass
class ViewScore:
    view: str
    psnr_db: float
    psnr_matched_db: float  # after a per-channel gain/offset match to the held-out photo's exposure
    ssim: float
    sharpness_ratio: float
    pixels: int


def score_view(vertices, faces, uvs, texture, photo: np.ndarray, K: np.ndarray, dist: np.ndarray, R, t,
               name: str, max_side: int) -> tuple[ViewScore, np.ndarray, np.ndarray]:
    """Compare the render from one camera with its (undistorted) photo inside the model's eroded silhouette."""
    h, w = photo.shape[:2]
    if np.any(dist != 0):
        photo = cv2.undistort(photo, K, dist)
    s = min(1.0, max_side / max(w, h))
    if s < 1.0:
        w2, h2 = round(w * s), round(h * s)
        photo = cv2.resize(photo, (w2, h2), interpolation=cv2.INTER_AREA)
        K = K.copy()
        K[0] *= w2 / w
        K[1] *= h2 / h
        w, h = w2, h2
    rendered, hit = render_from_camera(vertices, faces, uvs, texture, K, R, t, w, h)
    mask = cv2.erode(hit.astype(np.uint8), np.ones((2 * SILHOUETTE_ERODE_PX + 1,) * 2, np.uint8)).astype(bool)
    score = ViewScore(name, psnr(rendered, photo, mask), psnr(exposure_matched(rendered, photo, mask), photo, mask),
                      ssim(rendered, photo, mask),
                      sharpness_ratio(rendered, photo, mask), int(mask.sum()))
    return score, rendered, photo


# --------------------------------------------------------------------------------------------------------------
# Baking (child process: runs with one engine's sources first on the path)
# --------------------------------------------------------------------------------------------------------------


def holdout_views(registered: list[str]) -> list[str]:
    names = sorted(registered)
    step = min(HOLDOUT_EVERY, max(2, len(names) // MIN_HOLDOUT))
    return names[step // 2::step]


def _known_fields(cls, d: dict) -> dict:
    """`d` without the keys dataclass `cls` does not have: an older engine's texture stage can bake from a newer
    engine's work dir (same mesh), whose stage results carry fields added since."""
    import dataclasses

    known = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in d.items() if k in known}


def bake(work: Path, out: Path, quality: str, holdout: list[str]) -> dict:
    """Texture the kept mesh from every registered photo except `holdout` (engine from `sys.path`)."""
    import pycolmap

    from openscancloud.engine import texture as texture_stage
    from openscancloud.engine.context import StageContext, read_json
    from openscancloud.engine.ingest import IngestResult
    from openscancloud.engine.mesh import MeshResult
    from openscancloud.engine.presets import get_preset
    from openscancloud.engine.sparse import SparseResult

    from openscancloud.engine.ingest import View

    ingest_dict = read_json(work / "ingest" / "done.json")["result"]
    ingest_dict["views"] = [_known_fields(View, v) for v in ingest_dict["views"]]
    ingest = IngestResult.from_dict(ingest_dict)
    sparse = SparseResult.from_dict(_known_fields(SparseResult, read_json(work / "sparse" / "done.json")["result"]))
    mesh = MeshResult.from_dict(_known_fields(MeshResult, read_json(work / "mesh" / "done.json")["result"]))
    rec = pycolmap.Reconstruction(str(sparse.model_dir))
    for image_id, img in list(rec.images.items()):
        if img.name in holdout and img.has_pose:
            rec.deregister_frame(img.frame_id)
    model_dir = out / "sparse_without_holdout"
    model_dir.mkdir(parents=True, exist_ok=True)
    rec.write(str(model_dir))
    sparse.model_dir = model_dir
    sparse.registered = [n for n in sparse.registered if n not in holdout]
    ctx = StageContext(stage="texture", work_dir=out / "texture", preset=get_preset(quality))
    timing_file = out / "bake_timing.json"
    resumed = (out / "texture" / "done.json").is_file() and timing_file.is_file()
    t0, c0 = time.perf_counter(), _cpu_seconds()
    result = texture_stage.run(mesh, sparse, ingest, ctx)
    timing = {"seconds": time.perf_counter() - t0, "cpu_seconds": _cpu_seconds() - c0, "load": os.getloadavg()[0],
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if resumed:  # an earlier run baked this texture: report its measurements, not the instant resume
        timing = json.loads(timing_file.read_text())
    else:
        timing_file.write_text(json.dumps(timing))
    return {"mesh_path": str(result.mesh_path), "texture_path": str(result.texture_path),
            "texture_size": result.texture_size, **timing}


def _cpu_seconds() -> float:
    """User + system time of this process, all threads (wall time lies on a shared, loaded machine)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_bake(src: Path, work: Path, out: Path, quality: str, holdout: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src))
    cmd = [sys.executable, str(Path(__file__).resolve()), "bake", "--work", str(work), "--out", str(out),
           "--quality", quality, "--holdout", ",".join(holdout)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"bake failed ({src}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------------------------
# Scoring one baked texture
# --------------------------------------------------------------------------------------------------------------


def camera_of(rec, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]:
    img = next(i for i in rec.images.values() if i.name == name)
    cam = img.camera
    m = img.cam_from_world().matrix()
    K = np.asarray(cam.calibration_matrix(), np.float64)
    p = np.array(cam.params, np.float64, copy=True)
    model = cam.model_name if hasattr(cam, "model_name") else str(cam.model)
    dist = np.zeros(5)
    if "SIMPLE_RADIAL" in model:
        dist[0] = p[3]
    elif "RADIAL" in model:
        dist[0], dist[1] = p[3], p[4]
    return K, dist, np.asarray(m[:, :3]), np.asarray(m[:, 3]), cam.width, cam.height


def score_bake(baked: dict, work: Path, holdout: list[str], max_side: int, crops_dir: Path | None = None,
               label: str = "") -> dict:
    import pycolmap

    sys.path.insert(0, str(REPO_ROOT / "src"))
    from openscancloud.engine.context import read_json
    from openscancloud.engine.ingest import IngestResult

    ingest = IngestResult.from_dict(read_json(work / "ingest" / "done.json")["result"])
    sparse_dir = Path(read_json(work / "sparse" / "done.json")["result"]["model_dir"])
    rec = pycolmap.Reconstruction(str(sparse_dir))
    data = np.load(baked["mesh_path"])
    V, F, UV = data["vertices"], data["faces"], data["uvs"]
    texture = cv2.imread(baked["texture_path"], cv2.IMREAD_COLOR)
    views = []
    for name in holdout:
        K, dist, R, t, w, h = camera_of(rec, name)
        photo = cv2.imread(str(ingest.original_path(ingest.view(name))), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if photo.shape[1] != w or photo.shape[0] != h:  # the original is larger than the working image
            K = K.copy()
            K[0] *= photo.shape[1] / w
            K[1] *= photo.shape[0] / h
        score, rendered, undistorted = score_view(V, F, UV, texture, photo, K, dist, R, t, name, max_side)
        views.append(score)
        if crops_dir is not None:
            crops_dir.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(crops_dir / f"{Path(name).stem}_{label}.png"), rendered)
            cv2.imwrite(str(crops_dir / f"{Path(name).stem}_photo.png"), undistorted)
    return {
        "psnr_db": float(np.median([v.psnr_db for v in views])),
        "psnr_matched_db": float(np.median([v.psnr_matched_db for v in views])),
        "ssim": float(np.median([v.ssim for v in views])),
        "sharpness_ratio": float(np.median([v.sharpness_ratio for v in views])),
        **dict(zip(("seam_score", "seam_jump"), seam_score(V, F, UV, texture))),
        "views": [asdict(v) for v in views],
    }


def _closeup_box(photo: np.ndarray, mask: np.ndarray, side: int) -> tuple[int, int]:
    """Top-left corner of the `side`² window (fully inside the silhouette) with the most photo detail."""
    g = _grey(photo)
    energy = cv2.Sobel(g, cv2.CV_64F, 1, 0) ** 2 + cv2.Sobel(g, cv2.CV_64F, 0, 1) ** 2
    energy = cv2.boxFilter(energy * mask, -1, (side, side), normalize=True)
    inside = cv2.boxFilter(mask.astype(np.float64), -1, (side, side), normalize=True) > 0.98
    h, w = mask.shape
    energy[~inside] = -1
    half = side // 2
    energy[:half], energy[h - half:], energy[:, :half], energy[:, w - half:] = -1, -1, -1, -1
    y, x = np.unravel_index(int(np.argmax(energy)), energy.shape)
    return int(x - half), int(y - half)


def held_out_camera(work: Path, name: str) -> tuple[np.ndarray, tuple]:
    """(original photo, (K at the photo's size, distortion, R, t)) of a held-out view, as one engine run sees it."""
    import pycolmap

    from openscancloud.engine.context import read_json
    from openscancloud.engine.ingest import IngestResult

    ingest = IngestResult.from_dict(read_json(work / "ingest" / "done.json")["result"])
    rec = pycolmap.Reconstruction(str(read_json(work / "sparse" / "done.json")["result"]["model_dir"]))
    K, dist, R, t, w, h = camera_of(rec, name)
    photo = cv2.imread(str(ingest.original_path(ingest.view(name))), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if photo.shape[1] != w or photo.shape[0] != h:
        K = K.copy()
        K[0] *= photo.shape[1] / w
        K[1] *= photo.shape[0] / h
    return photo, (K, dist, R, t)


def write_figures(set_name: str, per_engine: dict, works: dict[str, Path], holdout: list[str], max_side: int,
                  out_dir: Path) -> list[Path]:
    """Before/after figures: a preview of each engine's model and a close-up strip photo | engine… of the
    held-out view with the most detail (same window for all, 2× nearest-neighbour so texels stay visible).
    `works`: each engine's work dir (its own cameras when the engines ran end to end)."""
    from openscancloud.engine.render import render_textured

    out_dir.mkdir(parents=True, exist_ok=True)
    name = holdout[0]
    renders, previews = {}, {}
    for label, r in per_engine.items():
        photo, (K, dist, R, t) = held_out_camera(works[label], name)
        data = np.load(r["mesh_path"])
        tex = cv2.imread(r["texture_path"], cv2.IMREAD_COLOR)
        _, rendered, undistorted = score_view(data["vertices"], data["faces"], data["uvs"], tex, photo, K, dist, R,
                                              t, name, max_side)
        renders[label] = rendered
        # the whole model, seen along the held-out camera's axis with its image-up up
        previews[label] = render_textured(data["vertices"], data["faces"], data["uvs"], tex, R[2], -R[1],
                                          size=(480, 360))
    mask = np.any(next(iter(renders.values())) > 0, axis=2)
    side = max(64, min(256, min(undistorted.shape[:2]) // 4))
    x, y = _closeup_box(undistorted, mask, side)

    def crop(img: np.ndarray) -> np.ndarray:
        c = img[y:y + side, x:x + side]
        return cv2.resize(c, (2 * side, 2 * side), interpolation=cv2.INTER_NEAREST)

    def titled(img: np.ndarray, title: str) -> np.ndarray:
        img = img.copy()
        cv2.putText(img, title, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(img, title, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 1, cv2.LINE_AA)
        return img

    gap = lambda img: np.full((img.shape[0], 6, 3), 255, np.uint8)  # noqa: E731
    strip = [titled(crop(undistorted), "photo (held out)")]
    for label, img in renders.items():
        strip += [gap(strip[-1]), titled(crop(img), label)]
    closeup = out_dir / f"texture_closeup_{set_name}.png"
    cv2.imwrite(str(closeup), np.concatenate(strip, 1))
    row = []
    for label, img in previews.items():
        row += ([gap(img)] if row else []) + [titled(img, label)]
    preview = out_dir / f"texture_preview_{set_name}.png"
    cv2.imwrite(str(preview), np.concatenate(row, 1))
    return [closeup, preview]


DOCS_FILE = REPO_ROOT / "docs" / "benchmarks.md"
DOCS_BEGIN, DOCS_END = "<!-- bench:texture:begin -->", "<!-- bench:texture:end -->"


def markdown_section(results: dict, figures: Path | None) -> str:
    """The docs/benchmarks.md section: one row per set and engine, ratios new/old, the figures."""
    lines = [DOCS_BEGIN, f"### Texture quality (held-out views) — preset `{results['quality']}`, {results['when']}", "",
             "Command" + ("s" if len(results.get("commands", [])) > 1 else "") + ": "
             + ", ".join(f"`python bench/{_portable(c)}`" for c in results.get("commands", [results["command"]]))
             + " (RUNS: one kept engine work dir per set, `RUNS/SET/work`; OLD/src: a checkout of the previous "
             "engine; a resumed bake reports the measurements of the run that baked it)  ",
             f"Machine: {results['machine']}; 1-minute load average {results['load'][0]:.1f} at the start "
             "(the machine was shared: wall times are pessimistic, CPU seconds are the fairer figure).", "",
             "Protocol: " + ("each engine ran end to end on each set (its own cameras and mesh; RUNS_LABEL), so "
                             "geometry counts as well as the texture stage; " if results.get("end_to_end") else
                             "one engine run per set gives cameras and mesh; ")
             + "every 8th photo (at least two) is left out of "
             "texturing only; each engine's texture stage bakes " + ("its own mesh" if results.get("end_to_end") else
                                                                    "the same mesh") + " from the other photos; the textured "
             "model is ray-cast from each held-out camera at the photo's resolution and compared with the "
             "undistorted photo inside the model's silhouette (eroded 4 px). PSNR is also given after a per-channel "
             "gain/offset match to the held-out photo (its exposure cannot be known from the other photos). "
             "Sharpness = gradient energy of the render ÷ the photo's. Seam = colour jump across chart borders "
             "minus the texture's own one-texel gradient (raw jump in brackets), 8-bit levels. Medians over the "
             "held-out views.", "",
             "| set | engine | held out | PSNR dB | PSNR exposure-matched dB | SSIM | sharpness | seam (raw jump) | atlas | bake s "
             "| bake CPU s | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for set_name, r in results["sets"].items():
        for label, e in r["engines"].items():
            lines.append(f"| {set_name} | {label} | {len(r['holdout'])}/{r['registered']} | {e['psnr_db']:.2f} | "
                         f"{e.get('psnr_matched_db', float('nan')):.2f} | {e['ssim']:.3f} | {e['sharpness_ratio']:.2f} | {e['seam_score']:.2f} ({e.get('seam_jump', float('nan')):.1f}) | "
                         f"{e['texture_size']}² | {e['seconds']:.0f} | {_num(e.get('cpu_seconds'))} | "
                         f"{e['peak_rss_mb']:.0f} |")
    labels = list(next(iter(results["sets"].values()))["engines"]) if results["sets"] else []
    if len(labels) == 2:
        old, new = labels
        lines += ["", f"{new} vs {old}:", "", "| set | ΔPSNR dB | ΔPSNR matched dB | ΔSSIM | sharpness | seam ratio |",
                  "|---|---|---|---|---|---|"]
        for set_name, r in results["sets"].items():
            a, b = r["engines"][old], r["engines"][new]
            lines.append(f"| {set_name} | {b['psnr_db'] - a['psnr_db']:+.2f} | "
                         f"{b['psnr_matched_db'] - a['psnr_matched_db']:+.2f} | {b['ssim'] - a['ssim']:+.3f} | "
                         f"{a['sharpness_ratio']:.2f} → {b['sharpness_ratio']:.2f} | "
                         f"{b['seam_score'] / max(a['seam_score'], 1e-9):.2f} |")
    if figures is not None:
        lines.append("")
        for set_name in results["sets"]:
            rel = os.path.relpath(figures, DOCS_FILE.parent)
            lines += [f"{set_name}: close-up of a held-out view (photo, then each engine's render, 2×), and the models:", "",
                      f"![{set_name} close-up]({rel}/texture_closeup_{set_name}.png)", "",
                      f"![{set_name} previews]({rel}/texture_preview_{set_name}.png)", ""]
    lines.append(DOCS_END)
    return "\n".join(lines)


def _portable(command: str) -> str:
    """The command without this machine's folders."""
    import re

    command = re.sub(r"--runs \S+", "--runs RUNS", command)
    command = re.sub(r"(--engine-runs (\w+)=)\S+", lambda m: f"{m.group(1)}RUNS_{m.group(2).upper()}", command)
    return re.sub(r"(--engine \w+=)/\S+", r"\1OLD/src", command)


def _num(value, spec: str = ".0f") -> str:
    return "—" if value is None else format(value, spec)


def update_docs(section: str, docs_file: Path = DOCS_FILE) -> None:
    text = docs_file.read_text()
    if DOCS_BEGIN in text and DOCS_END in text:
        head, rest = text.split(DOCS_BEGIN, 1)
        text = head + section + rest.split(DOCS_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    docs_file.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Held-out-view texture benchmark (old vs new in one run).")
    sub = parser.add_subparsers(dest="cmd")
    b = sub.add_parser("bake", help="(internal) bake one texture with the engine on PYTHONPATH")
    b.add_argument("--work", type=Path, required=True)
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--quality", default="standard")
    b.add_argument("--holdout", default="")
    parser.add_argument("--runs", type=Path, default=BENCH_DIR / "work" / "texture",
                        help="folder with SET/work (kept engine work dirs)")
    parser.add_argument("--sets", default="synth_bust,kermit")
    parser.add_argument("--quality", default="standard", choices=("preview", "standard", "high"))
    parser.add_argument("--engine", action="append", default=[], metavar="LABEL=SRC",
                        help="an engine to compare (its src folder); repeatable; default new=src")
    parser.add_argument("--engine-runs", action="append", default=[], metavar="LABEL=RUNS",
                        help="that engine's own runs folder (RUNS/SET/work from its own end-to-end run): compares "
                             "whole engines, geometry included, instead of texture stages on one mesh")
    parser.add_argument("--eval-size", type=int, default=2400, help="long side of the comparison images (px)")
    parser.add_argument("--crops", type=Path, default=None, help="write renders and photos here")
    parser.add_argument("--update-docs", action="store_true", help="(re)write the texture section of docs/benchmarks.md")
    parser.add_argument("--from-results", type=Path, default=None, metavar="JSON",
                        help="only print/update docs from a saved results file")
    parser.add_argument("--figures", type=Path, default=None,
                        help="write before/after previews and close-ups (texture_*_SET.png) here, e.g. docs/img")
    args = parser.parse_args(argv)
    if args.cmd == "bake":
        holdout = [h for h in args.holdout.split(",") if h]
        print(json.dumps(bake(args.work, args.out, args.quality, holdout)))
        return 0
    if args.from_results:
        results = json.loads(args.from_results.read_text())
        section = markdown_section(results, args.figures)
        print(section)
        if args.update_docs:
            update_docs(section)
        return 0
    engines = dict(e.split("=", 1) for e in args.engine) or {"new": str(REPO_ROOT / "src")}
    results = {"command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]), "quality": args.quality,
               "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load": os.getloadavg(),
               "machine": f"{platform.machine()} {os.cpu_count()} cores", "sets": {}}
    sys.path.insert(0, str(REPO_ROOT / "src"))
    from openscancloud.engine.context import read_json

    own_runs = dict(e.split("=", 1) for e in args.engine_runs)
    results["end_to_end"] = bool(own_runs)
    for set_name in [s for s in args.sets.split(",") if s]:
        works = {label: Path(own_runs.get(label, args.runs)) / set_name / "work" for label in engines}
        registered_by = [set(read_json(w / "sparse" / "done.json")["result"]["registered"]) for w in works.values()]
        registered = sorted(set.intersection(*registered_by))  # held-out views every engine placed
        holdout = holdout_views(registered)
        per_engine = {}
        for label, src in engines.items():
            work = works[label]
            out = args.runs / set_name / f"bake_{label}_{args.quality}"
            baked = run_bake(Path(src).resolve(), work, out, args.quality, holdout)
            crops = args.crops / set_name if args.crops else None
            scored = score_bake(baked, work, holdout, args.eval_size, crops, label)
            per_engine[label] = {**baked, **scored}
            print(f"{set_name:12s} {label:4s} PSNR {scored['psnr_db']:.2f} dB (matched {scored['psnr_matched_db']:.2f})  SSIM {scored['ssim']:.3f}  "
                  f"sharp {scored['sharpness_ratio']:.2f}  seam {scored['seam_score']:.2f}  "
                  f"bake {baked['seconds']:.1f} s (cpu {_num(baked.get('cpu_seconds'), '.1f')} s)  peak {baked['peak_rss_mb']:.0f} MB  atlas {baked['texture_size']}",
                  flush=True)
        results["sets"][set_name] = {"holdout": holdout, "registered": len(registered), "engines": per_engine}
        if args.figures:
            for path in write_figures(set_name, per_engine, works, holdout, args.eval_size, args.figures):
                print(f"figure: {path}")
    out_json = args.runs / f"texture_{args.quality}.json"
    out_json.write_text(json.dumps(results, indent=2))
    print(f"results: {out_json}")
    section = markdown_section(results, args.figures)
    print(section)
    if args.update_docs:
        update_docs(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
