"""Depth-map fusion with bounded memory: a geometric-consistency check between views, then a voxel hash.

Why: a depth that other views' depth maps do not confirm is most likely a mismatch (occlusion, specular spot,
texture-less area), so a pixel enters the cloud only when `min_views` neighbours see the same surface there — same
depth within a relative tolerance and a normal within an angle (the check COLMAP's fusion and ACMM's geometric
pass make).  The agreeing 3-D points are averaged, which lowers noise.  The surviving points are streamed into a
hash of voxels about one pixel footprint wide (position, normal, colour sums and a count per voxel): memory grows
with the object's surface, not with the number of photos × pixels, and each depth map is read from disk only while
it is needed.  The PatchMatch normals are kept: the surface reconstruction uses them.

A last pass weighs free space against support (`visibility_votes`, the stability test of Merrell et al., "Real-time
visibility-based fusion of depth maps", 2007): a window that straddles the object's outline gives the backdrop
beside it the object's depth, and neighbouring views fatten the outline the same way, so the consistency check
confirms those points; but views from other sides look *through* them at the surface behind.  A fused point that
more views see through than confirm is dropped.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

DEPTH_TOLERANCE = 0.01  # relative depth difference accepted as "the same surface"
NORMAL_TOLERANCE_DEG = 35.0  # normals of the same surface seen from two views agree within this angle
FREE_SPACE_TOLERANCE = 0.005  # relative depth: a point this far in front of what a view sees lies in its free space
FREE_SPACE_CELL = 2  # depth pixels pooled (nearest depth) into one cell of the free-space test
MIN_FREE_SPACE_VIOLATIONS = 2  # a point is dropped only when at least this many views see through it


@dataclass
class DepthView:
    """One view's depth and normal maps with the camera they were computed in (OpenCV pixel centres)."""

    name: str
    depth: np.ndarray  # float32 (H, W), 0 = unknown
    normal: np.ndarray  # (H, W, 3) camera frame
    color: np.ndarray  # uint8 (H, W, 3) RGB
    K: np.ndarray
    R: np.ndarray  # world → camera
    t: np.ndarray

    def save(self, path: Path) -> None:
        np.savez(path, depth=self.depth, normal=self.normal.astype(np.float16), color=self.color, K=self.K,
                 R=self.R, t=self.t)

    @classmethod
    def load(cls, name: str, path: Path) -> "DepthView":
        with np.load(path) as z:
            return cls(name, z["depth"], z["normal"].astype(np.float32), z["color"], z["K"], z["R"], z["t"])


class DepthStore:
    """Depth maps on disk with a small in-memory cache, so fusion holds only a few views at a time."""

    def __init__(self, paths: dict[str, Path], cache_size: int = 12):
        self.paths = paths
        self.cache: OrderedDict[str, DepthView] = OrderedDict()
        self.cache_size = cache_size

    def get(self, name: str) -> DepthView:
        if name in self.cache:
            self.cache.move_to_end(name)
            return self.cache[name]
        view = DepthView.load(name, self.paths[name])
        self.cache[name] = view
        if len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return view


