"""Stage 4 — dense: depth maps by CPU plane sweep, checked across views, fused into a coloured point cloud.

Why this design (pycolmap's PatchMatch needs CUDA; it is used automatically when present):
- each photo gets a depth map at reduced resolution, swept only over the depth range where its own sparse points
  lie — so few planes are enough — against the neighbour views that share most sparse points at a useful angle;
- the matching score is ZNCC over a small window (`cv2.warpPerspective` + `cv2.boxFilter`), the worst source is
  dropped per pixel (occlusions), and the best plane is refined to sub-plane accuracy with a parabola;
- a depth enters the cloud only when other views' depth maps agree with it (multi-view consistency); the agreeing
  points are averaged, which lowers noise; normals come from the depth map and face the camera;
- masked (static background) pixels are never matched, which saves time on rigs.
Depth maps are computed by a small thread pool (OpenCV and numpy release the GIL), so both cores work with only
one cost volume per thread in memory.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pycolmap

from .context import StageContext, StageResult, load_done, save_done
from .errors import EngineError
from .ingest import IngestResult
from .masks import MaskResult
from .sparse import SparseResult, camera_arrays

log = logging.getLogger(__name__)

MIN_TEXTURE_STD = 1.5  # grey levels: flatter windows give meaningless correlation
MIN_SCORE = 0.35  # mean ZNCC of the kept sources at the chosen depth
CONSISTENCY_NEIGHBOURS = 6
DEPTH_RANGE_MARGIN = 0.07  # the sweep covers the view's sparse depths (1st–99th percentile) ± this fraction
VOXEL_FOOTPRINTS = 1.2  # dense points are merged in voxels of this many depth-map pixel footprints
CONSISTENCY_TOLERANCE = 0.006  # relative depth difference accepted as "the same surface"


@dataclass
class DenseResult(StageResult):
    ply_path: Path  # coloured points with normals, in the sparse model's frame
    num_points: int
    num_depth_maps: int
    method: str


@dataclass
class ViewData:
    name: str
    K: np.ndarray  # at depth-map resolution, undistorted pinhole
    R: np.ndarray
    t: np.ndarray
    center: np.ndarray
    gray: np.ndarray  # float32, undistorted
    color: np.ndarray  # uint8 RGB, undistorted
    mask: np.ndarray | None  # bool, True = object
    depth_range: tuple[float, float]
    sources: list[str]
    neighbours: list[str]


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


def _load_view(name: str, cam: dict, images_dir: Path, masks: MaskResult, scale_size: int) -> tuple:
    img = cv2.imread(str(images_dir / name), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
        raise EngineError(f"The working image {name} disappeared from the work folder.")
    h, w = img.shape[:2]
    K = cam["K"].copy()
    dist = np.zeros(5)
    params = cam["params"]
    if cam["model"] in ("SIMPLE_RADIAL", "RADIAL"):
        dist[0] = params[3]
        if cam["model"] == "RADIAL":
            dist[1] = params[4]
    scale = min(1.0, scale_size / max(w, h))
    sw, sh = max(8, round(w * scale)), max(8, round(h * scale))
    if (sw, sh) != (w, h):
        img = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA)  # area filter: no aliasing
    Ks = K.copy()
    Ks[0, :] *= sw / w
    Ks[1, :] *= sh / h
    # radial distortion lives in normalised coordinates, so the same coefficients hold at any scale
    map1, map2 = cv2.initUndistortRectifyMap(Ks, dist, None, Ks, (sw, sh), cv2.CV_32FC1)
    color = cv2.remap(img, map1, map2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mask = None
    mpath = masks.mask_path(name)
    if mpath is not None and mpath.is_file():
        m = cv2.imread(str(mpath), cv2.IMREAD_GRAYSCALE)
        if m is not None:
            m = cv2.resize(m, (sw, sh), interpolation=cv2.INTER_NEAREST)
            mask = cv2.remap(m, map1, map2, cv2.INTER_NEAREST) > 127
    rgb = cv2.cvtColor(color, cv2.COLOR_BGR2RGB)
    gray = cv2.cvtColor(color, cv2.COLOR_BGR2GRAY).astype(np.float32)
    return Ks, gray, rgb, mask


def _box(img: np.ndarray, k: int) -> np.ndarray:
    return cv2.boxFilter(img, cv2.CV_32F, (k, k), normalize=True, borderType=cv2.BORDER_REFLECT)


def plane_sweep(ref: ViewData, sources: list[ViewData], planes: int, window: int,
                cancel_check=lambda: None, best_sources: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Depth (0 = unknown) and score maps of `ref` by fronto-parallel plane sweep with ZNCC.

    With a mask, only the mask's bounding box is swept (on a rig the object often fills half the photo)."""
    if ref.mask is not None:
        ys, xs = np.nonzero(ref.mask)
        if len(ys) == 0:
            return np.zeros(ref.gray.shape, np.float32), np.full(ref.gray.shape, -1.0, np.float32)
        h, w = ref.gray.shape
        m = window
        y0, y1 = max(0, ys.min() - m), min(h, ys.max() + m + 1)
        x0, x1 = max(0, xs.min() - m), min(w, xs.max() + m + 1)
        if (y1 - y0) * (x1 - x0) < 0.85 * h * w:
            K = ref.K.copy()
            K[0, 2] -= x0
            K[1, 2] -= y0
            crop = ViewData(ref.name, K, ref.R, ref.t, ref.center, ref.gray[y0:y1, x0:x1],
                            ref.color[y0:y1, x0:x1], ref.mask[y0:y1, x0:x1], ref.depth_range, ref.sources,
                            ref.neighbours)
            d, sc = _sweep(crop, sources, planes, window, cancel_check, best_sources)
            depth = np.zeros((h, w), np.float32)
            score = np.full((h, w), -1.0, np.float32)
            depth[y0:y1, x0:x1] = d
            score[y0:y1, x0:x1] = sc
            return depth, score
    return _sweep(ref, sources, planes, window, cancel_check, best_sources)


