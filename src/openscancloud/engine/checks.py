"""Honest results: what the person must know about a reconstruction, and when to refuse to call it done.

Why: a model built from 3 of 16 photos, or from cameras that structure-from-motion placed wrongly, looks like a
success unless someone says otherwise.  This module turns the stages' own evidence into short sentences
(`warnings`, shown in report.json, in the engine's final event and in the project status) and fails the job with
one sentence when too little of the input could be used (`check_placement`).

Thresholds (documented in docs/engine.md):
- fewer than MIN_PLACED_FRACTION (half) of the usable photos placed → the job fails: a model from less than half
  the photos is a fragment, and the person is better served by a clear "take these photos again";
- a camera check that fails (reprojection error, short tracks, a turntable whose camera rings are not circles) →
  a warning that says the model may be distorted; the model is still delivered.
"""

from __future__ import annotations

import numpy as np

from .errors import UserInputError

MIN_PLACED_FRACTION = 0.5  # below this share of usable photos placed, the job fails
MAX_REPROJECTION_PX = 1.5  # mean reprojection error above this: cameras or intrinsics are not consistent
MIN_TRACK_LENGTH = 2.8  # mean photos per 3D point below this: points seen in barely two photos are weak
MIN_OBSERVATIONS = 100  # mean 3D points seen per placed photo below this: its pose rests on a handful of points
MAX_RING_RADIUS_SPREAD = 0.05  # turntable rings: radius varies by more than 5 % → the cameras are warped
RING_HEIGHT_GAP = 0.05  # cameras whose heights differ by more than 5 % of the radius belong to different rings
TWIN_DISTANCE = 0.005  # two photos placed within 0.5 % of the cameras' spread of each other ...
TWIN_ANGLE_DEG = 1.0  # ... looking the same way within 1° were placed on the same spot
TWIN_SHARE = 0.2  # when a fifth of the photos have such a twin, a second session was joined by its turntable
MIN_OBJECT_POINTS_PER_PHOTO = 20  # fewer sparse points on the object (turntable left out) per placed photo: a plain
# object, whose surface comes from its shading alone (measured: plain objects 6–8, sparse dots 63, rich 100)


def check_placement(used: int, placed: int) -> None:
    """Fail with one sentence when fewer than half of the usable photos could be placed."""
    if used and placed < MIN_PLACED_FRACTION * used:
        raise UserInputError(
            f"Only {placed} of {used} photos could be placed, too few for a model of the whole object. "
            f"Take the photos again with more overlap (about 70 % between neighbours) and, for plain or shiny "
            f"objects, some texture (a scanning spray or a dotted pattern)."
        )


def placement_warnings(used: int, unregistered: list[str]) -> list[str]:
    if not unregistered:
        return []
    shown = ", ".join(unregistered[:5]) + (f" and {len(unregistered) - 5} more" if len(unregistered) > 5 else "")
    return [f"{len(unregistered)} of {used} photos could not be placed (too few reliable matches with the "
            f"others): {shown}; the model may miss the parts only they show."]


def off_turntable_warnings(used: int, names: list[str]) -> list[str]:
    """Photos left out because the turntable could not have taken them where they were placed (turntable.py)."""
    if not names:
        return []
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return [f"{len(names)} of {used} photos were matched to a look-alike view and placed where the turntable "
            f"could not have taken them, so they were left out: {shown}; the model may miss the parts only they "
            f"show."]


def sub_model_warnings(sub_models: list[dict]) -> list[str]:
    """Several disconnected sub-models: say which was kept and what the others held."""
    incremental = [m for m in sub_models if m.get("mapper") == "incremental"] or sub_models
    if len(incremental) < 2:
        return []
    kept = next((m for m in sub_models if m.get("kept")), incremental[0])
    others = [m for m in incremental if not m.get("kept") and not m.get("joined")]
    joined = [m for m in incremental if m.get("joined")]
    if not others:
        return []  # every group was joined to the largest through shared 3D points
    listed = "; ".join(f"{m['photos']} photos, {m['points']} points" for m in others[:4])
    with_joined = f", {len(joined)} joined to it" if joined else ""
    return [f"The photos formed {len(incremental)} separate groups that share too little detail; the largest "
            f"({kept['photos']} photos, {kept['points']} points) was kept{with_joined}, the others were dropped "
            f"({listed}). Photos bridging the groups would join them."]


