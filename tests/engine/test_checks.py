"""Honest results: the failure threshold, the warning sentences and the turntable ring check on real geometry."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from openscancloud.engine import checks
from openscancloud.engine.errors import UserInputError


def test_under_half_placed_fails_with_one_sentence():
    checks.check_placement(40, 20)  # half is enough
    with pytest.raises(UserInputError) as info:
        checks.check_placement(16, 3)
    message = str(info.value)
    assert message.startswith("Only 3 of 16 photos could be placed")
    assert "Take the photos again" in message and "\n" not in message


def test_placement_and_sub_model_warnings_name_what_was_left_out():
    names = [f"p{i}.jpg" for i in range(7)]
    (warning,) = checks.placement_warnings(40, names)
    assert warning.startswith("7 of 40 photos could not be placed") and "p0.jpg" in warning
    assert "and 2 more" in warning
    subs = [{"mapper": "incremental", "photos": 30, "points": 5000, "kept": True},
            {"mapper": "incremental", "photos": 8, "points": 700, "kept": False}]
    (warning,) = checks.sub_model_warnings(subs)
    assert "2 separate groups" in warning and "30 photos" in warning and "8 photos, 700 points" in warning
    assert checks.sub_model_warnings(subs[:1]) == []


def test_cameras_on_weak_evidence_are_flagged():
    assert checks.camera_warnings(0.6, 4.2, 850.0) == []
    (weak,) = checks.camera_warnings(0.6, 3.1, 10.8)  # 12 photos placed on 42 points
    assert "sees only 11 reconstructed points" in weak
    (loose,) = checks.camera_warnings(2.4, 4.0, 500.0)
    assert "2.40 px" in loose


def _rings(radii: list[float], heights: list[float], per_ring: int = 12) -> np.ndarray:
    centers = []
    for r, h in zip(radii, heights):
        for k in range(per_ring):
            a = 2 * np.pi * k / per_ring
            centers.append([r * np.cos(a), r * np.sin(a), h])
    return np.array(centers)


def test_ring_check_accepts_circles_and_flags_warped_rings():
    axis, target = np.array([0, 0, 1.0]), np.zeros(3)
    circles = _rings([1.0, 0.9, 0.7], [0.2, 0.5, 0.8])
    assert checks.ring_radius_spread(circles, axis, target) < 1e-9
    assert checks.turntable_warnings(True, True, checks.ring_radius_spread(circles, axis, target)) == []
    warped = circles.copy()
    warped[:12, 0] *= 1.3  # one ring squashed into an ellipse (the cameras are off by up to 30 %)
    spread = checks.ring_radius_spread(warped, axis, target)
    assert spread > checks.MAX_RING_RADIUS_SPREAD
    (warning,) = checks.turntable_warnings(True, True, spread)
    assert "not circles" in warning
    assert checks.turntable_warnings(False, True, spread) == []  # handheld sets are not judged as turntables


def test_too_few_photos_placed_fails_through_the_engine_command(photo_set, tmp_path):
    """3 photos of kermit among 6 photos of nothing: exit 2 and the sentence, no model, no COLMAP log lines."""
    from PIL import Image

    images = tmp_path / "in"
    images.mkdir()
    for photo in sorted(photo_set("kermit").iterdir())[:3]:
        (images / photo.name).write_bytes(photo.read_bytes())
    rng = np.random.default_rng(3)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(images / f"noise{i}.jpg")
    proc = subprocess.run([sys.executable, "-m", "openscancloud.engine", str(images), "-o", str(tmp_path / "o"),
                           "--quality", "preview", "--progress", "jsonl"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = json.loads(proc.stdout.splitlines()[-1])
    assert last["event"] == "error" and last["user_error"] is True
    assert "of 9 photos could be placed" in last["message"] or "could not be recovered" in last["message"]
    assert not (tmp_path / "o" / "model.glb").exists()
    assert not re.search(r"^[IWEF]\d{8} ", proc.stderr, re.MULTILINE) and "Traceback" not in proc.stderr


def test_a_plain_object_is_told_to_the_person():
    """Few sparse points on the object itself (the turntable's own texture left out) mean a plain object: the
    warning says so and what helps; a textured object and a handheld set (no plate to leave out) get none."""
    from openscancloud.engine.orient import Orientation

    rng = np.random.default_rng(2)
    r = 0.1 * np.sqrt(rng.random(4000))
    a = rng.random(4000) * 2 * np.pi
    plate = np.stack([r * np.cos(a), r * np.sin(a), rng.normal(0, 2e-4, 4000)], 1)

    def ball(n: int) -> np.ndarray:
        d = rng.normal(size=(n, 3))
        return 0.03 * d / np.linalg.norm(d, axis=1, keepdims=True) + [0, 0, 0.031]

    turntable = Orientation(np.eye(4), True, np.array([0.0, 0.0, 1.0]), np.zeros(3), 0.01)
    plain = checks.object_points(np.concatenate([plate, ball(300)]), turntable)
    assert plain is not None and 250 <= plain <= 300
    (warning,) = checks.texture_warnings(plain, 48)
    assert "little texture" in warning and "spray" in warning
    rich = checks.object_points(np.concatenate([plate, ball(5000)]), turntable)
    assert checks.texture_warnings(rich, 48) == []
    assert checks.object_points(ball(300), turntable) is None  # no plate: nothing to tell the object by
    assert checks.texture_warnings(None, 48) == []
