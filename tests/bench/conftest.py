"""Fixtures for the benchmark tests: the synth_bust ground truth, loaded once per session because visibility ray
casting takes a few seconds (the bench modules themselves: `metrics` and `bench_module` in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

@pytest.fixture(scope="session")
def bust_gt_dir(datasets_dir, service_missing) -> Path:
    gt = datasets_dir / "synth_bust" / "ground_truth"
    if not (gt / "mesh.ply").is_file():
        service_missing(f"synth_bust ground truth not found under {datasets_dir}")
    return gt


@pytest.fixture(scope="session")
def bust_truth(metrics, bust_gt_dir):
    """(GroundTruth, CropRegion, VisibleSurface) of synth_bust with 60k surface samples (enough for ±0.5 %)."""
    gt = metrics.load_ground_truth(bust_gt_dir)
    region = metrics.object_region(gt)
    return gt, region, metrics.visible_ground_truth(gt, region, samples=60_000)
