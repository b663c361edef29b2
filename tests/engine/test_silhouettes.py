"""The user's masks as silhouettes: a surface that bulges out of them is brought back, one tight mask cuts nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import open3d as o3d

from openscancloud.engine.silhouettes import keep_inside, signed_distance
from openscancloud.engine.texture_views import project

sys.path.insert(0, str(Path(__file__).parent))
from stereo_scenes import ring_cameras  # noqa: E402

W, H, F = 640, 640, 1000.0


def _cameras(count: int = 24, distance: float = 4.0) -> dict[str, dict]:
    """Two rings of cameras (±20°) looking at the origin."""
    return ring_cameras(count, distance, W, H, F, (20, -20))


def _sphere(radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mesh = o3d.geometry.TriangleMesh.create_sphere(radius, resolution=40)
    mesh.compute_vertex_normals()
    return np.asarray(mesh.vertices), np.asarray(mesh.triangles), np.asarray(mesh.vertex_normals)


def _silhouettes(cams: dict[str, dict], folder: Path, radius: float = 1.0) -> dict[str, Path]:
    """Exact masks of a sphere of `radius` at the origin: the convex outline of its projection in each view."""
    V, _, _ = _sphere(radius)
    paths = {}
    for name, cam in cams.items():
        uv, _ = project(cam, V)
        mask = np.zeros((H, W), np.uint8)
        cv2.fillConvexPoly(mask, cv2.convexHull(np.round(uv * 16).astype(np.int32)), 255, shift=4)
        paths[name] = folder / f"{name}.png"
        cv2.imwrite(str(paths[name]), mask)
    return paths


def test_signed_distance_is_positive_inside_and_negative_outside():
    mask = np.zeros((50, 50), np.uint8)
    mask[10:40, 10:40] = 255
    sdf = signed_distance(mask)
    assert sdf[25, 25] > 10 and sdf[10, 25] > 0 > sdf[9, 25] and sdf[0, 0] < -10


def test_a_bulging_surface_comes_back_inside_the_masks(tmp_path):
    cams = _cameras()
    masks = _silhouettes(cams, tmp_path)
    V, faces, N = _sphere(1.04)  # 4 % too big: outside every mask
    moved, count = keep_inside(V, N, cams, masks.get)
    before, after = np.linalg.norm(V, axis=1), np.linalg.norm(moved, axis=1)
    assert np.all(after <= before + 1e-9)  # only ever inwards
    assert after.min() > 0.995  # never pushed into the object
    # near the rings' plane the photos see the sphere edge-on and their masks bound it: most of that band comes back
    # to within 1.5 % (the bound is the hull of the *second* smallest distance, wider than the plain visual hull
    # between the photos' directions); towards the poles, which no photo sees edge-on, the hull is wider than 4 %
    band = np.abs(V[:, 2]) < 0.5 * before
    assert np.mean(after[band] < before[band]) > 0.85 and np.median(after[band]) < 1.015
    assert count >= 0.85 * band.sum()


def test_a_surface_inside_the_masks_stays_and_one_tight_mask_cuts_nothing(tmp_path):
    cams = _cameras()
    masks = _silhouettes(cams, tmp_path)
    name = sorted(masks)[3]
    tight = cv2.imread(str(masks[name]), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(masks[name]), cv2.erode(tight, np.ones((25, 25), np.uint8)))  # one mask drawn far too tight
    V, faces, N = _sphere(0.99)
    moved, count = keep_inside(V, N, cams, masks.get)
    assert count == 0 and np.array_equal(moved, V)


def _sphere_cloud(count: int = 40_000, seed: int = 4) -> np.ndarray:
    d = np.random.default_rng(seed).normal(size=(count, 3))
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def test_the_hull_fills_a_hole_of_the_cloud_but_does_not_cover_a_concavity(tmp_path):
    """A cap the depth maps missed (a plain dome) is filled by the masks' hull, close to the true surface where the
    photos see it edge-on; a dent the depth maps did find, which the masks cannot show, is not covered over."""
    from openscancloud.engine.silhouettes import hull_in_holes

    cams = _cameras()
    masks = _silhouettes(cams, tmp_path)
    cloud = _sphere_cloud()
    spacing = float(np.sqrt(4 * np.pi / len(cloud)))
    holed = cloud[cloud[:, 0] < 0.8]  # a cap facing +x, which the rings see edge-on from ±y
    added, normals = hull_in_holes(holed, spacing, cams, masks.get, cells=80)
    assert len(added) > 100
    assert np.all(added[:, 0] > 0.6)  # only over the hole
    radius = np.linalg.norm(added, axis=1)
    assert np.median(radius) < 1.02 and radius.min() > 0.99
    assert np.median(np.sum(normals * added / radius[:, None], axis=1)) > 0.95  # outward
    dented = cloud.copy()
    cap = dented[:, 0] > 0.8
    dented[cap, 0] -= 0.5 * (dented[cap, 0] - 0.8)  # pushed in by up to 0.1: found by the depth maps, not in masks
    added, _ = hull_in_holes(dented, spacing, cams, masks.get, cells=80)
    assert len(added) < 20
