"""Ground-truth surface metrics for a reconstruction: accuracy, completeness and F-score (DTU / Tanks-and-Temples
style), after a similarity alignment on camera centres.

Why each step exists (the long version is in ``docs/benchmarks.md``):

* The engine writes its model in its own frame (COLMAP's arbitrary gauge, then turned upright and centred), so
  the model is first brought into the ground-truth frame by a similarity (Umeyama, with scale) fitted on camera
  centres matched by image name. A RANSAC over minimal 3-camera samples followed by a re-fit on the inliers keeps
  a few badly placed cameras from bending the alignment; the residual is reported.
* Completeness must only ask for surface the photos can show. The ground-truth mesh is sampled uniformly and a
  sample is kept when at least one camera sees it: inside the image, in front of the camera, and not hidden
  behind the object itself or the turntable plate (ray casting with Open3D against mesh + plate).
* The reconstruction also contains the plate and maybe backdrop pieces, which are not the object. Both sides are
  cropped to the same region: the object's bounding box grown by a margin, and above a thin band over the plate
  top.
* Distances are point-to-surface (to the triangles, not to a sample cloud) so that the sampling density does not
  bias them; a reconstruction without faces (a point cloud) is measured by nearest points instead.
* Thresholds τ are fractions of the ground-truth bounding-box diagonal (0.5 % and 1 % by default).
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

DEFAULT_TAU_FRACTIONS: tuple[float, ...] = (0.0025, 0.005, 0.01)


class MetricError(RuntimeError):
    """The inputs cannot be evaluated (missing files, too few matching cameras, empty geometry)."""


# --------------------------------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroundTruthCamera:
    """One ground-truth view: x_cam = R·X + t, pixel = K·x_cam (OpenCV axes and pixel centres)."""

    name: str
    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    width: int
    height: int

    @property
    def center(self) -> np.ndarray:
        return -self.R.T @ self.t


@dataclass(frozen=True)
class GroundTruth:
    """The true object surface, the turntable plate and the cameras of a synthetic set (metres, Z up)."""

    root: Path
    vertices: np.ndarray  # (V, 3) float64, object only
    faces: np.ndarray  # (F, 3) int64
    plate_vertices: np.ndarray
    plate_faces: np.ndarray
    cameras: dict[str, GroundTruthCamera]
    bbox_min: np.ndarray
    bbox_max: np.ndarray
    plate_top_z: float
    # several sessions (--flip): each camera's session and each session's plate in the object frame; a camera sees
    # past the other sessions' plates (they were not there when it took its photo)
    camera_sessions: dict[str, str] = field(default_factory=dict)
    session_plates: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def diagonal(self) -> float:
        return float(np.linalg.norm(self.bbox_max - self.bbox_min))

    def centers(self, names: list[str]) -> np.ndarray:
        return np.array([self.cameras[n].center for n in names])


def _read_mesh(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import trimesh

    mesh = trimesh.load(path, force="mesh", process=False)
    return np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64)


def load_ground_truth(gt_dir: Path) -> GroundTruth:
    """Read ``ground_truth/`` of a synthetic set: ``mesh.ply``, ``plate.ply`` and ``cameras.json``."""
    gt_dir = Path(gt_dir)
    for name in ("mesh.ply", "plate.ply", "cameras.json"):
        if not (gt_dir / name).is_file():
            raise MetricError(f"ground truth {gt_dir} has no {name}")
    meta = json.loads((gt_dir / "cameras.json").read_text())
    width, height = int(meta["image_width"]), int(meta["image_height"])
    cameras: dict[str, GroundTruthCamera] = {}
    for frame in meta["frames"]:
        name = Path(frame["file"]).name
        cameras[name] = GroundTruthCamera(
            name=name,
            K=np.asarray(frame.get("K", meta["K"]), dtype=np.float64),
            R=np.asarray(frame["R"], dtype=np.float64),
            t=np.asarray(frame["t"], dtype=np.float64),
            width=width,
            height=height,
        )
    vertices, faces = _read_mesh(gt_dir / "mesh.ply")
    plate_vertices, plate_faces = _read_mesh(gt_dir / "plate.ply")
    plate_top = float(meta.get("plate", {}).get("top_z", plate_vertices[:, 2].max()))
    camera_sessions, session_plates = _sessions(gt_dir, meta, plate_vertices, plate_faces)
    return GroundTruth(
        root=gt_dir,
        vertices=vertices,
        faces=faces,
        plate_vertices=plate_vertices,
        plate_faces=plate_faces,
        cameras=cameras,
        bbox_min=vertices.min(axis=0),
        bbox_max=vertices.max(axis=0),
        plate_top_z=plate_top,
        camera_sessions=camera_sessions,
        session_plates=session_plates,
    )


def _sessions(gt_dir: Path, meta: dict, plate_vertices: np.ndarray, plate_faces: np.ndarray
              ) -> tuple[dict[str, str], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Each camera's session and each session's plate in the object frame (``sessions.json`` of a --flip set:
    plate.ply is session A's; another session's is inverse(object_to_world) applied to it)."""
    path = gt_dir / "sessions.json"
    if not path.is_file():
        return {}, {}
    sessions = json.loads(path.read_text())["sessions"]
    plates = {}
    for session in sessions:
        T = np.linalg.inv(np.asarray(session["object_to_world"], dtype=np.float64))
        plates[session["name"]] = (plate_vertices @ T[:3, :3].T + T[:3, 3], plate_faces)
    cameras = {Path(f["file"]).name: f["session"] for f in meta["frames"] if "session" in f}
    return cameras, plates


