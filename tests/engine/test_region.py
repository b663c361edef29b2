"""Where the object is: the turntable plate and floating points are left out of the object's hull, and the hull's
outline in a view bounds the object's pixels (engine/region.py)."""

from __future__ import annotations

import numpy as np

from openscancloud.engine.orient import Orientation
from openscancloud.engine.region import HULL_MARGIN, hull_in_view, object_hull, remove_plate

UP = np.array([0.0, 0.0, 1.0])


def _orientation(up: np.ndarray = UP) -> Orientation:
    return Orientation(np.eye(4), True, up, np.zeros(3), 0.01)


def _scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(plate points, object points, floaters): a 20 cm plate at z = 0 with a 4 cm ball standing on it."""
    r = 0.1 * np.sqrt(rng.random(6000))
    a = rng.random(6000) * 2 * np.pi
    plate = np.stack([r * np.cos(a), r * np.sin(a), rng.normal(0, 2e-4, 6000)], 1)
    d = rng.normal(size=(3000, 3))
    ball = 0.02 * d / np.linalg.norm(d, axis=1, keepdims=True) + [0.01, -0.005, 0.021]
    floaters = np.array([[0.08, 0.08, 0.09], [-0.09, 0.05, 0.12], [0.0, -0.09, 0.15]])
    return plate, ball, floaters


def test_the_hull_holds_the_object_and_leaves_the_plate_and_floaters_out():
    plate, ball, floaters = _scene(np.random.default_rng(3))
    hull = object_hull(np.concatenate([plate, ball, floaters]), _orientation())
    assert hull is not None
    size = 0.04
    lo, hi = hull.min(0), hull.max(0)
    # the ball (with the margin) is inside; the plate's 10 cm radius and the floaters are not
    assert np.all(lo <= ball.min(0)) and np.all(hi >= ball.max(0))
    assert np.all(hi - lo <= size * (1 + 2 * HULL_MARGIN) + 0.004)
    assert lo[2] > -0.01  # nothing far below the plate
    # every ball point lies inside the hull's outline seen from a camera above the plate
    K = np.array([[800.0, 0, 320], [0, 800.0, 240], [0, 0, 1]])
    R = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])  # looking straight down
    t = -R @ np.array([0.0, 0.0, 0.4])
    inside = hull_in_view(hull, R, t, K, 640, 480)
    assert inside is not None
    uv = (ball @ R.T + t) @ K.T
    uv = np.round(uv[:, :2] / uv[:, 2:3]).astype(int)
    assert inside[uv[:, 1], uv[:, 0]].all()
    # ... and most of the plate is outside it
    uv = (plate @ R.T + t) @ K.T
    uv = np.round(uv[:, :2] / uv[:, 2:3]).astype(int)
    seen = (uv[:, 0] >= 0) & (uv[:, 0] < 640) & (uv[:, 1] >= 0) & (uv[:, 1] < 480)
    assert inside[uv[seen, 1], uv[seen, 0]].mean() < 0.2


def test_the_hull_reaches_down_to_the_plate_where_the_object_has_no_points():
    """A plain object gives sparse points only where it shows some detail, often only its upper part; it still
    stands on the plate, so its lower part (here: the ball's lower half, which has no points) is inside the hull."""
    from scipy.spatial import Delaunay

    plate, ball, _ = _scene(np.random.default_rng(9))
    upper = ball[ball[:, 2] > 0.026]  # the top of the ball only: its lower 2.5 cm showed nothing to match
    hull = object_hull(np.concatenate([plate, upper]), _orientation())
    assert hull is not None
    lower = ball[ball[:, 2] <= 0.026]
    assert (Delaunay(hull).find_simplex(lower) >= 0).all()
    assert hull[:, 2].min() > -0.01  # down to the plate, not far below it
    assert np.ptp(hull[:, 0]) < 0.04 * (1 + 2 * HULL_MARGIN) + 0.004  # and no wider than the object


def test_no_plate_means_no_hull_and_whole_views():
    _, ball, _ = _scene(np.random.default_rng(4))
    assert object_hull(ball, _orientation()) is None  # a handheld set: nothing to leave out
    assert object_hull(ball, None) is None


def test_a_camera_inside_the_hull_gets_no_outline():
    plate, ball, _ = _scene(np.random.default_rng(5))
    hull = object_hull(np.concatenate([plate, ball]), _orientation())
    K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
    R, centre = np.eye(3), np.array([0.01, -0.005, 0.021])  # at the ball's centre
    assert hull_in_view(hull, R, -R @ centre, K, 640, 480) is None


def test_the_plate_of_each_session_is_cut():
    """A flipped second session: its plate touches the object's top, perpendicular to that session's axis."""
    plate, ball, _ = _scene(np.random.default_rng(6))
    # the second plate, lying on the ball's top, seen from below; wider than the first, so that the first plate
    # is only wider than what stands on it once the second plate is left out
    top = plate * [1.5, 1.5, -1] + [0, 0, 0.041]
    points = np.concatenate([plate, ball, top])
    orientation = _orientation()
    orientation.sessions = []  # one axis only: the top plate stays
    keep_one, _ = remove_plate(points, orientation, 0.001)
    assert keep_one[len(plate) + len(ball):].mean() > 0.9

    from openscancloud.engine.orient import Session

    down = Session(["b.jpg"], -UP, True, 0.01)
    up = Session(["a.jpg"], UP, True, 0.01)
    orientation.sessions = [up, down]
    hull = object_hull(points, orientation)
    assert hull is not None
    assert np.ptp(hull[:, 0]) < 0.04 * (1 + 2 * HULL_MARGIN) + 0.004  # neither plate widens the hull


def test_stray_points_do_not_widen_the_hull():
    """A few points between the object and the plate's rim, too close to count as floating pieces, would stretch a
    convex hull to the rim; the statistical isolation test drops them and keeps the object's own points."""
    from openscancloud.engine.region import isolated_points

    rng = np.random.default_rng(7)
    plate, ball, _ = _scene(rng)
    # a thin trail of points leading away from the ball, each within connecting distance of the next
    centre = np.array([0.01, -0.005, 0.021])
    strays = centre + np.outer(np.arange(0.0215, 0.040, 0.0025), [0.0, -1.0, 0.0])
    flagged = isolated_points(np.concatenate([ball, strays]))
    assert flagged[len(ball) + 1:].all()  # the first one lies 1.5 mm off the surface, among its points
    assert flagged[:len(ball)].mean() < 0.05
    hull = object_hull(np.concatenate([plate, ball, strays]), _orientation())
    assert np.ptp(hull[:, 1]) < 0.04 * (1 + 2 * HULL_MARGIN) + 0.004


def test_the_plate_cut_follows_the_plates_measured_noise():
    """The cut above the plate is as high as the plate's own points scatter (measured below the plane, where
    nothing else lies), so a noisier plate leaves no points behind; a quiet one is cut at the fixed minimum."""
    from openscancloud.engine.region import PLATE_MARGIN_SPACINGS, find_plate

    rng = np.random.default_rng(8)
    plate, ball, _ = _scene(rng)
    spacing = 0.001
    for sigma in (1e-4, 1e-3):
        noisy = plate * [1, 1, 0] + [0, 0, 1] * rng.normal(0, sigma, (len(plate), 1))
        found = find_plate(np.concatenate([noisy, ball]), UP, spacing)
        assert found is not None
        assert found.margin >= PLATE_MARGIN_SPACINGS * spacing
        assert found.margin <= max(PLATE_MARGIN_SPACINGS * spacing, 3.5 * sigma)
        assert found.above(noisy).mean() < 0.02  # (almost) none of the plate is left
        assert found.above(ball[ball[:, 2] > 0.005]).all()  # the object above the noise is kept


def _cylinder_on_plate(rng: np.random.Generator, underside: bool):
    """(points, normals, part labels) of a 4 cm cylinder (2 cm radius) standing on a noisy 12 cm plate; with
    `underside` its bottom is seen too (a flipped second session), and that session's depth maps bleed 3 mm past
    the bottom's rim."""
    radius, height, spacing = 0.02, 0.04, 0.0005
    a, z = rng.random(40_000) * 2 * np.pi, rng.random(40_000) * height
    side = np.stack([radius * np.cos(a), radius * np.sin(a), z], 1)
    parts = [(side, np.stack([np.cos(a), np.sin(a), 0 * a], 1), "side")]
    r, b = radius * np.sqrt(rng.random(8000)), rng.random(8000) * 2 * np.pi
    parts.append((np.stack([r * np.cos(b), r * np.sin(b), np.full(8000, height)], 1), [0.0, 0, 1], "top"))
    r, b = 0.06 * np.sqrt(rng.random(60_000)), rng.random(60_000) * 2 * np.pi
    plate = np.stack([r * np.cos(b), r * np.sin(b), rng.normal(0, 1.5 * spacing, len(r))], 1)
    parts.append((plate[r > radius], [0.0, 0, 1], "plate"))
    if underside:
        r, b = radius * np.sqrt(rng.random(8000)), rng.random(8000) * 2 * np.pi
        bottom = np.stack([r * np.cos(b), r * np.sin(b), rng.normal(0, 0.5 * spacing, len(r))], 1)
        parts.append((bottom, [0.0, 0, -1], "bottom"))
        r, b = radius + 0.003 * np.sqrt(rng.random(2000)) + 0.0025, rng.random(2000) * 2 * np.pi
        bleed = np.stack([r * np.cos(b), r * np.sin(b), rng.normal(0, 0.5 * spacing, len(r))], 1)
        parts.append((bleed, [0.0, 0, -1], "bleed"))
    points = np.concatenate([p for p, _, _ in parts])
    normals = np.concatenate([np.broadcast_to(np.asarray(n, float), p.shape) for p, n, _ in parts])
    labels = np.concatenate([np.full(len(p), name) for p, _, name in parts])
    return points, normals, labels, spacing


def test_a_flipped_sessions_view_of_the_underside_is_kept_and_its_bleeding_is_not():
    """Points on the plate's plane that face into it are the object's underside (the plate is only seen from
    above) when they lie inside the object's footprint; outside it they are depth maps bleeding past the rim."""
    points, normals, labels, spacing = _cylinder_on_plate(np.random.default_rng(9), underside=True)
    keep, plates = remove_plate(points, _orientation(), spacing, normals)
    assert len(plates) == 1
    assert keep[labels == "bottom"].mean() > 0.95
    assert keep[labels == "bleed"].mean() < 0.05
    assert keep[labels == "plate"].mean() < 0.02
    assert keep[labels == "top"].all()
    # without normals (sparse points) the plane's points all go, as before
    keep_plain, _ = remove_plate(points, _orientation(), spacing)
    assert keep_plain[labels == "bottom"].mean() < 0.05


def test_without_the_plate_in_the_cloud_the_sparse_plate_is_cut_not_the_pedestal():
    """The user's exact masks keep the plate out of the depth maps; the largest level plane low in the cloud is then
    a pedestal's top. The plate the sparse points hold is cut instead, and the pedestal's walls stay."""
    from openscancloud.engine.region import Plate

    rng = np.random.default_rng(5)
    spacing = 0.0005
    b = rng.random(40_000) * 2 * np.pi
    r = 0.03 * np.sqrt(rng.random(40_000))
    top = np.stack([r * np.cos(b), r * np.sin(b), np.full(len(r), 0.02)], 1)  # the pedestal's top, 2 cm up
    h, a = 0.02 * rng.random(12_000), rng.random(12_000) * 2 * np.pi
    walls = np.stack([0.03 * np.cos(a), 0.03 * np.sin(a), h], 1)
    d = rng.normal(size=(20_000, 3))
    bust = 0.025 * d / np.linalg.norm(d, axis=1, keepdims=True) + [0, 0, 0.06]
    points = np.concatenate([top, walls, bust])
    keep_alone, plates = remove_plate(points, _orientation(), spacing)
    assert plates and keep_alone[len(top):len(top) + len(walls)].mean() < 0.1  # the walls went with the "plate"
    sparse_plate = Plate(UP.copy(), 0.0, 0.001)
    keep, plates = remove_plate(points, _orientation(), spacing, sparse_plates=[sparse_plate])
    assert len(plates) == 1 and abs(plates[0].offset) < 1e-9
    assert keep[:len(top)].all() and keep[len(top):len(top) + len(walls)].mean() > 0.95 and keep[-len(bust):].all()
    # when the cloud holds the plate itself, the cloud's own plate is cut as before
    r, a = 0.08 * np.sqrt(rng.random(120_000)), rng.random(120_000) * 2 * np.pi
    plate = np.stack([r * np.cos(a), r * np.sin(a), rng.normal(0, 2e-4, len(r))], 1)
    with_plate = np.concatenate([plate, points])
    _, own = remove_plate(with_plate, _orientation(), spacing)
    _, checked = remove_plate(with_plate, _orientation(), spacing, sparse_plates=[sparse_plate])
    assert len(own) == len(checked) == 1 and checked[0].offset == own[0].offset and checked[0].margin == own[0].margin
