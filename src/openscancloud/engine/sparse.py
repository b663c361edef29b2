"""Stage 3 — sparse: camera poses and a sparse point cloud with pycolmap (SIFT, matching, mapping).

Why these choices: SIFT on the CPU is the slow part, so photos are processed at the working size with a cap on
keypoints per photo (matching cost grows with the square of that cap).  Keypoints that stand still across photos
(a static rig background) are removed before matching.  Up to ~150 photos every pair is matched (turntable sets
need the "wrap-around" pairs that sequential matching misses); beyond that, image retrieval on the set's own
features picks the pairs (pairs.py), so the pair count stays linear.  Pairs are matched in blocks so progress is
reported and a cancel request is honoured between blocks.  Incremental mapping is tried first; when it leaves
many photos out, global mapping (GLOMAP) gets a chance and the larger model wins.
"""

from __future__ import annotations

import logging
import math
import shutil
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pycolmap

from .context import StageContext, StageResult, load_done, save_done
from .errors import UserInputError
from .ingest import IngestResult
from . import checks
from . import mapping
from . import sessions as sessions_stage
from . import turntable
from .masks import MaskResult
from .pairs import choose_pairs

log = logging.getLogger(__name__)

EXTRACT_BLOCK = 8
MATCH_BLOCK = 120
STATIC_RADIUS_PX = 1  # a keypoint within this many pixels of keypoints of many other photos stands still
STATIC_SHARE = 0.25  # ... "many" = this share of the other photos of the same size (at least 3)


@dataclass
class SparseResult(StageResult):
    model_dir: Path  # COLMAP binary model (cameras.bin, images.bin, points3D.bin)
    registered: list[str]
    unregistered: list[str]
    num_points: int
    mean_reprojection_error: float
    camera_model: str
    focal_px: float
    mapper: str  # "incremental" or "global"
    num_pairs: int
    matching: str
    extra: dict = field(default_factory=dict)

    def load(self) -> pycolmap.Reconstruction:
        return pycolmap.Reconstruction(str(self.model_dir))


class _CancelBridge:
    """Forwards the pipeline's threading.Event to a pycolmap CancellationToken while a call runs."""

    def __init__(self, ctx: StageContext):
        self.ctx = ctx
        self.token = pycolmap.CancellationToken()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            if self.ctx.cancel.is_set():
                self.token.cancel()
                return

    def __enter__(self) -> pycolmap.CancellationToken:
        self._thread.start()
        return self.token

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.ctx.check_cancelled()


def _camera_groups(ingest: IngestResult) -> list[tuple[list[str], float | None, tuple[int, int]]]:
    """Photos sharing size and EXIF focal share one camera (intrinsics refined together)."""
    groups: dict[tuple, list[str]] = {}
    focal_of: dict[tuple, float | None] = {}
    for v in ingest.views:
        f = round(v.focal_px, 1) if v.focal_px else None
        key = (v.width, v.height, f)
        groups.setdefault(key, []).append(v.name)
        focal_of[key] = v.focal_px
    return [(names, focal_of[k], (k[0], k[1])) for k, names in groups.items()]