# --------------------------------------------------------------------------------------------------------------
# Similarity alignment on camera centres
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Similarity:
    """y = scale · R · x + t."""

    scale: float
    R: np.ndarray
    t: np.ndarray

    def apply(self, points: np.ndarray) -> np.ndarray:
        return self.scale * np.asarray(points, dtype=np.float64) @ self.R.T + self.t

    def matrix(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] = self.scale * self.R
        m[:3, 3] = self.t
        return m


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True) -> Similarity:
    """Least-squares similarity mapping ``src`` onto ``dst`` (Umeyama 1991). Needs ≥ 3 non-collinear points."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3 or len(src) < 3:
        raise MetricError("a similarity needs at least 3 matched 3-D points")
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    xs, xd = src - mu_s, dst - mu_d
    var_s = (xs**2).sum() / len(src)
    if var_s <= 0:
        raise MetricError("the source points coincide; no similarity can be fitted")
    cov = xd.T @ xs / len(src)
    U, D, Vt = np.linalg.svd(cov)
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1.0
    R = U @ S @ Vt
    scale = float(np.trace(np.diag(D) @ S) / var_s) if with_scale else 1.0
    t = mu_d - scale * R @ mu_s
    return Similarity(scale=scale, R=R, t=t)


@dataclass
class Alignment:
    """Similarity from the reconstruction frame to the ground-truth frame, and how well the cameras agree."""

    similarity: Similarity
    matched: list[str]
    inliers: list[str]
    outliers: list[str]
    residuals_m: dict[str, float]  # per matched camera, after alignment (metres, ground-truth frame)
    rms_residual_m: float  # over inliers
    median_residual_m: float  # over inliers

    def summary(self, diagonal: float) -> dict:
        return {
            "scale": self.similarity.scale,
            "matrix": self.similarity.matrix().tolist(),
            "cameras_matched": len(self.matched),
            "cameras_inliers": len(self.inliers),
            "outliers": self.outliers,
            "rms_residual_m": self.rms_residual_m,
            "median_residual_m": self.median_residual_m,
            "rms_residual_of_diagonal": self.rms_residual_m / diagonal,
        }


def robust_similarity(
    names: list[str],
    src: np.ndarray,
    dst: np.ndarray,
    inlier_threshold: float,
    iterations: int = 300,
    seed: int = 0,
) -> Alignment:
    """RANSAC over 3-point samples (threshold in ``dst`` units), then Umeyama re-fits on the inliers until the
    inlier set stops changing. Deterministic for a given seed."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    n = len(src)
    if n < 3:
        raise MetricError(f"only {n} cameras match the ground truth by name; at least 3 are needed to align")
    rng = np.random.default_rng(seed)
    best_mask, best_cost = None, np.inf
    for _ in range(iterations if n > 3 else 1):
        idx = rng.choice(n, size=3, replace=False)
        try:
            sim = umeyama(src[idx], dst[idx])
        except (MetricError, np.linalg.LinAlgError):
            continue
        if not np.isfinite(sim.scale) or sim.scale <= 0:
            continue
        err = np.linalg.norm(sim.apply(src) - dst, axis=1)
        mask = err < inlier_threshold
        cost = np.minimum(err, inlier_threshold).sum()  # MSAC cost: ties broken by the residuals
        if best_mask is None or cost < best_cost:
            best_mask, best_cost = mask, cost
    if best_mask is None or best_mask.sum() < 3:
        best_mask = np.ones(n, dtype=bool)  # degenerate samples everywhere: fall back to all cameras
    mask = best_mask
    for _ in range(10):
        sim = umeyama(src[mask], dst[mask])
        err = np.linalg.norm(sim.apply(src) - dst, axis=1)
        new_mask = err < inlier_threshold
        if new_mask.sum() < 3 or np.array_equal(new_mask, mask):
            break
        mask = new_mask
    sim = umeyama(src[mask], dst[mask])
    err = np.linalg.norm(sim.apply(src) - dst, axis=1)
    inlier_err = err[mask]
    return Alignment(
        similarity=sim,
        matched=list(names),
        inliers=[nm for nm, m in zip(names, mask) if m],
        outliers=[nm for nm, m in zip(names, mask) if not m],
        residuals_m={nm: float(e) for nm, e in zip(names, err)},
        rms_residual_m=float(np.sqrt(np.mean(inlier_err**2))),
        median_residual_m=float(np.median(inlier_err)),
    )


