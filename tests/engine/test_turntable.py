"""Photos a turntable could not have taken (engine/turntable.py): found among ring cameras, none among good ones."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from openscancloud.engine import turntable
from openscancloud.engine.checks import off_turntable_warnings
from openscancloud.engine.orient import attention_point

from .stereo_scenes import ring_cameras


def _rig(count: int = 48, elevations=(10.0, 25.0, 40.0, 55.0), seed: int = 0):
    """Ring cameras in an arbitrary world frame (a random rotation and offset, as structure-from-motion leaves
    them): names, centres, world→camera rotations."""
    cams = ring_cameras(count, 0.4, 640, 480, 800.0, elevations)
    names = sorted(cams)
    world = Rotation.random(random_state=seed).as_matrix()
    offset = np.array([0.3, -1.2, 2.0])
    centers = np.array([world @ cams[n]["center"] + offset for n in names])
    rotations = np.array([cams[n]["R"] @ world.T for n in names])
    return names, centers, rotations


def test_good_rings_keep_every_photo_even_with_pose_noise():
    names, centers, rotations = _rig()
    rng = np.random.default_rng(1)
    noisy_r = np.array([Rotation.from_rotvec(rng.normal(0, np.radians(0.3), 3)).as_matrix() @ r for r in rotations])
    noisy_c = centers + rng.normal(0, 0.002, centers.shape)  # 0.5 % of the 0.4 m distance
    assert turntable.off_turntable(names, noisy_c, noisy_r) == []
    partners = turntable.ring_partners(noisy_c, noisy_r)
    assert partners.min() >= 9  # 11 others in each ring of 12


def test_photos_placed_by_a_look_alike_are_found():
    names, centers, rotations = _rig()
    centers, rotations = centers.copy(), rotations.copy()
    # photo 3 placed where photo 9 (half a turn away) stands, slightly off; photo 7 far out, turned
    centers[3] = centers[9] + np.array([0.02, 0.01, -0.03])
    rotations[3] = Rotation.from_rotvec([0.1, 0.2, 0.05]).as_matrix() @ rotations[9]
    centers[7] = centers[7] * 3.0
    rotations[7] = Rotation.from_rotvec([0.0, 1.0, 0.3]).as_matrix() @ rotations[7]
    assert turntable.off_turntable(names, centers, rotations) == [names[3], names[7]]


def test_photos_that_do_not_form_rings_are_not_judged():
    rng = np.random.default_rng(4)
    names = [f"h{i:02d}.jpg" for i in range(30)]  # a handheld walk: no common axis
    centers = rng.normal(0, 0.5, (30, 3))
    rotations = Rotation.random(30, random_state=5).as_matrix()
    assert turntable.off_turntable(names, centers, rotations) == []
    # and too many photos off a rig says the model is wrong as a whole, which is for the rings' warning
    names, centers, rotations = _rig()
    rotations = rotations.copy()
    rotations[:20] = Rotation.random(20, random_state=6).as_matrix()
    assert turntable.off_turntable(names, centers, rotations) == []


def test_a_second_session_mapped_together_is_not_taken_for_strays():
    """The object turned over for a second, shorter session, whose photos were mapped with the first (no capture
    times): they turn about an axis of their own, so they are another session, not photos to leave out."""
    names, centers, rotations = _rig()
    second_names, second_centers, second_rotations = _rig(12, (30.0,), seed=9)
    names = names + [f"flip_{n}" for n in second_names]
    centers = np.concatenate([centers, second_centers])
    rotations = np.concatenate([rotations, second_rotations])
    assert turntable.ring_partners(centers, rotations)[48:].max() < 2  # off the first session's turntable
    assert turntable.off_turntable(names, centers, rotations) == []


def test_the_warning_names_the_photos():
    (sentence,) = off_turntable_warnings(48, ["img_0003.jpg", "img_0007.jpg"])
    assert "2 of 48 photos" in sentence and "img_0003.jpg, img_0007.jpg" in sentence
    assert off_turntable_warnings(48, []) == []



def test_a_photo_left_out_is_placed_again_where_a_turn_puts_it():
    """The photo's matched points, a third of them wrong (the look-alike's matches), fix its turn on its ring."""
    names, centers, rotations = _rig()
    focal, width, height = 800.0, 640, 480

    def project(cam_points: np.ndarray) -> np.ndarray:
        return focal * cam_points[:, :2] / cam_points[:, 2:3] + [width / 2, height / 2]

    kept = np.ones(len(names), bool)
    kept[5] = False
    table, partners = turntable.fit_turntable(centers[kept], rotations[kept])
    assert partners.min() >= 9
    rings = turntable.ring_poses(table, centers[kept], rotations[kept])
    assert len(rings) == 4
    rng = np.random.default_rng(7)
    middle = attention_point(centers, rotations[:, 2])  # the object the rig looks at
    points = middle + rng.normal(0, 0.03, (300, 3))  # matched points on it, about 10 cm across
    cam = (points - centers[5]) @ rotations[5].T
    keypoints = project(cam) + rng.normal(0, 0.5, (300, 2))
    keypoints[:100] = rng.uniform([0, 0], [width, height], (100, 2))  # wrong matches
    placed = turntable.place_on_turntable(table, rings, keypoints, points, project, focal)
    assert placed is not None
    rotation, center, inliers = placed
    assert np.linalg.norm(center - centers[5]) < 0.002  # 0.5 % of the 0.4 m distance
    assert np.degrees(Rotation.from_matrix(rotation @ rotations[5].T).magnitude()) < 0.5
    assert inliers[100:].mean() > 0.9 and inliers[:100].mean() < 0.1
    # with nothing but wrong matches there is no place for it
    assert turntable.place_on_turntable(table, rings, keypoints[:100], points[:100], project, focal) is None


def test_a_look_alike_exactly_half_a_turn_away_is_found_by_its_twin_and_placed_on_a_free_spot():
    names, centers, rotations = _rig()
    true_center, true_rotation = centers[27].copy(), rotations[27].copy()
    centers, rotations = centers.copy(), rotations.copy()
    centers[27], rotations[27] = centers[3], rotations[3]  # 27 and 3 are half a turn apart on one ring
    support = np.full(len(names), 300)
    support[27] = 45
    assert turntable.off_turntable(names, centers, rotations) == []  # a turn like any other
    off, table = turntable.strays(names, centers, rotations, support)
    assert off == [names[27]]
    kept = np.arange(len(names)) != 27
    rings = turntable.ring_poses(table, centers[kept], rotations[kept])
    focal = 800.0

    def project(cam_points: np.ndarray) -> np.ndarray:
        return focal * cam_points[:, :2] / cam_points[:, 2:3] + [320, 240]

    rng = np.random.default_rng(3)
    points = attention_point(centers[kept], rotations[kept][:, 2]) + rng.normal(0, 0.03, (200, 3))
    truth = project((points - true_center) @ true_rotation.T)
    # the look-alike's matches: keypoints that fit the opposite spot (a front/back symmetric object)
    look_alike = project((points - centers[3]) @ rotations[3].T)
    keypoints = np.concatenate([truth[:60], look_alike[60:]])
    placed = turntable.place_on_turntable(table, rings, keypoints, points, project, focal, occupied=rotations[kept])
    assert placed is not None and np.linalg.norm(placed[1] - true_center) < 0.002
    assert turntable.place_on_turntable(table, rings, look_alike, points, project, focal,
                                        occupied=rotations[kept]) is None


def test_a_photo_moved_off_the_turntable_in_a_real_model_is_placed_back(synthetic_set, tmp_path, make_ctx):
    """End to end on a small static-rig set: one photo's pose in the mapped model is moved where a look-alike
    would put it; the sparse stage's check unregisters it and places it again from its own matches in the
    database, back where it was, with its points joined again."""
    import pycolmap

    from openscancloud.engine import ingest, masks, sparse

    root = synthetic_set("small_dots_static")
    ing = ingest.run(root / "images", make_ctx("ingest", tmp_path))
    sp = sparse.run(ing, masks.run(ing, make_ctx("masks", tmp_path)), make_ctx("sparse", tmp_path))
    assert len(sp.registered) >= 0.9 * len(ing.views)
    rec = sp.load()
    image = rec.find_image_with_name(sp.registered[5])
    before = np.asarray(image.projection_center()).copy()
    turned = Rotation.from_rotvec([0.3, -0.5, 0.2]).as_matrix() @ np.asarray(image.cam_from_world().matrix())[:, :3]
    wrong_center = before + 0.4 * np.linalg.norm(before - np.mean([np.asarray(i.projection_center())
                                                                   for i in rec.images.values()], axis=0))
    rec.frames[image.frame_id].set_cam_from_world(
        image.camera_id, pycolmap.Rigid3d(pycolmap.Rotation3d(turned), -turned @ wrong_center))
    left_out, placed_again = sparse.check_turntable(rec, tmp_path / "sparse" / "database.db", [sp.registered])
    assert left_out == [] and placed_again == [image.name]
    image = rec.find_image_with_name(image.name)
    spread = np.std([np.asarray(i.projection_center()) for i in rec.images.values()], axis=0).sum()
    assert image.has_pose and np.linalg.norm(np.asarray(image.projection_center()) - before) < 0.01 * spread
    assert image.num_points3D >= turntable.MIN_PLACE_INLIERS
