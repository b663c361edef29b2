"""The crash test, small (the full one is `bench/crash.py`): 2 API replicas behind a real nginx, 3 worker
processes, PostgreSQL, S3 (moto), real reconstructions of `kermit` at preset preview; `kill -9` of a random
replica or worker every few seconds while the projects upload and process. Every project ends `done` exactly
once, no orphaned files, ledger balanced, projects lost = 0."""

from __future__ import annotations

import pytest


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_kill9_replicas_and_workers_loses_nothing(tmp_path, require_stack, crash_module, photo_set):
    photo_set("kermit")  # skips when the photo set is absent
    r = crash_module.run_crash(tmp_path / "stack", projects=3, kill_every=6.0, max_kills=8, timeout=1500,
                               max_image_size=320, seed=5)
    assert r["kills"] >= 4  # the chaos really happened
    assert r["problems"] == []
    assert r["lost"] == 0 and r["done"] == 3 and r["meshes_ok"] == 3
    assert r["orphan_objects"] == [] and r["orphan_scratch"] == [] and r["multipart_left_after_sweep"] == 0
