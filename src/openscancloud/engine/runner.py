"""Shared by `python -m openscancloud.engine` and `openscan-cloud reconstruct`: signals, exit codes, JSON lines.

Exit codes: 0 success, 2 bad input (the message says what to change), 1 internal failure, 130 cancelled
(SIGTERM/SIGINT).  In `--progress jsonl` mode stdout carries only JSON objects, one per line; anything a library
prints is redirected to stderr so the worker parsing stdout never sees stray text.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable, TextIO

from .errors import Cancelled, EngineError, UserInputError

EXIT_OK, EXIT_INTERNAL, EXIT_USER, EXIT_CANCELLED = 0, 1, 2, 130


def install_cancel_signals(cancel: threading.Event) -> None:
    """SIGTERM (the worker's stop) and SIGINT (Ctrl-C) set the cancel event; stages stop at the next check."""

    def handler(signum, frame):  # noqa: ARG001
        cancel.set()

    # pycolmap's logging library installs its own SIGTERM handler on import (it would kill the process at
    # once): import the heavy libraries first, then take the signals over
    from . import pipeline  # noqa: F401  (imports pycolmap, OpenCV)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def claim_stdout_for_json() -> TextIO:
    """A private handle on the real stdout; fd 1 (C libraries' printf) and sys.stdout now go to stderr."""
    sys.stdout.flush()
    json_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(json_fd, "w", buffering=1)


class JsonLines:
    """Writes the progress contract; throttles progress lines to a few per second."""

    def __init__(self, stream: TextIO, min_interval: float = 0.25):
        self.stream = stream
        self.min_interval = min_interval
        self._last = 0.0
        self._last_stage = ""
        self._lock = threading.Lock()

    def emit(self, obj: dict) -> None:
        with self._lock:
            self.stream.write(json.dumps(obj, ensure_ascii=False) + "\n")
            self.stream.flush()

    def progress(self, stage: str, fraction: float, message: str) -> None:
        from .pipeline import overall_progress

        now = time.monotonic()
        if stage == self._last_stage and fraction < 1.0 and now - self._last < self.min_interval:
            return
        self._last, self._last_stage = now, stage
        self.emit({"event": "progress", "stage": stage, "stage_fraction": round(fraction, 4),
                   "progress": round(overall_progress(stage, fraction), 4), "message": message})


def run_reconstruction(input_path: Path, out_dir: Path, options, progress: Callable[[str, float, str], None],
                       cancel: threading.Event) -> tuple[int, dict]:
    """Run and classify the outcome: (exit code, event dict for the end of the JSON stream)."""
    from .pipeline import reconstruct

    try:
        result = reconstruct(input_path, out_dir, options, progress=progress, cancel=cancel)
    except Cancelled:
        return EXIT_CANCELLED, {"event": "error", "message": "The reconstruction was cancelled.",
                                "user_error": False, "cancelled": True}
    except UserInputError as exc:
        return EXIT_USER, {"event": "error", "message": str(exc), "user_error": True}
    except EngineError as exc:
        return EXIT_INTERNAL, {"event": "error", "message": str(exc), "user_error": False}
    except Exception as exc:  # last resort: still one sentence, never a traceback on stdout
        import traceback

        traceback.print_exc(file=sys.stderr)
        return EXIT_INTERNAL, {"event": "error", "message": f"The reconstruction failed unexpectedly "
                               f"({type(exc).__name__}: {exc}).", "user_error": False}
    report = result.report
    return EXIT_OK, {"event": "done", "outputs": result.outputs, "warnings": report.get("warnings", []),
                     "summary": {"images": report["images"]["used"], "registered": report["images"]["registered"],
                                 "faces": report["mesh"]["faces"], "total_seconds": report["total_seconds"]}}