def sparse_camera_centers(sparse_dir: Path) -> dict[str, np.ndarray]:
    """Camera centres by image name from a COLMAP model folder (binary or text). When ``sparse_dir`` holds
    numbered sub-models (``0/``, ``1/``...) the one with most registered images is used."""
    import pycolmap

    sparse_dir = Path(sparse_dir)
    candidates = [sparse_dir] + sorted(p for p in sparse_dir.iterdir() if p.is_dir()) if sparse_dir.is_dir() else []
    best: dict[str, np.ndarray] = {}
    for folder in candidates:
        if not any((folder / f"images.{ext}").is_file() for ext in ("bin", "txt")):
            continue
        rec = pycolmap.Reconstruction(str(folder))
        centers = {im.name: np.asarray(im.projection_center(), dtype=np.float64)
                   for im in rec.images.values() if im.has_pose}
        if len(centers) > len(best):
            best = centers
    if not best:
        raise MetricError(f"no COLMAP model with registered images in {sparse_dir}")
    return best


def align_to_ground_truth(
    recon_centers: dict[str, np.ndarray], gt: GroundTruth, threshold_fraction: float = 0.02, seed: int = 0
) -> Alignment:
    """Similarity mapping reconstructed camera centres onto the true ones (matched by file name).

    The inlier threshold is ``threshold_fraction`` of the RMS distance of the true centres from their centroid
    (2 % ≈ 4.6 mm for synth_bust's 23 cm ring), loose enough for any usable reconstruction and tight enough to
    drop a camera placed on the wrong side of the object.
    """
    names = sorted(n for n in recon_centers if n in gt.cameras)
    if len(names) < 3:
        raise MetricError(
            f"only {len(names)} reconstructed images match ground-truth image names; at least 3 are needed"
        )
    dst = gt.centers(names)
    src = np.array([recon_centers[n] for n in names])
    spread = float(np.sqrt(((dst - dst.mean(axis=0)) ** 2).sum(axis=1).mean()))
    return robust_similarity(names, src, dst, inlier_threshold=threshold_fraction * spread, seed=seed)


