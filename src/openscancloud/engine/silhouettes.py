"""Silhouettes (the user's masks, or a static rig's, backdrop.py): the surface may lie no farther out than they allow, and where the depth maps
found nothing, the masks' hull stands in for it.

Why: a user's mask marks where the object is in a photo, so every ray through a pixel outside it misses the
object — the object lies inside the cone of each mask, and inside all of them together (the visual hull).  The
dense stage reconstructs only masked pixels, but it cannot see that a point it places in one photo lies beside the
object in another; on plain objects, whose depth comes from shading alone, the surface bulges out at the foot and
wherever the matching drifts.  So, after the refinement, a vertex that lies outside the masks of the photos that
frame it is moved along its normal, inwards, until it is back inside (measured: the foot of a plain grey blob).

This is used with the user's masks and with the tight silhouettes found against a static rig's backdrop
(backdrop.py), never with the generous automatic masks: they must never cut the object (engine/masks.py), so they
bound nothing.  And because a hand-drawn mask may be a little tight in one photo, a point counts as outside only
when two photos say so (the second smallest distance over the photos).

Holes (`hull_in_holes`): where the object shows no texture at all — the white dome of a plaster head — the depth
maps hold nothing, and the surface closed low across the gap.  The masks' visual hull is there, and on a dome that
photos see edge-on it lies close to the object, so its surface is added to the dense cloud where the cloud has no
point nearby, no surface a little further in — in a concavity the hull bridges what the depth maps did find
behind it (a waist, the space under a chin), and that must not be covered over — and the cloud's nearest point off
to the side (the rim of a hole), not below (where the hull stands off a surface no photo sees edge-on).

Memory: one photo's distance map at a time; per vertex outside the hull, one distance per step along its normal;
the hull's grid (HULL_CELLS along the longest side) as one distance per cell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from .texture_views import bilinear, project

MAX_MOVE = 0.03  # a vertex moves inwards by at most this share of the mesh's bounding-box diagonal
STEP = 0.001  # ... tried in steps of this share
TOLERANCE_PX = 1.0  # a point this close outside a mask's edge (pixels) still counts as inside
BORDER_PX = 2  # a photo judges only the points it shows at least this far inside its frame
HULL_CELLS = 160  # the visual hull is sampled on a grid with this many cells along the cloud's longest side
HULL_FRAMED_SHARE = 0.75  # ... counting only cells that at least this share of the photos show (the object)
HOLE_SPACINGS = 4.0  # a hull point this many point spacings from the dense cloud lies over a hole ...
HOLE_DEPTH = 0.05  # ... unless the cloud has a surface within this share of the object's size further in, or
RIM_COSINE = 0.7  # ... the cloud's nearest point lies within ~45° of straight below it (not the rim of a hole)


def signed_distance(mask: np.ndarray) -> np.ndarray:
    """Pixels to the mask's edge: positive inside, negative outside (float32)."""
    inside = (mask > 127).astype(np.uint8)
    to_outside = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    to_inside = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 5)
    return np.where(inside > 0, to_outside - 0.5, 0.5 - to_inside).astype(np.float32)


class _SecondSmallest:
    """Running smallest and second-smallest value per entry, over the photos."""

    def __init__(self, shape: tuple[int, ...]):
        self.first = np.full(shape, np.inf)
        self.second = np.full(shape, np.inf)

    def add(self, values: np.ndarray) -> None:
        self.second = np.minimum(self.second, np.maximum(self.first, values))
        self.first = np.minimum(self.first, values)


