"""The output frame: turntable sets stand upright (rotation axis = +Z) and centred; handheld sets get +Z = the
photographer's "up".

Why: structure-from-motion returns an arbitrary frame (the first camera's).  People expect a scanned object to
stand upright in a viewer.  On a turntable the camera centres lie on circles around the rotation axis, so the axis
is the direction in which the centres spread least (the normal of the best-fit plane for one ring; for several
rings at different heights the horizontal spread still dominates).  Its sign is chosen so the cameras' own "up"
points along +Z.  The 4×4 similarity is applied to everything exported (mesh, dense cloud, sparse model) so all
outputs share one frame, and it is written to report.json.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Orientation:
    transform: np.ndarray  # 4×4, x_out = T @ x_sfm (rotation + translation, scale 1)
    turntable: bool  # cameras surround an axis (a turntable or a walk-around)
    up: np.ndarray  # unit "up" in the SfM frame
    center: np.ndarray  # object centre in the SfM frame
    axis_fit_residual: float  # spread along the axis / spread across it (small = clean turntable)

    def to_dict(self) -> dict:
        return {"transform": self.transform.tolist(), "turntable": self.turntable, "up": self.up.tolist(),
                "center": self.center.tolist(), "axis_fit_residual": self.axis_fit_residual}

    @classmethod
    def from_dict(cls, d: dict) -> "Orientation":
        return cls(np.array(d["transform"]), d["turntable"], np.array(d["up"]), np.array(d["center"]),
                   d["axis_fit_residual"])

    def apply(self, points: np.ndarray) -> np.ndarray:
        return points @ self.transform[:3, :3].T + self.transform[:3, 3]

    def apply_dirs(self, dirs: np.ndarray) -> np.ndarray:
        return dirs @ self.transform[:3, :3].T


def attention_point(centers: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Least-squares point closest to all optical axes: what the photographer was looking at."""
    A = np.zeros((3, 3))
    b = np.zeros(3)
    for c, d in zip(centers, directions):
        d = d / np.linalg.norm(d)
        P = np.eye(3) - np.outer(d, d)
        A += P
        b += P @ c
    try:
        return np.linalg.solve(A + 1e-9 * np.eye(3), b)
    except np.linalg.LinAlgError:
        return centers.mean(0)


def _rotation_to_z(up: np.ndarray, forward_hint: np.ndarray) -> np.ndarray:
    """Rotation taking `up` to +Z and the horizontal part of `forward_hint` (the first photo's viewing direction)
    to +Y, so the first photo becomes a "front view" (camera on −Y looking along +Y, as in Blender)."""
    z = up / np.linalg.norm(up)
    f = forward_hint - z * (forward_hint @ z)
    if np.linalg.norm(f) < 1e-9:
        f = np.cross(z, [1.0, 0, 0]) if abs(z[0]) < 0.9 else np.cross(z, [0, 1.0, 0])
    y = f / np.linalg.norm(f)
    x = np.cross(y, z)
    return np.stack([x, y, z])  # rows: new axes expressed in the old frame


def estimate(centers: np.ndarray, view_dirs: np.ndarray, cam_ups: np.ndarray,
             points: np.ndarray | None = None) -> Orientation:
    """centers: camera centres; view_dirs: optical axes; cam_ups: each camera's image-up direction (world)."""
    target = attention_point(centers, view_dirs)
    rel = centers - target
    unit = rel / np.maximum(np.linalg.norm(rel, axis=1, keepdims=True), 1e-12)
    mean_cam_up = cam_ups.mean(0)
    mean_cam_up /= max(np.linalg.norm(mean_cam_up), 1e-12)
    cov = np.cov((centers - centers.mean(0)).T) if len(centers) > 2 else np.eye(3)
    evals, evecs = np.linalg.eigh(cov)
    axis = evecs[:, 0]
    residual = float(np.sqrt(max(evals[0], 0) / max(evals[1], 1e-18)))
    # cameras surround the axis when their horizontal directions cover most of the circle
    horizontal = unit - np.outer(unit @ axis, axis)
    hn = np.linalg.norm(horizontal, axis=1)
    surround = False
    if len(centers) >= 6 and np.all(hn > 1e-6):
        h = horizontal / hn[:, None]
        ref = h[0]
        other = np.cross(axis, ref)
        ang = np.sort(np.arctan2(h @ other, h @ ref))
        gaps = np.diff(np.concatenate([ang, ang[:1] + 2 * np.pi]))
        spread = float(np.linalg.norm(unit.mean(0)))  # ≈1 when all photos come from one side
        surround = bool(gaps.max() < np.radians(150)) and residual < 0.8 and spread < 0.6
    if surround:
        up = axis if axis @ mean_cam_up > 0 else -axis
    else:
        up = mean_cam_up
    center = target
    if points is not None and len(points):
        # centre on the object: the median of the sparse points near the attention point
        d = np.linalg.norm(points - target, axis=1)
        near = points[d <= np.percentile(d, 50)] if len(points) > 20 else points
        center = np.median(near, axis=0)
    Rm = _rotation_to_z(up, view_dirs[0])
    T = np.eye(4)
    T[:3, :3] = Rm
    T[:3, 3] = -Rm @ center
    return Orientation(T, surround, up, center, residual)