# --------------------------------------------------------------------------------------------------------------
# Surface sampling, visibility, cropping
# --------------------------------------------------------------------------------------------------------------


def sample_surface(vertices: np.ndarray, faces: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """``count`` points uniformly distributed over the area of a triangle mesh (deterministic for a seed)."""
    if len(faces) == 0 or count <= 0:
        return np.zeros((0, 3))
    tri = vertices[faces]
    areas = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    total = areas.sum()
    if not np.isfinite(total) or total <= 0:
        return np.zeros((0, 3))
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(faces), size=count, p=areas / total)
    u, v = rng.random(count), rng.random(count)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    t = tri[chosen]
    return t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])


def _raycasting_scene(*meshes: tuple[np.ndarray, np.ndarray]):
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    for vertices, faces in meshes:
        if len(faces):
            scene.add_triangles(
                o3d.core.Tensor(np.ascontiguousarray(vertices, dtype=np.float32)),
                o3d.core.Tensor(np.ascontiguousarray(faces, dtype=np.uint32)),
            )
    return scene


def visible_mask(points: np.ndarray, gt: GroundTruth, occlusion_tolerance: float | None = None) -> np.ndarray:
    """True for points (on the ground-truth surface) seen by at least one ground-truth camera: projected inside
    the image, in front of the camera, with nothing of object or plate between camera and point."""
    tol = 2e-4 * gt.diagonal if occlusion_tolerance is None else occlusion_tolerance
    default = _raycasting_scene((gt.vertices, gt.faces), (gt.plate_vertices, gt.plate_faces))
    scenes = {name: _raycasting_scene((gt.vertices, gt.faces), plate) for name, plate in gt.session_plates.items()}
    seen = np.zeros(len(points), dtype=bool)
    for cam in gt.cameras.values():
        scene = scenes.get(gt.camera_sessions.get(cam.name, ""), default)
        todo = np.flatnonzero(~seen)
        if len(todo) == 0:
            break
        p = points[todo]
        pc = p @ cam.R.T + cam.t
        z = pc[:, 2]
        in_front = z > 1e-9
        uvw = pc @ cam.K.T
        with np.errstate(divide="ignore", invalid="ignore"):
            u, v = uvw[:, 0] / uvw[:, 2], uvw[:, 1] / uvw[:, 2]
        # OpenCV pixel centres: the image spans [-0.5, W-0.5] × [-0.5, H-0.5].
        inside = in_front & (u >= -0.5) & (u <= cam.width - 0.5) & (v >= -0.5) & (v <= cam.height - 0.5)
        cand = todo[inside]
        if len(cand) == 0:
            continue
        origin = cam.center
        vec = points[cand] - origin
        dist = np.linalg.norm(vec, axis=1)
        rays = np.hstack([np.broadcast_to(origin, vec.shape), vec / dist[:, None]]).astype(np.float32)
        # Occluded when any surface is hit before reaching (just short of) the point itself.
        occluded = _occluded(scene, rays, dist - tol)
        seen[cand[~occluded]] = True
    return seen


def _occluded(scene, rays: np.ndarray, max_dist: np.ndarray) -> np.ndarray:
    import open3d as o3d

    hits = scene.cast_rays(o3d.core.Tensor(rays))
    t_hit = hits["t_hit"].numpy()
    return t_hit < max_dist


