"""Two scanning sessions (the object turned over for the second): told apart by capture time, joined through the
object and not through the turntable plate, the model upright as the first session stood."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from openscancloud.engine import checks, ingest, masks, orient, sessions, sparse
from openscancloud.engine.ingest import View


def _view(name: str, taken: float | None) -> View:
    return View(name, name, 640, 480, 640, 480, None, "none", 1, taken)


def test_sessions_are_told_apart_by_a_pause_in_the_capture_times():
    first = [_view(f"a{i:02d}.jpg", 1000.0 + 3 * i) for i in range(12)]
    second = [_view(f"b{i:02d}.jpg", 1000.0 + 36 + 300 + 3 * i) for i in range(10)]  # turned over in 5 min
    groups = sessions.by_capture_time(second + first)  # the order of the files does not matter
    assert groups == [[v.name for v in first], [v.name for v in second]]
    # a short pause (a photo retaken) is no new session; neither is a group too small to circle the object
    steady = [_view(f"c{i:02d}.jpg", 1000.0 + 3 * i + (40 if i > 6 else 0)) for i in range(20)]
    assert len(sessions.by_capture_time(steady)) == 1
    straggler = first + [_view("late.jpg", 5000.0)]
    assert len(sessions.by_capture_time(straggler)) == 1
    # photos without a capture time are never split by it
    assert len(sessions.by_capture_time(first + [_view("b.jpg", None)] + second)) == 1


def test_a_left_out_session_is_said_in_a_sentence():
    [warning] = checks.session_warnings([["flip_0003.jpg", "flip_0001.jpg"]])
    assert "2 photos from flip_0001.jpg" in warning and "left out" in warning


def test_a_flipped_second_session_joins_through_the_object(synthetic_set, tmp_path, make_ctx, metrics):
    """Mapped together, the plate (same texture, same light) joined the sessions: every camera of the flipped
    session sat on a camera of the first, and the model held the object twice.  Joined through the object, every
    camera lands where the ground truth has it, and the two sessions' axes point opposite ways."""
    root = synthetic_set("small_flip")
    ing = ingest.run(root / "images", make_ctx("ingest", tmp_path))
    assert sessions.by_capture_time(ing.views) == [
        sorted(v.name for v in ing.views if v.name.startswith("img_")),
        sorted(v.name for v in ing.views if v.name.startswith("flip_"))]
    msk = masks.run(ing, make_ctx("masks", tmp_path))
    sp = sparse.run(ing, msk, make_ctx("sparse", tmp_path))
    merge = sp.extra["sessions"]["merge"]
    assert merge["joined"] == [True, True] and min(merge["plate_points"]) > 0, merge
    assert len(sp.registered) == len(ing.views)

    rec = sp.load()
    truth = {Path(f["file"]).name: np.array(f["center"]) for f in json.loads(
        (root / "ground_truth" / "cameras.json").read_text())["frames"]}
    names = sorted(truth)
    ours = {img.name: np.asarray(img.projection_center()) for img in rec.images.values() if img.has_pose}
    fit = metrics.umeyama(np.array([ours[n] for n in names]), np.array([truth[n] for n in names]))
    moved = np.array([fit.apply(ours[n][None])[0] for n in names])
    error = np.linalg.norm(moved - np.array([truth[n] for n in names]), axis=1)
    radius = float(np.median(np.linalg.norm(np.array(list(truth.values())), axis=1)))
    assert error.max() < 0.02 * radius, error.max() / radius  # joined by the plate, half were off by a diameter

    from openscancloud.engine.pipeline import _orientation
    orientation = _orientation(sp, tmp_path)
    assert [len(s.images) for s in orientation.sessions] == [24, 24]
    ups = [orientation.apply_dirs(np.asarray(s.up)) for s in orientation.sessions]
    assert ups[0][2] > 0.99 and ups[1][2] < -0.99  # upright as session A stood; B's axis points down
    assert orientation.turntable_ups() and len(orientation.turntable_ups()) == 2


def test_one_session_keeps_the_plain_orientation():
    rng = np.random.default_rng(1)
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    centers = np.stack([np.cos(angles), np.sin(angles), 0.5 + 0.01 * rng.standard_normal(24)], 1)
    dirs = -centers / np.linalg.norm(centers, axis=1, keepdims=True)
    ups = np.cross(np.cross(dirs, [0, 0, 1.0]), dirs)
    result = orient.estimate_sessions([f"{i}" for i in range(24)], centers, dirs, ups)
    assert result.sessions == [] and result.turntable and result.up[2] > 0.99


def test_photos_placed_on_the_poses_of_others_are_said_to_be_a_session_joined_by_its_turntable():
    """Without capture times, a flipped session mapped with the first one lands photo for photo on its poses (the
    plate joined them): that is said.  One session's ring is not."""
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    centers = np.stack([np.cos(angles), np.sin(angles), np.full(24, 0.5)], 1)
    rotations = np.array([orient._rotation_to_z(np.array([0, 0, 1.0]), -c) for c in centers])
    assert checks.photos_with_a_twin_pose(centers, rotations) == 0
    assert checks.twin_pose_warnings(0, 24) == []
    doubled_c = np.concatenate([centers, centers + 1e-4])
    doubled_r = np.concatenate([rotations, rotations])
    twins = checks.photos_with_a_twin_pose(doubled_c, doubled_r)
    assert twins == 48
    [warning] = checks.twin_pose_warnings(twins, 48)
    assert "48 of 48 photos" in warning and "turned over" in warning
