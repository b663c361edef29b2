"""Photos a turntable could not have taken: found by the turn that relates each photo to the others, placed again.

Why: on a rig whose camera stands still while the object turns, every photo of one ring is another photo of that
ring turned about the turntable's axis.  Structure-from-motion does not know this, and on an object with little
texture of its own it can place a photo by a look-alike — a plain bust seen from behind matches its front — where
the turntable could not have put it (measured: a plain grey bust, 2 of 48 photos placed 3 object sizes away, with
42 and 47 points each, their matches shared with the photo half a turn away; the camera rings came out bent and
the model scored F@0.5 % 0.543 instead of 0.582).  Such a placement agrees with its own matches, so reprojection
errors cannot tell; the turntable can.

How: for two photos of one ring, the relative rotation R_iᵀR_j is a turn about the turntable's axis, and the turn
carries one camera centre onto the other about the axis line.  The axis is the direction most relative rotations
share (a vote over all pairs); its line is the median of the centres of rotation the agreeing pairs give.  A photo
is confirmed by a *partner*: another photo related to it by such a turn, within TURN_TOLERANCE of its distance
from the axis (height and position).  Photos with fewer than MIN_PARTNERS partners, and of two photos on one spot
the weaker (`twins`: a look-alike exactly half a turn away is a turn like any other), are the strays (`strays`),
but only when the set is a turntable set at all (most photos confirmed) and the strays are few; otherwise the
rings' own check (`checks.ring_radius_spread`) warns that the cameras may be distorted.  Each stray is then placed
again where a turn of a ring puts it and its own matches agree (`place_on_turntable`).

Memory and time: one relative rotation per pair of photos (288 photos: 41 k pairs, a few MB).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.spatial.transform import Rotation

AXIS_AGREEMENT_DEG = 2.0  # relative rotations whose axes lie within this angle share the turntable's axis
MIN_TURN_DEG = 10.0  # smaller relative rotations have no well-defined axis
TURN_TOLERANCE = 0.05  # a turn must carry one camera centre onto the other within this share of its radius
MIN_PARTNERS = 2  # a photo is confirmed by at least this many others a turn away
MAX_LEFT_OUT_SHARE = 0.25  # photos are left out only when at most this share is off (more: not a turntable set, or
# a model wrong as a whole — that is for the rings' check to say)
MIN_PHOTOS = 6
MAX_AXIS_CANDIDATES = 2000  # pairs tried as the axis (a sample on large sets)
RING_GAP = 0.05  # photos whose heights along the axis differ by more than this share of the radius: other rings
PLACE_STEP_DEG = 1.0  # a photo left out is tried at every turn of each ring in steps of this angle, ...
PLACE_TOLERANCE_PX = 4.0  # ... and placed where most of its matched points project within this many pixels, ...
COARSE_CANDIDATES = 8  # ... looked at closely around the best few peaks of the coarse search, ...
MIN_PLACE_INLIERS = 20  # ... when at least this many do, on a spot no other photo holds, ...
MIN_PLACE_SHARE = 0.25  # ... and they are at least this share of its matched points (measured: 79 % on a real
# placement, 10 % for matches that all belong to the look-alike, which fit the spot beside the one it took)


def _relative_turns(rotations: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For every pair i < j: indices, unit rotation axis and angle of R_iᵀ R_j (world frame)."""
    i, j = np.triu_indices(len(rotations), 1)
    relative = np.einsum("kji,kjl->kil", rotations[i], rotations[j])
    rotvec = Rotation.from_matrix(relative).as_rotvec()
    angle = np.linalg.norm(rotvec, axis=1)
    return i, j, rotvec / np.maximum(angle[:, None], 1e-12), angle


