"""The time-left model: per-photo stage medians of finished jobs, never 0 s while running, None without data."""

from __future__ import annotations

import json

from openscancloud.domain.eta import build_model


def report(photos: int, seconds: dict[str, float]) -> str:
    return json.dumps({"engine": {"images": {"used": photos}, "timings": {k: {"seconds": v} for k, v in seconds.items()}}})


STAGES = {"ingest": 2, "masks": 2, "sparse": 20, "dense": 20, "mesh": 6, "texture": 8, "export": 2}


def test_no_finished_job_means_no_estimate():
    assert build_model("standard", []) is None
    assert build_model("standard", [("not json", 10.0), (json.dumps({"engine": {}}), 10.0)]) is None


def test_medians_per_photo_scale_with_the_photo_count():
    half = {k: v / 2 for k, v in STAGES.items()}
    model = build_model("preview", [(report(10, STAGES), 70.0), (report(10, STAGES), 70.0), (report(10, half), 40.0)])
    assert model.jobs == 3 and "median of 3 recent preview jobs" in model.basis
    assert model.stage_seconds("sparse", 10) == 20 and model.stage_seconds("sparse", 20) == 40
    assert model.overhead == 10.0  # wall 70 s − engine 60 s
    assert model.total_seconds(10) == 70.0


def test_remaining_time_follows_the_stage_and_never_reaches_zero():
    model = build_model("standard", [(report(10, STAGES), 60.0)])
    assert model.remaining_seconds("mesh", 0, 10) == 6 + 8 + 2
    assert model.remaining_seconds("mesh", 3, 10) == 3 + 8 + 2
    # the mesh stage ran twice as long as usual: a tenth of it is still counted
    assert model.remaining_seconds("mesh", 12, 10) == 0.6 + 8 + 2
    assert model.remaining_seconds("download", 5, 10) == model.total_seconds(10)