@dataclass(frozen=True)
class CropRegion:
    """Axis-aligned box in the ground-truth frame; the lower z bound sits a band above the plate top."""

    lo: np.ndarray
    hi: np.ndarray

    def contains(self, points: np.ndarray) -> np.ndarray:
        return np.all((points >= self.lo) & (points <= self.hi), axis=1)


def object_region(gt: GroundTruth, margin_fraction: float = 0.05, plate_band_fraction: float = 0.01) -> CropRegion:
    """The object's bounding box grown by ``margin_fraction`` of the diagonal on every side, its floor raised to
    ``plate_band_fraction`` of the diagonal above the plate top (so a slightly noisy plate is not counted)."""
    margin = margin_fraction * gt.diagonal
    lo = gt.bbox_min - margin
    hi = gt.bbox_max + margin
    lo[2] = max(lo[2], gt.plate_top_z + plate_band_fraction * gt.diagonal)
    return CropRegion(lo=lo, hi=hi)


@dataclass
class VisibleSurface:
    """Ground-truth samples that count for completeness (visible and inside the crop region)."""

    points: np.ndarray
    sampled: int
    visible: int


def visible_ground_truth(gt: GroundTruth, region: CropRegion, samples: int = 200_000, seed: int = 1) -> VisibleSurface:
    pts = sample_surface(gt.vertices, gt.faces, samples, seed=seed)
    vis = visible_mask(pts, gt)
    keep = vis & region.contains(pts)
    return VisibleSurface(points=pts[keep], sampled=len(pts), visible=int(vis.sum()))


# --------------------------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------------------------


@dataclass
class ThresholdScore:
    tau_fraction: float
    tau_m: float
    accuracy: float  # share of reconstructed samples within τ of the true surface
    completeness: float  # share of visible true samples within τ of the reconstruction
    fscore: float


@dataclass
class SurfaceScore:
    thresholds: list[ThresholdScore]
    accuracy_median_m: float
    accuracy_mean_m: float
    completeness_median_m: float
    recon_samples: int  # inside the crop region
    recon_samples_total: int
    gt_samples: int
    gt_visible_samples: int  # visible and in the region
    gt_diagonal_m: float
    alignment: dict | None = None
    notes: list[str] = field(default_factory=list)
    # share of the whole (uncropped) surface farther than STRAY_FRACTION of the diagonal from the true object:
    # leftovers of the plate or background that the crop region hides
    stray_fraction: float | None = None
    # the object's foot, below the crop floor (the underside, when another session saw it): visible true samples
    # there and the share within each τ of the reconstruction
    base_band: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def at(self, tau_fraction: float) -> ThresholdScore:
        for s in self.thresholds:
            if abs(s.tau_fraction - tau_fraction) < 1e-12:
                return s
        raise KeyError(tau_fraction)


def _distance_to_surface(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray | None) -> np.ndarray:
    if len(points) == 0:
        return np.zeros(0)
    if faces is None or len(faces) == 0:
        from scipy.spatial import cKDTree

        if len(vertices) == 0:
            return np.full(len(points), np.inf)
        d, _ = cKDTree(vertices).query(points, workers=-1)
        return d
    import open3d as o3d

    scene = _raycasting_scene((vertices, faces))
    return scene.compute_distance(o3d.core.Tensor(points.astype(np.float32))).numpy().astype(np.float64)


def crop_faces(vertices: np.ndarray, faces: np.ndarray, region: CropRegion) -> np.ndarray:
    """Faces with at least one vertex inside the region (the samples are cropped exactly afterwards)."""
    if len(faces) == 0:
        return faces
    inside = region.contains(vertices)
    return faces[inside[faces].any(axis=1)]


