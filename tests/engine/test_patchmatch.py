"""PatchMatch stereo on rendered scenes with exact depth and normals (planes, a sphere, a grazing surface)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from openscancloud.engine.patchmatch import PatchMatchParams, SourceView, patch_match, scale_intrinsics

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stereo_scenes import Plane, SolidTexture, Sphere, intrinsics, look_at, relative, render  # noqa: E402

W, H, F = 160, 120, 150.0
TARGET = np.array([0.0, 0.0, 1.0])


def _solve(surface, source_centres, params=PatchMatchParams(), depth_range=(0.6, 2.0)):
    K = intrinsics(W, H, F)
    texture = SolidTexture(0.02, 0.15)
    ref = look_at((0, 0, 0), TARGET, K, W, H)
    image, depth, normal = render(ref, surface, texture)
    sources = []
    for c in source_centres:
        cam = look_at(c, TARGET, K, W, H)
        R, t = relative(ref, cam)
        sources.append(SourceView(render(cam, surface, texture)[0], K, R, t))
    result = patch_match(image, K, sources, depth_range, depth > 0, params)
    return result, depth, normal


def _ring(radius: float, count: int = 4) -> list[np.ndarray]:
    return [np.array([radius * np.cos(a), radius * np.sin(a), 0.0]) for a in np.arange(count) * 2 * np.pi / count]


def _errors(result, depth, normal):
    ok = (result.depth > 0) & (depth > 0)
    coverage = ok.sum() / (depth > 0).sum()
    rel = np.abs(result.depth[ok] - depth[ok]) / depth[ok]
    angle = np.degrees(np.arccos(np.clip(np.sum(result.normal[ok] * normal[ok], -1), -1, 1)))
    return coverage, rel, angle


def test_fronto_parallel_plane():
    result, depth, normal = _solve(Plane(TARGET, (0, 0, -1)), _ring(0.15))
    coverage, rel, angle = _errors(result, depth, normal)
    assert coverage > 0.85  # a band along the border is outside two of the four sources
    assert np.median(rel) < 0.002 and np.percentile(rel, 90) < 0.01
    assert np.median(angle) < 3.0


def test_slanted_plane_60_degrees():
    a = np.radians(60)
    result, depth, normal = _solve(Plane(TARGET, (np.sin(a), 0, -np.cos(a))), _ring(0.15))
    coverage, rel, angle = _errors(result, depth, normal)
    assert coverage > 0.8
    assert np.median(rel) < 0.003 and np.percentile(rel, 90) < 0.02
    assert np.median(angle) < 3.0 and np.percentile(angle, 90) < 10.0


def test_sphere_depth_and_normals():
    result, depth, normal = _solve(Sphere((0, 0, 1.3), 0.4), _ring(0.15))
    coverage, rel, angle = _errors(result, depth, normal)
    assert coverage > 0.9
    assert np.median(rel) < 0.005 and np.percentile(rel, 90) < 0.02
    assert np.median(angle) < 5.0


def test_surface_seen_only_at_grazing_angles():
    """A plane at 75° to every view's line of sight: only slanted windows can match it."""
    a = np.radians(75)
    centres = [np.array([0.0, y, 0.0]) for y in (-0.15, -0.08, 0.08, 0.15)]  # baselines along the plane's tilt axis
    result, depth, normal = _solve(Plane(TARGET, (np.sin(a), 0, -np.cos(a))), centres)
    coverage, rel, angle = _errors(result, depth, normal)
    assert coverage > 0.6
    assert np.median(rel) < 0.01
    assert np.median(angle) < 8.0


def test_untextured_pixels_stay_empty():
    """A flat grey surface gives no correlation: PatchMatch must leave it empty rather than invent depths."""
    K = intrinsics(W, H, F)
    ref = look_at((0, 0, 0), TARGET, K, W, H)
    flat = np.full((H, W), 0.5, np.float32)
    sources = []
    for c in _ring(0.15):
        cam = look_at(c, TARGET, K, W, H)
        R, t = relative(ref, cam)
        sources.append(SourceView(flat, K, R, t))
    result = patch_match(flat, K, sources, (0.6, 2.0))
    assert (result.depth > 0).sum() == 0


def test_scale_intrinsics_keeps_pixel_centres():
    """Halving an image maps the centre of original pixels (0, 1) to the new pixel 0 at x = 0: (0 + ½)/2 − ½ = −¼."""
    K = intrinsics(W, H, F)
    Ks = scale_intrinsics(K, 0.5)
    X = np.array([0.05, -0.02, 1.0])
    u, v = (K @ X)[:2] / X[2]
    us, vs = (Ks @ X)[:2] / X[2]
    assert us == pytest.approx((u + 0.5) * 0.5 - 0.5) and vs == pytest.approx((v + 0.5) * 0.5 - 0.5)


def test_no_sources_is_an_error():
    with pytest.raises(ValueError):
        patch_match(np.zeros((20, 20), np.float32), intrinsics(20, 20, 20.0), [], (1.0, 2.0))