def turntable_axis(axes: np.ndarray, usable: np.ndarray, seed: int = 0) -> np.ndarray | None:
    """The unit direction shared by most of the pairs' rotation axes (sign-free), refined over the agreeing ones."""
    candidates = np.flatnonzero(usable)
    if len(candidates) == 0:
        return None
    if len(candidates) > MAX_AXIS_CANDIDATES:
        candidates = np.random.default_rng(seed).choice(candidates, MAX_AXIS_CANDIDATES, replace=False)
    cos_limit = np.cos(np.radians(AXIS_AGREEMENT_DEG))
    votes = (np.abs(axes[candidates] @ axes[usable].T) > cos_limit).sum(axis=1)
    best = axes[candidates[int(np.argmax(votes))]]
    agreeing = axes[usable & (np.abs(axes @ best) > cos_limit)]
    agreeing = agreeing * np.sign(agreeing @ best)[:, None]
    axis = np.linalg.svd(agreeing, full_matrices=False)[2][0]
    return axis * np.sign(axis @ best)


def _plane_basis(axis: np.ndarray) -> np.ndarray:
    helper = np.array([1.0, 0, 0]) if abs(axis[0]) < 0.9 else np.array([0, 1.0, 0])
    e1 = np.cross(axis, helper)
    e1 /= np.linalg.norm(e1)
    return np.stack([e1, np.cross(axis, e1)])  # 2×3