def run(ingest: IngestResult, masks: MaskResult, ctx: StageContext) -> SparseResult:
    preset = ctx.preset
    # the upstream results are part of the key: a re-run upstream invalidates this stage's saved result
    key = {"ingest": ingest.to_dict(), "masks": masks.to_dict(), "features": preset.sift_max_features,
           "size": preset.max_image_size, "upsample_below": preset.sift_upsample_below}
    if (saved := load_done(ctx.work_dir, key)) is not None:
        return SparseResult.from_dict(saved)
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    database = ctx.work_dir / "database.db"
    if database.exists():
        database.unlink()
    names = [v.name for v in ingest.views]
    threads = max(1, ctx.num_threads)

    # 1. features, in blocks so that progress moves and cancel is honoured
    extract_features(ingest, masks, ctx, database)

    static_removed = remove_static_keypoints(database)
    ctx.report(0.36, f"removed {static_removed} keypoints that stand still across photos")

    # 2. matching, in blocks of pairs
    pairs, strategy = choose_pairs(database, names)
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = threads
    verification = pycolmap.TwoViewGeometryOptions()
    verification.ransac.num_threads = 1
    pair_file = ctx.work_dir / "pairs.txt"
    for start in range(0, len(pairs), MATCH_BLOCK):
        block = pairs[start:start + MATCH_BLOCK]
        pair_file.write_text("".join(f"{a} {b}\n" for a, b in block))
        pairing = pycolmap.ImportedPairingOptions()
        pairing.match_list_path = str(pair_file)
        with _CancelBridge(ctx) as token:
            pycolmap.match_image_pairs(database, matching_options=matching, pairing_options=pairing,
                                       verification_options=verification, device=pycolmap.Device.cpu,
                                       cancellation_token=token)
        done_pairs = min(len(pairs), start + MATCH_BLOCK)
        ctx.report(0.35 + 0.45 * done_pairs / len(pairs), f"matched {done_pairs}/{len(pairs)} pairs")

    # 3. mapping; photos of the object in several positions (sessions) are joined through the object, never
    # through the turntable plate (engine/sessions.py)
    with pycolmap.Database.open(str(database)) as db:
        verified = db.num_verified_image_pairs()
    if verified == 0:
        raise UserInputError("No two photos share enough detail to be matched: take overlapping photos of a "
                             "textured object (each part visible in at least three photos).")
    groups = sessions_stage.by_capture_time(ingest.views)
    session_info: dict = {"groups": groups}
    rec = None
    if len(groups) > 1:
        rec, merge = sessions_stage.merge_sessions(database, ingest.images_dir, groups, ctx)
        session_info["merge"] = merge.to_dict()
        mapper, sub_models = "incremental, per session", []
        if rec is not None:
            session_info["groups"] = [g for g, joined in zip(groups, merge.joined) if joined]
            session_info["left_out"] = [g for g, joined in zip(groups, merge.joined) if not joined]
    if rec is None:
        session_info["groups"] = [names]  # mapped together: one group (also when sessions could not be merged)
        rec, mapper, sub_models = _map(database, ingest.images_dir, ctx, len(names))
    if rec is None or rec.num_reg_images() < 3:
        raise UserInputError("The camera positions could not be recovered: the photos overlap too little or "
                             "show too little texture (use more photos with ~70 % overlap).")
    # judged only when the photos see enough points: on weaker models (one ring of a dotted object: 40 a photo) the
    # poses and the turntable fit rest on a handful of points, and the camera warning (checks.py) speaks instead
    judge = masks.static_rig and rec.compute_mean_observations_per_reg_image() >= checks.MIN_OBSERVATIONS
    off_turntable, placed_again = check_turntable(rec, database, session_info["groups"]) if judge else ([], [])
    model_dir = ctx.work_dir / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model_dir.mkdir()
    rec.write(str(model_dir))
    registered = sorted(img.name for img in rec.images.values() if img.has_pose)
    unregistered = sorted(set(names) - set(registered))
    cam = next(iter(rec.cameras.values()))
    result = SparseResult(
        model_dir=model_dir,
        registered=registered,
        unregistered=unregistered,
        num_points=rec.num_points3D(),
        mean_reprojection_error=float(rec.compute_mean_reprojection_error()),
        camera_model=cam.model_name if hasattr(cam, "model_name") else str(cam.model),
        focal_px=float(cam.mean_focal_length()),
        mapper=mapper,
        num_pairs=len(pairs),
        matching=strategy,
        extra={"verified_pairs": int(verified), "num_cameras": rec.num_cameras(),
               "static_keypoints_removed": static_removed, "sub_models": sub_models, "sessions": session_info,
               "off_turntable": off_turntable, "placed_again_on_turntable": placed_again,
               "track_length_mean": round(float(rec.compute_mean_track_length()), 3),
               "observations_per_image": round(float(rec.compute_mean_observations_per_reg_image()), 1)},
    )
    save_done(ctx.work_dir, key, result.to_dict())
    ctx.report(1.0, f"{len(registered)}/{len(names)} photos registered")
    return result