def score_surface(
    vertices: np.ndarray,
    faces: np.ndarray | None,
    gt: GroundTruth,
    visible: VisibleSurface,
    region: CropRegion,
    tau_fractions: tuple[float, ...] = DEFAULT_TAU_FRACTIONS,
    samples: int = 200_000,
    seed: int = 2,
    debug_dir: Path | None = None,
) -> SurfaceScore:
    """Accuracy / completeness / F-score of a reconstruction already expressed in the ground-truth frame.

    ``faces`` None (or empty) means a point cloud: its points are the samples and distances to it are
    nearest-point distances. With ``debug_dir``, the failures at the largest τ are written there as point clouds
    (``missed_ground_truth.ply``: visible true surface the reconstruction lacks; ``inaccurate_reconstruction.ply``:
    reconstructed samples far from the truth) to look at in a viewer.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    is_mesh = faces is not None and len(faces) > 0
    if is_mesh:
        kept_faces = crop_faces(vertices, np.asarray(faces, dtype=np.int64), region)
        recon = sample_surface(vertices, kept_faces, samples, seed=seed)
    else:
        kept_faces = None
        recon = vertices
    total = len(recon)
    recon = recon[region.contains(recon)] if total else recon
    if len(recon) == 0:
        raise MetricError("the reconstruction has no surface inside the object's region")
    d_acc = _distance_to_surface(recon, gt.vertices, gt.faces)
    if is_mesh:
        d_comp = _distance_to_surface(visible.points, vertices, kept_faces)
    else:
        d_comp = _distance_to_surface(visible.points, recon, None)
    if debug_dir is not None:
        _write_debug_clouds(Path(debug_dir), recon, d_acc, visible.points, d_comp, max(tau_fractions) * gt.diagonal)
    scores = []
    diag = gt.diagonal
    for frac in tau_fractions:
        tau = frac * diag
        acc = float(np.mean(d_acc <= tau))
        comp = float(np.mean(d_comp <= tau)) if len(d_comp) else 0.0
        f = 2 * acc * comp / (acc + comp) if acc + comp > 0 else 0.0
        scores.append(ThresholdScore(tau_fraction=frac, tau_m=tau, accuracy=acc, completeness=comp, fscore=f))
    return SurfaceScore(
        thresholds=scores,
        accuracy_median_m=float(np.median(d_acc)),
        accuracy_mean_m=float(np.mean(d_acc)),
        completeness_median_m=float(np.median(d_comp)) if len(d_comp) else float("inf"),
        recon_samples=len(recon),
        recon_samples_total=total,
        gt_samples=visible.sampled,
        gt_visible_samples=len(visible.points),
        gt_diagonal_m=diag,
    )


def _write_debug_clouds(folder: Path, recon: np.ndarray, d_acc: np.ndarray, gt_points: np.ndarray,
                        d_comp: np.ndarray, tau: float) -> None:
    import trimesh

    folder.mkdir(parents=True, exist_ok=True)
    for name, points in (("missed_ground_truth.ply", gt_points[d_comp > tau]),
                         ("inaccurate_reconstruction.ply", recon[d_acc > tau])):
        path = folder / name
        if len(points):
            trimesh.PointCloud(points).export(path)
        elif path.exists():
            path.unlink()


# --------------------------------------------------------------------------------------------------------------
# One call for the bench
# --------------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _cached_ground_truth(gt_dir: str, samples: int) -> tuple[GroundTruth, CropRegion, VisibleSurface]:
    gt = load_ground_truth(Path(gt_dir))
    region = object_region(gt)
    return gt, region, visible_ground_truth(gt, region, samples=samples)


def load_geometry(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Vertices and faces (None for a point cloud) of an OBJ / GLB / PLY file."""
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise MetricError(f"reconstruction file {path} does not exist")
    loaded = trimesh.load(path, process=False)
    if isinstance(loaded, trimesh.Scene):
        loaded = loaded.to_geometry() if hasattr(loaded, "to_geometry") else loaded.dump(concatenate=True)
    if isinstance(loaded, trimesh.PointCloud):
        return np.asarray(loaded.vertices, dtype=np.float64), None
    vertices = np.asarray(loaded.vertices, dtype=np.float64)
    faces = np.asarray(getattr(loaded, "faces", np.zeros((0, 3))), dtype=np.int64)
    if len(vertices) == 0:
        raise MetricError(f"reconstruction file {path} holds no geometry")
    return vertices, (faces if len(faces) else None)