def _turn(angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # (..., 2, 2)


@dataclass
class Turntable:
    """The turntable's axis (unit direction) and a point on its line, in the model's frame."""

    axis: np.ndarray
    point: np.ndarray

    def turned(self, rotation: np.ndarray, center: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
        """World→camera rotation and centre of the photo taken after the object turned by `angle` (radians)."""
        turn = Rotation.from_rotvec(self.axis * angle).as_matrix()
        return rotation @ turn, self.point + turn.T @ (center - self.point)


def fit_turntable(centers: np.ndarray, rotations: np.ndarray) -> tuple[Turntable, np.ndarray] | None:
    """The turntable that relates most photos, and per photo how many others are a turn of it away."""
    i, j, axes, angle = _relative_turns(rotations)
    usable = angle > np.radians(MIN_TURN_DEG)
    axis = turntable_axis(axes, usable)
    if axis is None:
        return None
    agreeing = usable & (np.abs(axes @ axis) > np.cos(np.radians(AXIS_AGREEMENT_DEG)))
    if not agreeing.any():
        return None
    # camera j = camera i with the world turned by θ about the axis, so its centre is turned by −θ
    theta = -(np.einsum("kd,d->k", axes, axis) * angle)
    basis = _plane_basis(axis)
    planar = centers @ basis.T  # positions across the axis
    height = centers @ axis
    turns = _turn(theta[agreeing])
    # the axis line's position: (I − T) p = q_j − T q_i for each agreeing pair; the median is robust to strays
    lhs = np.eye(2) - turns
    rhs = planar[j[agreeing]] - np.einsum("kab,kb->ka", turns, planar[i[agreeing]])
    solvable = np.abs(np.linalg.det(lhs)) > 1e-6
    if not solvable.any():
        return None
    point = np.median(np.linalg.solve(lhs[solvable], rhs[solvable][..., None])[..., 0], axis=0)
    predicted = point + np.einsum("kab,kb->ka", turns, planar[i[agreeing]] - point)
    radius = np.maximum(np.linalg.norm(planar[i[agreeing]] - point, axis=1), 1e-12)
    miss = np.hypot(np.linalg.norm(predicted - planar[j[agreeing]], axis=1),
                    height[i[agreeing]] - height[j[agreeing]]) / radius
    confirmed = miss < TURN_TOLERANCE
    partners = np.zeros(len(centers), dtype=int)
    np.add.at(partners, i[agreeing][confirmed], 1)
    np.add.at(partners, j[agreeing][confirmed], 1)
    return Turntable(axis, basis.T @ point), partners


def ring_partners(centers: np.ndarray, rotations: np.ndarray) -> np.ndarray | None:
    """Per photo, how many others are a turn of one common axis away from it; None when no axis is found."""
    fitted = fit_turntable(centers, rotations)
    return None if fitted is None else fitted[1]


def off_turntable(names: list[str], centers: np.ndarray, rotations: np.ndarray) -> list[str]:
    """Names of the photos no turn of the turntable relates to the others (see the module's docstring); empty
    when the photos do not form a turntable set or when so many are off that the whole model is in doubt."""
    if len(names) < MIN_PHOTOS:
        return []
    centers, rotations = np.asarray(centers, float), np.asarray(rotations, float)
    partners = ring_partners(centers, rotations)
    if partners is None:
        return []
    off = partners < MIN_PARTNERS
    if off.mean() > MAX_LEFT_OUT_SHARE or _own_turntable(centers[off], rotations[off]):
        return []
    return [name for name, is_off in zip(names, off) if is_off]


def strays(names: list[str], centers: np.ndarray, rotations: np.ndarray, support: np.ndarray
           ) -> tuple[list[str], Turntable | None]:
    """The photos to place again — off the turntable (`off_turntable`), and of two photos on one spot (`twins`)
    the one whose pose rests on fewer points (`support`: 3D points per photo) — and the turntable of the others.
    Nothing when they would be more than MAX_LEFT_OUT_SHARE of the photos (many twins: a second session joined
    by its plate, which the checks' twin warning reports)."""
    off = set(off_turntable(names, centers, rotations))
    kept = [k for k, name in enumerate(names) if name not in off]
    if len(kept) < MIN_PHOTOS:
        return [], None
    centers, rotations = np.asarray(centers, float)[kept], np.asarray(rotations, float)[kept]
    fitted = fit_turntable(centers, rotations)
    if fitted is None or np.mean(fitted[1] >= MIN_PARTNERS) < 1 - MAX_LEFT_OUT_SHARE:
        return [], None
    for i, j in twins(rotations):
        off.add(names[min(kept[i], kept[j], key=lambda k: support[k])])
    if len(off) > MAX_LEFT_OUT_SHARE * len(names):
        return [], None
    return [name for name in names if name in off], fitted[0]


def _own_turntable(centers: np.ndarray, rotations: np.ndarray) -> bool:
    """The photos form rings of their own: another scanning session mapped together with the first (the object
    turned over, without capture times to tell the sessions apart), not strays."""
    if len(centers) < MIN_PHOTOS:
        return False
    partners = ring_partners(centers, rotations)
    return partners is not None and float(np.mean(partners >= MIN_PARTNERS)) >= 0.5


def _angles(rotation: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Angles (radians) of the rotations between one world→camera rotation and each of `others`."""
    cosine = (np.einsum("ij,kij->k", rotation, others) - 1) / 2
    return np.arccos(np.clip(cosine, -1.0, 1.0))


def spot_size(rotations: np.ndarray) -> float:
    """Half the usual angle between a photo and its nearest neighbour (radians): photos closer than this were taken
    from one spot.  Angles, not distances: on a turntable the camera looks at the object, so its rotation tells
    where it stands, and neighbours on a ring keep their angle however close to the axis the ring runs."""
    if len(rotations) < 3:
        return 0.0
    nearest = [np.sort(_angles(r, rotations))[1] for r in rotations]
    return 0.5 * float(np.median(nearest))


def twins(rotations: np.ndarray) -> list[tuple[int, int]]:
    """Pairs of photos placed on one spot (`spot_size`).

    Why: a look-alike half a turn away (a plain object that looks the same from behind) can put a photo on or
    beside the opposite photo's spot, which is a turn of the turntable like any other: the partner test cannot see
    it.  Two photos of a rig from one spot are near-duplicates, which the input screening has already removed."""
    size = spot_size(rotations)
    return [(i, int(j)) for i in range(len(rotations))
            for j in np.flatnonzero(_angles(rotations[i], rotations[i + 1:]) < size) + i + 1]


def ring_poses(table: Turntable, centers: np.ndarray, rotations: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """One photo's pose per ring (photos at one height along the axis): turned, they give every pose the
    turntable could have taken a photo of that ring from."""
    heights = (centers - table.point) @ table.axis
    radii = np.linalg.norm(centers - table.point - np.outer(heights, table.axis), axis=1)
    order = np.argsort(heights)
    gap = RING_GAP * float(np.median(radii))
    starts = [0] + [k + 1 for k in range(len(order) - 1) if heights[order[k + 1]] - heights[order[k]] > gap]
    return [(rotations[order[k]], centers[order[k]]) for k in starts]


def place_on_turntable(table: Turntable, rings: list[tuple[np.ndarray, np.ndarray]], points2d: np.ndarray,
                       points3d: np.ndarray, project: Callable[[np.ndarray], np.ndarray], focal_px: float,
                       occupied: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The pose on the turntable (a ring's pose turned by some angle) under which most of a photo's matched
    3D points project onto their keypoints: rotation, centre and the inlier mask; None with fewer than
    MIN_PLACE_INLIERS or MIN_PLACE_SHARE of them.  `project` maps camera-frame points to pixels (the photo's camera, with its distortion);
    `occupied`: world→camera rotations of the photos already placed, whose spots are not free (`spot_size`:
    seen from nearby on its ring the object looks much the same, so a look-alike fits beside the spot it took).

    A search over one degree of freedom per ring, coarse (PLACE_STEP_DEG, with a tolerance as wide as the step
    moves the image) then fine around the best few angles; no free 6-DoF RANSAC, which is what found the
    look-alike."""

    def errors(rotation: np.ndarray, center: np.ndarray) -> np.ndarray:
        cam = (points3d - center) @ rotation.T
        front = cam[:, 2] > 1e-9
        uv = np.full((len(cam), 2), np.inf)
        if front.any():
            uv[front] = project(cam[front])
        return np.linalg.norm(uv - points2d, axis=1)

    taken = np.zeros((0, 3, 3)) if occupied is None else np.asarray(occupied, float).reshape(-1, 3, 3)
    free = spot_size(taken)

    def score(rotation: np.ndarray, center: np.ndarray, tolerance: float) -> float:
        """Truncated quadratic: a peak at the best angle rather than a plateau of equal inlier counts."""
        if free and _angles(rotation, taken).min() < free:
            return -1.0
        return float(np.clip(1 - (errors(rotation, center) / tolerance) ** 2, 0, None).sum())

    coarse_tolerance = PLACE_TOLERANCE_PX + focal_px * np.radians(PLACE_STEP_DEG)
    angles = np.radians(np.arange(0.0, 360.0, PLACE_STEP_DEG))
    if not rings:
        return None
    coarse = np.array([[score(*table.turned(*pose, angle), coarse_tolerance) for angle in angles] for pose in rings])
    # the best few peaks (a wide tolerance lets a near miss beside an occupied spot outscore the true spot, so
    # several peaks are looked at closely, not only the highest)
    peaks = (coarse > 0) & (coarse >= np.roll(coarse, 1, axis=1)) & (coarse >= np.roll(coarse, -1, axis=1))
    order = [index for index in np.argsort(-coarse, axis=None) if peaks.flat[index]][:COARSE_CANDIDATES]
    best = None  # (fine score, ring, angle)
    for ring, step in (np.unravel_index(index, coarse.shape) for index in order):
        for angle in angles[step] + np.radians(np.linspace(-2 * PLACE_STEP_DEG, 2 * PLACE_STEP_DEG, 81)):
            fine = score(*table.turned(*rings[ring], angle), PLACE_TOLERANCE_PX)
            if best is None or fine > best[0]:
                best = (fine, ring, angle)
    if best is None:
        return None
    _, ring, angle = best
    rotation, center = table.turned(*rings[ring], angle)
    inliers = errors(rotation, center) < PLACE_TOLERANCE_PX
    if (inliers.sum() < max(MIN_PLACE_INLIERS, MIN_PLACE_SHARE * len(inliers))
            or score(rotation, center, PLACE_TOLERANCE_PX) < 0):
        return None
    return rotation, center, inliers
