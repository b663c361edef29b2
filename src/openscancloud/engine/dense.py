"""Stage 4 — dense: PatchMatch depth + normal maps on the object's pixels, checked across views, fused in voxels.

Why this design:
- every view is cropped to the object's region (its mask, else its own sparse points) *before* the working size is
  chosen, so the preset's pixel budget goes to the object, not to the backdrop; the crop is read from the
  full-resolution photo when the working copy is smaller than the budget needs (one photo at a time, decoded at
  a reduced JPEG scale when that suffices), and undistorted while it is resampled;
- depth maps come from PatchMatch stereo with a normal per pixel (`patchmatch.py`): slanted, grazing and
  downward-facing surfaces match, which a fronto-parallel plane sweep cannot do;
- a depth enters the cloud only when neighbouring depth maps confirm it (depth and normal), and the confirmed
  points are streamed into a voxel hash (`fusion.py`): memory follows the object's surface, not photos × pixels;
  the PatchMatch normals go to the surface reconstruction;
- when pycolmap was built with CUDA, COLMAP's GPU PatchMatch runs instead; if it fails, the CPU path runs and the
  reason is written to the report and shown in the progress messages.
Pixel conventions: COLMAP's intrinsics put the image corner at (0, 0); everything here uses OpenCV's (integer
coordinates are pixel centres), converted once in `view_intrinsics`.
"""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pycolmap

from . import fusion, region
from .context import StageContext, StageResult, load_done, save_done
from .errors import EngineError
from .ingest import IngestResult
from .masks import MaskResult
from .orient import Orientation
from .patchmatch import DepthNormalMap, PatchMatchParams, SourceView, geometric_pass, patch_match
from .sparse import SparseResult, camera_arrays

log = logging.getLogger(__name__)

CONSISTENCY_NEIGHBOURS = 8  # depth maps each depth map is checked against
DEPTH_RANGE_MARGIN = 0.15  # random hypotheses cover the view's sparse depths (2nd–98th percentile) ± this fraction
CROP_MARGIN = 0.08  # the object's region grows by this fraction of its size on every side
VOXEL_FOOTPRINTS = 1.0  # fused points are merged in voxels of this many depth-map pixel footprints
FUSION_VERSION = "consistency+free-space-1"  # changes here redo fusion on a resumed job, not the depth maps
OBJECT_REGION_VERSION = "masks-and-object-hull-to-plate-4"  # how each view's pixels to reconstruct are chosen
GEOMETRIC_VERSION = "forward-backward-1"  # changes here redo the geometric pass and fusion, not the first depth maps


@dataclass
class DenseResult(StageResult):
    ply_path: Path  # coloured points with normals, in the sparse model's frame
    num_points: int
    num_depth_maps: int
    method: str  # "cpu-patch-match" or "cuda-patch-match"
    fallback: str | None = None  # why the GPU path did not run (None when it ran)
    pixels_per_view: int = 0  # median number of object pixels per depth map
    extra: dict = field(default_factory=dict)


@dataclass
class ViewCrop:
    """One photo's object region at the working scale, undistorted, with its pinhole camera (OpenCV pixels)."""

    name: str
    gray: np.ndarray  # float32 in [0, 1]
    color: np.ndarray  # uint8 RGB
    mask: np.ndarray  # bool: pixels to reconstruct
    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    depth_range: tuple[float, float]
    scale: float  # crop pixels per original-photo pixel


def _point_visibility(rec: pycolmap.Reconstruction) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    ids = list(rec.points3D.keys())
    xyz = np.array([rec.points3D[i].xyz for i in ids], dtype=np.float64).reshape(-1, 3)
    index = {pid: k for k, pid in enumerate(ids)}
    seen: dict[int, list[int]] = {}
    for pid, p in rec.points3D.items():
        k = index[pid]
        for el in p.track.elements:
            seen.setdefault(el.image_id, []).append(k)
    return xyz, {img: np.unique(np.array(v)) for img, v in seen.items()}


