"""The dense stage's object crop: read from the full-resolution photo, resampled, with intrinsics that put every
pixel where a pinhole camera with those intrinsics sees it (OpenCV pixel centres, from COLMAP's corner convention)."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from openscancloud.engine import dense

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stereo_scenes import Camera, Plane, SolidTexture, intrinsics, look_at, render  # noqa: E402


def test_crop_from_the_original_photo_lines_up_with_its_intrinsics(tmp_path):
    ow, oh, f = 640, 480, 300.0
    texture = SolidTexture(0.03, 0.2)
    plane = Plane((0, 0, 1.0), (0.3, 0.1, -1.0))
    cam = look_at((0, 0, 0), (0, 0, 1.0), intrinsics(ow, oh, f), ow, oh)
    image, _, _ = render(cam, plane, texture, ssaa=3)
    original = tmp_path / "photo.png"
    cv2.imwrite(str(original), np.repeat((image * 255).round().astype(np.uint8)[..., None], 3, axis=2))
    # what the sparse stage knows: a half-size working image, COLMAP intrinsics (corner at 0, 0)
    K_colmap = np.array([[f / 2, 0, ow / 4], [0, f / 2, oh / 4], [0, 0, 1]])
    sparse_cam = {"K": K_colmap, "width": ow // 2, "height": oh // 2, "params": np.array([f / 2, ow / 4, oh / 4, 0.0]),
                  "model": "SIMPLE_RADIAL", "R": cam.R, "t": cam.t}
    region = (40, 30, 280, 210)  # working pixels
    crop = dense.load_crop("photo.png", sparse_cam, original, (ow, oh), region, None, pixel_budget=85_000,
                           max_side=4000, depth_range=(0.5, 2.0))
    assert 0.6 < crop.scale < 0.8  # more pixels than the working image has: read from the original
    h, w = crop.gray.shape
    assert abs(h * w - 85_000) < 0.05 * 85_000

    def rendered(K):
        return render(Camera(K, cam.R, cam.t, w, h), plane, texture, ssaa=3)[0]

    inner = (slice(4, h - 4), slice(4, w - 4))
    error = np.abs(crop.gray - rendered(crop.K))[inner].mean()
    shifted = crop.K.copy()
    shifted[:2, 2] += 0.5  # the classic half-pixel mistake
    error_shifted = np.abs(crop.gray - rendered(shifted))[inner].mean()
    assert error < 0.02
    assert error_shifted > 1.5 * error