def check_turntable(rec: pycolmap.Reconstruction, database: Path, groups: list[list[str]]
                    ) -> tuple[list[str], list[str]]:
    """On a static rig, the photos that no turn of the turntable relates to the others of their session
    (engine/turntable.py: placed by a look-alike, where the turntable could not have put them), and of two photos
    placed on one spot the one that rests on fewer points (a look-alike exactly a turn away), are unregistered,
    then placed again where a turn of the turntable puts them, if their own matches agree there, on a spot no
    other photo holds.  Returns the photos left out and the photos placed again."""
    cams = camera_arrays(rec)
    left_out: list[str] = []
    placed_again: list[str] = []
    for group in groups:
        names = [name for name in group if name in cams]
        centers = np.array([cams[n]["center"] for n in names]).reshape(-1, 3)
        rotations = np.array([cams[n]["R"] for n in names]).reshape(-1, 3, 3)
        support = np.array([rec.find_image_with_name(n).num_points3D for n in names])
        off, table = turntable.strays(names, centers, rotations, support)
        if not off:
            continue
        for name in off:
            rec.deregister_frame(rec.find_image_with_name(name).frame_id)
        kept = np.array([n not in off for n in names])
        rings = turntable.ring_poses(table, centers[kept], rotations[kept])
        for name in off:
            if _place_again(rec, database, name, table, rings):
                placed_again.append(name)
            else:
                left_out.append(name)
    if left_out or placed_again:
        log.info("photos placed off the turntable: %s left out, %s placed again", left_out, placed_again)
    return sorted(left_out), sorted(placed_again)


def _place_again(rec: pycolmap.Reconstruction, database: Path, name: str, table: turntable.Turntable,
                 rings: list) -> bool:
    """Register an unregistered photo at the turntable pose its matches agree with (turntable.place_on_turntable),
    refined freely and kept only when it stays there; its agreeing keypoints join the tracks of their points."""
    image = rec.find_image_with_name(name)
    keypoints, point_ids = [], []
    with pycolmap.Database.open(str(database)) as db:
        for other in rec.images.values():
            if not other.has_pose or not db.exists_two_view_geometry(image.image_id, other.image_id):
                continue
            matches = db.read_two_view_geometry(image.image_id, other.image_id).inlier_matches
            for idx, other_idx in np.asarray(matches).reshape(-1, 2):
                point2d = other.points2D[int(other_idx)]
                if point2d.has_point3D():
                    keypoints.append(int(idx))
                    point_ids.append(int(point2d.point3D_id))
    if len(keypoints) < turntable.MIN_PLACE_INLIERS:
        return False
    pairs = sorted(set(zip(keypoints, point_ids)))
    xy = np.array([image.points2D[k].xy for k, _ in pairs], dtype=np.float64)
    xyz = np.array([rec.points3D[p].xyz for _, p in pairs], dtype=np.float64)
    camera = image.camera
    occupied = np.array([np.asarray(other.cam_from_world().matrix())[:, :3] for other in rec.images.values()
                         if other.has_pose])
    placed = turntable.place_on_turntable(
        table, rings, xy, xyz, lambda cam: np.asarray(camera.img_from_cam(cam, check_cheirality=False)),
        float(camera.mean_focal_length()), occupied)
    if placed is None:
        log.info("%s: no turn of the turntable agrees with its %d matched points", name, len(pairs))
        return False
    rotation, center, inliers = placed
    log.info('%s: %d of %d matched points agree on the turntable', name, int(inliers.sum()), len(inliers))
    pose = pycolmap.Rigid3d(pycolmap.Rotation3d(rotation), -rotation @ center)
    refined = pycolmap.refine_absolute_pose(pose, xy, xyz, inliers, camera)
    if refined is not None:
        m = np.asarray(refined["cam_from_world"].matrix())
        moved = np.linalg.norm(-m[:, :3].T @ m[:, 3] - center)
        radius = np.linalg.norm(np.cross(center - table.point, table.axis))
        if moved < turntable.TURN_TOLERANCE * radius:
            pose = refined["cam_from_world"]
    frame = rec.frames[image.frame_id]
    frame.set_cam_from_world(image.camera_id, pose)
    rec.register_frame(image.frame_id)
    used: set[int] = set()
    for (keypoint, point_id), inlier in zip(pairs, inliers):
        if inlier and point_id not in used and not image.points2D[keypoint].has_point3D():
            rec.add_observation(point_id, pycolmap.TrackElement(image.image_id, keypoint))
            used.add(point_id)
    return True