def select_neighbours(cams: dict, xyz: np.ndarray, seen: dict[int, np.ndarray], count: int) -> dict[str, list[str]]:
    """For each view, the views sharing the most sparse points at a triangulation angle useful for stereo."""
    names = list(cams)
    out = {}
    for a in names:
        pa = seen.get(cams[a]["image_id"], np.empty(0, int))
        scored = []
        for b in names:
            if b == a:
                continue
            pb = seen.get(cams[b]["image_id"], np.empty(0, int))
            shared = np.intersect1d(pa, pb, assume_unique=True)
            if len(shared) < 8:
                continue
            X = xyz[shared]
            ra = X - cams[a]["center"]
            rb = X - cams[b]["center"]
            cos = np.sum(ra * rb, 1) / (np.linalg.norm(ra, axis=1) * np.linalg.norm(rb, axis=1) + 1e-12)
            angle = float(np.degrees(np.median(np.arccos(np.clip(cos, -1, 1)))))
            if angle < 1.0 or angle > 60.0:
                continue
            weight = min(1.0, angle / 10.0) * (1.0 if angle < 40 else (60 - angle) / 20)
            scored.append((len(shared) * weight, b))
        scored.sort(reverse=True)
        out[a] = [b for _, b in scored[:count]]
    return out




def view_intrinsics(K_colmap: np.ndarray, scale: float, offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """OpenCV intrinsics of the image scaled by `scale` and cropped at `offset` (x0, y0), from COLMAP's K.

    COLMAP: the top-left corner is (0, 0), so scaling multiplies cx directly; OpenCV: (0, 0) is the top-left pixel's
    centre, half a pixel further in."""
    K = np.asarray(K_colmap, np.float64).copy()
    K[:2, :] *= scale
    K[2] = (0.0, 0.0, 1.0)
    K[0, 2] -= 0.5 + offset[0]
    K[1, 2] -= 0.5 + offset[1]
    return K


def _distortion(cam: dict) -> tuple[float, float]:
    params = cam["params"]
    if cam["model"] in ("SIMPLE_RADIAL", "RADIAL"):
        return float(params[3]), float(params[4]) if cam["model"] == "RADIAL" else 0.0
    if cam["model"] in ("PINHOLE", "SIMPLE_PINHOLE"):
        return 0.0, 0.0
    raise EngineError(f"The camera model {cam['model']} is not supported by the dense stage.")


def object_region(cam: dict, points: np.ndarray, mask: np.ndarray | None) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the object in working-image pixels: the mask's box, else the view's sparse points'."""
    w, h = cam["width"], cam["height"]
    if mask is not None and mask.any():
        ys, xs = np.nonzero(mask)
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    else:
        Xc = points @ cam["R"].T + cam["t"]
        Xc = Xc[Xc[:, 2] > 0]
        if len(Xc) < 5:
            return None
        uv = Xc @ cam["K"].T
        uv = uv[:, :2] / uv[:, 2:3]
        (x0, y0), (x1, y1) = np.percentile(uv, 1, axis=0), np.percentile(uv, 99, axis=0)
    mx, my = CROP_MARGIN * (x1 - x0) + 8, CROP_MARGIN * (y1 - y0) + 8
    x0, y0 = max(0, int(x0 - mx)), max(0, int(y0 - my))
    x1, y1 = min(w, int(math.ceil(x1 + mx))), min(h, int(math.ceil(y1 + my)))
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None
    return x0, y0, x1, y1


def load_crop(name: str, cam: dict, original: Path, original_size: tuple[int, int], region: tuple[int, int, int, int],
              mask: np.ndarray | None, pixel_budget: int, max_side: int, depth_range: tuple[float, float]) -> ViewCrop:
    """The object region of one photo, resampled so that it holds about `pixel_budget` pixels (never upsampled)."""
    ow, oh = original_size
    ww = cam["width"]
    r = ow / ww  # original pixels per working pixel
    x0, y0, x1, y1 = region
    # the budget counts object pixels: the mask's inside when there is a mask, else the whole region
    object_px = int(mask[y0:y1, x0:x1].sum()) if mask is not None else (x1 - x0) * (y1 - y0)
    area = max(object_px, 0.05 * (x1 - x0) * (y1 - y0)) * r * r
    scale = min(1.0, math.sqrt(pixel_budget / area), max_side / (max(x1 - x0, y1 - y0) * r))
    reduce = next(k for k in (8, 4, 2, 1) if 1.0 / k >= scale * 1.5 or k == 1)
    flag = {8: cv2.IMREAD_REDUCED_COLOR_8, 4: cv2.IMREAD_REDUCED_COLOR_4, 2: cv2.IMREAD_REDUCED_COLOR_2,
            1: cv2.IMREAD_COLOR}[reduce]
    img = cv2.imread(str(original), flag | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
        raise EngineError(f"The photo {name} could not be read again for the depth maps.")
    # crop geometry at the target scale (original → crop: x' = x·scale − ox, corner convention)
    ox, oy = int(math.floor(x0 * r * scale)), int(math.floor(y0 * r * scale))
    cw = max(16, int(math.ceil(x1 * r * scale)) - ox)
    ch = max(16, int(math.ceil(y1 * r * scale)) - oy)
    K = view_intrinsics(cam["K"], r * scale, (ox, oy))
    k1, k2 = _distortion(cam)
    # for every crop pixel: the distorted position in the decoded image (OpenCV centres)
    u, v = np.meshgrid(np.arange(cw, dtype=np.float64), np.arange(ch, dtype=np.float64))
    xn = (u - K[0, 2]) / K[0, 0]
    yn = (v - K[1, 2]) / K[1, 1]
    r2 = xn * xn + yn * yn
    factor = 1.0 + k1 * r2 + k2 * r2 * r2
    xs = xn * factor * K[0, 0] + K[0, 2] + ox  # pixel centre coordinates at the target scale (uncropped)
    ys = yn * factor * K[1, 1] + K[1, 2] + oy
    sx, sy = img.shape[1] / ow, img.shape[0] / oh  # decoded pixels per original pixel
    if sx > scale * 1.25:  # shrink with an area filter first (no aliasing), then only a sub-pixel remap
        tw, th = max(8, round(ow * scale)), max(8, round(oh * scale))
        img = cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA)
        sx, sy = tw / ow, th / oh
    mapx = ((xs + 0.5) / scale * sx - 0.5).astype(np.float32)
    mapy = ((ys + 0.5) / scale * sy - 0.5).astype(np.float32)
    crop = cv2.remap(img, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    del img
    inside = np.ones((ch, cw), bool)
    if mask is not None:
        mx = ((xs + 0.5) / (scale * r) - 0.5).astype(np.float32)
        my = ((ys + 0.5) / (scale * r) - 0.5).astype(np.float32)
        inside = cv2.remap(mask.astype(np.uint8) * 255, mx, my, cv2.INTER_NEAREST, borderValue=0) > 127
    rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
    return ViewCrop(name, gray, rgb, inside, K, cam["R"], cam["t"], depth_range, scale)


def _read_mask(masks: MaskResult, name: str) -> np.ndarray | None:
    path = masks.surface_mask_path(name)
    if path is None or not path.is_file():
        return None
    m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    return None if m is None else m > 127


def patch_match_params(preset, seed: int) -> PatchMatchParams:
    return PatchMatchParams(window_radius=max(1, preset.depth_window // 2), k_best=preset.depth_best_sources,
                            iterations=preset.depth_iterations, seed=seed)


def run(ingest: IngestResult, masks: MaskResult, sparse: SparseResult, ctx: StageContext,
        orientation: Orientation | None = None) -> DenseResult:
    """Depth maps of every view, fused into one cloud. `orientation` (turntable axes) lets the depth maps leave
    the turntable plate out (region.object_hull); without it every masked pixel is used."""
    preset = ctx.preset
    key = {"sparse": sparse.to_dict(), "masks": masks.to_dict(), "pixels": preset.depth_pixels,
           "size": preset.depth_max_size, "iterations": preset.depth_iterations, "sources": preset.depth_sources,
           "best": preset.depth_best_sources, "window": preset.depth_window, "algorithm": "patch-match-1",
           "region": OBJECT_REGION_VERSION, "orientation": orientation.to_dict() if orientation else None}
    # the depth maps (`key`) stay valid when only fusion changes
    done_key = {**key, "fusion": FUSION_VERSION, "min_views": preset.min_consistent_views,
                "geometric": _geometric_settings(preset)}
    if (saved := load_done(ctx.work_dir, done_key)) is not None:
        return DenseResult.from_dict(saved)
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    fallback = "this pycolmap build has no CUDA (GPU) support"
    if pycolmap.has_cuda:
        try:
            result = _run_cuda(ingest, masks, sparse, ctx)
            save_done(ctx.work_dir, done_key, result.to_dict())
            return result
        except Exception as exc:  # the CPU path below always works; the reason goes to the report
            ctx.check_cancelled()
            fallback = f"GPU PatchMatch failed ({type(exc).__name__}: {exc}); the CPU PatchMatch ran instead"
            log.warning("%s", fallback)
    result = _run_cpu(ingest, masks, sparse, ctx, fallback, key, orientation)
    save_done(ctx.work_dir, done_key, result.to_dict())
    return result


def _run_cpu(ingest: IngestResult, masks: MaskResult, sparse: SparseResult, ctx: StageContext,
             fallback: str | None, key: dict, orientation: Orientation | None) -> DenseResult:
    from numba import set_num_threads

    preset = ctx.preset
    set_num_threads(max(1, min(ctx.num_threads, _numba_threads())))
    note = "CPU PatchMatch" + (" (GPU PatchMatch failed: see report.json)" if fallback and "failed" in fallback
                               else "")
    rec = sparse.load()
    cams = camera_arrays(rec)
    xyz, seen = _point_visibility(rec)
    names = sorted(cams)
    neighbours = select_neighbours(cams, xyz, seen, max(CONSISTENCY_NEIGHBOURS, preset.depth_sources))
    ctx.report(0.01, f"{note}: cropping photos to the object")
    hull = region.object_hull(xyz, orientation)  # None: no turntable plate to leave out
    ingest_views = {v.name: v for v in ingest.views}

    def crop(name: str) -> ViewCrop | None:
        ctx.check_cancelled()
        cam = cams[name]
        pts = xyz[seen.get(cam["image_id"], np.empty(0, int))]
        z = (pts @ cam["R"].T + cam["t"])[:, 2]
        z = z[z > 0]
        if len(z) < 5:
            return None
        lo, hi = np.percentile(z, [2, 98])
        depth_range = (float(lo) * (1 - DEPTH_RANGE_MARGIN), float(hi) * (1 + DEPTH_RANGE_MARGIN))
        mask = _read_mask(masks, name)
        if hull is not None and (inside := region.hull_in_view(hull, cam["R"], cam["t"], cam["K"], cam["width"],
                                                               cam["height"])) is not None:
            mask = inside if mask is None else mask & inside
        box = object_region(cam, pts, mask)
        if box is None:
            return None
        view = ingest_views.get(name)
        original = ingest.original_path(view) if view else ingest.images_dir / name
        size = (view.original_width, view.original_height) if view else (cam["width"], cam["height"])
        if not original.is_file() or (original.parent == ingest.images_dir):
            size = (cam["width"], cam["height"])  # the working copy is the photo at its own size
        return load_crop(name, cam, original, size, box, mask, preset.depth_pixels, preset.depth_max_size,
                         depth_range)

    crops: dict[str, ViewCrop] = {}
    with ThreadPoolExecutor(max(1, ctx.num_threads)) as pool:
        for name, c in zip(names, pool.map(crop, names)):
            if c is not None:
                crops[name] = c
    usable = [n for n in names if n in crops and any(s in crops for s in neighbours[n][:preset.depth_sources])]
    if not usable:
        raise EngineError("No depth map could be computed from the recovered cameras.")
    maps_dir = _maps_dir(ctx.work_dir, key)
    geometric = preset.depth_geometric_iterations > 0
    share = 0.83 * (0.7 if geometric else 1.0)  # of the stage's progress bar
    paths: dict[str, Path] = {}
    pixels = []
    t0 = time.perf_counter()
    for i, name in enumerate(usable):
        ctx.check_cancelled()
        path = maps_dir / f"{name}.npz"
        ref = crops[name]
        pixels.append(int(ref.mask.sum()))
        if not path.is_file():  # a resumed job keeps the depth maps it already has
            sources = [src for _, src in _sources(ref, crops, neighbours[name][:preset.depth_sources])]
            dm = patch_match(ref.gray, ref.K, sources, ref.depth_range, ref.mask, patch_match_params(preset, i + 1))
            fusion.DepthView(name, dm.depth, dm.normal, ref.color, ref.K, ref.R, ref.t).save(path)
        paths[name] = path
        eta = (time.perf_counter() - t0) / (i + 1) * (len(usable) - i - 1)
        ctx.report(0.02 + share * (i + 1) / len(usable),
                   f"{note}: depth map {i + 1}/{len(usable)} ({pixels[-1] // 1000} k object pixels, ~{eta:.0f} s left)")
    if geometric:
        paths = _geometric_pass(usable, crops, neighbours, paths, ctx, key, (0.02 + share, 0.85))
    footprint = float(np.median([np.mean(c.depth_range) / c.K[0, 0] for c in crops.values()]))
    crops.clear()  # fusion reads the depth maps from disk, a few at a time
    ctx.report(0.86, "fusing depth maps")
    store = fusion.DepthStore(paths)
    acc = fusion.fuse(store, {n: neighbours[n][:CONSISTENCY_NEIGHBOURS] for n in usable},
                      preset.min_consistent_views, footprint * VOXEL_FOOTPRINTS,
                      lambda done, total: ctx.report(0.86 + 0.1 * done / total, f"fused {done}/{total} depth maps"))
    points, normals, colors, support = acc.result()
    ctx.report(0.96, "checking the fused points against every view's free space")
    outliers = fusion.visibility_votes(points, store, usable).outliers()
    points, normals, colors = points[~outliers], normals[~outliers], colors[~outliers]
    if len(points) < 100:
        raise EngineError("Too few dense points survived the multi-view check to build a surface.")
    import open3d as o3d

    pcd = o3d.geometry.PointCloud()
    pcd.points = o3d.utility.Vector3dVector(points)
    pcd.normals = o3d.utility.Vector3dVector(normals.astype(np.float64))
    pcd.colors = o3d.utility.Vector3dVector(np.clip(colors, 0, 255).astype(np.float64) / 255.0)
    pcd, _ = pcd.remove_statistical_outlier(nb_neighbors=12, std_ratio=3.0)
    ply = ctx.work_dir / "dense.ply"
    o3d.io.write_point_cloud(str(ply), pcd, write_ascii=False)
    result = DenseResult(ply, len(pcd.points), len(paths), "cpu-patch-match", fallback,
                         int(np.median(pixels)) if pixels else 0,
                         {"voxel_size": footprint * VOXEL_FOOTPRINTS, "fused_points": acc.points_added,
                          "voxels": acc.num_voxels, "seen_through": int(outliers.sum())})
    ctx.report(1.0, f"{len(pcd.points)} dense points (CPU PatchMatch)")
    return result


def _geometric_settings(preset) -> list:
    """What the geometric pass's maps depend on beyond the first maps' key (the stage's done-key holds it too)."""
    return [GEOMETRIC_VERSION, preset.depth_geometric_iterations]


def _sources(ref: ViewCrop, crops: dict[str, ViewCrop], names: list[str]) -> list[tuple[str, SourceView]]:
    """The neighbour crops as PatchMatch source views of `ref` (source-from-reference poses)."""
    sources = []
    for s in names:
        if s in crops:
            src = crops[s]
            R_rel = src.R @ ref.R.T
            sources.append((s, SourceView(src.gray, src.K, R_rel, src.t - R_rel @ ref.t)))
    return sources


def _geometric_pass(usable: list[str], crops: dict[str, ViewCrop], neighbours: dict[str, list[str]],
                    photometric: dict[str, Path], ctx: StageContext, key: dict, progress: tuple[float, float]
                    ) -> dict[str, Path]:
    """Every depth map again, now preferring planes the neighbours' depth maps agree with (patchmatch.
    geometric_pass); reads the first pass's maps from disk, a few at a time, and writes the new ones beside them."""
    preset = ctx.preset
    start, end = progress
    out_dir = _maps_dir(ctx.work_dir, {**key, "geometric": _geometric_settings(preset)}, "maps-geometric")
    store = fusion.DepthStore(photometric, cache_size=2 * preset.depth_sources + 2)
    paths: dict[str, Path] = {}
    t0 = time.perf_counter()
    for i, name in enumerate(usable):
        ctx.check_cancelled()
        path = out_dir / f"{name}.npz"
        ref = crops[name]
        pairs = [(s, v) for s, v in _sources(ref, crops, neighbours[name][:preset.depth_sources])
                 if s in photometric]
        if not pairs:  # no neighbour has a depth map to agree with: the first map stands
            path = photometric[name]
        elif not path.is_file():
            prior = store.get(name)
            dm = geometric_pass(ref.gray, ref.K, [v for _, v in pairs], [store.get(s).depth for s, _ in pairs],
                                DepthNormalMap(prior.depth, prior.normal, None), ref.depth_range, ref.mask,
                                patch_match_params(preset, 1000 + i), preset.depth_geometric_iterations)
            fusion.DepthView(name, dm.depth, dm.normal, ref.color, ref.K, ref.R, ref.t).save(path)
        paths[name] = path
        eta = (time.perf_counter() - t0) / (i + 1) * (len(usable) - i - 1)
        ctx.report(start + (end - start) * (i + 1) / len(usable),
                   f"geometric consistency: depth map {i + 1}/{len(usable)} (~{eta:.0f} s left)")
    return paths


def _maps_dir(work_dir: Path, key: dict, folder: str = "maps") -> Path:
    """The folder of finished depth maps: kept for a resumed job with the same settings, emptied otherwise."""
    import json
    import shutil

    maps_dir = work_dir / folder
    marker = maps_dir / "settings.json"
    settings = json.dumps(key, sort_keys=True, default=str)
    if maps_dir.is_dir() and (not marker.is_file() or marker.read_text() != settings):
        shutil.rmtree(maps_dir)
    maps_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(settings)
    return maps_dir


def _numba_threads() -> int:
    from numba import config

    return int(config.NUMBA_NUM_THREADS)


def _run_cuda(ingest: IngestResult, masks: MaskResult, sparse: SparseResult, ctx: StageContext) -> DenseResult:
    """COLMAP's PatchMatch stereo + fusion when pycolmap was built with CUDA (never required)."""
    import open3d as o3d

    ws = ctx.work_dir / "mvs"
    ctx.report(0.02, "undistorting photos (GPU PatchMatch)")
    pycolmap.undistort_images(ws, sparse.model_dir, ingest.images_dir)
    options = pycolmap.PatchMatchOptions()
    options.max_image_size = ctx.preset.depth_max_size
    options.geom_consistency = True
    ctx.report(0.1, "GPU PatchMatch stereo")
    pycolmap.patch_match_stereo(ws, options=options)
    ctx.check_cancelled()
    ctx.report(0.8, "fusing depth maps (GPU path)")
    fusion_options = pycolmap.StereoFusionOptions()
    fusion_options.num_threads = max(1, ctx.num_threads)
    fusion_options.min_num_pixels = max(2, ctx.preset.min_consistent_views + 1)
    if masks.masks_dir is not None:
        fusion_options.mask_path = str(masks.masks_dir)
    ply = ctx.work_dir / "dense.ply"
    # output_type "ply" writes the fused points with normals and colours (the default "bin" writes a model folder)
    pycolmap.stereo_fusion(ply, ws, input_type="geometric", options=fusion_options, output_type="ply")
    pcd = o3d.io.read_point_cloud(str(ply))
    if len(pcd.points) < 100:
        raise EngineError("GPU PatchMatch produced too few points")
    ctx.report(1.0, f"{len(pcd.points)} dense points (GPU PatchMatch)")
    return DenseResult(ply, len(pcd.points), len(sparse.registered), "cuda-patch-match")
