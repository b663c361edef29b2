"""Fixtures for the engine tests: stage contexts and a kermit sparse model shared by the stage tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from openscancloud.engine.context import StageContext
from openscancloud.engine.presets import PRESETS


@pytest.fixture(scope="session")
def tiny_preset():
    """Preview, shrunk further so stage tests on real photos take seconds."""
    return dataclasses.replace(PRESETS["preview"], depth_pixels=8_000, depth_max_size=240, poisson_depth=7,
                               target_faces=8000, texture_size=512)


@pytest.fixture(scope="session")
def make_ctx(tiny_preset):
    def make(stage: str, root: Path, preset=None, **kwargs) -> StageContext:
        return StageContext(stage=stage, work_dir=Path(root) / stage, preset=preset or tiny_preset, num_threads=2,
                            **kwargs)

    return make


@pytest.fixture(scope="session")
def kermit_sparse(photo_set, tmp_path_factory, make_ctx):
    """(ingest, masks, sparse, work root) for kermit: computed once per session (~5 s)."""
    from openscancloud.engine import ingest, masks, sparse

    images = photo_set("kermit")
    root = tmp_path_factory.mktemp("kermit_work")
    ing = ingest.run(images, make_ctx("ingest", root))
    msk = masks.run(ing, make_ctx("masks", root))
    sp = sparse.run(ing, msk, make_ctx("sparse", root))
    return ing, msk, sp, root
