"""Sparse: kermit's cameras are recovered; pair selection scales; the orientation puts a turntable axis on +Z."""

from __future__ import annotations

import numpy as np
import pycolmap

from openscancloud.engine import orient, sparse


def test_kermit_cameras(kermit_sparse):
    ing, _, sp, _ = kermit_sparse
    assert len(sp.registered) >= 10  # README: 11/11 with pycolmap defaults
    assert sp.mean_reprojection_error < 1.0
    assert sp.num_points > 300
    assert 600 < sp.focal_px < 760  # README: ≈ 695 px
    rec = pycolmap.Reconstruction(str(sp.model_dir))
    assert rec.num_reg_images() == len(sp.registered)
    assert set(sp.registered) | set(sp.unregistered) == {v.name for v in ing.views}


def _turntable_cameras(axis):
    axis = axis / np.linalg.norm(axis)
    helper = np.cross(axis, [1.0, 0, 0])
    helper /= np.linalg.norm(helper)
    other = np.cross(axis, helper)
    centers, dirs, ups = [], [], []
    for elev in (10, 35):
        for az in range(0, 360, 30):
            a, e = np.radians(az), np.radians(elev)
            c = 5 * (np.cos(e) * (np.cos(a) * helper + np.sin(a) * other) + np.sin(e) * axis)
            d = -c / np.linalg.norm(c)
            right = np.cross(d, axis)
            right /= np.linalg.norm(right)
            up = np.cross(right, d)
            centers.append(c + [1.0, 2.0, 3.0])
            dirs.append(d)
            ups.append(up)
    return np.array(centers), np.array(dirs), np.array(ups)


def test_turntable_axis_goes_to_z():
    axis = np.array([0.3, -0.5, 0.8])
    centers, dirs, ups = _turntable_cameras(axis)
    o = orient.estimate(centers, dirs, ups, points=np.array([[1.0, 2.0, 3.0]] * 30))
    assert o.turntable
    R = o.transform[:3, :3]
    np.testing.assert_allclose(R @ (axis / np.linalg.norm(axis)), [0, 0, 1], atol=1e-6)
    np.testing.assert_allclose(o.apply(np.array([[1.0, 2.0, 3.0]]))[0], 0, atol=1e-6)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-9)


def test_handheld_arc_uses_camera_up(kermit_sparse):
    _, _, sp, _ = kermit_sparse
    cams = sparse.camera_arrays(sp.load())
    centers = np.array([c["center"] for c in cams.values()])
    dirs = np.array([c["R"][2] for c in cams.values()])
    ups = np.array([-c["R"][1] for c in cams.values()])
    o = orient.estimate(centers, dirs, ups)
    assert not o.turntable
    # the photographer's up becomes +Z
    assert (o.apply_dirs(ups) @ [0, 0, 1]).mean() > 0.9


def test_camera_arrays_outlive_their_reconstruction(kermit_sparse):
    """camera_arrays(sp.load()) drops the Reconstruction at once; the camera parameters must be copies, not views
    of its freed memory (they were: the texture stage then projected with a garbage radial distortion in some runs,
    and textures differed from run to run)."""
    import gc

    _, _, sp, _ = kermit_sparse
    kept = sp.load()
    expected = {img.name: np.array(img.camera.params) for img in kept.images.values() if img.has_pose}
    cams = sparse.camera_arrays(sp.load())  # a temporary Reconstruction, freed right away
    gc.collect()
    clobber = [np.full(4096, 12345.0) for _ in range(2000)]  # reuse the freed memory
    for name, values in expected.items():
        np.testing.assert_array_equal(cams[name]["params"], values)
    assert clobber
