"""Fusion: the geometric-consistency check and the voxel hash that keeps memory bounded."""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from openscancloud.engine import fusion

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stereo_scenes import Plane, SolidTexture, Sphere, intrinsics, look_at, render  # noqa: E402

W, H, F = 160, 120, 150.0


def _depth_views(surface, centres, target) -> list[fusion.DepthView]:
    K = intrinsics(W, H, F)
    texture = SolidTexture(0.02, 0.15)
    views = []
    for i, c in enumerate(centres):
        cam = look_at(c, target, K, W, H)
        image, depth, normal = render(cam, surface, texture, ssaa=1)
        color = np.repeat((image * 255).astype(np.uint8)[..., None], 3, axis=2)
        views.append(fusion.DepthView(f"v{i}", depth, normal, color, K, cam.R, cam.t))
    return views


def test_consistency_filter_removes_a_planted_outlier():
    target = np.array([0.0, 0.0, 1.0])
    plane = Plane(target, (0, 0, -1))
    views = _depth_views(plane, [np.array([x, y, 0.0]) for x, y in ((0, 0), (0.1, 0), (-0.1, 0), (0, 0.1))],
                         target)
    ref = views[0]
    clean_pts, _, _, _ = fusion.consistent_points(ref, views[1:], min_views=2)
    # plant a wrong depth (20 % too far) in the middle of the reference map
    ref.depth = ref.depth.copy()
    ref.depth[60, 80] *= 1.2
    pts, normals, colors, counts = fusion.consistent_points(ref, views[1:], min_views=2)
    assert len(pts) == len(clean_pts) - 1
    assert np.max(np.abs(pts[:, 2] - 1.0)) < 1e-3  # every surviving point lies on the plane z = 1
    assert np.all(counts >= 2)
    assert np.allclose(np.abs(normals[:, 2]), 1.0, atol=1e-3)


def test_thin_part_front_and_back_are_not_merged():
    """The back of a thin sheet is at almost the same depth as its front: the normal check keeps them apart."""
    target = np.array([0.0, 0.0, 1.0])
    views = _depth_views(Plane(target, (0, 0, -1)), [np.array([0.0, 0.0, 0.0]), np.array([0.1, 0, 0])], target)
    back = views[1]
    back.normal = -back.normal  # as if the other camera saw the far side of a sheet
    pts, _, _, _ = fusion.consistent_points(views[0], [back], min_views=1)
    assert len(pts) == 0


def test_fusion_memory_follows_the_surface_not_the_views(tmp_path):
    sphere = Sphere((0, 0, 0), 0.3)
    target = np.zeros(3)
    centres = [1.2 * np.array([np.cos(a) * np.cos(e), np.sin(a) * np.cos(e), np.sin(e)])
               for e in (-0.4, 0.0, 0.4) for a in np.linspace(0, 2 * np.pi, 12, endpoint=False)]
    views = _depth_views(sphere, centres, target)
    paths = {}
    for v in views:
        paths[v.name] = tmp_path / f"{v.name}.npz"
        v.save(paths[v.name])
    names = [v.name for v in views]
    neighbours = {n: sorted((m for m in names if m != n),
                            key=lambda m: np.linalg.norm(centres[names.index(m)] - centres[names.index(n)]))[:6]
                  for n in names}
    voxel = 0.01  # about 1.5 pixel footprints
    # the voxel hash of the surface: at most area / voxel² cells ×(a little for the voxels a sphere cuts)
    bound_voxels = 3.0 * 4 * np.pi * 0.3 ** 2 / voxel ** 2
    def fused(subset):
        tracemalloc.start()
        acc = fusion.fuse(fusion.DepthStore({n: paths[n] for n in subset}, cache_size=4), neighbours, 1, voxel,
                          batch=20_000)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return acc, peak

    half, half_peak = fused(names[::2])
    full, full_peak = fused(names)
    assert full.points_added > 4 * full.num_voxels  # many more points than voxels went in
    assert full.num_voxels < bound_voxels
    assert full.num_voxels < 1.5 * half.num_voxels  # twice the views, about the same surface
    # twice the depth maps and points, but the peak stays that of a few views plus the voxels
    assert full.points_added > 1.8 * half.points_added
    assert full_peak < 1.5 * half_peak
    pts, nrm, _, _ = full.result()
    assert np.median(np.abs(np.linalg.norm(pts, axis=1) - 0.3)) < 0.001
    assert np.median(np.sum(nrm * pts / np.linalg.norm(pts, axis=1, keepdims=True), 1)) > 0.99


