"""The output frame: turntable sets stand upright (rotation axis = +Z) and centred; handheld sets get +Z = the
photographer's "up".

Why: structure-from-motion returns an arbitrary frame (the first camera's).  People expect a scanned object to
stand upright in a viewer.  On a turntable the camera centres lie on circles around the rotation axis, so the axis
is the direction in which the centres spread least (the normal of the best-fit plane for one ring; for several
rings at different heights the horizontal spread still dominates).  Its sign is chosen so the cameras' own "up"
points along +Z.  The 4×4 similarity is applied to everything exported (mesh, dense cloud, sparse model) so all
outputs share one frame, and it is written to report.json.

Sessions: owners of turntable scanners often scan an object twice, the second time turned over to see its
underside.  Structure-from-motion joins both sessions through the object's own features, so in the model's frame
the second session's cameras circle another axis, and its turntable plate touches the object at another side.
`split_sessions` finds such groups of cameras (their image "up" directions disagree, and each group circles an
axis of its own); the output frame is the first session's upright, and every session's plate is cut (mesh stage).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SESSION_MIN_ANGLE_DEG = 45.0  # camera groups whose mean image-up directions differ this much saw the object
# lying differently (a flipped second session differs by about 180°, an object laid on its side by about 90°;
# one handheld or turntable session keeps its photos' "up" within a few tens of degrees)
SESSION_MIN_PHOTOS = 6  # fewer photos cannot show that they circle an axis of their own
MAX_SESSIONS = 4


@dataclass
class Session:
    """One scanning session: photos taken with the object in one position on the turntable."""
    images: list[str]
    up: np.ndarray  # the session's turntable axis ("up" while it was scanned), unit, in the SfM frame
    turntable: bool
    axis_fit_residual: float

    def to_dict(self) -> dict:
        return {"images": list(self.images), "up": np.asarray(self.up).tolist(), "turntable": self.turntable,
                "axis_fit_residual": self.axis_fit_residual}

    @classmethod
    def from_dict(cls, d: dict) -> "Session":
        return cls(list(d["images"]), np.array(d["up"]), d["turntable"], d["axis_fit_residual"])


@dataclass
class Orientation:
    transform: np.ndarray  # 4×4, x_out = T @ x_sfm (rotation + translation, scale 1)
    turntable: bool  # cameras surround an axis (a turntable or a walk-around)
    up: np.ndarray  # unit "up" in the SfM frame
    center: np.ndarray  # object centre in the SfM frame
    axis_fit_residual: float  # spread along the axis / spread across it (small = clean turntable)
    sessions: list[Session] = field(default_factory=list)  # two or more when the object was scanned in
    # several positions; empty for one session

    def to_dict(self) -> dict:
        return {"transform": self.transform.tolist(), "turntable": self.turntable, "up": self.up.tolist(),
                "center": self.center.tolist(), "axis_fit_residual": self.axis_fit_residual,
                "sessions": [s.to_dict() for s in self.sessions]}

    @classmethod
    def from_dict(cls, d: dict) -> "Orientation":
        return cls(np.array(d["transform"]), d["turntable"], np.array(d["up"]), np.array(d["center"]),
                   d["axis_fit_residual"], [Session.from_dict(s) for s in d.get("sessions", [])])

    def turntable_ups(self) -> list[np.ndarray]:
        """The "up" of every turntable session (one per plate to cut): the sessions' axes, or the one axis."""
        if self.sessions:
            return [s.up for s in self.sessions if s.turntable]
        return [self.up] if self.turntable else []

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


def _two_means(ups: np.ndarray, iterations: int = 20) -> np.ndarray:
    """Labels 0/1 of a 2-means clustering of unit vectors (by angle), seeded with the first photo's "up" and the
    one least like it."""
    seeds = np.stack([ups[0], ups[int(np.argmin(ups @ ups[0]))]])
    labels = np.zeros(len(ups), int)
    for iteration in range(iterations):
        new = np.argmax(ups @ seeds.T, axis=1)
        if iteration > 0 and (new == labels).all():
            break
        labels = new
        for k in (0, 1):
            if (labels == k).any():
                mean = ups[labels == k].sum(0)
                seeds[k] = mean / max(np.linalg.norm(mean), 1e-12)
    return labels


def split_sessions(centers: np.ndarray, view_dirs: np.ndarray, cam_ups: np.ndarray) -> list[np.ndarray]:
    """Indices of the cameras of each scanning session, the first photo's session first; one group when the
    photos show the object in one position.

    A group is split in two when the mean image-up directions of the halves differ by SESSION_MIN_ANGLE_DEG or
    more and each half on its own circles an axis (a turntable session): a photographer's hand varies the "up"
    of a handheld set too, but its halves do not each surround the object.  Repeated while groups split, up to
    MAX_SESSIONS."""
    ups = cam_ups / np.maximum(np.linalg.norm(cam_ups, axis=1, keepdims=True), 1e-12)
    groups = [np.arange(len(ups))]
    changed = True
    while changed and len(groups) < MAX_SESSIONS:
        changed = False
        for gi, group in enumerate(groups):
            if len(group) < 2 * SESSION_MIN_PHOTOS:
                continue
            labels = _two_means(ups[group])
            halves = [group[labels == 0], group[labels == 1]]
            if min(len(h) for h in halves) < SESSION_MIN_PHOTOS:
                continue
            means = [ups[h].mean(0) for h in halves]
            cos = means[0] @ means[1] / max(np.linalg.norm(means[0]) * np.linalg.norm(means[1]), 1e-12)
            if np.degrees(np.arccos(np.clip(cos, -1, 1))) < SESSION_MIN_ANGLE_DEG:
                continue
            if not all(estimate(centers[h], view_dirs[h], cam_ups[h]).turntable for h in halves):
                continue
            groups[gi:gi + 1] = halves
            changed = True
            break
    return sorted(groups, key=lambda g: int(g.min()))


def estimate_sessions(names: list[str], centers: np.ndarray, view_dirs: np.ndarray, cam_ups: np.ndarray,
                      points: np.ndarray | None = None, known: list[list[str]] | None = None) -> Orientation:
    """`estimate` for photos that may come from several sessions: the output frame is that of the first session
    (the one holding names[0]), and with two or more sessions each is listed with its own axis.  `known`: the
    sessions told by the capture times (engine/sessions.py); without them the cameras' directions tell."""
    index = {n: i for i, n in enumerate(names)}
    groups = [np.array(sorted(index[n] for n in g if n in index)) for g in known or []]
    groups = [g for g in groups if len(g)]
    if len(groups) < 2:
        groups = split_sessions(centers, view_dirs, cam_ups)
    groups = sorted(groups, key=lambda g: int(g.min()))
    if len(groups) == 1:
        return estimate(centers, view_dirs, cam_ups, points)
    first = groups[0]
    main = estimate(centers[first], view_dirs[first], cam_ups[first], points)
    sessions = []
    for group in groups:
        own = estimate(centers[group], view_dirs[group], cam_ups[group])
        sessions.append(Session([names[i] for i in group], own.up, own.turntable, own.axis_fit_residual))
    main.sessions = sessions
    return main
