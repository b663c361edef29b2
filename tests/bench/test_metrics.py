"""The ground-truth metric must give F≈1 for the truth itself, a low F for a surface 2τ off, and must undo any
similarity the reconstruction happens to be expressed in (checked against synth_bust's ground truth)."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation


def _random_similarity(metrics, seed: int):
    rng = np.random.default_rng(seed)
    R = Rotation.random(random_state=seed).as_matrix()
    return metrics.Similarity(scale=float(rng.uniform(0.2, 30.0)), R=R, t=rng.normal(0.0, 5.0, 3))


def test_umeyama_recovers_a_similarity_exactly(metrics):
    rng = np.random.default_rng(3)
    src = rng.normal(size=(30, 3))
    truth = _random_similarity(metrics, 4)
    fitted = metrics.umeyama(src, truth.apply(src))
    assert fitted.scale == pytest.approx(truth.scale, rel=1e-10)
    np.testing.assert_allclose(fitted.R, truth.R, atol=1e-10)
    np.testing.assert_allclose(fitted.t, truth.t, atol=1e-8)


def test_robust_similarity_ignores_a_few_misplaced_cameras(metrics):
    rng = np.random.default_rng(5)
    dst = rng.normal(size=(24, 3))
    truth = _random_similarity(metrics, 6)
    inverse = metrics.umeyama(truth.apply(dst), dst)  # maps "reconstruction" back onto dst
    src = truth.apply(dst)
    src[[2, 11, 17]] += rng.normal(0.0, 3.0 * truth.scale, (3, 3))  # three cameras thrown far off
    names = [f"img_{i:04d}.jpg" for i in range(len(dst))]
    alignment = metrics.robust_similarity(names, src, dst, inlier_threshold=0.01)
    assert sorted(alignment.outliers) == ["img_0002.jpg", "img_0011.jpg", "img_0017.jpg"]
    assert alignment.similarity.scale == pytest.approx(inverse.scale, rel=1e-9)
    assert alignment.rms_residual_m < 1e-9


def test_too_few_matching_cameras_is_a_clear_error(metrics, bust_truth):
    gt = bust_truth[0]
    with pytest.raises(metrics.MetricError, match="at least 3"):
        metrics.align_to_ground_truth({"img_0000.jpg": np.zeros(3), "other.jpg": np.ones(3)}, gt)


def test_visibility_drops_the_hidden_underside_but_keeps_most_of_the_bust(bust_truth):
    gt, region, visible = bust_truth
    share = visible.visible / visible.sampled
    assert 0.6 < share < 0.99  # the base standing on the plate is never seen
    # no visible sample lies on the bottom face (z≈0) of the bust
    assert visible.points[:, 2].min() >= region.lo[2]


def test_ground_truth_against_itself_scores_one(metrics, bust_truth):
    gt, region, visible = bust_truth
    score = metrics.score_surface(gt.vertices, gt.faces, gt, visible, region, samples=60_000)
    for s in score.thresholds:
        assert s.accuracy > 0.999 and s.completeness > 0.999 and s.fscore > 0.999
    assert score.accuracy_median_m < 1e-6


def test_surface_offset_by_two_tau_scores_low(metrics, bust_truth):
    gt, region, visible = bust_truth
    tau = 0.005 * gt.diagonal
    mesh = trimesh.Trimesh(gt.vertices, gt.faces, process=False)
    inflated = gt.vertices + 2 * tau * mesh.vertex_normals  # every point 2τ away from the truth
    score = metrics.score_surface(inflated, gt.faces, gt, visible, region, samples=60_000)
    assert score.at(0.005).fscore < 0.1
    assert score.accuracy_median_m == pytest.approx(2 * tau, rel=0.1)
    shifted = gt.vertices + 2 * tau * np.array([1.0, 1.0, 1.0]) / np.sqrt(3)  # rigid shift: only some points far
    score = metrics.score_surface(shifted, gt.faces, gt, visible, region, samples=60_000)
    assert score.at(0.005).fscore < 0.75


def test_point_cloud_reconstruction_is_measured_by_nearest_points(metrics, bust_truth):
    gt, region, visible = bust_truth
    cloud = metrics.sample_surface(gt.vertices, gt.faces, 150_000, seed=9)
    score = metrics.score_surface(cloud, None, gt, visible, region)
    assert score.at(0.005).fscore > 0.99


def test_random_similarity_of_cameras_and_mesh_is_undone(metrics, bust_gt_dir, bust_truth, tmp_path):
    import pycolmap

    sim = _random_similarity(metrics, 7)
    rec = pycolmap.Reconstruction(str(bust_gt_dir / "colmap"))
    rec.transform(pycolmap.Sim3d(sim.scale, pycolmap.Rotation3d(sim.R), sim.t))
    sparse = tmp_path / "sparse"
    sparse.mkdir()
    rec.write_binary(str(sparse))
    gt = bust_truth[0]
    mesh_path = tmp_path / "model.ply"
    trimesh.Trimesh(sim.apply(gt.vertices), gt.faces, process=False).export(mesh_path)

    score = metrics.evaluate(mesh_path, sparse, bust_gt_dir, samples=60_000, truth=bust_truth)

    expected = np.linalg.inv(sim.matrix())
    np.testing.assert_allclose(np.array(score.alignment["matrix"]), expected, atol=1e-6 * np.abs(expected).max())
    assert score.alignment["scale"] == pytest.approx(1.0 / sim.scale, rel=1e-6)
    assert score.alignment["cameras_inliers"] == 48 and score.alignment["outliers"] == []
    assert score.alignment["rms_residual_m"] < 1e-7
    assert score.at(0.005).fscore > 0.99


def test_half_an_object_is_half_complete_and_the_missing_half_is_written_out(metrics, bust_truth, tmp_path):
    gt, region, visible = bust_truth
    centres = gt.vertices[gt.faces].mean(axis=1)
    half = gt.faces[centres[:, 0] < 0]
    score = metrics.score_surface(gt.vertices, half, gt, visible, region, samples=60_000, debug_dir=tmp_path)
    assert score.at(0.005).accuracy > 0.999
    assert 0.4 < score.at(0.005).completeness < 0.6
    missed = trimesh.load(tmp_path / "missed_ground_truth.ply")
    assert len(missed.vertices) > 0.3 * len(visible.points)
    assert np.asarray(missed.vertices)[:, 0].min() > -0.002  # what is missing is the x > 0 half
    assert not (tmp_path / "inaccurate_reconstruction.ply").exists()


def test_plate_leftovers_count_as_stray_area(metrics, bust_truth):
    """The crop region hides what lies at the plate's height; the stray area does not: a ring of plate around
    the base shows up as its share of the surface."""
    gt = bust_truth[0]
    assert metrics.stray_fraction(gt.vertices, gt.faces, gt, samples=60_000) < 0.001
    ring = trimesh.creation.annulus(r_min=0.045, r_max=0.055, height=1e-4, sections=64)
    ring.apply_translation([0.0, 0.0, gt.plate_top_z + 5e-4])
    both = trimesh.util.concatenate([trimesh.Trimesh(gt.vertices, gt.faces, process=False), ring])
    share = ring.area / both.area
    assert metrics.stray_fraction(both.vertices, both.faces, gt, samples=60_000) == pytest.approx(share, abs=0.01)


def test_a_flipped_sessions_cameras_see_the_underside_past_the_first_plate(metrics, bust_truth):
    """With a second session (the object turned over), its cameras see the underside; only that session's plate
    occludes them, and the underside counts in the foot band below the crop floor."""
    import dataclasses

    gt, region, _ = bust_truth
    height = float(gt.bbox_max[2] - gt.plate_top_z)
    flip = np.diag([1.0, -1.0, -1.0, 1.0])
    flip[2, 3] = height  # object → world of session B: upside down, its top on the plate
    cameras, sessions = dict(gt.cameras), {}
    for name, cam in gt.cameras.items():
        b = "B_" + name
        cameras[b] = dataclasses.replace(cam, name=b, R=cam.R @ flip[:3, :3], t=cam.R @ flip[:3, 3] + cam.t)
        sessions[name], sessions[b] = "A", "B"
    inv = np.linalg.inv(flip)
    plates = {"A": (gt.plate_vertices, gt.plate_faces),
              "B": (gt.plate_vertices @ inv[:3, :3].T + inv[:3, 3], gt.plate_faces)}
    two = dataclasses.replace(gt, cameras=cameras, camera_sessions=sessions, session_plates=plates)
    r, a = 0.01 * np.sqrt(np.linspace(0.05, 1, 200)), np.linspace(0, 40 * np.pi, 200)
    bottom = np.stack([r * np.cos(a), r * np.sin(a), np.full(200, gt.plate_top_z + 1e-5)], 1)
    assert not metrics.visible_mask(bottom, gt).any()  # one session: the underside stands on the plate
    assert metrics.visible_mask(bottom, two).mean() > 0.9
    # every B camera taken as blocked by session A's plate (no session information) would hide it again
    blind = dataclasses.replace(two, camera_sessions={}, session_plates={})
    assert not metrics.visible_mask(bottom, blind).any()
