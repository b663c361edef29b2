"""The whole reconstruction on one screen: photos → masks → cameras → depth → surface → texture → files.

Each stage reads the previous stage's typed result, works in its own folder of the work dir and is skipped when
that folder already holds its result for the same settings (so a crashed or cancelled job resumes where it
stopped).  Overall progress is the stage's weight times its own fraction.  Any failure becomes one sentence a
person can act on: `UserInputError` for problems with the photos, `EngineError` for ours, `Cancelled` on request.
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import checks
from . import dense as dense_stage
from . import export as export_stage
from . import ingest as ingest_stage
from . import masks as masks_stage
from . import mesh as mesh_stage
from . import orient
from . import sparse as sparse_stage
from . import texture as texture_stage
from .context import StageContext, read_json, write_json
from .errors import Cancelled, EngineError, UserInputError
from .presets import get_preset
from .report import PeakMemory, StageTiming, Timings, build_report

log = logging.getLogger(__name__)

# share of the total time each stage takes (measured on 48 × 1280×960 photos, preset standard, 2 cores)
STAGE_WEIGHTS: dict[str, float] = {
    "ingest": 0.02,
    "masks": 0.02,
    "sparse": 0.33,
    "dense": 0.33,
    "mesh": 0.10,
    "texture": 0.15,
    "export": 0.05,
}
STAGES = list(STAGE_WEIGHTS)
STAGE_TITLES = {
    "ingest": "Reading photos",
    "masks": "Masking static background",
    "sparse": "Recovering camera positions",
    "dense": "Computing depth maps",
    "mesh": "Building the surface",
    "texture": "Baking the texture",
    "export": "Writing the model",
}

ProgressFn = Callable[[str, float, str], None]


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


MASK_MODES = ("auto", "off", "user")
EXPORT_FORMATS = ("glb", "obj", "ply", "stl", "usdz")  # formats the export stage can write (besides report, preview, sparse)


@dataclass
class ReconstructionOptions:
    quality: str = "standard"  # preview | standard | high
    max_image_size: int | None = None  # override of the preset's working size (px, long side)
    masks: str = "auto"  # auto: detect a static rig background | off: use every pixel | user: the user's masks
    masks_dir: Path | None = None  # user masks: NAME.png per photo, white = object (implies masks="user")
    texture_size: int | None = None  # side of the texture atlas (px); None = the preset's
    target_faces: int | None = None  # triangle budget of the mesh; None = the preset's
    formats: tuple[str, ...] | None = None  # subset of EXPORT_FORMATS to write; None = all
    work_dir: Path | None = None  # intermediate files; default OUT/.work, removed after success
    keep_work_dir: bool = False
    num_threads: int = field(default_factory=_default_threads)

    @property
    def detect_static_background(self) -> bool:
        return self.masks == "auto"

    def validate(self) -> None:
        """Turn impossible option values into one sentence each (before any work starts)."""
        if self.masks_dir is not None:
            self.masks = "user"
        if self.masks not in MASK_MODES:
            raise UserInputError(f"masks must be one of {', '.join(MASK_MODES)} (got {self.masks!r}).")
        if self.max_image_size is not None and not 256 <= self.max_image_size <= 10000:
            raise UserInputError("--max-image-size must be between 256 and 10000 pixels.")
        if self.texture_size is not None and not 256 <= self.texture_size <= 16384:
            raise UserInputError("--texture-size must be between 256 and 16384 pixels.")
        if self.target_faces is not None and not 1000 <= self.target_faces <= 5_000_000:
            raise UserInputError("--target-faces must be between 1,000 and 5,000,000 triangles.")
        if self.formats is not None:
            unknown = [f for f in self.formats if f not in EXPORT_FORMATS]
            if unknown or not self.formats:
                raise UserInputError(f"formats must be a non-empty list of {', '.join(EXPORT_FORMATS)} "
                                     f"(got {', '.join(self.formats) or 'nothing'}).")


def masks_choice(value: str | None) -> tuple[str, Path | None]:
    """A `--masks` value: a mode (auto/off/user) or a folder of masks (→ user masks from that folder)."""
    if value is None or value in MASK_MODES:
        return value or "auto", None
    return "user", Path(value)


def parse_formats(text: str | None) -> tuple[str, ...] | None:
    """`"glb, obj"` → ("glb", "obj"); empty or None → None (all formats)."""
    if not text:
        return None
    return tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))


@dataclass
class ReconstructionResult:
    outputs: dict[str, str]
    report: dict
    report_path: Path


def overall_progress(stage: str, fraction: float) -> float:
    done = sum(STAGE_WEIGHTS[s] for s in STAGES[: STAGES.index(stage)])
    return min(1.0, done + STAGE_WEIGHTS[stage] * fraction)


def reconstruct(input_path: str | Path, out_dir: str | Path, options: ReconstructionOptions | None = None,
                progress: ProgressFn | None = None, cancel: threading.Event | None = None) -> ReconstructionResult:
    """Run every stage; return the output paths and the report. Raises UserInputError / EngineError / Cancelled."""
    options = options or ReconstructionOptions()
    options.validate()
    preset = get_preset(options.quality).with_overrides(max_image_size=options.max_image_size,
                                                        texture_size=options.texture_size,
                                                        target_faces=options.target_faces)
    input_path, out_dir = Path(input_path), Path(out_dir)
    work_dir = Path(options.work_dir) if options.work_dir else out_dir / ".work"
    work_dir.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    cancel = cancel or threading.Event()
    progress = _monotonic(progress or (lambda stage, fraction, message: None))
    timings = Timings()
    _quiet_libraries(out_dir / "logs")

    def ctx(stage: str) -> StageContext:
        return StageContext(stage=stage, work_dir=work_dir / stage, preset=preset, num_threads=options.num_threads,
                            progress=progress, cancel=cancel)

    def stage(name: str, fn, *args, **kwargs):
        if cancel.is_set():
            raise Cancelled(f"cancelled before {name}")
        progress(name, 0.0, STAGE_TITLES[name])
        memory = PeakMemory()
        memory.start()
        t0, c0 = time.perf_counter(), time.process_time()
        resumed = (work_dir / name / "done.json").is_file()
        try:
            result = fn(*args, **kwargs)
        except (UserInputError, Cancelled):
            raise
        except EngineError:
            _log_failure(work_dir, name)
            raise
        except MemoryError as exc:
            _log_failure(work_dir, name)
            raise EngineError(f"The machine ran out of memory while {STAGE_TITLES[name].lower()}; try "
                              f"--quality preview or a smaller --max-image-size.") from exc
        except Exception as exc:
            _log_failure(work_dir, name)
            raise EngineError(f"{STAGE_TITLES[name]} failed unexpectedly ({type(exc).__name__}: {exc}).") from exc
        finally:
            peak = memory.stop()
        timings.stages[name] = StageTiming(time.perf_counter() - t0, peak, resumed, time.process_time() - c0)
        progress(name, 1.0, "done")
        return result

    ingest = stage("ingest", ingest_stage.run, input_path, ctx("ingest"))
    masks = stage("masks", masks_stage.run, ingest, ctx("masks"), options.masks_dir, options.masks)
    sparse = stage("sparse", sparse_stage.run, ingest, masks, ctx("sparse"))
    checks.check_placement(len(ingest.views), len(sparse.registered))
    masks = masks_stage.verify(masks, sparse, ctx("masks"))
    orientation = _orientation(sparse, work_dir)
    warnings = checks.collect(ingest=ingest, masks=masks, sparse=sparse, orientation=orientation)
    dense = stage("dense", dense_stage.run, ingest, masks, sparse, ctx("dense"), orientation)
    mesh = stage("mesh", mesh_stage.run, dense, orientation, ctx("mesh"), sparse, ingest.images_dir, masks)
    texture = stage("texture", texture_stage.run, mesh, sparse, ingest, ctx("texture"))
    exported = stage("export", export_stage.run, texture, dense, sparse, orientation, out_dir, ctx("export"),
                     options.formats or EXPORT_FORMATS)
    outputs = dict(exported.outputs)
    report_path = out_dir / "report.json"
    outputs["report"] = str(report_path)
    report = build_report(preset=preset, options=options, ingest=ingest, masks=masks, sparse=sparse, dense=dense,
                          mesh=mesh, texture=texture, orientation=orientation, timings=timings, outputs=outputs)
    report["warnings"] = warnings
    report["peak_rss_mb_process"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    write_json(report_path, report)
    if not options.keep_work_dir and options.work_dir is None:
        shutil.rmtree(work_dir, ignore_errors=True)
    return ReconstructionResult(outputs, report, report_path)


def _monotonic(progress: ProgressFn) -> ProgressFn:
    """Progress never goes backwards within a stage (a fallback step may re-estimate), and is thread-safe."""
    last: dict[str, float] = {}
    lock = threading.Lock()

    def report(stage: str, fraction: float, message: str) -> None:
        with lock:
            fraction = max(last.get(stage, 0.0), min(1.0, max(0.0, fraction)))
            last[stage] = fraction
            progress(stage, fraction, message)

    return report


def _orientation(sparse: sparse_stage.SparseResult, work_dir: Path) -> orient.Orientation:
    path = work_dir / "orientation.json"
    if path.is_file():
        saved = read_json(path)
        if saved.get("registered") == sparse.registered:
            return orient.Orientation.from_dict(saved["orientation"])
    rec = sparse.load()
    cams = sparse_stage.camera_arrays(rec)
    centers = np.array([c["center"] for c in cams.values()])
    dirs = np.array([c["R"][2] for c in cams.values()])  # optical axis in world
    ups = np.array([-c["R"][1] for c in cams.values()])  # image "up" in world
    known = (sparse.extra.get("sessions") or {}).get("groups") or []
    first = min(known[0]) if len(known) > 1 else sorted(cams)[0]  # the first session's first photo
    first = first if first in cams else sorted(cams)[0]
    order = [first] + [n for n in cams if n != first]
    idx = {n: i for i, n in enumerate(cams)}
    centers, dirs, ups = centers[[idx[n] for n in order]], dirs[[idx[n] for n in order]], ups[[idx[n] for n in order]]
    points = np.array([p.xyz for p in rec.points3D.values()]) if rec.num_points3D() else None
    result = orient.estimate_sessions(order, centers, dirs, ups, points, known)
    write_json(path, {"registered": sparse.registered, "orientation": result.to_dict()})
    return result


def _log_failure(work_dir: Path, stage: str) -> None:
    try:
        with open(work_dir / "engine-errors.log", "a") as fh:
            fh.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} stage {stage}\n{traceback.format_exc()}\n")
    except OSError:
        pass
    log.exception("stage %s failed", stage)


def _quiet_libraries(log_dir: Path) -> None:
    """COLMAP and Open3D log a lot: their lines go to log files in `log_dir` (shipped with the result), never to
    the terminal; only our own progress, warnings and the final sentence reach the person."""
    try:
        import pycolmap

        log_dir.mkdir(parents=True, exist_ok=True)
        pycolmap.logging.logtostderr = False
        pycolmap.logging.alsologtostderr = False
        pycolmap.logging.stderrthreshold = 3  # FATAL only: COLMAP's "E… Global mapping failed" is not for people
        pycolmap.logging.minloglevel = 0
        pycolmap.logging.log_dir = str(log_dir)
        pycolmap.logging.set_log_destination(pycolmap.logging.INFO, str(log_dir / "colmap.info."))
        pycolmap.logging.set_log_destination(pycolmap.logging.WARNING, str(log_dir / "colmap.warning."))
        pycolmap.logging.set_log_destination(pycolmap.logging.ERROR, str(log_dir / "colmap.error."))
    except Exception:
        pass
    try:
        import open3d as o3d

        o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
    except Exception:
        pass