def _distances(cam: dict, sdf: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Each point's distance inside this photo's mask, in scene units at its depth (+inf where unjudged)."""
    uv, z = project(cam, points)
    h, w = sdf.shape
    framed = ((z > 0) & (uv[:, 0] >= BORDER_PX) & (uv[:, 1] >= BORDER_PX) & (uv[:, 0] <= w - 1 - BORDER_PX)
              & (uv[:, 1] <= h - 1 - BORDER_PX))
    out = np.full(len(points), np.inf)
    if framed.any():
        px = bilinear(sdf, uv[framed])[:, 0].astype(np.float64) + TOLERANCE_PX
        out[framed] = px * z[framed] / cam["K"][0, 0]
    return out


def _views(cams: dict[str, dict], mask_of: Callable[[str], Path | None], cancelled: Callable[[], None]):
    """(camera, signed distance map of its mask) per photo that has a mask, one at a time."""
    for name in sorted(cams):
        cancelled()
        path = mask_of(name)
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) if path is not None else None
        if mask is None:
            continue
        cam = cams[name]
        if mask.shape != (cam["height"], cam["width"]):
            mask = cv2.resize(mask, (cam["width"], cam["height"]), interpolation=cv2.INTER_NEAREST)
        yield cam, signed_distance(mask)


def keep_inside(vertices: np.ndarray, normals: np.ndarray, cams: dict[str, dict],
                mask_of: Callable[[str], Path | None],
                cancelled: Callable[[], None] = lambda: None) -> tuple[np.ndarray, int]:
    """Vertices moved inwards along their normals until two photos' masks no longer leave them out; returns the new
    positions and how many moved.  `mask_of(name)`: the mask at the cameras' size (None: the photo has none)."""
    V = np.asarray(vertices, dtype=np.float64)
    N = np.asarray(normals, dtype=np.float64)
    size = float(np.linalg.norm(V.max(0) - V.min(0)))
    steps = -np.arange(0.0, MAX_MOVE + STEP / 2, STEP) * size  # 0, −STEP, … (inwards)

    here = _SecondSmallest((len(V),))
    for cam, sdf in _views(cams, mask_of, cancelled):
        here.add(_distances(cam, sdf, V))
    outside = np.nonzero(here.second < 0)[0]
    if len(outside) == 0:
        return V.copy(), 0
    # along each outside vertex's normal, inwards: where two photos no longer leave it out
    candidates = V[outside, None, :] + steps[None, :, None] * N[outside, None, :]  # (k, S, 3)
    along = _SecondSmallest((len(outside), len(steps)))
    for cam, sdf in _views(cams, mask_of, cancelled):
        along.add(_distances(cam, sdf, candidates.reshape(-1, 3)).reshape(len(outside), len(steps)))
    d = np.where(np.isfinite(along.second), along.second, 0.0)
    inside = d >= 0
    first = np.where(inside.any(1), inside.argmax(1), -1)
    reached = first > 0
    i, k = outside[reached], first[reached]
    rows = np.nonzero(reached)[0]
    # linear interpolation between the last step outside and the first inside
    d0, d1 = d[rows, k - 1], d[rows, k]
    frac = np.clip(d0 / np.where(d0 - d1 != 0, d0 - d1, -1.0), 0.0, 1.0)
    t = steps[k - 1] + frac * (steps[k] - steps[k - 1])
    out = V.copy()
    out[i] += t[:, None] * N[i]
    return out, int(len(i))


def hull_in_holes(points: np.ndarray, spacing: float, cams: dict[str, dict], mask_of: Callable[[str], Path | None],
                  cancelled: Callable[[], None] = lambda: None, cells: int = HULL_CELLS
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Points and outward normals of the masks' visual hull over the dense cloud's holes (see the module's
    docstring).  The hull is where the second smallest distance inside the masks changes sign on a grid around
    the cloud; each crossing of a grid edge is one point."""
    from scipy.spatial import cKDTree

    lo, hi = np.percentile(points, 0.5, axis=0), np.percentile(points, 99.5, axis=0)
    size = float(np.linalg.norm(hi - lo))
    pad = 0.1 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    cell = float((hi - lo).max() / cells)
    axes = [np.arange(lo[i], hi[i] + cell, cell) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
    inside = _SecondSmallest((grid.shape[0] * grid.shape[1] * grid.shape[2],))
    framed = np.zeros(len(inside.first), np.int32)
    views = 0
    for cam, sdf in _views(cams, mask_of, cancelled):
        distance = _distances(cam, sdf, grid.reshape(-1, 3))
        inside.add(distance)
        framed += np.isfinite(distance)
        views += 1
    # a cell that few photos frame is bounded by few masks: not a hull (the grid's corners beyond the pictures)
    judged = framed >= max(3, HULL_FRAMED_SHARE * views)
    field = np.where(judged & np.isfinite(inside.second), inside.second, -cell).reshape(grid.shape[:3])
    hull, normals = _zero_crossings(field, grid, axes, cell)
    if not len(hull):
        return hull, normals
    tree = cKDTree(points)
    far, _ = tree.query(hull, k=1, distance_upper_bound=HOLE_SPACINGS * spacing)
    over_hole = np.nonzero(~np.isfinite(far))[0]
    behind = np.zeros(len(over_hole), bool)  # a surface further in: a concavity the hull bridges, not a hole
    for step in np.arange(1, int(HOLE_DEPTH * size / spacing) + 1) * spacing:
        near, _ = tree.query(hull[over_hole] - step * normals[over_hole], k=1, distance_upper_bound=2 * spacing)
        behind |= np.isfinite(near)
    over_hole = over_hole[~behind]
    # over a hole the nearest point of the cloud is the hole's rim, off to the side; where the hull merely stands
    # off a surface that no photo sees edge-on (a pole of the object), it lies straight below
    _, nearest = tree.query(hull[over_hole], k=1)
    towards = points[nearest] - hull[over_hole]
    towards /= np.maximum(np.linalg.norm(towards, axis=1, keepdims=True), 1e-12)
    keep = over_hole[np.sum(towards * -normals[over_hole], axis=1) < RIM_COSINE]
    return hull[keep], normals[keep]


def _zero_crossings(field: np.ndarray, grid: np.ndarray, axes: list[np.ndarray], cell: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Where `field` (positive inside) crosses zero along the grid's edges, linearly interpolated, with the outward
    normal (minus the field's gradient)."""
    from scipy.interpolate import RegularGridInterpolator

    found = []
    for axis in range(3):
        f, g = np.moveaxis(field, axis, 0), np.moveaxis(grid, axis, 0)
        f0, f1 = f[:-1], f[1:]
        cross = (f0 > 0) != (f1 > 0)
        share = (f0[cross] / (f0[cross] - f1[cross]))[:, None]
        found.append(g[:-1][cross] + share * (g[1:][cross] - g[:-1][cross]))
    points = np.concatenate(found)
    gradient = np.stack([RegularGridInterpolator(axes, part)(points) for part in np.gradient(field, cell)], 1)
    normals = -gradient / np.maximum(np.linalg.norm(gradient, axis=1, keepdims=True), 1e-12)
    return points, normals
