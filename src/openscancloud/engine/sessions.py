"""Scanning sessions: photos of one object taken in two or more positions (the second time turned over to show its
underside), joined through the object and never through the turntable.

Why: within one session the object and the turntable plate turn together, so structure-from-motion cannot tell
them apart, and that is harmless.  Between sessions they move differently: the plate is the same plate under
another side of the object.  Photos of two sessions share many plate features (the same plate texture, seen from
the same rig cameras, in the same light), far more than object features, whose shading changed with the turn.
Mapped together, the sessions were joined in the plate's frame: every camera of the second session landed on a
camera of the first, and the model held the object twice, upright and upside down (a flipped synthetic set: 48/48
photos placed, "Done", F@0.5 % 0.54).

So, when the capture times show several sessions (`by_capture_time`), each session is mapped on its own; its plate
is found as the plane at the foot of its turntable axis (`plate_point_ids`); the matches between photos of two
sessions are pooled into pairs of 3D object points, one from each session (no single photo pair has enough); a
robust similarity through those pairs puts each later session into the first one's frame; the pairs it agrees with
become shared points, and one bundle adjustment refines the whole (`merge_sessions`).  A session that cannot be
joined this way is left out with a warning rather than joined through its plate.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

import numpy as np
import pycolmap

from . import mapping
from .context import StageContext
from .ingest import View
from .orient import SESSION_MIN_PHOTOS, estimate

SESSION_GAP_S = 60.0  # a pause of at least a minute between two photos (turning the object over) ...
SESSION_GAP_FACTOR = 10.0  # ... and ten times the usual interval between photos starts a new session
MIN_AGREEING = 20  # object point pairs that must agree on how a later session sits in the first one's frame
MIN_AGREEING_SHARE = 0.1  # ... and their least share of all pairs found (most are wrong matches)
MAX_DESCRIBED_POINTS = 20_000  # object points per session compared by descriptor (all against all)
DESCRIPTOR_RATIO = 0.8  # Lowe's ratio test
AGREE_SHARE = 0.01  # a pair agrees when its points land this close (share of the object's extent)
PLATE_FOOT_SHARE = 0.35  # the plate lies in the lowest part of a session's points (along its axis)
PLATE_DISTANCE_SHARE = 0.01  # a point this close to the plate plane (share of the points' extent) is plate
PLATE_MIN_SHARE = 0.05  # a plane holding fewer of a session's points is not its plate


@dataclass
class SessionMerge:
    """How the sessions were joined (written to report.json under sparse.sessions)."""
    sessions: list[list[str]]
    mapped: list[int] = field(default_factory=list)  # photos each session's own model placed
    plate_points: list[int] = field(default_factory=list)  # sparse points on each session's plate
    object_pairs: list[int] = field(default_factory=list)  # per later session: pairs of object points found
    agreeing: list[int] = field(default_factory=list)  # ... and how many agree with the similarity
    joined: list[bool] = field(default_factory=list)  # per session (the first is always true)

    def to_dict(self) -> dict:
        return {"photos": [len(s) for s in self.sessions], "mapped": self.mapped, "plate_points": self.plate_points,
                "object_point_pairs": self.object_pairs, "agreeing_pairs": self.agreeing, "joined": self.joined}


def by_capture_time(views: list[View]) -> list[list[str]]:
    """The photos grouped into sessions by pauses in their capture times; one group when any photo has no time,
    when there is no such pause, or when a group would be too small to be a session."""
    names = [v.name for v in views]
    if len(views) < 2 * SESSION_MIN_PHOTOS or any(v.taken is None for v in views):
        return [names]
    ordered = sorted(views, key=lambda v: (v.taken, v.name))
    gaps = [b.taken - a.taken for a, b in zip(ordered[:-1], ordered[1:])]
    usual = median([g for g in gaps if g > 0] or [0.0])
    limit = max(SESSION_GAP_S, SESSION_GAP_FACTOR * usual)
    groups: list[list[str]] = [[ordered[0].name]]
    for gap, view in zip(gaps, ordered[1:]):
        if gap >= limit:
            groups.append([])
        groups[-1].append(view.name)
    if len(groups) == 1 or min(len(g) for g in groups) < SESSION_MIN_PHOTOS:
        return [names]
    return groups


def plate_point_ids(rec: pycolmap.Reconstruction, rng: np.random.Generator) -> set[int]:
    """Ids of the sparse points on the session's turntable plate: the plane perpendicular to the session's axis
    that holds the most points in the lowest part of the scene (RANSAC over point triples)."""
    cams = [img for img in rec.images.values() if img.has_pose]
    if len(cams) < SESSION_MIN_PHOTOS or rec.num_points3D() < 50:
        return set()
    centers = np.array([np.asarray(img.projection_center()) for img in cams])
    rotations = [np.asarray(img.cam_from_world().rotation.matrix()) for img in cams]
    orientation = estimate(centers, np.array([r[2] for r in rotations]), np.array([-r[1] for r in rotations]))
    if not orientation.turntable:
        return set()
    up = orientation.up / np.linalg.norm(orientation.up)
    ids = np.array(list(rec.points3D.keys()))
    xyz = np.array([rec.points3D[i].xyz for i in ids])
    heights = xyz @ up
    lo, hi = np.percentile(heights, [1, 99])
    foot = np.nonzero(heights < lo + PLATE_FOOT_SHARE * (hi - lo))[0]
    if len(foot) < 30:
        return set()
    tolerance = PLATE_DISTANCE_SHARE * float(np.linalg.norm(np.percentile(xyz, 99, 0) - np.percentile(xyz, 1, 0)))
    best_normal, best_offset, best_count = None, 0.0, 0
    for _ in range(300):
        a, b, c = xyz[rng.choice(foot, 3, replace=False)]
        normal = np.cross(b - a, c - a)
        if np.linalg.norm(normal) < 1e-12:
            continue
        normal /= np.linalg.norm(normal)
        if abs(normal @ up) < 0.95:  # the plate is perpendicular to the turntable axis
            continue
        count = int((np.abs(xyz[foot] @ normal - a @ normal) < tolerance).sum())
        if count > best_count:
            best_normal, best_offset, best_count = normal, float(a @ normal), count
    if best_normal is None or best_count < PLATE_MIN_SHARE * len(xyz):
        return set()
    # the plate plane and everything below it (the plate's rim and side)
    signed = (xyz @ best_normal - best_offset) * np.sign(best_normal @ up)
    return set(ids[signed < tolerance].tolist())


def _map_session(database: Path, images_dir: Path, names: list[str], out: Path,
                 threads: int) -> pycolmap.Reconstruction | None:
    """The photos `names` mapped on their own: incrementally, and globally when that placed under 90 % of them
    (as the sparse stage does for a whole set)."""
    best = mapping.largest(mapping.map_incrementally(database, images_dir, out, threads, names,
                                                     multiple_models=False))
    if mapping.needs_fallback(best, len(names)):
        other = mapping.largest(mapping.map_globally(database, images_dir, out.parent / f"{out.name}_global",
                                                     threads, names))
        if other is not None and (best is None or other.num_reg_images() > best.num_reg_images()):
            best = other
    return best


def merge_sessions(database: Path, images_dir: Path, sessions: list[list[str]], ctx: StageContext
                   ) -> tuple[pycolmap.Reconstruction | None, SessionMerge]:
    """One model of all sessions that could be joined through the object (see the module docstring), and what
    happened; (None, …) when the first session cannot be mapped on its own."""
    threads = max(1, ctx.num_threads)
    rng = np.random.default_rng(0)
    info = SessionMerge(sessions)
    models = []
    for index, names in enumerate(sessions):
        ctx.check_cancelled()
        ctx.report(0.8 + 0.1 * index / len(sessions), f"mapping session {index + 1} of {len(sessions)} on its own")
        rec = _map_session(database, images_dir, names, ctx.work_dir / f"session_{index + 1}", threads)
        plate = plate_point_ids(rec, rng) if rec is not None else set()
        models.append((rec, plate))
        info.mapped.append(rec.num_reg_images() if rec is not None else 0)
        info.plate_points.append(len(plate))
    first, first_plate = models[0]
    if first is None or first.num_reg_images() < SESSION_MIN_PHOTOS:
        return None, info
    info.joined.append(True)
    ctx.check_cancelled()
    for joined, pairs, agreeing in join_models(database, (first, first_plate), models[1:], threads):
        info.joined.append(joined)
        info.object_pairs.append(pairs)
        info.agreeing.append(agreeing)
    ctx.report(0.95, "adjusted the joined sessions")
    return first, info


def join_models(database: Path, first: tuple[pycolmap.Reconstruction, set[int]],
                others: list[tuple[pycolmap.Reconstruction | None, set[int]]], threads: int
                ) -> list[tuple[bool, int, int]]:
    """Join models of disjoint photo sets into `first` (changed in place) through pairs of their 3D points, the
    excluded points (plates) left out; then one bundle adjustment when anything was joined.  Per other model:
    (joined, point pairs found, pairs agreeing with the similarity).  Used for scanning sessions and for the
    separate sub-models the mapper may return."""
    first_rec, first_excluded = first
    first_points = _feature_points(first_rec, first_excluded)
    out = []
    with pycolmap.Database.open(str(database)) as db:
        names_by_id = {img.image_id: img.name for img in db.read_all_images()}
        pair_ids, all_matches = db.read_all_matches()
        descriptors = _PointDescriptors(db)
        first_descriptors = descriptors.of(first_rec, first_excluded)
        for rec, excluded in others:
            if rec is None or rec.num_reg_images() < SESSION_MIN_PHOTOS:
                out.append((False, 0, 0))
                continue
            pairs = sorted(set(_object_point_pairs(first_points, _feature_points(rec, excluded), names_by_id,
                                                   pair_ids, all_matches))
                           | set(_descriptor_pairs(first_descriptors, descriptors.of(rec, excluded))))
            similarity, agreeing = _similarity(first_rec, rec, pairs)
            if similarity is None:
                out.append((False, len(pairs), len(agreeing)))
                continue
            rec.transform(similarity)
            _add_model(first_rec, rec, agreeing)
            out.append((True, len(pairs), len(agreeing)))
    if any(joined for joined, _, _ in out):
        options = pycolmap.BundleAdjustmentOptions()
        options.ceres.solver_options.num_threads = threads
        options.print_summary = False
        with _stderr_to(database.parent / "join_models.log"):
            pycolmap.bundle_adjustment(first_rec, options)
    return out


@contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Send what C++ writes to the process's stderr into a file for a moment.

    Why: pycolmap's bundle adjustment prints its heading and timer to stderr whatever glog is told
    (engine/pipeline.py `_quiet_libraries` routes everything else to log files); the terminal is for people."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _feature_points(rec: pycolmap.Reconstruction, plate: set[int]) -> dict[tuple[str, int], int]:
    """(photo name, keypoint index) → id of the sparse object point it observes (plate points left out)."""
    out: dict[tuple[str, int], int] = {}
    for point_id, point in rec.points3D.items():
        if point_id in plate:
            continue
        for element in point.track.elements:
            out[(rec.images[element.image_id].name, int(element.point2D_idx))] = point_id
    return out


def _object_point_pairs(first: dict[tuple[str, int], int], other: dict[tuple[str, int], int],
                        names_by_id: dict[int, str], pair_ids, all_matches) -> list[tuple[int, int]]:
    """Pairs (point of the first session, point of the other) that some feature match links, object points only;
    pooled over every photo pair across the two sessions."""
    found: set[tuple[int, int]] = set()
    for pair_id, matches in zip(pair_ids, all_matches):
        id1, id2 = _pair_from_id(int(pair_id))
        name1, name2 = names_by_id[id1], names_by_id[id2]
        for idx1, idx2 in np.asarray(matches):
            key1, key2 = (name1, int(idx1)), (name2, int(idx2))
            if key1 in first and key2 in other:
                found.add((first[key1], other[key2]))
            elif key2 in first and key1 in other:
                found.add((first[key2], other[key1]))
    return sorted(found)


class _PointDescriptors:
    """One SIFT descriptor per sparse object point (the normalised mean over its track), read from the database
    one photo at a time.

    Why: a photo pair across sessions has few object matches (the plate's features, unchanged between sessions,
    win the matcher's ratio test), but every object point of one session can be compared with every object point
    of the other directly, with no plate feature to compete."""

    def __init__(self, db: pycolmap.Database):
        self._db = db
        self._ids = {img.name: img.image_id for img in db.read_all_images()}

    def of(self, rec: pycolmap.Reconstruction, plate: set[int]) -> tuple[np.ndarray, np.ndarray]:
        points = [(point_id, point) for point_id, point in rec.points3D.items()
                  if point_id not in plate and point.track.length() >= 3]
        points.sort(key=lambda item: -item[1].track.length())
        points = points[:MAX_DESCRIBED_POINTS]  # the best-seen points; bounds the all-against-all comparison
        by_image: dict[int, list[tuple[int, int]]] = {}
        for row, (_, point) in enumerate(points):
            for element in point.track.elements:
                by_image.setdefault(element.image_id, []).append((row, int(element.point2D_idx)))
        total = np.zeros((len(points), 128), np.float32)
        for image_id, rows in by_image.items():
            stored = np.asarray(self._db.read_descriptors(self._ids[rec.images[image_id].name]).data, np.float32)
            index = np.array(rows)
            np.add.at(total, index[:, 0], stored[index[:, 1]])
        total /= np.maximum(np.linalg.norm(total, axis=1, keepdims=True), 1e-9)
        return np.array([point_id for point_id, _ in points], np.int64), total


def _descriptor_pairs(first: tuple[np.ndarray, np.ndarray], other: tuple[np.ndarray, np.ndarray]
                      ) -> list[tuple[int, int]]:
    """Object points of two sessions whose descriptors are each other's nearest, clearly nearer than the second
    nearest (Lowe's ratio test on the distances)."""
    ids_a, desc_a = first
    ids_b, desc_b = other
    if len(ids_a) < 2 or len(ids_b) < 2:
        return []
    best_b = np.empty(len(ids_a), np.int64)
    ratio_ok = np.empty(len(ids_a), bool)
    for start in range(0, len(ids_a), 2048):  # in blocks: bounded memory
        cos = desc_a[start:start + 2048] @ desc_b.T
        top2 = np.argpartition(-cos, 1, axis=1)[:, :2]
        c2 = np.take_along_axis(cos, top2, axis=1)
        order = np.argsort(-c2, axis=1)
        nearest = np.take_along_axis(top2, order[:, :1], axis=1)[:, 0]
        d = np.sqrt(np.maximum(0.0, 2 - 2 * np.take_along_axis(c2, order, axis=1)))
        best_b[start:start + 2048] = nearest
        ratio_ok[start:start + 2048] = d[:, 0] < DESCRIPTOR_RATIO * d[:, 1]
    best_a = np.argmax(desc_b @ desc_a.T, axis=1) if len(ids_b) * len(ids_a) <= 4e8 else None
    pairs = []
    for row, col in enumerate(best_b):
        if ratio_ok[row] and (best_a is None or best_a[col] == row):
            pairs.append((int(ids_a[row]), int(ids_b[col])))
    return pairs


def _similarity(first: pycolmap.Reconstruction, other: pycolmap.Reconstruction, pairs: list[tuple[int, int]]
                ) -> tuple[pycolmap.Sim3d | None, list[tuple[int, int]]]:
    """The similarity first ← other that most object point pairs agree with (LO-RANSAC), refined on those pairs;
    None when fewer than MIN_AGREEING pairs, or fewer than MIN_AGREEING_SHARE of them, agree."""
    if len(pairs) < MIN_AGREEING:
        return None, []
    target = np.array([first.points3D[a].xyz for a, _ in pairs])
    source = np.array([other.points3D[b].xyz for _, b in pairs])
    extent = float(np.linalg.norm(np.percentile(target, 95, 0) - np.percentile(target, 5, 0)))
    options = pycolmap.RANSACOptions()
    options.max_error = AGREE_SHARE * extent
    options.random_seed = 0
    found = pycolmap.estimate_sim3d_robust(source, target, options)
    if not found:
        return None, []
    mask = np.asarray(found["inlier_mask"], bool)
    if mask.sum() < max(MIN_AGREEING, MIN_AGREEING_SHARE * len(pairs)):
        return None, []
    refined = pycolmap.estimate_sim3d(source[mask], target[mask]) or found["tgt_from_src"]
    return refined, [p for p, ok in zip(pairs, mask) if ok]


def _add_model(into: pycolmap.Reconstruction, other: pycolmap.Reconstruction,
               shared: list[tuple[int, int]]) -> None:
    """Copy the (already transformed) cameras, photos and points of `other` into `into`; each shared pair
    becomes one point seen by both sessions."""
    for camera_id, camera in other.cameras.items():
        if not into.exists_camera(camera_id):
            into.add_camera(camera)
    for rig_id, rig in other.rigs.items():
        if not into.exists_rig(rig_id):
            into.add_rig(rig)
    for frame in other.frames.values():
        frame = copy.copy(frame)
        frame.reset_rig_ptr()
        into.add_frame(frame)
    for image in other.images.values():
        image = copy.copy(image)
        image.reset_camera_ptr()
        image.reset_frame_ptr()
        for idx in range(image.num_points2D()):
            if image.points2D[idx].has_point3D():
                image.reset_point3D_for_point2D(idx)
        into.add_image(image)
    for frame_id in other.frames:
        into.register_frame(frame_id)
    new_ids = {point_id: into.add_point3D(point.xyz, pycolmap.Track(list(point.track.elements)), point.color)
               for point_id, point in other.points3D.items()}
    for first_id, other_id in shared:
        if into.exists_point3D(first_id) and into.exists_point3D(new_ids[other_id]):
            into.merge_points3D(first_id, new_ids[other_id])


def _pair_from_id(pair_id: int) -> tuple[int, int]:
    """COLMAP's pair id → (image_id1, image_id2), image_id1 < image_id2."""
    big = 2147483647
    id2 = pair_id % big
    id1 = (pair_id - id2) // big
    return int(id1), int(id2)