def test_voxel_accumulator_rejects_points_outside_its_range():
    acc = fusion.VoxelAccumulator(1e-6, batch=1)
    with pytest.raises(ValueError):
        acc.add(np.array([[10.0, 0, 0]]), np.zeros((1, 3)), np.zeros((1, 3)))


def _fatten(view: fusion.DepthView, pixels: int) -> np.ndarray:
    """Give the backdrop within `pixels` of the outline the depth of the nearest object pixel (what a matching
    window that straddles the outline does); returns the fattened pixels."""
    from scipy import ndimage

    empty = view.depth <= 0
    distance, (iy, ix) = ndimage.distance_transform_edt(empty, return_indices=True)
    flap = empty & (distance <= pixels)
    view.depth = view.depth.copy()
    view.depth[flap] = view.depth[iy[flap], ix[flap]]
    return flap


def _world_points(view: fusion.DepthView, pixels: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(pixels)
    cam = (np.stack([xs, ys, np.ones_like(xs)], 1) @ np.linalg.inv(view.K).T) * view.depth[ys, xs, None]
    return (cam - view.t) @ view.R


def test_free_space_drops_a_fattened_outline_and_keeps_the_surface(tmp_path):
    """Views from other sides look through the backdrop that took the object's depth at its outline; the surface
    itself, hidden from half the views, is never taken for free space (occlusion is not a violation)."""
    sphere = Sphere((0, 0, 0), 0.3)
    centres = [1.2 * np.array([np.cos(a) * np.cos(e), np.sin(a) * np.cos(e), np.sin(e)])
               for e in (-0.4, 0.0, 0.4) for a in np.linspace(0, 2 * np.pi, 12, endpoint=False)]
    views = _depth_views(sphere, centres, np.zeros(3))
    surface = np.concatenate([_world_points(v, v.depth > 0)[::7] for v in views])
    flaps = np.concatenate([_world_points(v, _fatten(v, 4)) for v in views[12:15]])  # three neighbours fatten
    assert np.min(np.abs(np.linalg.norm(flaps, axis=1) - 0.3)) < 0.01  # the flaps start at the outline
    paths = {}
    for v in views:
        paths[v.name] = tmp_path / f"{v.name}.npz"
        v.save(paths[v.name])
    votes = fusion.visibility_votes(np.concatenate([surface, flaps]), fusion.DepthStore(paths), list(paths))
    outliers = votes.outliers()
    on_surface, in_flaps = outliers[:len(surface)], outliers[len(surface):]
    assert on_surface.mean() < 0.002
    assert np.median(votes.agree[:len(surface)]) >= 4  # confirmed by the views that see it
    # a flap point closer to the surface than the tolerance (0.5 % of ~1 m) cannot be told from it; beyond twice that
    far = np.abs(np.linalg.norm(flaps, axis=1) - 0.3) > 0.01
    assert in_flaps[far].mean() > 0.9


def test_nearest_depth_cells_ignore_cells_with_an_empty_pixel():
    depth = np.array([[1.0, 2.0, 3.0, 0.0],
                      [4.0, 5.0, 6.0, 7.0],
                      [8.0, 9.0, 1.5, 2.5]], np.float32)
    cells = fusion.nearest_depth_cells(depth, 2)
    assert cells.shape == (2, 2)
    assert cells[0, 0] == 1.0 and cells[0, 1] == 0.0  # the right block holds a pixel without depth
    assert cells[1, 0] == 0.0 and cells[1, 1] == 0.0  # the bottom row is padding (no depth) below row 2
