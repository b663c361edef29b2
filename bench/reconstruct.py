"""Reconstruction benchmark: run the engine on every photo set, time it, measure it against ground truth, and
compare its sparse stage with COLMAP's own command-line tools.

    python bench/reconstruct.py                       # all sets in ../shared/datasets, preset standard
    python bench/reconstruct.py --sets synth_bust --quality preview --repeat 2
    python bench/reconstruct.py --update-docs         # also (re)write the preset's section in docs/benchmarks.md

For each set the engine runs as a child process (``python -m openscancloud.engine IMAGES -o OUT --quality Q
--progress jsonl``), exactly as the server's worker runs it, while the resident memory of its whole process
tree is sampled with psutil. Sets with ``ground_truth/`` are scored with ``bench/metrics.py``. COLMAP's CLI
(feature_extractor + exhaustive_matcher + mapper, CPU) runs on the same images, never at the same time as the
engine. Results go to ``bench/out/results_<preset>.json`` and a rich table; ``docs/img/preview_<set>.png`` gets
each set's ``preview.png``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

import colmap_cli  # noqa: E402  (bench/ is a folder of scripts, not a package)
import metrics  # noqa: E402

DEFAULT_DATASETS = Path(os.environ.get("OPENSCAN_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))
DEFAULT_SETS = ("synth_bust", "synth_rig_static", "kermit", "monstree", "fox")
DOCS_FILE = REPO_ROOT / "docs" / "benchmarks.md"
DOCS_IMG = REPO_ROOT / "docs" / "img"
PREVIEW_MAX_SIDE = 480

console = Console()
if not console.is_terminal:  # piped to a file / CI log: do not squeeze the tables into 80 columns
    console = Console(width=220)


# --------------------------------------------------------------------------------------------------------------
# Running the engine
# --------------------------------------------------------------------------------------------------------------


class RssSampler:
    """Samples the summed RSS of a process and all its descendants every ``interval`` seconds; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid, self.interval = pid, interval
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for proc in procs:
                try:
                    total += proc.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(self.interval)


@dataclass
class EngineRun:
    """One engine run on one set."""

    exit_code: int
    wall_seconds: float
    peak_rss_bytes: int
    out_dir: str
    error: str | None = None
    load_average: tuple[float, float] | None = None  # 1-min load before and after (2 cores: > 2 means contention)
    report: dict = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    images_total: int | None = None
    images_registered: int | None = None


def _engine_command(images: Path, out_dir: Path, work_dir: Path, quality: str) -> list[str]:
    return [sys.executable, "-m", "openscancloud.engine", str(images), "-o", str(out_dir), "--quality", quality,
            "--work-dir", str(work_dir), "--progress", "jsonl"]


