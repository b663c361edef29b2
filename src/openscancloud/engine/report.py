"""`report.json`: what was reconstructed, how well, how long each stage took and how much memory it used."""

from __future__ import annotations

import platform
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np

ENGINE_VERSION = "0.1.0"
LIBRARIES = ["pycolmap", "open3d", "opencv-python-headless", "numpy", "scipy", "trimesh", "xatlas", "pymeshlab",
             "pillow"]


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    return out


class PeakMemory:
    """Samples this process's RSS in a background thread; `peak_mb` is the maximum seen since `start()`."""

    def __init__(self, interval: float = 0.2):
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        try:
            rss = self._proc.memory_info().rss
        except Exception:
            return
        if rss > self._peak:
            self._peak = rss

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def start(self) -> None:
        self._peak = 0
        self._sample()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> float:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self._sample()
        return self._peak / 2 ** 20


@dataclass
class StageTiming:
    seconds: float
    peak_rss_mb: float
    skipped: bool = False  # resumed from the work dir
    cpu_seconds: float = 0.0  # all threads; compare with `seconds` to see how well both cores were used


@dataclass
class Timings:
    stages: dict[str, StageTiming] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    def to_dict(self) -> dict:
        return {name: {"seconds": round(t.seconds, 2), "cpu_seconds": round(t.cpu_seconds, 2),
                       "peak_rss_mb": round(t.peak_rss_mb, 1), "resumed": t.skipped}
                for name, t in self.stages.items()}


def session_report(orientation, sparse_sessions: dict | None) -> dict:
    """How many scanning sessions the photos came from and how they were joined (engine/sessions.py, orient.py)."""
    merge = (sparse_sessions or {}).get("merge")
    left_out = (sparse_sessions or {}).get("left_out") or []
    if not orientation.sessions and not left_out:
        return {"count": 1, "joined": "one session"}
    if merge:
        how = ("each session was mapped on its own; object points matched across sessions put them in one frame "
               "(turntable plates left out of that), then one bundle adjustment")
    else:
        how = "mapped together; the sessions were told apart by the directions of their cameras"
    return {
        "count": len(orientation.sessions) + len(left_out) or 1,
        "joined": how,
        "merge": merge,
        "sessions": [{"photos": len(s.images), "first_photo": sorted(s.images)[0],
                      "up_in_output_frame": np.round(orientation.apply_dirs(np.asarray(s.up)), 4).tolist(),
                      "turntable": s.turntable} for s in orientation.sessions],
        "left_out": [{"photos": len(g), "first_photo": sorted(g)[0]} for g in left_out],
        "note": "the model stands as the first session stood; every session's turntable plate is cut",
    }


def build_report(*, preset, options, ingest, masks, sparse, dense, mesh, texture, orientation, timings: Timings,
                 outputs: dict[str, str]) -> dict:
    registered = set(sparse.registered)
    view_by_name = {v.name: v for v in ingest.views}
    off_turntable = set(sparse.extra.get("off_turntable") or [])
    not_registered = [
        {"name": view_by_name[n].source if n in view_by_name else n,
         "reason": "placed by a look-alike view where the turntable could not have taken it, and no turn of the "
                   "turntable agrees with its matches" if n in off_turntable else
                   "could not be placed: too few reliable matches with the other photos"}
        for n in sparse.unregistered
    ]
    focal_sources = sorted({v.focal_source for v in ingest.views})
    total_seconds = sum(t.seconds for t in timings.stages.values())
    return {
        "engine_version": ENGINE_VERSION,
        "libraries": library_versions(),
        "preset": preset.to_dict(),
        "options": {"quality": options.quality, "max_image_size": options.max_image_size,
                    "masks": options.masks, "masks_dir": str(options.masks_dir) if options.masks_dir else None,
                    "texture_size": options.texture_size, "target_faces": options.target_faces,
                    "formats": list(options.formats) if options.formats else None,
                    "num_threads": options.num_threads},
        "images": {
            "total": ingest.total_files,
            "used": len(ingest.views),
            "registered": len(registered),
            "registered_fraction": round(len(registered) / max(1, len(ingest.views)), 4),
            "rejected": ingest.rejected,
            "not_registered": not_registered,
            "working_size": [max(v.width for v in ingest.views), max(v.height for v in ingest.views)],
        },
        "camera": {
            "model": sparse.camera_model,
            "focal_px": round(sparse.focal_px, 2),
            "focal_prior": focal_sources,
            "num_cameras": sparse.extra.get("num_cameras", 1),
        },
        "masks": {"mode": masks.mode, "static_fraction": round(masks.static_fraction, 3),
                  "unmasked_photos": list(getattr(masks, "unmasked", [])),
                  # tight silhouettes bounding the surface (the user's masks, or found against a static backdrop)
                  "silhouettes": _silhouettes_summary(masks)},
        "sparse": {
            "points": sparse.num_points,
            "mean_reprojection_error_px": round(sparse.mean_reprojection_error, 4),
            "mapper": sparse.mapper,
            "matching": sparse.matching,
            "image_pairs": sparse.num_pairs,
            "verified_pairs": sparse.extra.get("verified_pairs"),
            # static rigs: photos first placed by a look-alike view, off the turntable (engine/turntable.py)
            "off_turntable": sparse.extra.get("off_turntable", []),
            "placed_again_on_turntable": sparse.extra.get("placed_again_on_turntable", []),
        },
        "dense": {"points": dense.num_points, "depth_maps": dense.num_depth_maps, "method": dense.method,
                  "fallback": dense.fallback, "object_pixels_per_depth_map": dense.pixels_per_view},
        "mesh": {"vertices": mesh.num_vertices, "faces": mesh.num_faces, "turntable_plate_removed": mesh.plate_removed,
                 "supported_fraction": mesh.supported_fraction, "refinement": mesh.refinement,
                 "kept_inside_masks": mesh.kept_inside_masks, "hull_points": mesh.hull_points},
        "texture": {"size": [texture.texture_size, texture.texture_size],
                    "textured_fraction": round(texture.textured_fraction, 4)},
        "transform": {
            "matrix": np.asarray(orientation.transform).round(10).tolist(),
            "description": "x_out = M · x_sfm (4×4, rotation + translation), applied to model.obj, dense.ply and "
                           "sparse/; model.glb additionally maps +Z up to glTF's +Y up",
            "turntable": orientation.turntable,
        },
        "sessions": session_report(orientation, sparse.extra.get("sessions")),
        "timings": timings.to_dict(),
        "total_seconds": round(total_seconds, 2),
        "peak_rss_mb": round(max((t.peak_rss_mb for t in timings.stages.values()), default=0.0), 1),
        "outputs": {k: v.rsplit("/", 1)[-1] for k, v in outputs.items()},
    }


def _silhouettes_summary(masks) -> dict:
    """Where the silhouettes came from, how many photos have one, and whose automatic one cut the object."""
    if masks.silhouettes_dir is None:
        return {"source": None, "photos": 0, "cutting_object": list(masks.cutting_silhouettes)}
    return {"source": "user" if masks.mode == "user" else "static backdrop",
            "photos": len(list(masks.silhouettes_dir.glob("*.png"))),
            "cutting_object": list(masks.cutting_silhouettes)}