def camera_warnings(mean_reprojection_px: float, mean_track_length: float | None,
                    observations_per_photo: float | None = None) -> list[str]:
    out = []
    if observations_per_photo is not None and 0 <= observations_per_photo < MIN_OBSERVATIONS:
        out.append(f"Each placed photo sees only {observations_per_photo:.0f} reconstructed points on average "
                   f"(at least {MIN_OBSERVATIONS} are expected): the camera positions rest on weak evidence and "
                   f"the model may be distorted or incomplete. Plain objects need texture (a scanning spray or "
                   f"a dotted pattern).")
    if mean_reprojection_px > MAX_REPROJECTION_PX:
        out.append(f"The camera positions fit the photos loosely (mean reprojection error "
                   f"{mean_reprojection_px:.2f} px, expected under {MAX_REPROJECTION_PX} px): the model may be "
                   f"distorted.")
    if mean_track_length is not None and 0 < mean_track_length < MIN_TRACK_LENGTH:
        out.append(f"Most points were seen in only {mean_track_length:.1f} photos on average: the camera "
                   f"positions rest on weak evidence and the model may be distorted.")
    return out


def ring_radius_spread(centers: np.ndarray, axis: np.ndarray, target: np.ndarray) -> float:
    """Largest relative spread (std/mean) of the distance to the rotation axis within one ring of cameras.

    On a turntable every photo of one elevation is taken from the same distance to the axis, so each ring of
    camera centres is a circle.  Structure-from-motion that went wrong (static features, a symmetric object)
    bends these circles; a spread of a few per cent already means a visibly warped model."""
    axis = axis / np.linalg.norm(axis)
    rel = centers - target
    heights = rel @ axis
    radii = np.linalg.norm(rel - np.outer(heights, axis), axis=1)
    scale = float(np.median(radii)) or 1.0
    order = np.argsort(heights)
    rings: list[list[int]] = [[int(order[0])]]
    for a, b in zip(order[:-1], order[1:]):
        if heights[b] - heights[a] > RING_HEIGHT_GAP * scale:
            rings.append([])
        rings[-1].append(int(b))
    spreads = [float(np.std(radii[r]) / max(np.mean(radii[r]), 1e-12)) for r in rings if len(r) >= 4]
    return max(spreads, default=0.0)


def turntable_warnings(static_rig: bool, turntable: bool, spread: float) -> list[str]:
    """On a static rig (the backdrop stood still, so the object turned) the cameras must form turntable rings."""
    if not static_rig:
        return []
    if not turntable:
        return ["The background stood still, as on a turntable, but the recovered camera positions do not "
                "surround the object: they cannot be trusted and the model is probably distorted."]
    if spread > MAX_RING_RADIUS_SPREAD:
        return [f"The recovered camera rings are not circles (their radius varies by {spread * 100:.0f} %), "
                f"although the photos come from a turntable: the model may be distorted."]
    return []


def session_warnings(left_out: list[list[str]]) -> list[str]:
    """Scanning sessions (the object in another position) that could not be joined through the object."""
    return [f"The {len(group)} photos from {sorted(group)[0]} on were taken in another scanning session (the "
            f"object in another position) and could not be joined to the first session through the object "
            f"itself, so they were left out: the model shows what the first session saw. Overlap the sessions "
            f"more (at least a third of the object seen in both) to join them." for group in left_out]


def photos_with_a_twin_pose(centers: np.ndarray, rotations: np.ndarray) -> int:
    """How many photos were placed on the same spot, looking the same way, as another photo.

    Why: one turntable session never puts two photos at one pose (duplicates are screened out at ingest).  When a
    second session (the object turned over) is mapped together with the first, the turntable plate, which looks
    the same in both, can join them instead of the object: then every photo of the second session lands on the
    pose of a photo of the first, and the model shows the object twice.  Sessions told by their capture times are
    joined through the object (sessions.py); this catches the ones without capture times."""
    from scipy.spatial import cKDTree

    if len(centers) < 4:
        return 0
    spread = float(np.median(np.linalg.norm(centers - centers.mean(0), axis=1))) or 1.0
    twins = set()
    for i, j in cKDTree(centers).query_pairs(TWIN_DISTANCE * spread):
        cos = (np.trace(rotations[i] @ rotations[j].T) - 1) / 2
        if np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))) < TWIN_ANGLE_DEG:
            twins.update((i, j))
    return len(twins)


