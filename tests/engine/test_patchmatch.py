"""PatchMatch stereo on rendered scenes with exact depth and normals (planes, a sphere, a grazing surface)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from openscancloud.engine.patchmatch import (DepthNormalMap, PatchMatchParams, SourceView, _geometry_parts,
                                            _reprojection_error, geometric_pass, patch_match, scale_intrinsics)

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


def test_forward_backward_error_is_small_on_the_surface_and_large_off_it():
    """The geometric pass's error: a depth on the surface comes back to its own pixel through the source's depth
    map (within the source's nearest-pixel rounding); a depth 15 % off lands pixels away; no source depth = max."""
    K = intrinsics(W, H, F)
    surface = Plane(TARGET, (0.3, 0, -1))
    ref = look_at((0, 0, 0), TARGET, K, W, H)
    src = look_at((0.15, 0.05, 0), TARGET, K, W, H)
    R, t = relative(ref, src)
    _, depth, _ = render(ref, surface, SolidTexture(0.02, 0.15))
    _, src_depth, _ = render(src, surface, SolidTexture(0.02, 0.15))
    geo = _geometry_parts(K, [SourceView(src_depth, K, R, t)], [src_depth], PatchMatchParams())
    _, max_error, stack, Kinv, Rt, tt, Kref = geo

    def error(x, y, d):
        X = d * np.linalg.inv(K) @ np.array([x, y, 1.0])
        u, v, w = K @ (R @ X + t)
        return _reprojection_error(float(x), float(y), u / w, v / w, 0, stack, Kinv, Rt, tt, Kref, max_error)

    for x, y in ((40, 30), (80, 60), (120, 90)):
        assert error(x, y, depth[y, x]) < 0.75
        assert error(x, y, depth[y, x] * 1.15) > 2.0
    assert _reprojection_error(80.0, 60.0, 80.0, 60.0, 0, np.zeros_like(stack), Kinv, Rt, tt, Kref, 3.0) == 3.0


def test_geometric_pass_lowers_depth_noise_and_keeps_every_pixel():
    """Five noisy views of a sphere: each gets a photometric depth map, then the reference is solved again with
    the neighbours' maps. The depths agree better with the truth, and no pixel the first pass placed is lost."""
    K = intrinsics(W, H, F)
    surface, texture = Sphere((0, 0, 1.3), 0.4), SolidTexture(0.02, 0.15)
    cams = [look_at(c, TARGET, K, W, H) for c in [np.zeros(3)] + _ring(0.15)]
    rng = np.random.default_rng(0)
    images, depths = [], []
    for cam in cams:
        image, depth, _ = render(cam, surface, texture)
        images.append(np.clip(image + rng.normal(0, 0.05, image.shape), 0, 1).astype(np.float32))
        depths.append(depth)
    truth = depths[0]

    def sources(i):
        return [(j, SourceView(images[j], K, *relative(cams[i], cams[j]))) for j in range(len(cams)) if j != i]

    active = truth > 0
    first = [patch_match(images[i], K, [s for _, s in sources(i)], (0.6, 2.0), depths[i] > 0)
             for i in range(len(cams))]
    second = geometric_pass(images[0], K, [s for _, s in sources(0)], [first[j].depth for j, _ in sources(0)],
                            first[0], (0.6, 2.0), active)

    def median_error(result):
        ok = (result.depth > 0) & active
        return np.median(np.abs(result.depth[ok] - truth[ok]) / truth[ok])

    assert median_error(second) < 0.8 * median_error(first[0])
    assert np.all(second.depth[first[0].depth > 0] > 0)
    assert second.stats["moved"] > 0.5 * second.stats["valid"]


def test_geometric_pass_needs_a_depth_map_per_source():
    K = intrinsics(20, 20, 20.0)
    image = np.zeros((20, 20), np.float32)
    with pytest.raises(ValueError):
        geometric_pass(image, K, [SourceView(image, K, np.eye(3), np.zeros(3))], [],
                       DepthNormalMap(image, np.zeros((20, 20, 3), np.float32), None), (1.0, 2.0))
