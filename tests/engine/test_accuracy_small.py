"""The engine against ground truth, small enough for every `make test`: a 30-view synthetic turntable set
(640×480, rendered into a temporary folder by the shared renderer) reconstructed at preset preview, then scored
with the benchmark's own metric (bench/metrics.py: similarity alignment on the cameras, visibility-aware
accuracy/completeness/F-score). The long versions (full-size sets, standard preset) run in `make test-all` and
in bench/reconstruct.py.

Measured when this test was written (2-core machine under load): every view registered, camera residual
0.14 % of the object diagonal, F@0.5 % = 0.96, F@1 % = 0.98. The bounds below leave room for platform noise
but fail on any real regression (a wrong scale, a mesh off the surface, a missing side)."""

from __future__ import annotations

from pathlib import Path

import pytest

from openscancloud.engine import ReconstructionOptions, reconstruct

VIEWS = 30
RENDER_ARGS = ("--shape", "bust", "--seed", "3", "--elevations", "15,35,55", "--azimuths", "10",
               "--width", "640", "--height", "480", "--ssaa", "1", "--voxel", "0.0008", "--max-faces", "100000",
               "--workers", "2")


@pytest.fixture(scope="session")
def small_synthetic_set(render_synthetic, tmp_path_factory) -> Path:
    return render_synthetic(tmp_path_factory.mktemp("synth") / "bust_small", *RENDER_ARGS)


def test_preview_matches_ground_truth(small_synthetic_set, tmp_path, metrics):
    out = tmp_path / "out"
    result = reconstruct(small_synthetic_set / "images", out, ReconstructionOptions(quality="preview"))
    report = result.report
    assert report["images"]["registered"] == VIEWS
    assert report["masks"]["mode"] == "static-background"  # the plain backdrop is the same in every view
    assert report["transform"]["turntable"] is True

    score = metrics.evaluate(out / "model.obj", out / "sparse", small_synthetic_set / "ground_truth",
                                samples=60_000)
    alignment = score.alignment
    assert alignment["cameras_inliers"] == VIEWS and alignment["outliers"] == []
    assert alignment["rms_residual_of_diagonal"] < 0.005  # cameras placed within 0.5 % of the object size
    at_half, at_one = score.at(0.005), score.at(0.01)
    assert at_half.fscore >= 0.85, score.to_dict()
    assert at_one.fscore >= 0.92, score.to_dict()
    assert at_one.accuracy >= 0.95 and at_one.completeness >= 0.90, score.to_dict()
