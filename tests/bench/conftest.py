"""Fixtures for the benchmark tests: the bench modules (a script folder, not a package) and the synth_bust
ground truth, loaded once per session because visibility ray casting takes a few seconds."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


def _load_bench_module(name: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses need the module registered while it executes
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def metrics():
    """The module `bench/metrics.py`."""
    return _load_bench_module("metrics")


@pytest.fixture(scope="session")
def bench_module():
    """Factory: `bench_module("reconstruct")` → the module `bench/reconstruct.py`."""
    return _load_bench_module


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