def evaluate(
    geometry_path: Path,
    sparse_dir: Path,
    gt_dir: Path,
    tau_fractions: tuple[float, ...] = DEFAULT_TAU_FRACTIONS,
    samples: int = 200_000,
    debug_dir: Path | None = None,
    truth: tuple[GroundTruth, CropRegion, VisibleSurface] | None = None,
) -> SurfaceScore:
    """Align the reconstruction (mesh or point cloud + its COLMAP cameras) to the ground truth and score it
    (``debug_dir``: see :func:`score_surface`; the clouds are in the ground-truth frame). ``truth`` reuses an
    already prepared ground truth instead of loading ``gt_dir`` (the visibility ray casting takes seconds)."""
    gt, region, visible = truth if truth is not None else _cached_ground_truth(str(Path(gt_dir).resolve()), samples)
    alignment = align_to_ground_truth(sparse_camera_centers(Path(sparse_dir)), gt)
    vertices, faces = load_geometry(Path(geometry_path))
    placed = alignment.similarity.apply(vertices)
    score = score_surface(placed, faces, gt, visible, region, tau_fractions, samples, debug_dir=debug_dir)
    score.alignment = alignment.summary(gt.diagonal)
    score.stray_fraction = stray_fraction(placed, faces, gt, samples)
    score.base_band = base_band_completeness(placed, faces, gt, region, tau_fractions, samples)
    return score


STRAY_FRACTION = 0.01


def stray_fraction(vertices: np.ndarray, faces: np.ndarray | None, gt: GroundTruth, samples: int = 200_000,
                   seed: int = 3) -> float:
    """Share of the reconstruction (surface samples of a mesh, or the points of a cloud), not cropped, farther
    than STRAY_FRACTION of the diagonal from the true object: what a person sees as not belonging to it."""
    points = sample_surface(vertices, faces, samples, seed=seed) if faces is not None and len(faces) else vertices
    if len(points) == 0:
        return 0.0
    return float(np.mean(_distance_to_surface(points, gt.vertices, gt.faces) > STRAY_FRACTION * gt.diagonal))


@functools.lru_cache(maxsize=4)
def _base_band_truth(gt_dir: str, samples: int) -> np.ndarray:
    gt, region, _ = _cached_ground_truth(gt_dir, samples)
    lo, hi = region.lo.copy(), region.hi.copy()
    lo[2], hi[2] = gt.plate_top_z - 1e-3 * gt.diagonal, region.lo[2]
    return visible_ground_truth(gt, CropRegion(lo=lo, hi=hi), samples=2 * samples, seed=4).points


def base_band_completeness(vertices: np.ndarray, faces: np.ndarray | None, gt: GroundTruth, region: CropRegion,
                           tau_fractions: tuple[float, ...] = DEFAULT_TAU_FRACTIONS, samples: int = 200_000) -> dict:
    """Completeness of the object's foot that the crop region leaves out (from the plate top to the crop floor),
    counting only what a camera saw — on a one-session set its walls' last millimetre, on a flipped set also the
    whole underside."""
    truth = _base_band_truth(str(Path(gt.root).resolve()), samples)
    result: dict = {"visible_samples": int(len(truth))}
    if len(truth) == 0:
        return result
    if faces is not None and len(faces):
        d = _distance_to_surface(truth, vertices, faces)
    else:
        d = _distance_to_surface(truth, vertices, None)
    for frac in tau_fractions:
        result[f"completeness@{frac * 100:g}%"] = float(np.mean(d <= frac * gt.diagonal))
    return result