def extract_features(ingest: IngestResult, masks: MaskResult, ctx: StageContext, database: Path) -> None:
    """SIFT keypoints and descriptors of every photo into the COLMAP database, one camera per photo group."""
    preset = ctx.preset
    names = [v.name for v in ingest.views]
    threads = max(1, ctx.num_threads)
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = threads
    extraction.max_image_size = preset.max_image_size
    extraction.sift.max_num_features = preset.sift_max_features
    # SIFT's default first octave doubles the image: 3× the CPU time for small-scale features that photos of
    # 1000 px and more do not need (they already give thousands of keypoints); small photos keep it
    long_side = max(max(v.width, v.height) for v in ingest.views)
    extraction.sift.first_octave = -1 if long_side < preset.sift_upsample_below else 0
    done = 0
    for group_names, focal, (w, h) in _camera_groups(ingest):
        camera_id = -1
        for start in range(0, len(group_names), EXTRACT_BLOCK):
            block = group_names[start:start + EXTRACT_BLOCK]
            reader = pycolmap.ImageReaderOptions()
            reader.camera_model = "SIMPLE_RADIAL"
            if masks.keypoint_masks_dir is not None:
                reader.mask_path = str(masks.keypoint_masks_dir)
            if camera_id > 0:
                reader.existing_camera_id = camera_id
            elif focal:
                reader.camera_params = f"{focal},{w / 2},{h / 2},0"
            with _CancelBridge(ctx) as token:
                pycolmap.extract_features(database, ingest.images_dir, image_names=block,
                                          camera_mode=pycolmap.CameraMode.SINGLE, reader_options=reader,
                                          extraction_options=extraction, device=pycolmap.Device.cpu,
                                          cancellation_token=token)
            if camera_id < 0:
                with pycolmap.Database.open(str(database)) as db:
                    camera_id = db.read_image_with_name(block[0]).camera_id
            done += len(block)
            ctx.report(0.35 * done / len(names), f"features {done}/{len(names)} photos")


def remove_static_keypoints(database: Path, share: float = STATIC_SHARE) -> int:
    """Delete keypoints that sit at the same pixel in many photos; return how many were removed.

    Why: on a turntable rig the camera stands still while the object turns, so whatever does not turn with the
    object (the wall, the rig, dust on the lens, a watermark) gives keypoints at identical pixels.  Matched, they
    say "the camera never moved" and pull the solution towards it.  The object's own keypoints move between
    photos, so a keypoint found (±1 px) in a quarter of the other photos is static whatever the masks said —
    which lets the masks stay generous (they must never cut the object) without letting the backdrop back in.
    Works one table row at a time: only the keypoint positions of all photos are held, never the descriptors."""
    with sqlite3.connect(database) as con:
        sizes = {iid: (int(w), int(h)) for iid, w, h in con.execute(
            "SELECT images.image_id, cameras.width, cameras.height FROM images JOIN cameras USING (camera_id)")}
        positions: dict[int, np.ndarray] = {}
        for iid, rows, cols, data in con.execute("SELECT image_id, rows, cols, data FROM keypoints"):
            positions[iid] = (np.frombuffer(data, np.float32).reshape(rows, cols)[:, :2] if rows else
                              np.zeros((0, 2), np.float32))
        removed = 0
        kernel = np.ones((2 * STATIC_RADIUS_PX + 1,) * 2, np.uint8)
        for size in set(sizes.values()):
            ids = [i for i in positions if sizes.get(i) == size]
            needed = max(3, math.ceil(share * (len(ids) - 1)))
            if len(ids) - 1 < needed:
                continue
            w, h = size
            count = np.zeros((h + 1, w + 1), np.int16)
            cells: dict[int, tuple[np.ndarray, np.ndarray]] = {}
            for i in ids:  # each photo counts at most once per pixel (its keypoints grown by the radius)
                x = np.clip(np.rint(positions[i][:, 0]).astype(int), 0, w)
                y = np.clip(np.rint(positions[i][:, 1]).astype(int), 0, h)
                occupied = np.zeros_like(count, dtype=np.uint8)
                occupied[y, x] = 1
                count += cv2.dilate(occupied, kernel)
                cells[i] = (x, y)
            for i in ids:
                x, y = cells[i]
                static = count[y, x] - 1 >= needed
                if not static.any():
                    continue
                keep = ~static
                removed += int(static.sum())
                rows, cols, data = con.execute("SELECT rows, cols, data FROM keypoints WHERE image_id=?",
                                               (i,)).fetchone()
                kp = np.frombuffer(data, np.uint8).reshape(rows, -1)[keep]  # rows of bytes: any dtype
                con.execute("UPDATE keypoints SET rows=?, data=? WHERE image_id=?",
                            (len(kp), np.ascontiguousarray(kp).tobytes(), i))
                rows, cols, data = con.execute("SELECT rows, cols, data FROM descriptors WHERE image_id=?",
                                               (i,)).fetchone()
                desc = np.frombuffer(data, np.uint8).reshape(rows, -1)[keep]
                con.execute("UPDATE descriptors SET rows=?, data=? WHERE image_id=?",
                            (len(desc), np.ascontiguousarray(desc).tobytes(), i))
        con.commit()
    return removed