def _pixels(cam: np.ndarray, K: np.ndarray, shape: tuple[int, int]
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Camera-frame points projected to the nearest pixel: (indices of the points in front of the camera and inside
    the image, their pixel columns and rows for all points, depths for all points)."""
    z = cam[:, 2]
    front = z > 1e-9
    uvw = cam @ K.T
    zs = np.where(front, z, 1.0)
    u = np.rint(uvw[:, 0] / zs).astype(np.int64)
    v = np.rint(uvw[:, 1] / zs).astype(np.int64)
    h, w = shape
    return np.nonzero(front & (u >= 0) & (v >= 0) & (u < w) & (v < h))[0], u, v, z


def consistent_points(ref: DepthView, others: list[DepthView], min_views: int,
                      depth_tol: float = DEPTH_TOLERANCE, normal_tol_deg: float = NORMAL_TOLERANCE_DEG
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """World points, normals, colours and agreeing-view counts of the ref pixels confirmed by ≥ min_views others."""
    ys, xs = np.nonzero(ref.depth > 0)
    empty = (np.empty((0, 3)), np.empty((0, 3)), np.empty((0, 3), np.uint8), np.empty(0, np.int32))
    if len(xs) == 0:
        return empty
    z = ref.depth[ys, xs].astype(np.float64)
    Kinv = np.linalg.inv(ref.K)
    Xc = (np.stack([xs, ys, np.ones_like(xs)], 1).astype(np.float64) @ Kinv.T) * z[:, None]
    n_ref = ref.normal[ys, xs].astype(np.float64)
    acc = Xc.copy()
    count = np.zeros(len(z), np.int32)
    cos_tol = np.cos(np.radians(normal_tol_deg))
    for o in others:
        R_rel = o.R @ ref.R.T  # reference camera → other camera
        t_rel = o.t - R_rel @ ref.t
        idx, u, v, zo = _pixels(Xc @ R_rel.T + t_rel, o.K, o.depth.shape)
        dz = o.depth[v[idx], u[idx]].astype(np.float64)
        agree = (dz > 0) & (np.abs(dz - zo[idx]) < depth_tol * zo[idx])
        if not np.any(agree):
            continue
        idx, dz = idx[agree], dz[agree]
        # the same surface also has about the same orientation (rules out a thin part's front vs back)
        n_other = o.normal[v[idx], u[idx]].astype(np.float64) @ R_rel  # into the reference frame
        same = np.sum(n_other * n_ref[idx], 1) > cos_tol
        idx, dz = idx[same], dz[same]
        if len(idx) == 0:
            continue
        pix = np.stack([u[idx], v[idx], np.ones(len(idx), np.int64)], 1).astype(np.float64)
        Xo = (pix @ np.linalg.inv(o.K).T) * dz[:, None]
        acc[idx] += (Xo - t_rel) @ R_rel  # back into the reference frame
        count[idx] += 1
    keep = count >= min_views
    if not np.any(keep):
        return empty
    pts_cam = acc[keep] / (count[keep, None] + 1)
    pts = (pts_cam - ref.t) @ ref.R  # camera → world
    nw = n_ref[keep] @ ref.R
    nw /= np.maximum(np.linalg.norm(nw, axis=1, keepdims=True), 1e-12)
    return pts, nw, ref.color[ys[keep], xs[keep]], count[keep]


class VoxelAccumulator:
    """Sums of position, normal and colour per occupied voxel (a sorted hash of packed voxel indices).

    Points are buffered and merged in batches; memory is O(occupied voxels + one batch)."""

    BITS = 21  # per axis: ±1M voxels

    def __init__(self, voxel: float, batch: int = 2_000_000):
        self.voxel = float(voxel)
        self.batch = batch
        self.keys = np.empty(0, np.int64)
        self.pos = np.empty((0, 3))
        self.nrm = np.empty((0, 3), np.float32)
        self.col = np.empty((0, 3), np.float32)
        self.count = np.empty(0, np.int32)
        self._pending: list[tuple[np.ndarray, ...]] = []
        self._pending_n = 0
        self.points_added = 0

    def _pack(self, points: np.ndarray) -> np.ndarray:
        q = np.floor(points / self.voxel).astype(np.int64) + (1 << (self.BITS - 1))
        if np.any(q < 0) or np.any(q >= (1 << self.BITS)):
            raise ValueError("point outside the voxel grid's range")
        return (q[:, 0] << (2 * self.BITS)) | (q[:, 1] << self.BITS) | q[:, 2]

    def add(self, points: np.ndarray, normals: np.ndarray, colors: np.ndarray) -> None:
        if len(points) == 0:
            return
        self._pending.append((points, normals, colors))
        self._pending_n += len(points)
        self.points_added += len(points)
        if self._pending_n >= self.batch:
            self._merge()

    def _merge(self) -> None:
        if not self._pending:
            return
        p = np.concatenate([x[0] for x in self._pending])
        n = np.concatenate([x[1] for x in self._pending]).astype(np.float32)
        c = np.concatenate([x[2] for x in self._pending]).astype(np.float32)
        self._pending, self._pending_n = [], 0
        keys = np.concatenate([self.keys, self._pack(p)])
        uniq, inv = np.unique(keys, return_inverse=True)
        m = len(uniq)
        old = len(self.keys)

        def merged(prev: np.ndarray, new: np.ndarray, dtype) -> np.ndarray:
            out = np.zeros((m,) + prev.shape[1:], dtype)
            np.add.at(out, inv[:old], prev)
            np.add.at(out, inv[old:], new)
            return out

        self.pos = merged(self.pos, p, np.float64)
        self.nrm = merged(self.nrm, n, np.float32)
        self.col = merged(self.col, c, np.float32)
        self.count = merged(self.count, np.ones(len(p), np.int32), np.int32)
        self.keys = uniq

    @property
    def num_voxels(self) -> int:
        self._merge()
        return len(self.keys)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.keys, self.pos, self.nrm, self.col, self.count))

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(mean positions, unit normals, mean colours 0–255, point counts) per voxel."""
        self._merge()
        cnt = np.maximum(self.count, 1)[:, None]
        nrm = self.nrm / np.maximum(np.linalg.norm(self.nrm, axis=1, keepdims=True), 1e-12)
        return self.pos / cnt, nrm, self.col / cnt, self.count.copy()


def fuse(store: DepthStore, neighbours: dict[str, list[str]], min_views: int, voxel: float,
         progress: Callable[[int, int], None] = lambda done, total: None,
         batch: int = 1_000_000) -> VoxelAccumulator:
    """Check every depth map against its neighbours and stream the confirmed points into one voxel hash."""
    acc = VoxelAccumulator(voxel, batch)
    names = list(store.paths)
    for i, name in enumerate(names):
        ref = store.get(name)
        others = [store.get(o) for o in neighbours.get(name, []) if o in store.paths]
        pts, nrm, col, _ = consistent_points(ref, others, min_views)
        acc.add(pts, nrm, col)
        progress(i + 1, len(names))
    acc._merge()
    return acc


@dataclass
class VisibilityVotes:
    """Per point: views whose depth map confirms it, and views that see a surface clearly behind it."""

    agree: np.ndarray
    violate: np.ndarray

    def outliers(self) -> np.ndarray:
        """Points more views see through than confirm (and at least MIN_FREE_SPACE_VIOLATIONS see through)."""
        return (self.violate >= MIN_FREE_SPACE_VIOLATIONS) & (self.violate > self.agree)


def nearest_depth_cells(depth: np.ndarray, cell: int) -> np.ndarray:
    """The nearest depth of every cell × cell block; 0 where a block has a pixel without depth (an outline or a
    hole is no evidence of free space)."""
    h, w = depth.shape
    hc, wc = -(-h // cell), -(-w // cell)
    padded = np.zeros((hc * cell, wc * cell), np.float32)
    padded[:h, :w] = depth
    empty = (padded <= 0).reshape(hc, cell, wc, cell).any(axis=(1, 3))
    nearest = np.where(padded > 0, padded, np.inf).reshape(hc, cell, wc, cell).min(axis=(1, 3))
    nearest[empty] = 0.0
    return nearest


def visibility_votes(points: np.ndarray, store: DepthStore, names: list[str],
                     tolerance: float = FREE_SPACE_TOLERANCE, cell: int = FREE_SPACE_CELL,
                     chunk: int = 1_000_000) -> VisibilityVotes:
    """Project every fused point into every depth map (one map in memory at a time) and count the views that
    confirm it (same depth within `tolerance`) and the views that see a surface behind it."""
    agree = np.zeros(len(points), np.int32)
    violate = np.zeros(len(points), np.int32)
    for name in names:
        view = DepthView.load(name, store.paths[name])
        nearest = nearest_depth_cells(view.depth, cell)
        h, w = view.depth.shape
        for start in range(0, len(points), chunk):
            idx, u, v, z = _pixels(points[start:start + chunk] @ view.R.T + view.t, view.K, (h, w))
            seen = nearest[v[idx] // cell, u[idx] // cell]
            has = seen > 0
            idx, seen, zi = idx[has], seen[has], z[idx[has]]
            agree[start + idx[np.abs(zi - seen) <= tolerance * seen]] += 1
            violate[start + idx[zi < (1.0 - tolerance) * seen]] += 1
    return VisibilityVotes(agree, violate)