def run_engine(images: Path, out_dir: Path, work_dir: Path, quality: str, label: str) -> EngineRun:
    """Run the engine CLI in a child process from scratch (fresh work dir: no resumed stages)."""
    for folder in (out_dir, work_dir):
        if folder.exists():
            shutil.rmtree(folder)
    out_dir.mkdir(parents=True)
    work_dir.mkdir(parents=True)
    cmd = _engine_command(images, out_dir, work_dir, quality)
    error: str | None = None
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    with open(out_dir.parent / f"{out_dir.name}.stderr.log", "w") as stderr_log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr_log, text=True, cwd=REPO_ROOT)
        with RssSampler(proc.pid) as sampler, console.status(f"[bold]{label}[/]: starting") as status:
            assert proc.stdout is not None
            for line in proc.stdout:
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if event.get("event") == "progress":
                    status.update(f"[bold]{label}[/]: {event.get('stage', '?')} "
                                  f"{100 * float(event.get('progress', 0)):.0f}% {event.get('message', '')}"[:150])
                elif event.get("event") == "error":
                    error = str(event.get("message"))
            proc.wait()
    wall = time.perf_counter() - start
    run = EngineRun(exit_code=proc.returncode, wall_seconds=wall, peak_rss_bytes=sampler.peak_bytes,
                    out_dir=str(out_dir), error=error, load_average=(load_before, os.getloadavg()[0]))
    if proc.returncode != 0 and error is None:
        error = f"engine exited with code {proc.returncode} (see {out_dir.name}.stderr.log)"
        run.error = error
    report_path = out_dir / "report.json"
    if report_path.is_file():
        run.report = json.loads(report_path.read_text())
        run.stage_seconds = stage_seconds(run.report)
        run.images_total, run.images_registered = image_counts(run.report)
    if run.images_registered is None and (out_dir / "sparse").is_dir():
        try:
            run.images_registered = len(metrics.sparse_camera_centers(out_dir / "sparse"))
        except metrics.MetricError:
            run.images_registered = 0
    if run.images_total is None:
        run.images_total = sum(1 for p in images.iterdir() if p.suffix.lower() in colmap_cli.IMAGE_SUFFIXES)
    return run


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def stage_seconds(report: dict) -> dict[str, float]:
    """Per-stage wall time from report.json, tolerant of the two obvious layouts: ``{"stages": {"sparse":
    {"seconds": ..}}}`` or ``{"stages": [{"name": "sparse", "seconds": ..}]}`` (also ``time_s`` / ``time``)."""
    stages = report.get("stages") or report.get("timings") or {}
    items = stages.items() if isinstance(stages, dict) else (
        (s.get("name") or s.get("stage"), s) for s in stages if isinstance(s, dict))
    result: dict[str, float] = {}
    for name, info in items:
        if name is None:
            continue
        if isinstance(info, dict):
            seconds = next((_number(info[k]) for k in ("seconds", "time_s", "wall_seconds", "time", "duration_s")
                            if k in info and _number(info[k]) is not None), None)
        else:
            seconds = _number(info)
        if seconds is not None:
            result[str(name)] = seconds
    return result


def image_counts(report: dict) -> tuple[int | None, int | None]:
    images = report.get("images")
    if isinstance(images, dict):
        total, registered = _number(images.get("total")), _number(images.get("registered"))
        return (int(total) if total is not None else None, int(registered) if registered is not None else None)
    total = _number(report.get("images_total"))
    registered = _number(report.get("images_registered"))
    return (int(total) if total is not None else None, int(registered) if registered is not None else None)


def report_peak_bytes(report: dict) -> int | None:
    for key in ("peak_memory_bytes", "peak_rss_bytes"):
        if _number(report.get(key)) is not None:
            return int(report[key])
    for key in ("peak_memory_mb", "peak_rss_mb"):
        if _number(report.get(key)) is not None:
            return int(report[key] * 2**20)
    return None


# --------------------------------------------------------------------------------------------------------------
# One set
# --------------------------------------------------------------------------------------------------------------


@dataclass
class SetResult:
    name: str
    quality: str
    runs: list[EngineRun]
    metrics: dict | None = None  # SurfaceScore.to_dict() of the model mesh (last successful run)
    dense_metrics: dict | None = None  # the same for dense.ply
    metrics_error: str | None = None
    colmap: dict | None = None
    colmap_error: str | None = None
    preview: str | None = None

    @property
    def ok_runs(self) -> list[EngineRun]:
        return [r for r in self.runs if r.exit_code == 0]

    def median(self, getter) -> float | None:
        values = [v for v in (getter(r) for r in self.ok_runs) if v is not None]
        return statistics.median(values) if values else None

    def summary(self) -> dict:
        stages = sorted({s for r in self.ok_runs for s in r.stage_seconds}, key=_stage_order)
        sparse = self.median(lambda r: r.stage_seconds.get("sparse"))
        colmap_total = self.colmap["total_seconds"] if self.colmap else None
        last = self.ok_runs[-1] if self.ok_runs else (self.runs[-1] if self.runs else None)
        return {
            "set": self.name,
            "quality": self.quality,
            "runs": len(self.runs),
            "failed_runs": len(self.runs) - len(self.ok_runs),
            "error": next((r.error for r in self.runs if r.error), None),
            "images_total": last.images_total if last else None,
            "images_registered": last.images_registered if last else None,
            "stage_seconds": {s: self.median(lambda r, s=s: r.stage_seconds.get(s)) for s in stages},
            "total_seconds": self.median(lambda r: r.wall_seconds),
            "peak_rss_bytes": max((r.peak_rss_bytes for r in self.ok_runs), default=None),
            "report_peak_bytes": max((b for b in (report_peak_bytes(r.report) for r in self.ok_runs) if b),
                                     default=None),
            "sparse_seconds": sparse,
            "colmap_sparse_seconds": colmap_total,
            "colmap_over_ours": (colmap_total / sparse) if colmap_total and sparse else None,
        }


