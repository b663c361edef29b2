"""The held-out-view texture metric: a perfect texture scores at its maximum, a blurred or seamy one lower."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

W, H = 320, 240


@pytest.fixture(scope="module")
def tm(bench_module):
    return bench_module("texture_metric")


def textured_square(split_charts: bool = False):
    """A square facing the camera, as two triangles; with `split_charts` each triangle has its own atlas half."""
    V = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], float)
    F = np.array([[0, 2, 1], [0, 3, 2]])
    UV = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    if not split_charts:
        return V, F, UV
    V2 = np.concatenate([V[F[0]], V[F[1]]])
    F2 = np.array([[0, 1, 2], [3, 4, 5]])
    uv0 = UV[F[0]] * [0.45, 1]  # left half of the atlas
    uv1 = UV[F[1]] * [0.45, 1] + [0.55, 0]  # right half
    return V2, F2, np.concatenate([uv0, uv1])


def look(tm):
    K = np.array([[300.0, 0, W / 2], [0, 300.0, H / 2], [0, 0, 1]])
    return K, np.zeros(5), np.eye(3), np.array([0.0, 0.0, 3.0])


def detailed_texture(size: int = 512) -> np.ndarray:
    rng = np.random.default_rng(1)
    small = rng.integers(30, 225, (size // 4, size // 4, 3)).astype(np.uint8)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


def test_a_perfect_texture_scores_at_the_maximum_and_a_blurred_one_lower(tm):
    V, F, UV = textured_square()
    tex = detailed_texture()
    K, dist, R, t = look(tm)
    photo, hit = tm.render_from_camera(V, F, UV, tex, K, R, t, W, H)
    assert hit.mean() > 0.3
    perfect, _, _ = tm.score_view(V, F, UV, tex, photo, K, dist, R, t, "perfect", 4000)
    assert perfect.psnr_db == tm.PSNR_CAP_DB
    assert perfect.ssim > 0.999
    assert abs(perfect.sharpness_ratio - 1.0) < 1e-6
    blurred, _, _ = tm.score_view(V, F, UV, cv2.GaussianBlur(tex, (0, 0), 4.0), photo, K, dist, R, t, "blurred", 4000)
    assert blurred.psnr_db < 35
    assert blurred.ssim < 0.9
    assert blurred.sharpness_ratio < 0.6
    darker, _, _ = tm.score_view(V, F, UV, (tex * 0.8).astype(np.uint8), photo, K, dist, R, t, "darker", 4000)
    assert darker.psnr_db < perfect.psnr_db and darker.ssim > blurred.ssim


def test_seam_score_sees_a_colour_jump_across_a_chart_border(tm):
    V, F, UV = textured_square(split_charts=True)
    even = np.full((256, 256, 3), 120, np.uint8)
    assert tm.seam_score(V, F, UV, even)[0] < 0.5
    step = even.copy()
    step[:, 128:] = 160  # the right chart is 40 levels brighter
    assert tm.seam_score(V, F, UV, step)[0] == pytest.approx(40, abs=2)
    # a texture whose own gradient is steep but continuous across the border: raw jump yes, seam no
    # (colour depends on v only, and both charts map the shared edge to the same v range)
    stripes = 128 + 100 * np.sin(2 * np.pi * np.arange(256) / 12)
    ramp = np.repeat(stripes[:, None, None], 256, 1).repeat(3, 2).astype(np.uint8)
    score, jump = tm.seam_score(V, F, UV, ramp)
    assert score < 0.5 * jump
    V1, F1, UV1 = textured_square()  # one chart: no border, no seam
    assert tm.seam_score(V1, F1, UV1, step) == (0.0, 0.0)


def test_holdout_leaves_out_every_eighth_view_but_at_least_two(tm):
    assert tm.holdout_views([f"{i:03d}.jpg" for i in range(48)]) == [f"{i:03d}.jpg" for i in range(4, 48, 8)]
    assert len(tm.holdout_views([f"{i:02d}.jpg" for i in range(11)])) >= 2


def test_exposure_matching_forgives_a_global_gain_but_not_blur(tm):
    V, F, UV = textured_square()
    tex = detailed_texture()
    K, dist, R, t = look(tm)
    photo, _ = tm.render_from_camera(V, F, UV, tex, K, R, t, W, H)
    darker, _, _ = tm.score_view(V, F, UV, (tex * 0.7).astype(np.uint8), photo, K, dist, R, t, "darker", 4000)
    assert darker.psnr_db < 25 and darker.psnr_matched_db > 40
    blurred, _, _ = tm.score_view(V, F, UV, cv2.GaussianBlur(tex, (0, 0), 4.0), photo, K, dist, R, t, "b", 4000)
    assert blurred.psnr_matched_db < 36
