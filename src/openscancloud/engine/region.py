"""Where the object is in 3D: the turntable plate(s) cut away, floating pieces dropped, a hull around the rest.

Why: on a turntable the plate turns with the object, so masks rightly keep it, and it often fills more of a photo
than the object does.  The mesh stage cuts it from the dense cloud (`remove_plate`, `floating_points`); the dense
stage cuts it earlier, from the sparse points (`object_hull`), so that a depth map's pixel budget is spent on the
object and not on the plate around it (the plate took over half of a depth map's pixels on synth_bust).  Both
rules work by geometry that every turntable set shares — a large plane perpendicular to the turntable axis under
the object, and connectivity — never by a height or distance threshold tuned on one set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .orient import Orientation

CLUSTER_SPACINGS = 4.0  # points closer than this many spacings belong to the same piece
MIN_CLUSTER_FRACTION = 0.01  # pieces of the cloud smaller than this fraction of all points are floaters
PLATE_MARGIN_SPACINGS = 1.5  # points at least this close above the plate plane belong to the plate ...
PLATE_NOISE_PERCENTILE = 99.0  # ... or as far above it as this share of the plate's points scatter below it
PLATE_RANSAC_ITERATIONS = 1000  # a plate seen by one of two sessions holds only ~6 % of the points
PLATE_RANSAC_SEED = 7
PLATE_MIN_SHARE = 0.05  # a plane with fewer of the cloud's points is not a plate
PLATE_ABOVE_SPARSE = 0.03  # a dense "plate" this far (share of the cloud's height) above the sparse one is the object's
UNDERSIDE_COSINE = 0.5  # a point on a plate's plane whose normal is this close to straight down is the underside
FOOT_BAND_SPACINGS = 4.0  # the object's walls where they meet the plate: points this high above the cut ...
FOOT_MIN_POINTS = 4  # ... at least this many in a cell (the plate's scattered noise rarely fills one)
PLATE_NOISE_BAND_SPACINGS = 5.0  # the plate's noise is measured on points at most this far below the plane
HULL_MARGIN = 0.08  # the object's hull grows by this fraction of its size on every side
HULL_FOOT_SHARE = 0.1  # the hull reaches straight down to the plate from this lowest share of the object's points
MIN_OBJECT_POINTS = 20  # fewer sparse points than this: the object cannot be told from its plate
MIN_HULL_POINTS = 50  # fewer object points than this: no hull (the whole view is used)
ISOLATION_NEIGHBOURS = 10  # a sparse point is judged by its mean distance to this many neighbours ...
ISOLATION_STD = 2.0  # ... and dropped from the hull when that is this many standard deviations above the mean


@dataclass(frozen=True)
class Plate:
    """A turntable plate found in a cloud: its plane, the side the object stands on, and how far the plate's own
    points scatter above the plane (its measured noise), so that a cut at `margin` leaves none of them behind."""

    normal: np.ndarray  # unit, pointing to the object's side
    offset: float  # height above the plane = points @ normal + offset
    margin: float  # points (and mesh vertices) lower than this above the plane belong to the plate

    def height(self, points: np.ndarray) -> np.ndarray:
        return points @ self.normal + self.offset

    def above(self, points: np.ndarray) -> np.ndarray:
        return self.height(points) > self.margin


def remove_plate(points: np.ndarray, orientation: Orientation, spacing: float, normals: np.ndarray | None = None,
                 sparse_plates: list[Plate] | None = None) -> tuple[np.ndarray, list[Plate]]:
    """Mask of points to keep after cutting the turntable plate of every session (a large plane under the object,
    perpendicular to the session's axis: with a flipped second session its plate touches the object's top), and
    the plates cut (the mesh stage cuts its surface at the same planes).  With `normals`, points on a plate's
    plane that face into it stay: they are the object's underside, which a flipped session shows.  With
    `sparse_plates` (`standing_object` on the sparse points), a plate the dense cloud lacks is taken from them
    (`_checked_plate`)."""
    keep = np.ones(len(points), bool)
    plates = []
    for up in orientation.turntable_ups():
        plate = find_plate(points, up, spacing)
        if sparse_plates:
            plate = _checked_plate(plate, points, up, spacing, sparse_plates)
        if plate is not None:
            on_plate = ~plate.above(points)
            if normals is not None:
                under, bleeding = underside(plate, points, normals, spacing)
                on_plate = (on_plate & ~under) | bleeding
            keep &= ~on_plate
            plates.append(plate)
    return keep, plates


def _checked_plate(found: Plate | None, points: np.ndarray, up: np.ndarray, spacing: float,
                   sparse_plates: list[Plate]) -> Plate | None:
    """The dense cloud's plate, unless the sparse points put the plate clearly lower: then the sparse plate.

    Why: the depth maps hold the plate only when the masks let it in.  With the user's exact masks of the object
    alone they do not, and the largest level plane low in the cloud is then the object's own — the top of a bust's
    pedestal — and cutting there took the pedestal away (the lowest fifth of a bust lost).  The sparse points
    always hold the plate on a turntable (keypoints are looked for around the user's masks too) and their plate is
    judged wider than the object (`standing_object`)."""
    up = up / np.linalg.norm(up)
    same_axis = [p for p in sparse_plates if p.normal @ up > 0.95]
    if not same_axis:
        return found
    expected = same_axis[0]
    heights = expected.height(points)
    extent = float(np.subtract(*np.percentile(heights, [99, 1])))
    if found is not None:
        on_found = points[np.abs(found.height(points)) <= found.margin]
        if not len(on_found) or np.median(expected.height(on_found)) <= PLATE_ABOVE_SPARSE * extent:
            return found
    return Plate(expected.normal, expected.offset, PLATE_MARGIN_SPACINGS * spacing)


def underside(plate: Plate, points: np.ndarray, normals: np.ndarray, spacing: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """Masks (underside, bleeding) of points that face into the plate near its plane.

    The plate is only ever seen from the object's side, so such points are the object's own underside, seen by
    another session (the object turned over) — when they lie inside the object's footprint, the region enclosed
    by its walls where they meet the plate.  Outside it they are that session's depth maps bleeding past the
    underside's rim (a flange around the base), up to the height of the walls' foot."""
    from scipy import ndimage

    none = np.zeros(len(points), bool)
    heights = plate.height(points)
    foot_top = plate.margin + FOOT_BAND_SPACINGS * spacing
    facing = (heights >= -plate.margin) & (heights <= foot_top) & (normals @ plate.normal < -UNDERSIDE_COSINE)
    foot = (heights > plate.margin) & (heights <= foot_top)
    if not facing.any() or not foot.any():
        return none, none
    u = np.cross(plate.normal, [1.0, 0, 0] if abs(plate.normal[0]) < 0.9 else [0, 1.0, 0])
    u /= np.linalg.norm(u)
    flat = points @ np.stack([u, np.cross(plate.normal, u)], 1)  # positions in the plate's plane
    cell = CLUSTER_SPACINGS * spacing
    lo = flat[foot].min(axis=0) - 2 * cell
    shape = np.ceil((flat[foot].max(axis=0) + 2 * cell - lo) / cell).astype(int) + 1
    if np.prod(shape) > 50_000_000:
        return none, none
    idx = np.floor((flat[foot] - lo) / cell).astype(int)
    walls = np.zeros(shape, np.int32)
    np.add.at(walls, (idx[:, 0], idx[:, 1]), 1)
    # what the walls' cells enclose: grown by a cell so that one-cell gaps close, filled, shrunk back
    square = np.ones((3, 3), bool)
    footprint = ndimage.binary_erosion(ndimage.binary_fill_holes(ndimage.binary_dilation(walls >= FOOT_MIN_POINTS,
                                                                                          square)), square)
    cand = np.nonzero(facing)[0]
    idx = np.floor((flat[cand] - lo) / cell).astype(int)
    ok = np.all((idx >= 0) & (idx < shape), axis=1)
    inside = np.zeros(len(cand), bool)
    inside[ok] = footprint[idx[ok, 0], idx[ok, 1]]
    under, bleeding = none.copy(), none.copy()
    under[cand[inside]] = np.abs(heights[cand[inside]]) <= plate.margin
    bleeding[cand[~inside]] = True
    return under, bleeding


def find_plate(points: np.ndarray, up: np.ndarray, spacing: float) -> Plate | None:
    """The large plane perpendicular to `up` in the lower part of the cloud, or None.

    The cut's margin is measured, not set: below the plate there is nothing but the plate's own depth noise, and
    the noise reaches as far above the plane as below it."""
    import open3d as o3d

    if len(points) < 1000:
        return None
    up = up / np.linalg.norm(up)
    heights = points @ up
    lo, hi = np.percentile(heights, [1, 99])
    # only the lower part of the scene can hold the plate
    low = np.nonzero(heights < lo + 0.4 * (hi - lo))[0]
    if len(low) < 200:
        return None
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points[low]))
    o3d.utility.random.seed(PLATE_RANSAC_SEED)  # the same cloud always gives the same plate
    plane, inliers = pcd.segment_plane(distance_threshold=2.0 * spacing, ransac_n=3,
                                       num_iterations=PLATE_RANSAC_ITERATIONS)
    n = np.array(plane[:3])
    norm = np.linalg.norm(n)
    n, d = n / norm, plane[3] / norm
    for _ in range(2):  # least squares on the inliers: RANSAC's three points tilt the plane by their noise
        near = points[low][np.abs(points[low] @ n + d) < 2.0 * spacing]
        if len(near) < 3:
            break
        centre = near.mean(axis=0)
        fitted = np.linalg.svd(near - centre, full_matrices=False)[2][2]
        n, d = (fitted, -float(fitted @ centre)) if fitted @ n > 0 else (-fitted, float(fitted @ centre))
    inliers = np.abs(points[low] @ n + d) < 2.0 * spacing
    if abs(n @ up) < 0.95 or inliers.sum() < PLATE_MIN_SHARE * len(points):
        return None
    if n @ up < 0:
        n, d = -n, -d
    signed = points[low] @ n + d
    below = -signed[(signed < 0) & (signed > -PLATE_NOISE_BAND_SPACINGS * spacing)]
    noise = float(np.percentile(below, PLATE_NOISE_PERCENTILE)) if len(below) >= 100 else 0.0
    return Plate(n, float(d), max(PLATE_MARGIN_SPACINGS * spacing, noise))


def floating_points(points: np.ndarray, spacing: float) -> np.ndarray:
    """Mask of points in small pieces of the cloud, away from everything else (connectivity on a voxel grid)."""
    from scipy import ndimage

    cell = CLUSTER_SPACINGS * spacing
    lo, hi = np.percentile(points, 0.1, axis=0), np.percentile(points, 99.9, axis=0)
    pad = 0.5 * (hi - lo) + 2 * cell
    lo, hi = lo - pad, hi + pad  # points beyond twice the cloud's extent are far outliers
    inside = np.all((points >= lo) & (points <= hi), axis=1)
    shape = np.ceil((hi - lo) / cell).astype(int) + 1
    if np.prod(shape) > 400_000_000:  # grid too fine to hold: keep every point rather than guess
        return ~inside
    idx = np.floor((points[inside] - lo) / cell).astype(int)
    grid = np.zeros(shape, bool)
    grid[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    labels, count = ndimage.label(grid, structure=np.ones((3, 3, 3), bool))
    point_labels = labels[idx[:, 0], idx[:, 1], idx[:, 2]]
    sizes = np.bincount(point_labels, minlength=count + 1)
    small = sizes[point_labels] < MIN_CLUSTER_FRACTION * len(points)
    small &= point_labels != np.argmax(sizes[1:]) + 1  # the largest piece always stays
    floating = ~inside
    floating[np.nonzero(inside)[0][small]] = True
    return floating


def point_spacing(points: np.ndarray, sample: int = 20000) -> float:
    """Median distance from a point to its nearest neighbour (on a sample of at most `sample` points)."""
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(points).query(points[:: max(1, len(points) // sample)], k=2)
    return float(np.median(dist[:, 1]))


def standing_object(points: np.ndarray, orientation: Orientation | None) -> tuple[np.ndarray, list[Plate]] | None:
    """The sparse points on the object itself — each session's turntable plate and floating pieces left out — and
    the plates it stands on.  None when no plate was found (a handheld set: object and background cannot be told
    apart here).  Why one function: the dense stage's hull and the plain-object check must agree on what the
    object is."""
    if orientation is None or len(points) < MIN_OBJECT_POINTS:
        return None
    spacing = point_spacing(points)
    cuts = [(up, plate, plate.above(points)) for up in orientation.turntable_ups()
            if (plate := find_plate(points, up, spacing)) is not None]
    above_all = np.logical_and.reduce([keep for *_, keep in cuts]) if cuts else np.ones(len(points), bool)
    # a plate is judged against what stands on it, the other sessions' plates left out
    plates = [(plate, keep) for up, plate, keep in cuts if _wider_than_the_object(points, ~keep, above_all, up)]
    if not plates:
        return None
    obj = points[np.logical_and.reduce([keep for _, keep in plates])]
    if len(obj) >= MIN_OBJECT_POINTS:
        # connectivity at the object's own point spacing: the plate's dense texture sets a much finer one, at which
        # an object with few features (sparse dots on a plain surface) falls apart into "floaters"
        obj = obj[~floating_points(obj, point_spacing(obj))]
    return obj, [plate for plate, _ in plates]


def object_hull(points: np.ndarray, orientation: Orientation | None) -> np.ndarray | None:
    """Corners of a convex hull around the object's sparse points (`standing_object`), grown by HULL_MARGIN of the
    object's size.

    None when no plate was found in the points (a handheld set: nothing to leave out) or too few points are left;
    the caller then uses whole views, as before."""
    from scipy.spatial import ConvexHull
    from scipy.spatial import QhullError

    if len(points) < MIN_HULL_POINTS or (standing := standing_object(points, orientation)) is None:
        return None
    obj, plates = standing
    if len(obj) < MIN_HULL_POINTS:
        return None
    obj = obj[~isolated_points(obj)]  # a convex hull is as large as its farthest stray point
    if len(obj) < MIN_HULL_POINTS:
        return None
    obj = np.concatenate([obj] + [_dropped_to(plate, obj) for plate in plates])
    try:
        corners = obj[ConvexHull(obj).vertices]
    except QhullError:  # flat or degenerate: no volume to restrict to
        return None
    centre = obj.mean(axis=0)
    size = float(np.max(obj.max(axis=0) - obj.min(axis=0)))
    outward = corners - centre
    outward /= np.maximum(np.linalg.norm(outward, axis=1, keepdims=True), 1e-12)
    return corners + outward * HULL_MARGIN * size


def _dropped_to(plate: Plate, points: np.ndarray) -> np.ndarray:
    """The lowest part of the object's points (HULL_FOOT_SHARE of its height above `plate`) moved straight down onto
    the plate.  Why: the object stands on its plate, but a plain object has sparse points only where it shows some
    detail (often only its upper part), and a hull of those alone left its lower third out of every depth map.
    Only the lowest points are dropped, so that an object whose points already reach the plate (a bust on its
    pedestal) gains no wedge of plate under its shoulders."""
    height = plate.height(points)
    lowest = points[height <= height.min() + HULL_FOOT_SHARE * (height.max() - height.min())]
    return lowest - np.outer(plate.height(lowest), plate.normal)


def isolated_points(points: np.ndarray) -> np.ndarray:
    """Mask of points much farther from their neighbours than points usually are (Open3D's statistical outlier
    test: mean distance to the ISOLATION_NEIGHBOURS nearest above the mean by ISOLATION_STD standard deviations)."""
    import open3d as o3d

    if len(points) <= ISOLATION_NEIGHBOURS:
        return np.zeros(len(points), bool)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    _, kept = cloud.remove_statistical_outlier(nb_neighbors=ISOLATION_NEIGHBOURS, std_ratio=ISOLATION_STD)
    isolated = np.ones(len(points), bool)
    isolated[np.asarray(kept, dtype=np.int64)] = False
    return isolated


def _wider_than_the_object(points: np.ndarray, plate: np.ndarray, standing: np.ndarray, up: np.ndarray) -> bool:
    """A turntable plate reaches out beyond the object standing on it; a flat-bottomed or round object's own
    underside, which a plane fit on sparse points can also find, does not."""
    if not plate.any() or not standing.any():
        return False
    up = up / np.linalg.norm(up)
    flat = points - np.outer(points @ up, up)  # positions across the axis
    centre = flat[standing].mean(axis=0)
    radius = np.linalg.norm(flat - centre, axis=1)
    return bool(np.percentile(radius[plate], 90) > np.percentile(radius[standing], 90))


def hull_in_view(hull: np.ndarray, R: np.ndarray, t: np.ndarray, K: np.ndarray, width: int, height: int
                 ) -> np.ndarray | None:
    """Pixels (bool, height × width) inside the hull's outline in one view; None when the camera is inside or
    beside the hull (a corner behind it), where the outline does not bound the object."""
    import cv2

    Xc = hull @ R.T + t
    if np.any(Xc[:, 2] <= 1e-9):
        return None
    uv = Xc @ K.T
    uv = uv[:, :2] / uv[:, 2:3]
    outline = cv2.convexHull(np.round(uv * 16).astype(np.int32))  # 4 bits of sub-pixel precision
    inside = np.zeros((height, width), np.uint8)
    cv2.fillConvexPoly(inside, outline, 1, lineType=cv2.LINE_8, shift=4)
    return inside.astype(bool)
