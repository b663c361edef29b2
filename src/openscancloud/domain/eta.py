"""How long a job will still take, from what this server measured on its own recent jobs.

Each finished job's report carries the engine's seconds per stage and the number of photos used. For every
stage the estimate is the median over recent jobs of the same quality of *seconds per photo*, times this job's
photos; the time outside the engine (download, zip, upload) is the median of what is left of each job's wall
time. A running job's remaining time is what is left of its current stage (measured from when the stage
started) plus the stages after it. With no finished job of that quality there is no basis, and the answer says
so instead of inventing a number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from statistics import median
from typing import Any, Iterable

# the engine's stage order (the worker adds "starting"/"download" before and "upload" after)
ENGINE_STAGES = ("ingest", "masks", "sparse", "dense", "mesh", "texture", "export")
BEFORE_ENGINE = ("starting", "download")


@dataclass(frozen=True)
class StageModel:
    """Per-photo stage costs measured on `jobs` recent jobs of one quality."""

    quality: str
    jobs: int
    per_photo: dict[str, float]  # stage → median seconds per photo
    overhead: float  # median seconds outside the engine per job

    def stage_seconds(self, stage: str, photos: int) -> float:
        return self.per_photo.get(stage, 0.0) * max(1, photos)

    def total_seconds(self, photos: int) -> float:
        return sum(self.stage_seconds(s, photos) for s in ENGINE_STAGES) + self.overhead

    def remaining_seconds(self, stage: str | None, seconds_in_stage: float, photos: int) -> float:
        """Seconds left for a job that has spent `seconds_in_stage` in `stage`."""
        if stage in ENGINE_STAGES:
            index = ENGINE_STAGES.index(stage)
            current = self.stage_seconds(stage, photos)
            # a stage running longer than usual is not "0 s left": assume a tenth of its usual time remains
            left = max(current - seconds_in_stage, 0.1 * current)
            later = sum(self.stage_seconds(s, photos) for s in ENGINE_STAGES[index + 1:])
            return left + later + self.overhead / 2
        if stage == "upload":
            return self.overhead / 2
        return self.total_seconds(photos)  # starting / downloading / unknown: the whole run is ahead

    @property
    def basis(self) -> str:
        return f"median of {self.jobs} recent {self.quality} job{'s' if self.jobs != 1 else ''} on this server"


def build_model(quality: str, finished: Iterable[tuple[Any, float]]) -> StageModel | None:
    """`finished`: (job report JSON text, wall seconds) of recent successful jobs of this quality."""
    per_stage: dict[str, list[float]] = {s: [] for s in ENGINE_STAGES}
    overheads: list[float] = []
    count = 0
    for report_text, wall in finished:
        engine = _engine_report(report_text)
        if engine is None:
            continue
        photos = int((engine.get("images") or {}).get("used") or 0)
        timings = engine.get("timings") or {}
        if photos <= 0 or not timings:
            continue
        count += 1
        engine_total = 0.0
        for stage in ENGINE_STAGES:
            seconds = float((timings.get(stage) or {}).get("seconds") or 0.0)
            per_stage[stage].append(seconds / photos)
            engine_total += seconds
        overheads.append(max(wall - engine_total, 0.0))
    if count == 0:
        return None
    return StageModel(quality=quality, jobs=count,
                      per_photo={s: median(v) for s, v in per_stage.items() if v},
                      overhead=median(overheads))


def _engine_report(text: Any) -> dict[str, Any] | None:
    try:
        report = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return None
    if not isinstance(report, dict):
        return None
    engine = report.get("engine")
    return engine if isinstance(engine, dict) else None


ETA_UNKNOWN: tuple[float | None, str | None] = (None, None)


@dataclass(frozen=True)
class EtaInputs:
    """What an estimate rests on besides the job itself: the measured model of its quality (None before any
    job of that quality finished here), processing nodes online and jobs running now."""

    model: StageModel | None
    workers: int
    busy: int


def estimate(inputs: EtaInputs, job: Any, photos: int, now: Any, ahead: int) -> tuple[float | None, str | None]:
    """(seconds left, what the figure is based on) for a running or queued job; `ahead` = queued jobs before it.
    Pure, so the ORM path and the one-statement polling path give the same figure."""
    model = inputs.model
    if model is None:
        return ETA_UNKNOWN
    if job.status == "running":
        since = job.stage_started_at or job.started_at or now
        return model.remaining_seconds(job.stage, (now - since).total_seconds(), photos), model.basis
    waiting = ahead + inputs.busy
    wait = waiting * model.total_seconds(photos) / inputs.workers if waiting >= inputs.workers else 0.0
    return wait + model.total_seconds(photos), model.basis + " (includes the jobs ahead in the queue)"
