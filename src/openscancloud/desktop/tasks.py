"""Running SDK calls off the GUI thread, with results, progress and errors delivered back as Qt signals.

The window never blocks: every network or disk call runs in a `QThreadPool` worker; the worker's progress
callback emits a signal, which Qt queues onto the GUI thread. Errors arrive as one sentence (never a traceback).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from openscancloud.client.errors import ClientError, UploadCancelled

log = logging.getLogger(__name__)


def describe_error(exc: BaseException) -> str:
    """A sentence a person can act on, for any exception a task may raise."""
    if isinstance(exc, ClientError):
        return str(exc)
    if isinstance(exc, PermissionError):
        return f"Permission denied: {exc.filename or exc}. Choose a folder you can write to."
    if isinstance(exc, FileNotFoundError):
        return f"File not found: {exc.filename or exc}."
    if isinstance(exc, OSError):
        return f"A file or network operation failed: {exc.strerror or exc}."
    return f"Something unexpected went wrong ({type(exc).__name__}: {exc}). Please try again."


class TaskSignals(QObject):
    progress = Signal(object)
    done = Signal(object)
    failed = Signal(str)
    cancelled = Signal(str)
    finished = Signal()


class Task(QRunnable):
    """`fn(report)` run in the pool; `report(x)` emits `progress(x)` on the GUI thread."""

    def __init__(self, fn: Callable[[Callable[[Any], None]], Any]) -> None:
        super().__init__()
        self.fn = fn
        self.signals = TaskSignals()
        self.setAutoDelete(False)  # the runner keeps it until `finished`, so its signals outlive the thread

    def run(self) -> None:
        try:
            result = self.fn(self.signals.progress.emit)
        except UploadCancelled as exc:  # the user asked for it: not an error
            self.signals.cancelled.emit(str(exc))
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a sentence for the window
            if not isinstance(exc, ClientError):
                log.exception("background task failed")
            self.signals.failed.emit(describe_error(exc))
        else:
            self.signals.done.emit(result)
        finally:
            self.signals.finished.emit()


class TaskRunner(QObject):
    """Starts tasks and keeps them alive until they finish."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(4)
        self._running: set[Task] = set()

    def start(
        self,
        fn: Callable[[Callable[[Any], None]], Any],
        *,
        done: Callable[[Any], None] | None = None,
        failed: Callable[[str], None] | None = None,
        progress: Callable[[Any], None] | None = None,
        cancelled: Callable[[str], None] | None = None,
    ) -> Task:
        """Run `fn(report)` in the pool; `cancelled` defaults to `failed` (both get a sentence)."""
        task = Task(fn)
        if done:
            task.signals.done.connect(done)
        if failed:
            task.signals.failed.connect(failed)
        if cancelled or failed:
            task.signals.cancelled.connect(cancelled or failed)
        if progress:
            task.signals.progress.connect(progress)
        task.signals.finished.connect(lambda: self._running.discard(task))
        self._running.add(task)
        self.pool.start(task)
        return task

    @property
    def busy(self) -> bool:
        return bool(self._running)

    def wait_all(self, msecs: int = 5000) -> bool:
        return self.pool.waitForDone(msecs)
