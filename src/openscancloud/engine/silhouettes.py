"""The user's masks as silhouettes: the surface may lie no farther out than they allow.

Why: a user's mask marks where the object is in a photo, so every ray through a pixel outside it misses the
object — the object lies inside the cone of each mask, and inside all of them together (the visual hull).  The
dense stage reconstructs only masked pixels, but it cannot see that a point it places in one photo lies beside the
object in another; on plain objects, whose depth comes from shading alone, the surface bulges out at the foot and
wherever the matching drifts.  So, after the refinement, a vertex that lies outside the masks of the photos that
frame it is moved along its normal, inwards, until it is back inside (measured: the foot of a plain grey blob).

This is used with the user's masks only: the automatic masks are generous on purpose (they must never cut the
object, engine/masks.py), so they bound nothing.  And because a hand-drawn mask may be a little tight in one photo,
a point counts as outside only when two photos say so (the second smallest distance over the photos).

Memory: one photo's distance map at a time; per vertex outside the hull, one distance per step along its normal.
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


def keep_inside(vertices: np.ndarray, normals: np.ndarray, cams: dict[str, dict],
                mask_of: Callable[[str], Path | None],
                cancelled: Callable[[], None] = lambda: None) -> tuple[np.ndarray, int]:
    """Vertices moved inwards along their normals until two photos' masks no longer leave them out; returns the new
    positions and how many moved.  `mask_of(name)`: the mask at the cameras' size (None: the photo has none)."""
    V = np.asarray(vertices, dtype=np.float64)
    N = np.asarray(normals, dtype=np.float64)
    size = float(np.linalg.norm(V.max(0) - V.min(0)))
    steps = -np.arange(0.0, MAX_MOVE + STEP / 2, STEP) * size  # 0, −STEP, … (inwards)

    def views():
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

    here = _SecondSmallest((len(V),))
    for cam, sdf in views():
        here.add(_distances(cam, sdf, V))
    outside = np.nonzero(here.second < 0)[0]
    if len(outside) == 0:
        return V.copy(), 0
    # along each outside vertex's normal, inwards: where two photos no longer leave it out
    candidates = V[outside, None, :] + steps[None, :, None] * N[outside, None, :]  # (k, S, 3)
    along = _SecondSmallest((len(outside), len(steps)))
    for cam, sdf in views():
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