def _map(database: Path, images_dir: Path, ctx: StageContext, total: int):
    counter = {"n": 0}

    def next_image() -> None:
        counter["n"] += 1
        ctx.report(0.8 + 0.18 * min(1.0, counter["n"] / total), f"placed {min(counter['n'], total)}/{total} cameras")

    with _CancelBridge(ctx) as token:
        models = mapping.map_incrementally(database, images_dir, ctx.work_dir / "mapping", ctx.num_threads,
                                           next_image=next_image, cancellation_token=token)
    best = mapping.largest(models)
    mapper = "incremental"
    sub_models = [{"mapper": "incremental", "photos": r.num_reg_images(), "points": r.num_points3D(),
                   "kept": r is best} for r in models.values()]
    others = [r for r in models.values() if r is not best]
    if best is not None and others:  # groups of photos the mapper could not connect: join them through 3D points
        ctx.report(0.93, f"joining {len(others) + 1} groups of photos")
        joins = sessions_stage.join_models(database, (best, set()), [(r, set()) for r in others],
                                           max(1, ctx.num_threads))
        for sub, (joined, _, agreeing) in zip([m for m in sub_models if not m["kept"]], joins):
            sub["joined"] = joined
            sub["agreeing_point_pairs"] = agreeing
    if mapping.needs_fallback(best, total):
        ctx.report(0.95, "trying global mapping")
        gmodels = mapping.map_globally(database, images_dir, ctx.work_dir / "mapping_global", ctx.num_threads)
        gbest = mapping.largest(gmodels)
        if gbest is not None and (best is None or gbest.num_reg_images() > best.num_reg_images()):
            best, mapper = gbest, "global"
            for sub in sub_models:
                sub["kept"] = False
        sub_models += [{"mapper": "global", "photos": r.num_reg_images(), "points": r.num_points3D(),
                        "kept": r is best} for r in gmodels.values()]
        ctx.check_cancelled()
    return best, mapper, sorted(sub_models, key=lambda m: -m["photos"])


def point_positions(rec: pycolmap.Reconstruction) -> np.ndarray:
    """The sparse points' positions (N×3), in the order of `rec.points3D`."""
    return np.array([p.xyz for p in rec.points3D.values()], dtype=np.float64).reshape(-1, 3)


def camera_arrays(rec: pycolmap.Reconstruction) -> dict[str, dict]:
    """Per registered image: K (3×3), R, t (world→camera), centre, size. The handiest form for numpy stages."""
    out = {}
    for img in rec.images.values():
        if not img.has_pose:
            continue
        cam = img.camera
        pose = img.cam_from_world()
        m = pose.matrix()
        out[img.name] = {
            "image_id": img.image_id,
            "K": np.asarray(cam.calibration_matrix(), dtype=np.float64),
            "R": np.asarray(m[:, :3], dtype=np.float64),
            "t": np.asarray(m[:, 3], dtype=np.float64),
            "center": np.asarray(img.projection_center(), dtype=np.float64),
            "width": cam.width,
            "height": cam.height,
            # a copy: np.asarray would view the camera's memory, which is freed with a temporary Reconstruction
            "params": np.array(cam.params, dtype=np.float64, copy=True),
            "model": cam.model_name if hasattr(cam, "model_name") else str(cam.model),
        }
    return out