STAGE_ORDER = ("ingest", "masks", "sparse", "orient", "dense", "mesh", "texture", "export", "preview")


def _stage_order(name: str) -> tuple[int, str]:
    return (STAGE_ORDER.index(name) if name in STAGE_ORDER else len(STAGE_ORDER), name)


def _model_mesh(out_dir: Path) -> Path | None:
    for name in ("model.obj", "model.glb", "model.ply", "mesh.ply"):
        if (out_dir / name).is_file():
            return out_dir / name
    return None


def bench_set(set_dir: Path, quality: str, repeat: int, out_root: Path, colmap: str, samples: int) -> SetResult:
    """Run the engine ``repeat`` times on one set, score the last good run, time COLMAP's CLI once."""
    name = set_dir.name
    images = set_dir / "images"
    result = SetResult(name=name, quality=quality, runs=[])
    for i in range(repeat):
        label = f"{name} [{quality}] run {i + 1}/{repeat}"
        run = run_engine(images, out_root / f"{name}_{quality}", out_root / "work" / f"{name}_{quality}",
                         quality, label)
        result.runs.append(run)
        state = "ok" if run.exit_code == 0 else f"FAILED: {run.error}"
        console.print(f"{label}: {run.wall_seconds:.1f} s, peak {run.peak_rss_bytes / 2**30:.2f} GiB, {state}")
    good = result.ok_runs
    if good:
        out_dir = Path(good[-1].out_dir)
        preview = out_dir / "preview.png"
        if preview.is_file():
            result.preview = str(copy_preview(preview, name))
        gt_dir = set_dir / "ground_truth"
        if (gt_dir / "mesh.ply").is_file():
            try:
                mesh = _model_mesh(out_dir)
                if mesh is None:
                    raise metrics.MetricError("the engine wrote no model mesh")
                with console.status(f"{name}: scoring {mesh.name} against the ground truth"):
                    debug = out_dir.parent / f"{out_dir.name}_eval"
                    result.metrics = metrics.evaluate(mesh, out_dir / "sparse", gt_dir, samples=samples,
                                                      debug_dir=debug / "mesh").to_dict()
                    if (out_dir / "dense.ply").is_file():
                        result.dense_metrics = metrics.evaluate(out_dir / "dense.ply", out_dir / "sparse", gt_dir,
                                                                samples=samples, debug_dir=debug / "dense").to_dict()
            except (metrics.MetricError, OSError, ValueError) as exc:
                result.metrics_error = str(exc)
    if colmap != "skip":
        result.colmap, result.colmap_error = colmap_timing(images, name, out_root, reuse=colmap in ("reuse", "cached"),
                                                           run=colmap != "cached")
    return result


