"""What every stage receives besides its typed input: where to work, the preset, progress and cancellation.

Stages never read globals: the pipeline builds one `StageContext` per stage and passes it in.  Progress goes
through `ctx.report(fraction, message)`; `ctx.check_cancelled()` is called between steps so a cancel request (or
SIGTERM in the CLI) stops the work within seconds.
"""

from __future__ import annotations

import json
import threading
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Protocol

from .errors import Cancelled
from .presets import Preset


class ProgressCallback(Protocol):
    def __call__(self, stage: str, fraction: float, message: str) -> None: ...


def _ignore_progress(stage: str, fraction: float, message: str) -> None:
    return None


@dataclass
class StageContext:
    stage: str
    work_dir: Path  # this stage's own folder inside the work dir
    preset: Preset
    num_threads: int = 2
    progress: ProgressCallback = _ignore_progress
    cancel: threading.Event = field(default_factory=threading.Event)

    def report(self, fraction: float, message: str = "") -> None:
        self.progress(self.stage, min(1.0, max(0.0, float(fraction))), message)

    def check_cancelled(self) -> None:
        if self.cancel.is_set():
            raise Cancelled(f"cancelled during {self.stage}")


class StageResult:
    """Mixin for a stage's result dataclass: `to_dict` for its `done.json` marker, `from_dict` to resume from it.

    Path fields (`Path` or `Path | None`) are written as strings and read back as Paths; everything else must
    already be JSON-friendly.
    """

    def to_dict(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, d: dict):
        paths = _path_fields(cls)
        return cls(**{k: Path(v) if k in paths and v is not None else v for k, v in d.items()})


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def _path_fields(cls: type) -> set[str]:
    def is_path(hint: Any) -> bool:
        if hint is Path:
            return True
        return typing.get_origin(hint) in (typing.Union, types.UnionType) and Path in typing.get_args(hint)

    return {name for name, hint in typing.get_type_hints(cls).items() if is_path(hint)}


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename) so a crash never leaves a half-written marker behind."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default))
    tmp.replace(path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value)!r}")


def load_done(stage_dir: Path, key: dict) -> dict | None:
    """The saved result of a stage that already finished with the same settings (resume), else None."""
    marker = stage_dir / "done.json"
    if not marker.is_file():
        return None
    try:
        saved = read_json(marker)
    except (OSError, ValueError):
        return None
    if saved.get("key") != json.loads(json.dumps(key, default=_json_default)):
        return None
    return saved.get("result")


def save_done(stage_dir: Path, key: dict, result: dict) -> None:
    write_json(stage_dir / "done.json", {"key": key, "result": result})


Callback = Callable[[str, float, str], None]
