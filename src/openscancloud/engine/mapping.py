"""COLMAP's two mappers behind one call each, for the whole set (`sparse`) and for one session (`sessions`).

Why a module of its own: both stages map incrementally first and fall back to the global mapper when that places
too few photos; `sparse` imports `sessions`, so the shared calls live below both.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pycolmap

log = logging.getLogger(__name__)

FALLBACK_SHARE = 0.9  # the global mapper is tried when the incremental one placed fewer than this share of photos


def empty_dir(path: Path) -> Path:
    """`path` as a new, empty folder (a mapper's output from an earlier run is removed)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def largest(models: dict[int, pycolmap.Reconstruction]) -> pycolmap.Reconstruction | None:
    """The model that placed the most photos (None when there is none)."""
    return max(models.values(), key=lambda r: r.num_reg_images(), default=None)


def needs_fallback(model: pycolmap.Reconstruction | None, photos: int) -> bool:
    return model is None or model.num_reg_images() < FALLBACK_SHARE * photos


def map_incrementally(database: Path, images_dir: Path, out: Path, threads: int, names: list[str] | None = None,
                      multiple_models: bool = True, next_image: Callable[[], None] | None = None,
                      cancellation_token=None) -> dict[int, pycolmap.Reconstruction]:
    """COLMAP's incremental mapper on the photos `names` (all when None), into the emptied folder `out`."""
    empty_dir(out)
    options = pycolmap.IncrementalPipelineOptions()
    options.num_threads = max(1, threads)
    options.multiple_models = multiple_models
    if names is not None:
        options.image_names = names
    extra = {}
    if next_image is not None:
        extra["next_image_callback"] = next_image
    if cancellation_token is not None:
        extra["cancellation_token"] = cancellation_token
    return pycolmap.incremental_mapping(database, images_dir, out, options, **extra)


def map_globally(database: Path, images_dir: Path, out: Path, threads: int,
                 names: list[str] | None = None) -> dict[int, pycolmap.Reconstruction]:
    """COLMAP's global mapper on the photos `names` (all when None); {} when it fails: it is a fallback, and its
    failure must not hide the incremental result."""
    empty_dir(out)
    options = pycolmap.GlobalPipelineOptions()
    options.num_threads = max(1, threads)
    if names is not None:
        options.image_names = names
    try:
        return pycolmap.global_mapping(database, images_dir, out, options)
    except Exception as exc:
        log.warning("global mapping failed: %s", exc)
        return {}