def colmap_timing(images: Path, name: str, out_root: Path, reuse: bool,
                  run: bool = True) -> tuple[dict | None, str | None]:
    """COLMAP CLI timing of one set: measured now (and stored in ``out_root/colmap_<set>.json``) or, with
    ``reuse``, read from that file when it exists."""
    cache = out_root / f"colmap_{name}.json"
    if reuse and cache.is_file():
        data = json.loads(cache.read_text())
        data["reused_from"] = str(cache)
        return data, None
    if not run:
        return None, f"no stored COLMAP timing ({cache.name}); run with --colmap run"
    try:
        with console.status(f"{name}: COLMAP CLI feature_extractor + exhaustive_matcher + mapper (CPU)"):
            res = colmap_cli.run_colmap_cli(images, out_root / "work" / f"colmap_{name}").to_dict()
        cache.write_text(json.dumps(res, indent=2))
        console.print(f"{name}: COLMAP CLI {res['total_seconds']:.1f} s, "
                      f"{res['images_registered']}/{res['images_total']} registered")
        return res, None
    except (colmap_cli.ColmapUnavailable, RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        return None, str(exc)


def copy_preview(preview: Path, name: str) -> Path:
    """Copy an engine preview into docs/img, shrunk to at most PREVIEW_MAX_SIDE pixels (small enough to commit)."""
    from PIL import Image

    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    target = DOCS_IMG / f"preview_{name}.png"
    with Image.open(preview) as img:
        img.thumbnail((PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE))
        img.save(target, optimize=True)
    return target


# --------------------------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------------------------


def machine_info() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:
        nproc = os.cpu_count() or 0
    return {"nproc": nproc, "cpu": cpu, "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "platform": platform.platform()}


def _fmt(value, spec: str = ".1f", suffix: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{suffix}"


def _score_cells(score: dict | None, fractions: tuple[float, ...]) -> list[str]:
    if not score:
        return ["—"] * (3 * len(fractions))
    cells = []
    for frac in fractions:
        th = next((t for t in score["thresholds"] if abs(t["tau_fraction"] - frac) < 1e-12), None)
        cells += ["—"] * 3 if th is None else [f"{th['accuracy']:.3f}", f"{th['completeness']:.3f}",
                                               f"{th['fscore']:.3f}"]
    return cells


def table_rows(results: list[SetResult]) -> tuple[list[str], list[list[str]], list[str], list[list[str]]]:
    """Two tables (performance, quality) as header + rows of strings, shared by the console and Markdown."""
    stages = sorted({s for r in results for run in r.ok_runs for s in run.stage_seconds}, key=_stage_order)
    perf_head = ["set", "preset", "registered", *[f"{s} s" for s in stages], "total s", "peak RSS GiB",
                 "COLMAP CLI s", "our sparse s", "COLMAP/ours"]
    perf = []
    for r in results:
        s = r.summary()
        reg = (f"{s['images_registered']}/{s['images_total']}" if s["images_registered"] is not None else "—")
        if s["failed_runs"]:
            reg += f" ({s['failed_runs']} failed)"
        colmap_s = _fmt(s["colmap_sparse_seconds"])
        if r.colmap:
            colmap_s += f" ({r.colmap['images_registered']}/{r.colmap['images_total']})"
        perf.append([r.name, r.quality, reg, *[_fmt(s["stage_seconds"].get(st)) for st in stages],
                     _fmt(s["total_seconds"]), _fmt(s["peak_rss_bytes"] and s["peak_rss_bytes"] / 2**30, ".2f"),
                     colmap_s, _fmt(s["sparse_seconds"]), _fmt(s["colmap_over_ours"], ".2f", "×")])
    fr = metrics.DEFAULT_TAU_FRACTIONS
    qual_head = ["set", "preset", "geometry", *[f"{k} @{100 * f:g}%" for f in fr for k in ("acc", "comp", "F")],
                 "median err mm", "align rms mm", "stray area %", "foot comp @0.5%"]
    qual = []
    for r in results:
        for label, score in (("mesh", r.metrics), ("dense cloud", r.dense_metrics)):
            if score is None:
                continue
            align = score.get("alignment") or {}
            qual.append([r.name, r.quality, label, *_score_cells(score, fr),
                         _fmt(score["accuracy_median_m"] * 1e3, ".3f"),
                         _fmt(align.get("rms_residual_m") and align["rms_residual_m"] * 1e3, ".3f"),
                         _fmt(None if score.get("stray_fraction") is None else score["stray_fraction"] * 100,
                              ".2f"),
                         _fmt((score.get("base_band") or {}).get("completeness@0.5%"), ".3f")])
        if r.metrics_error:
            qual.append([r.name, r.quality, f"error: {r.metrics_error}", *["—"] * (3 * len(fr) + 4)])
    return perf_head, perf, qual_head, qual


def print_tables(results: list[SetResult]) -> None:
    perf_head, perf, qual_head, qual = table_rows(results)
    for title, head, rows in (("Time and memory", perf_head, perf), ("Ground-truth surface metrics", qual_head, qual)):
        if not rows:
            continue
        table = Table(title=title, show_lines=False)
        for i, h in enumerate(head):
            table.add_column(h, justify="left" if i < 3 else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    for r in results:
        if r.colmap_error:
            console.print(f"[yellow]{r.name}: COLMAP CLI not measured: {r.colmap_error}[/]")


def _colmap_note(r: SetResult) -> str:
    c = r.colmap or {}
    note = f"{r.name}: {c.get('colmap_version', 'COLMAP')}, " \
           f"{c.get('feature_seconds', 0):.0f} + {c.get('matching_seconds', 0):.0f} + {c.get('mapper_seconds', 0):.0f} s"
    if c.get("load_average_before") is not None:
        note += f", load {c['load_average_before']:.1f}→{c['load_average_after']:.1f}"
    if c.get("reused_from"):
        note += f", measured {c.get('measured_at', 'earlier')} (reused)"
    return note


def _load_range(results: list[SetResult]) -> str:
    loads = [x for r in results for run in r.runs if run.load_average for x in run.load_average]
    return f"{min(loads):.1f}–{max(loads):.1f}" if loads else "unknown"


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_section(results: list[SetResult], command: str, machine: dict, when: str, quality: str) -> str:
    perf_head, perf, qual_head, qual = table_rows(results)
    parts = [
        f"### Preset `{quality}` — {when}",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine['nproc']} cores ({machine['cpu']}), {machine['ram_gib']} GiB RAM, no GPU; "
        f"1-minute load average around the engine runs {_load_range(results)} (above {machine['nproc']} means "
        "other jobs shared the CPU and the times are pessimistic).",
        "",
        markdown_table(perf_head, perf),
        "",
    ]
    colmap_notes = [_colmap_note(r) for r in results if r.colmap]
    if colmap_notes:
        parts += ["COLMAP CLI (feature_extractor + exhaustive_matcher + mapper, CPU, default settings): "
                  + "; ".join(colmap_notes) + ".", ""]
    if qual:
        parts += ["Ground truth (τ = fraction of the ground-truth bounding-box diagonal):", "",
                  markdown_table(qual_head, qual), ""]
    previews = [r for r in results if r.preview]
    if previews:
        parts += [" ".join(f"![{r.name}](img/{Path(r.preview).name})" for r in previews), ""]
    return "\n".join(parts)


def update_docs(section: str, quality: str, docs_file: Path = DOCS_FILE) -> None:
    """Replace (or append) the section of ``docs_file`` between this preset's markers."""
    begin, end = f"<!-- bench:{quality}:begin -->", f"<!-- bench:{quality}:end -->"
    block = f"{begin}\n{section.rstrip()}\n{end}"
    text = docs_file.read_text() if docs_file.is_file() else "# Benchmarks\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    docs_file.parent.mkdir(parents=True, exist_ok=True)
    docs_file.write_text(text)


def results_payload(results: list[SetResult], command: str, machine: dict, when: str, quality: str) -> dict:
    """Everything a run measured, as plain JSON (read back by :func:`load_results`)."""
    return _plain({
        "date": when,
        "command": command,
        "machine": machine,
        "quality": quality,
        "sets": [{**r.summary(), "metrics": r.metrics, "dense_metrics": r.dense_metrics,
                  "metrics_error": r.metrics_error, "colmap": r.colmap, "colmap_error": r.colmap_error,
                  "preview": r.preview, "runs": [asdict(run) for run in r.runs]}
                 for r in results],
    })


def load_results(path: Path) -> tuple[dict, list[SetResult]]:
    """Read back a ``results_<preset>.json`` written by :func:`main` (to re-print it or rewrite the docs)."""
    payload = json.loads(Path(path).read_text())
    run_fields = set(EngineRun.__dataclass_fields__)
    results = [
        SetResult(
            name=s["set"], quality=s["quality"],
            runs=[EngineRun(**{k: v for k, v in run.items() if k in run_fields}) for run in s.get("runs", [])],
            metrics=s.get("metrics"), dense_metrics=s.get("dense_metrics"), metrics_error=s.get("metrics_error"),
            colmap=s.get("colmap"), colmap_error=s.get("colmap_error"), preview=s.get("preview"),
        )
        for s in payload["sets"]
    ]
    return payload, results


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def report_saved(path: Path, update: bool, notes: Path | None, colmap: str = "skip") -> int:
    """Re-print a saved run; with ``colmap`` "reuse"/"cached", COLMAP timings stored since then fill the gaps."""
    if not path.is_file():
        console.print(f"[red]No results file {path}.[/]")
        return 2
    payload, results = load_results(path)
    if colmap in ("reuse", "cached"):
        for r in results:
            if r.colmap is None:
                r.colmap, error = colmap_timing(Path(), r.name, path.parent, reuse=True, run=False)
                r.colmap_error = error if r.colmap is None else None
    print_tables(results)
    section = markdown_section(results, payload["command"], payload["machine"], payload["date"], payload["quality"])
    if update:
        update_docs(section, payload["quality"])
        console.print(f"section '{payload['quality']}' updated in {DOCS_FILE}")
    if notes:
        with open(notes, "a") as fh:
            fh.write("\n" + section + "\n")
    return 0


def public_args(args: list[str]) -> list[str]:
    """The command line as the docs quote it: without `--notes FILE` (a path on the measuring machine that
    only matters to whoever ran it)."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg == "--notes":
            skip = True
            continue
        if arg.startswith("--notes="):
            continue
        out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the reconstruction engine on the photo sets.")
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS, help="folder holding the photo sets")
    parser.add_argument("--sets", default=",".join(DEFAULT_SETS),
                        help="comma-separated set names (absent ones are skipped)")
    parser.add_argument("--quality", default="standard", choices=("preview", "standard", "high"))
    parser.add_argument("--repeat", type=int, default=1, help="engine runs per set (times are medians)")
    parser.add_argument("--colmap", default="run", choices=("run", "reuse", "cached", "skip"),
                        help="time COLMAP's CLI now (run); reuse bench/out/colmap_<set>.json when present, else run "
                             "(reuse); only use stored timings, never run it (cached); or skip it")
    parser.add_argument("--samples", type=int, default=200_000, help="surface samples per side for the metrics")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "out", help="results and engine outputs")
    parser.add_argument("--update-docs", action="store_true",
                        help="replace this preset's results section in docs/benchmarks.md")
    parser.add_argument("--notes", type=Path, default=None, help="also append the Markdown section to this file")
    parser.add_argument("--from-results", type=Path, default=None, metavar="JSON",
                        help="run nothing: re-print a results JSON of an earlier run (and --update-docs from it)")
    args = parser.parse_args(argv)

    if args.from_results is not None:
        return report_saved(args.from_results, args.update_docs, args.notes, args.colmap)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not args.datasets.is_dir():
        console.print(f"[red]No photo sets at {args.datasets}; pass --datasets.[/]")
        return 2
    wanted = [s.strip() for s in args.sets.split(",") if s.strip()]
    present = [s for s in wanted if (args.datasets / s / "images").is_dir()]
    for s in wanted:
        if s not in present:
            console.print(f"[yellow]skipping {s}: no {args.datasets / s / 'images'}[/]")
    if not present:
        console.print("[red]None of the requested photo sets is present.[/]")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = "python bench/reconstruct.py " + " ".join(public_args(argv if argv is not None else sys.argv[1:]))

    results = [bench_set(args.datasets / s, args.quality, args.repeat, args.out, args.colmap, args.samples)
               for s in present]
    print_tables(results)

    payload = results_payload(results, command.strip(), machine, when, args.quality)
    json_path = args.out / f"results_{args.quality}.json"
    json_path.write_text(json.dumps(payload, indent=2))
    console.print(f"results written to {json_path}")
    section = markdown_section(results, command.strip(), machine, when, args.quality)
    if args.update_docs:
        update_docs(section, args.quality)
        console.print(f"section '{args.quality}' updated in {DOCS_FILE}")
    if args.notes:
        with open(args.notes, "a") as fh:
            fh.write("\n" + section + "\n")
    return 0 if all(r.ok_runs for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
