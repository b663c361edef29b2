"""Time COLMAP's own command-line sparse reconstruction on a photo set (the reference our sparse stage must beat).

Runs ``colmap feature_extractor`` + ``exhaustive_matcher`` + ``mapper`` with COLMAP's default settings, except
that the GPU is switched off (this machine has none; COLMAP's SIFT would otherwise try OpenGL/CUDA). The Debian
package ``colmap`` is installed with apt-get when the binary is missing (the bench runs as root on the test
machine). Usable as a library (:func:`run_colmap_cli`) and as a script::

    python bench/colmap_cli.py ../shared/datasets/synth_bust/images --work bench/work/colmap_synth_bust
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}


class ColmapUnavailable(RuntimeError):
    """COLMAP's binary is missing and could not be installed."""


@dataclass
class ColmapCliResult:
    """Wall-clock times (seconds) of the three COLMAP commands and what the mapper registered."""

    colmap_version: str
    images_total: int
    images_registered: int
    models: int
    points3d: int
    feature_seconds: float
    matching_seconds: float
    mapper_seconds: float
    total_seconds: float
    commands: list[str] = field(default_factory=list)
    load_average_before: float | None = None  # 1-minute load: how busy the machine was (2 cores here)
    load_average_after: float | None = None
    measured_at: str | None = None  # UTC, ISO 8601

    def to_dict(self) -> dict:
        return asdict(self)


def ensure_colmap(install: bool = True) -> str:
    """Path of the ``colmap`` binary; installs the Debian package when missing and ``install`` is true."""
    found = shutil.which("colmap")
    if found:
        return found
    if not install:
        raise ColmapUnavailable("COLMAP is not installed (apt-get install colmap).")
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise ColmapUnavailable("COLMAP is not installed and apt-get cannot be run here (needs root on Debian).")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run([apt, "update", "-qq"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run([apt, "install", "-y", "-qq", "colmap"], check=True, env=env, stdout=subprocess.DEVNULL)
    found = shutil.which("colmap")
    if not found:
        raise ColmapUnavailable("apt-get install colmap finished but no colmap binary is on PATH.")
    return found


def colmap_version(binary: str) -> str:
    out = subprocess.run([binary, "-h"], capture_output=True, text=True, env=_headless_env()).stdout
    first = out.strip().splitlines()[0] if out.strip() else "unknown"
    return first.replace("-- Structure-from-Motion and Multi-View Stereo", "").strip()


def _headless_env() -> dict[str, str]:
    # COLMAP links Qt; without a display it must not try to open one.
    return dict(os.environ, QT_QPA_PLATFORM="offscreen")


def _gpu_flags(binary: str, command: str) -> list[str]:
    """CPU-only flags, with the option names of the installed version (3.8: SiftExtraction.use_gpu; newer:
    FeatureExtraction.use_gpu)."""
    help_text = subprocess.run([binary, command, "-h"], capture_output=True, text=True, env=_headless_env()).stdout
    flags: list[str] = []
    for option in ("SiftExtraction.use_gpu", "SiftMatching.use_gpu", "FeatureExtraction.use_gpu",
                   "FeatureMatching.use_gpu"):
        if f"--{option}" in help_text:
            flags += [f"--{option}", "0"]
    return flags


def _timed(cmd: list[str], log) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=_headless_env())
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"COLMAP command failed (exit {proc.returncode}): {' '.join(cmd)}")
    return elapsed


def _count_images(image_dir: Path) -> int:
    return sum(1 for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def run_colmap_cli(image_dir: Path, work_dir: Path | None = None, install: bool = True,
                   extra_extractor_args: list[str] | None = None) -> ColmapCliResult:
    """Run COLMAP's sparse pipeline on ``image_dir`` and time each command.

    ``work_dir`` receives ``database.db``, ``sparse/`` and ``colmap.log``; it is emptied first so a stale database
    never shortens the timing. A temporary folder is used when it is None.
    """
    import pycolmap  # only needed to read the models back

    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise FileNotFoundError(f"image folder {image_dir} does not exist")
    binary = ensure_colmap(install)
    cleanup = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="colmap_cli_")) if work_dir is None else Path(work_dir)
    if work.exists():
        shutil.rmtree(work)
    (work / "sparse").mkdir(parents=True)
    db = work / "database.db"
    commands = [
        [binary, "feature_extractor", "--database_path", str(db), "--image_path", str(image_dir),
         *_gpu_flags(binary, "feature_extractor"), *(extra_extractor_args or [])],
        [binary, "exhaustive_matcher", "--database_path", str(db), *_gpu_flags(binary, "exhaustive_matcher")],
        [binary, "mapper", "--database_path", str(db), "--image_path", str(image_dir),
         "--output_path", str(work / "sparse")],
    ]
    load_before = os.getloadavg()[0]
    measured_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    try:
        with open(work / "colmap.log", "w") as log:
            times = [_timed(cmd, log) for cmd in commands]
        models = sorted(p for p in (work / "sparse").iterdir() if p.is_dir())
        best_registered, best_points = 0, 0
        for model_dir in models:
            rec = pycolmap.Reconstruction(str(model_dir))
            if rec.num_reg_images() > best_registered:
                best_registered, best_points = rec.num_reg_images(), rec.num_points3D()
        return ColmapCliResult(
            colmap_version=colmap_version(binary),
            images_total=_count_images(image_dir),
            images_registered=best_registered,
            models=len(models),
            points3d=best_points,
            feature_seconds=times[0],
            matching_seconds=times[1],
            mapper_seconds=times[2],
            total_seconds=sum(times),
            commands=[" ".join(c) for c in commands],
            load_average_before=load_before,
            load_average_after=os.getloadavg()[0],
            measured_at=measured_at,
        )
    finally:
        if cleanup:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", type=Path, help="folder of photos")
    parser.add_argument("--work", type=Path, default=None, help="keep database and model here")
    parser.add_argument("--no-install", action="store_true", help="do not apt-get install colmap when missing")
    args = parser.parse_args(argv)
    try:
        result = run_colmap_cli(args.images, args.work, install=not args.no_install)
    except (ColmapUnavailable, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