def _sweep(ref: ViewData, sources: list[ViewData], planes: int, window: int, cancel_check,
           best_sources: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = ref.gray.shape
    k = window
    mu_r = _box(ref.gray, k)
    var_r = np.maximum(_box(ref.gray * ref.gray, k) - mu_r * mu_r, 0)
    std_r = np.sqrt(var_r)
    textured = std_r > MIN_TEXTURE_STD
    if ref.mask is not None:
        textured &= ref.mask
    inv_std_r = np.where(textured, 1.0 / np.maximum(std_r, 1e-3), 0).astype(np.float32)
    dmin, dmax = ref.depth_range
    inv_depths = np.linspace(1.0 / dmin, 1.0 / dmax, planes)
    Kinv = np.linalg.inv(ref.K)
    ones = np.ones((h, w), np.float32)
    best = np.full((h, w), -2.0, np.float32)
    best_idx = np.zeros((h, w), np.int32)
    prev_score = None
    before_best = np.full((h, w), -2.0, np.float32)  # score at best-1
    after_best = np.full((h, w), -2.0, np.float32)  # score at best+1
    n_src = len(sources)
    rel = []
    for s in sources:
        R = s.R @ ref.R.T
        t = s.t - R @ ref.t
        rel.append((s, R, t))
    keep = max(1, min(best_sources, n_src))
    if 2 < keep < n_src - 1:
        keep = 2  # running statistics exist for: best 1, best 2, all but the worst, all
    for p, inv_d in enumerate(inv_depths):
        total = np.zeros((h, w), np.float32)
        worst = np.full((h, w), 2.0, np.float32)
        top1 = np.full((h, w), -1.0, np.float32)
        top2 = np.full((h, w), -1.0, np.float32)
        for s, R, t in rel:
            # plane z = d in the ref camera: X_s = R X + t = (R + t n^T / d) X with n = (0,0,1)
            H = s.K @ (R + np.outer(t, [0.0, 0.0, inv_d])) @ Kinv
            warped = cv2.warpPerspective(s.gray, H, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            valid = cv2.warpPerspective(ones, H, (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            mu_s = _box(warped, k)
            var_s = _box(warped * warped, k) - mu_s * mu_s
            cov = _box(ref.gray * warped, k) - mu_r * mu_s
            ncc = cov * inv_std_r / np.sqrt(np.maximum(var_s, 1e-2))
            ncc = ncc * valid + (valid - 1.0)  # −1 where the plane falls outside the source photo
            if keep >= n_src - 1:
                total += ncc
                np.minimum(worst, ncc, out=worst)
            else:  # running best two
                np.maximum(top2, np.minimum(top1, ncc), out=top2)
                np.maximum(top1, ncc, out=top1)
        if keep == n_src:
            score = total / n_src
        elif keep == n_src - 1:
            score = (total - worst) / (n_src - 1)
        elif keep == 2:
            score = 0.5 * (top1 + top2)
        else:
            score = top1
        # track best and its two neighbours in plane order for the sub-plane parabola
        improved = score > best
        if prev_score is not None:
            # the new plane is the successor of the current best when best_idx == p-1
            succ = (best_idx == p - 1) & ~improved
            after_best[succ] = score[succ]
            before_best[improved] = prev_score[improved]
        after_best[improved] = -2.0
        best[improved] = score[improved]
        best_idx[improved] = p
        prev_score = score
        if p % 8 == 0:
            cancel_check()
    ok = textured & (best > MIN_SCORE) & (best_idx > 0) & (best_idx < planes - 1) & (after_best > -1.5)
    denom = before_best - 2 * best + after_best
    offset = np.where(denom < -1e-6, 0.5 * (before_best - after_best) / np.minimum(denom, -1e-6), 0)
    offset = np.clip(offset, -0.5, 0.5)
    step = inv_depths[1] - inv_depths[0]
    inv = inv_depths[0] + (best_idx + offset) * step
    depth = np.where(ok & (inv > 0), 1.0 / np.maximum(inv, 1e-12), 0).astype(np.float32)
    return depth, best


def depth_normals(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame normals from a depth map (facing the camera), zero where undefined."""
    h, w = depth.shape
    Kinv = np.linalg.inv(K)
    u, v = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    rays = np.stack([u, v, np.ones_like(u)], -1) @ Kinv.T.astype(np.float32)
    d = cv2.medianBlur(depth, 3)
    P = rays * d[..., None]
    dx = np.zeros_like(P)
    dy = np.zeros_like(P)
    dx[:, 1:-1] = P[:, 2:] - P[:, :-2]
    dy[1:-1] = P[2:] - P[:-2]
    n = np.cross(dx, dy)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    n = np.where(norm > 0, n / np.maximum(norm, 1e-12), 0)
    flip = np.sum(n * P, -1) > 0
    n[flip] *= -1
    valid = (d > 0) & np.pad((depth[:, 2:] > 0) & (depth[:, :-2] > 0), ((0, 0), (1, 1))) \
        & np.pad((depth[2:] > 0) & (depth[:-2] > 0), ((1, 1), (0, 0)))
    n[~valid] = 0
    return n.astype(np.float32)


def run(ingest: IngestResult, masks: MaskResult, sparse: SparseResult, ctx: StageContext) -> DenseResult:
    preset = ctx.preset
    key = {"sparse": sparse.to_dict(), "masks": masks.to_dict(), "size": preset.depth_max_size,
           "planes": preset.depth_planes, "sources": preset.depth_sources, "best": preset.depth_best_sources,
           "window": preset.depth_window,
           "min_views": preset.min_consistent_views}
    if (saved := load_done(ctx.work_dir, key)) is not None:
        return DenseResult.from_dict(saved)
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    if pycolmap.has_cuda:
        try:
            result = _run_cuda(ingest, masks, sparse, ctx)
            save_done(ctx.work_dir, key, result.to_dict())
            return result
        except Exception as exc:  # the CPU path below always works
            log.warning("CUDA PatchMatch failed (%s); using the CPU plane sweep", exc)
    rec = sparse.load()
    cams = camera_arrays(rec)
    xyz, seen = _point_visibility(rec)
    names = sorted(cams)
    neighbours = select_neighbours(cams, xyz, seen, max(CONSISTENCY_NEIGHBOURS, preset.depth_sources))
    ctx.report(0.02, "loading photos for depth maps")
    views: dict[str, ViewData] = {}
    for name in names:
        cam = cams[name]
        K, gray, rgb, mask = _load_view(name, cam, ingest.images_dir, masks, preset.depth_max_size)
        pts = xyz[seen.get(cam["image_id"], np.empty(0, int))]
        z = (pts @ cam["R"].T + cam["t"])[:, 2]
        z = z[z > 0]
        if len(z) < 5:
            continue
        lo, hi = np.percentile(z, [1, 99])
        views[name] = ViewData(name, K, cam["R"], cam["t"], cam["center"], gray, rgb, mask,
                               (float(lo) * (1 - DEPTH_RANGE_MARGIN), float(hi) * (1 + DEPTH_RANGE_MARGIN)),
                               neighbours[name][:preset.depth_sources],
                               neighbours[name])
        ctx.check_cancelled()
    depths: dict[str, np.ndarray] = {}
    done = {"n": 0}
    usable = [n for n in names if n in views and views[n].sources]

    def compute(name: str):
        ctx.check_cancelled()
        ref = views[name]
        srcs = [views[s] for s in ref.sources if s in views]
        depth, score = plane_sweep(ref, srcs, preset.depth_planes, preset.depth_window, ctx.check_cancelled,
                                   preset.depth_best_sources)
        return name, depth

    with ThreadPoolExecutor(max(1, ctx.num_threads)) as pool:
        for name, depth in pool.map(compute, usable):
            depths[name] = depth
            done["n"] += 1
            ctx.report(0.05 + 0.8 * done["n"] / len(usable), f"depth map {done['n']}/{len(usable)}")
    if not depths:
        raise EngineError("No depth map could be computed from the recovered cameras.")
    ctx.report(0.86, "fusing depth maps")
    points, normals, colors = fuse(views, depths, preset.min_consistent_views, ctx)
    if len(points) < 100:
        raise EngineError("Too few dense points survived the multi-view check to build a surface.")
    import open3d as o3d

    pcd = o3d.geometry.PointCloud()
    pcd.points = o3d.utility.Vector3dVector(points.astype(np.float64))
    pcd.normals = o3d.utility.Vector3dVector(normals.astype(np.float64))
    pcd.colors = o3d.utility.Vector3dVector(colors.astype(np.float64) / 255.0)
    voxel = _voxel_size(views, depths)
    pcd = pcd.voxel_down_sample(voxel)
    pcd, _ = pcd.remove_statistical_outlier(nb_neighbors=12, std_ratio=2.5)
    nrm = np.asarray(pcd.normals)
    nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
    pcd.normals = o3d.utility.Vector3dVector(nrm)
    ply = ctx.work_dir / "dense.ply"
    o3d.io.write_point_cloud(str(ply), pcd, write_ascii=False)
    result = DenseResult(ply, len(pcd.points), len(depths), "cpu-plane-sweep")
    save_done(ctx.work_dir, key, result.to_dict())
    ctx.report(1.0, f"{len(pcd.points)} dense points")
    return result


def _run_cuda(ingest: IngestResult, masks: MaskResult, sparse: SparseResult, ctx: StageContext) -> DenseResult:
    """COLMAP's PatchMatch stereo + fusion when pycolmap was built with CUDA (never required)."""
    import open3d as o3d

    ws = ctx.work_dir / "mvs"
    ctx.report(0.02, "undistorting photos (CUDA path)")
    pycolmap.undistort_images(ws, sparse.model_dir, ingest.images_dir)
    options = pycolmap.PatchMatchOptions()
    options.max_image_size = ctx.preset.depth_max_size * 2
    options.geom_consistency = True
    ctx.report(0.1, "PatchMatch stereo on the GPU")
    pycolmap.patch_match_stereo(ws, options=options)
    ctx.check_cancelled()
    ctx.report(0.8, "fusing depth maps")
    fusion = pycolmap.StereoFusionOptions()
    fusion.num_threads = max(1, ctx.num_threads)
    if masks.masks_dir is not None:
        fusion.mask_path = str(masks.masks_dir)
    ply = ctx.work_dir / "dense.ply"
    pycolmap.stereo_fusion(ply, ws, options=fusion)
    pcd = o3d.io.read_point_cloud(str(ply))
    if len(pcd.points) < 100:
        raise EngineError("PatchMatch produced too few points")
    return DenseResult(ply, len(pcd.points), len(sparse.registered), "cuda-patch-match")


def _voxel_size(views: dict[str, ViewData], depths: dict[str, np.ndarray]) -> float:
    """About one depth-map pixel footprint: keeps detail, merges duplicates from overlapping views."""
    sizes = []
    for name, d in depths.items():
        valid = d[d > 0]
        if len(valid):
            sizes.append(np.median(valid) / views[name].K[0, 0])
    return float(np.median(sizes)) * VOXEL_FOOTPRINTS if sizes else 1e-3


def fuse(views: dict[str, ViewData], depths: dict[str, np.ndarray], min_views: int,
         ctx: StageContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep depths confirmed by `min_views` other depth maps; average the confirming 3D points."""
    names = list(depths)
    parts = []
    done = 0
    with ThreadPoolExecutor(max(1, ctx.num_threads)) as pool:
        for part in pool.map(lambda n: _fuse_view(views, depths, n, min_views, ctx), names):
            if part is not None:
                parts.append(part)
            done += 1
            ctx.report(0.86 + 0.1 * done / len(names), f"fused {done}/{len(names)} depth maps")
    if not parts:
        return np.empty((0, 3)), np.empty((0, 3)), np.empty((0, 3))
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]


def _fuse_view(views: dict[str, ViewData], depths: dict[str, np.ndarray], name: str, min_views: int,
               ctx: StageContext):
    ctx.check_cancelled()
    v = views[name]
    d = depths[name]
    ys, xs = np.nonzero(d > 0)
    if len(xs) == 0:
        return None
    z = d[ys, xs].astype(np.float64)
    Kinv = np.linalg.inv(v.K)
    Xc = np.stack([xs, ys, np.ones_like(xs)], 1).astype(np.float64) @ Kinv.T
    Xc *= z[:, None]
    acc = Xc.copy()  # accumulated in the reference camera's frame
    count = np.zeros(len(z), np.int32)
    for other in v.neighbours:
        if other not in depths:
            continue
        o = views[other]
        od = depths[other]
        R_rel = o.R @ v.R.T  # reference camera → other camera
        t_rel = o.t - R_rel @ v.t
        P = o.K @ R_rel
        uvw = Xc @ P.T + o.K @ t_rel
        zo = uvw[:, 2]
        front = zo > 1e-9
        zs = np.where(front, zo, 1.0)
        u = np.rint(uvw[:, 0] / zs).astype(np.int32)
        vv = np.rint(uvw[:, 1] / zs).astype(np.int32)
        inside = front & (u >= 0) & (vv >= 0) & (u < od.shape[1]) & (vv < od.shape[0])
        idx = np.nonzero(inside)[0]
        dz = od[vv[idx], u[idx]]
        agree = (dz > 0) & (np.abs(dz - zo[idx]) < CONSISTENCY_TOLERANCE * zo[idx])
        idx = idx[agree]
        if len(idx) == 0:
            continue
        # the other view's 3D point for that pixel, brought into the reference frame
        pix = np.stack([u[idx], vv[idx], np.ones(len(idx), np.int32)], 1).astype(np.float64)
        Xo = (pix @ np.linalg.inv(o.K).T) * dz[agree].astype(np.float64)[:, None]
        acc[idx] += (Xo - t_rel) @ R_rel  # R_rel^T (Xo - t_rel)
        count[idx] += 1
    keep = count >= min_views
    if not np.any(keep):
        return None
    pts_cam = acc[keep] / (count[keep, None] + 1)
    pts = (pts_cam - v.t) @ v.R  # camera → world
    nc = depth_normals(d, v.K)[ys[keep], xs[keep]]
    nw = nc.astype(np.float64) @ v.R
    good = np.linalg.norm(nw, axis=1) > 0.5
    return pts[good], nw[good], v.color[ys[keep], xs[keep]][good]
