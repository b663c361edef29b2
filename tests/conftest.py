"""Fixtures shared by every test package: where the photo sets live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATASETS_DIR = Path(os.environ.get("OPENSCAN_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))


def dataset_images(name: str) -> Path:
    """The `images/` folder of a photo set in ../shared/datasets, or skip the test when it is absent."""
    images = DATASETS_DIR / name / "images"
    if not images.is_dir():
        pytest.skip(f"photo set {name!r} not found under {DATASETS_DIR}")
    return images


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    if not DATASETS_DIR.is_dir():
        pytest.skip(f"no photo sets at {DATASETS_DIR}")
    return DATASETS_DIR


@pytest.fixture(scope="session")
def photo_set():
    """Factory fixture: `photo_set("kermit")` → Path of its images folder (skips when absent)."""
    return dataset_images