def twin_pose_warnings(twins: int, placed: int) -> list[str]:
    if placed == 0 or twins < max(4, TWIN_SHARE * placed):
        return []
    return [f"{twins} of {placed} photos were placed exactly where other photos were. This happens when a second "
            f"scanning session (the object turned over) is joined through the turntable instead of the object: "
            f"the model probably shows the object twice. Keep the photos' capture times (EXIF) so the sessions can "
            f"be told apart, or upload each session on its own."]


def object_points(points: np.ndarray, orientation) -> int | None:
    """How many sparse points lie on the object itself (region.standing_object: the plate(s) and floating pieces
    left out).  None when no plate was found (a handheld set: object and background cannot be told apart here)."""
    from . import region

    standing = region.standing_object(points, orientation)
    return None if standing is None else len(standing[0])


def texture_warnings(on_object: int | None, placed: int) -> list[str]:
    """A plain object: say that its surface comes from shading alone, and what gives an accurate model."""
    if on_object is None or placed == 0 or on_object >= MIN_OBJECT_POINTS_PER_PHOTO * placed:
        return []
    return [f"The object shows little texture: only {on_object} points could be matched on it (about "
            f"{on_object / placed:.0f} per photo; textured objects give 50 or more). Its surface comes mostly from "
            f"its shading and may be lumpy or slightly shrunk in places; a scanning spray or a dotted pattern on the "
            f"object gives an accurate model."]


def input_warnings(rejected: list[dict]) -> list[str]:
    """Files of the input that were not used (not photos, unreadable, blurry, duplicates, another camera)."""
    if not rejected:
        return []
    shown = "; ".join(f"{r['name']} {r['reason']}" for r in rejected[:3])
    more = f" (and {len(rejected) - 3} more, listed in report.json)" if len(rejected) > 3 else ""
    files, were = ("files", "were") if len(rejected) != 1 else ("file", "was")
    return [f"{len(rejected)} {files} of the input {were} not used: {shown}{more}."]


def collect(*, ingest, masks, sparse, orientation) -> list[str]:
    """Every warning about one reconstruction, in the order a person reads them (input → cameras)."""
    from . import sparse as sparse_stage

    used = len(ingest.views)
    out = input_warnings(ingest.rejected)
    out += getattr(masks, "warnings", None) or []
    left_out = (sparse.extra.get("sessions") or {}).get("left_out") or []
    in_left_out = {name for group in left_out for name in group}
    off_turntable = sparse.extra.get("off_turntable") or []
    out += placement_warnings(used, [ingest.view(n).source for n in sparse.unregistered
                                     if n not in in_left_out and n not in off_turntable])
    out += off_turntable_warnings(used, [ingest.view(n).source for n in off_turntable])
    out += sub_model_warnings(sparse.extra.get("sub_models", []))
    out += session_warnings(left_out)
    out += camera_warnings(sparse.mean_reprojection_error, sparse.extra.get("track_length_mean"),
                           sparse.extra.get("observations_per_image"))
    rec = sparse.load()
    cams = sparse_stage.camera_arrays(rec)
    points = sparse_stage.point_positions(rec)
    out += texture_warnings(object_points(points, orientation) if orientation.turntable else None, len(cams))
    if cams:
        twins = photos_with_a_twin_pose(np.array([c["center"] for c in cams.values()]),
                                        np.array([c["R"] for c in cams.values()]))
        out += twin_pose_warnings(twins, len(cams))
    static_rig = masks.mode == "static-background"
    if static_rig:
        sessions = [(s.images, s.up, s.turntable) for s in orientation.sessions] or \
            [(list(cams), orientation.up, orientation.turntable)]
        spreads = []
        for images, up, _ in sessions:  # each session's cameras form circles around its own axis
            centers = np.array([cams[n]["center"] for n in images if n in cams])
            spreads.append(ring_radius_spread(centers, up, orientation.center) if len(centers) >= 4 else 0.0)
        out += turntable_warnings(static_rig, all(turntable for *_, turntable in sessions), max(spreads))
    return out
