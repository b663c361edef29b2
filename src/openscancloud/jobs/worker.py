"""The processing node: `openscan-cloud worker --server URL --token WORKER_TOKEN`.

It only makes outgoing HTTP requests to the server (works behind NAT): register → claim → download the input
zip by its signed link → run the engine in a child process (`python -m openscancloud.engine ... --progress
jsonl`) while a heartbeat thread reports stage/progress/log tail and watches for cancel / lost lease → zip the
outputs → upload them by signed link → complete (or fail, telling the server whether the user's photos were
the cause). The engine runs in its own process group so cancelling kills every process it started.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import httpx

log = logging.getLogger("openscancloud.worker")

TAIL_LINES = 60
RETRIES = 6


class LeaseLost(Exception):
    """The server gave this job to someone else (or it was cancelled): stop quietly."""


@dataclass
class JobState:
    stage: str = "starting"
    progress: float = 0.0
    message: str | None = None
    tail: deque = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    stop: threading.Event = field(default_factory=threading.Event)
    stop_reason: str | None = None  # "cancel" | "lease_lost" | "shutdown"
    final: dict[str, Any] | None = None


class Worker:
    def __init__(
        self,
        server: str,
        token: str,
        *,
        name: str | None = None,
        work_dir: Path | None = None,
        poll_seconds: float = 3.0,
        stop: threading.Event | None = None,
        engine_command: list[str] | None = None,
        max_image_size: int | None = None,
        gpu: str | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self.http = httpx.Client(base_url=self.server, headers={"Authorization": f"Bearer {token}"},
                                 timeout=httpx.Timeout(60.0, connect=10.0))
        # signed links: no token sent; the input link may redirect to a presigned S3 URL
        self.links = httpx.Client(timeout=httpx.Timeout(600.0, connect=10.0), follow_redirects=True)
        self.name = name or f"{platform.node()}-{os.getpid()}"
        self.work_dir = Path(work_dir) if work_dir else None
        self.poll_seconds = poll_seconds
        self.stop = stop or threading.Event()
        self.engine_command = engine_command or [sys.executable, "-m", "openscancloud.engine"]
        self.max_image_size = max_image_size
        self.gpu = gpu if gpu is not None else detect_gpu()
        self.worker_id: str | None = None

    # --- protocol -------------------------------------------------------------------------------------------
    def register(self) -> str:
        import psutil

        body = {"name": self.name, "cpus": os.cpu_count() or 1,
                "ram_mb": int(psutil.virtual_memory().total / 2**20), "gpu": self.gpu}
        r = self.http.post("/api/v1/worker/register", json=body)
        _raise(r)
        self.worker_id = r.json()["worker_id"]
        log.info("worker %s registered as %s", self.name, self.worker_id)
        return self.worker_id

    def claim(self) -> dict[str, Any] | None:
        r = self.http.post("/api/v1/worker/claim", json={"worker_id": self.worker_id})
        if r.status_code == 204:
            return None
        _raise(r)
        return r.json()

    def heartbeat(self, job: dict[str, Any], state: JobState) -> bool:
        body = {"attempt": job["attempt"], "worker_id": self.worker_id, "stage": state.stage,
                "progress": state.progress, "message": state.message, "log_tail": "\n".join(state.tail)}
        r = self.http.post(f"/api/v1/worker/jobs/{job['job_id']}/heartbeat", json=body)
        if r.status_code == 409:
            raise LeaseLost()
        _raise(r)
        return bool(r.json().get("cancel"))

    # --- main loop ------------------------------------------------------------------------------------------
    def sweep_stale_dirs(self) -> int:
        """Remove scratch dirs of worker processes that died (kill -9 skips their `finally`). Dirs are named
        `osc-<pid>-...`; a dir whose pid is gone is stale. Returns how many were removed."""
        import psutil

        root = self.work_dir or Path(tempfile.gettempdir())
        removed = 0
        for path in root.glob("osc-*-*"):
            pid = path.name.split("-")[1]
            if path.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not psutil.pid_exists(int(pid)):
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        return removed

    def run_forever(self) -> None:
        try:
            if removed := self.sweep_stale_dirs():
                log.info("removed %d scratch dirs of dead worker processes", removed)
        except OSError as exc:
            log.warning("could not sweep old scratch dirs: %s", exc)
        while not self.stop.is_set():
            try:
                if self.worker_id is None:
                    self.register()
                job = self.claim()
            except (httpx.HTTPError, RuntimeError) as exc:
                log.warning("server not reachable (%s); retrying", exc)
                self.stop.wait(self.poll_seconds * 2)
                continue
            if job is None:
                self.stop.wait(self.poll_seconds)
                continue
            try:
                self.process(job)
            except Exception:
                log.exception("job %s crashed in the worker", job.get("job_id"))
        self.close()

    def close(self) -> None:
        self.http.close()
        self.links.close()

    def run_once(self) -> bool:
        """Claim and process at most one job (tests, cron-style nodes). Returns whether a job was processed."""
        if self.worker_id is None:
            self.register()
        job = self.claim()
        if job is None:
            return False
        self.process(job)
        return True

    # --- one job --------------------------------------------------------------------------------------------
    def process(self, job: dict[str, Any]) -> None:
        log.info("job %s attempt %s: start", job["job_id"], job["attempt"])
        state = JobState()
        beat = threading.Thread(target=self._heartbeat_loop, args=(job, state), daemon=True, name="heartbeat")
        beat.start()
        tmp = Path(tempfile.mkdtemp(prefix=f"osc-{os.getpid()}-{job['job_id'][:8]}-", dir=self.work_dir))
        try:
            self._process(job, state, tmp)
        except LeaseLost:
            why = {"cancel": "cancelled by its owner", "shutdown": "the worker is shutting down"}.get(
                state.stop_reason or "", "this worker lost its lease (the job went to another worker)")
            log.warning("job %s stopped: %s", job["job_id"], why)
        finally:
            state.stop.set()
            beat.join(timeout=5)
            shutil.rmtree(tmp, ignore_errors=True)

    def _download_input(self, job: dict[str, Any], state: JobState, input_zip: Path) -> None:
        with self.links.stream("GET", job["input_url"]) as r:
            if r.status_code == 409:
                raise LeaseLost()
            _raise(r)
            with open(input_zip, "wb") as fh:
                for block in r.iter_bytes(1 << 20):
                    fh.write(block)
                    self._check(state)

    def _upload_result(self, job: dict[str, Any], result: Path) -> dict[str, Any]:
        with open(result, "rb") as fh:
            r = self.links.put(job["result_url"], content=_file_chunks(fh), headers={"Content-Type": "application/zip"})
        if r.status_code == 409:
            raise LeaseLost()
        _raise(r)
        return r.json()

    def _retry(self, what: str, fn: Any, *args: Any) -> Any:
        """Idempotent transfers survive a server replica dying mid-request (the load balancer then answers
        502/503 or the connection drops): retry with back-off, then give up (the lease runs out, another
        attempt follows)."""
        for attempt in range(RETRIES):
            try:
                return fn(*args)
            except (httpx.HTTPError, ServerBusy) as exc:
                if attempt == RETRIES - 1 or self.stop.is_set():
                    raise
                log.warning("%s failed (%s); retrying", what, exc)
                time.sleep(min(2 * (attempt + 1), 10))
        raise AssertionError("unreachable")

    def _process(self, job: dict[str, Any], state: JobState, tmp: Path) -> None:
        state.stage, state.message = "download", "downloading the photos"
        input_zip = tmp / "input.zip"
        self._retry("input download", self._download_input, job, state, input_zip)
        out = tmp / "out"
        cmd = [*self.engine_command, str(input_zip), "-o", str(out), *engine_option_args(job),
               "--work-dir", str(tmp / "work"), "--progress", "jsonl"]
        if self.max_image_size:
            cmd += ["--max-image-size", str(self.max_image_size)]
        rc = self._run_engine(cmd, state)
        self._check(state)
        final = state.final or {}
        if rc == 0 and final.get("event") == "done":
            state.stage, state.progress, state.message = "upload", 1.0, "uploading the result"
            result = tmp / "result.zip"
            _zip_dir(out, result)
            stored = self._retry("result upload", self._upload_result, job, result)
            report = _read_json(out / "report.json") or {}
            warnings = [str(w) for w in (final.get("warnings") or report.get("warnings") or [])]
            report = {"engine": report, "warnings": warnings, "result_sha256": stored.get("sha256"),
                      "result_size": stored.get("size")}
            self._finish(job, "complete", {"attempt": job["attempt"], "report": report})
            log.info("job %s done", job["job_id"])
            return
        if final.get("event") == "error":
            message = str(final.get("message") or "The reconstruction failed.")
            user_error = bool(final.get("user_error")) or rc == 2
        else:
            message = f"The reconstruction engine stopped unexpectedly (exit code {rc})."
            user_error = False
        self._finish(job, "fail", {"attempt": job["attempt"], "message": message, "user_error": user_error})
        log.info("job %s failed: %s", job["job_id"], message)

    def _finish(self, job: dict[str, Any], what: str, body: dict[str, Any]) -> None:
        """complete/fail, retried while the server is unreachable. Safe to repeat: a repeat after the first
        one committed gets 409 (the attempt is no longer running), which means it is recorded."""
        for attempt in range(RETRIES):
            try:
                r = self.http.post(f"/api/v1/worker/jobs/{job['job_id']}/{what}", json=body)
            except httpx.HTTPError:
                time.sleep(min(2 * (attempt + 1), 10))
                continue
            if r.status_code in (502, 503, 504):
                time.sleep(min(2 * (attempt + 1), 10))
                continue
            if r.status_code == 409:
                raise LeaseLost()
            _raise(r)
            return
        raise RuntimeError(f"could not report '{what}' for job {job['job_id']}")

    def _check(self, state: JobState) -> None:
        if state.stop_reason in ("cancel", "lease_lost"):
            raise LeaseLost()
        if self.stop.is_set():
            state.stop_reason = "shutdown"
            raise LeaseLost()

    def _heartbeat_loop(self, job: dict[str, Any], state: JobState) -> None:
        """Beat every `heartbeat_seconds`, and at once (at most every second) when the stage changes."""
        interval = float(job.get("heartbeat_seconds") or max(1, int(job.get("lease_seconds", 60)) // 4))
        last_sent, last_stage = 0.0, None
        while not state.stop.wait(1.0):
            if time.monotonic() - last_sent < interval and state.stage == last_stage:
                continue
            last_sent, last_stage = time.monotonic(), state.stage
            try:
                if self.heartbeat(job, state):
                    state.stop_reason = "cancel"
                    state.stop.set()
            except LeaseLost:
                state.stop_reason = "lease_lost"
                state.stop.set()
            except (httpx.HTTPError, RuntimeError) as exc:
                log.warning("heartbeat failed: %s", exc)

    def _run_engine(self, cmd: list[str], state: JobState) -> int:
        log.info("running %s", " ".join(cmd))
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
                                start_new_session=True, preexec_fn=_DIE_WITH_PARENT)
        readers = [threading.Thread(target=self._read_stdout, args=(proc, state), daemon=True),
                   threading.Thread(target=self._read_stderr, args=(proc, state), daemon=True)]
        for t in readers:
            t.start()
        try:
            while proc.poll() is None:
                if state.stop.wait(0.5) and (state.stop_reason in ("cancel", "lease_lost") or self.stop.is_set()):
                    _kill_group(proc)
                    break
                if self.stop.is_set():
                    _kill_group(proc)
                    break
        finally:
            if proc.poll() is None:
                _kill_group(proc)
            for t in readers:
                t.join(timeout=5)
        return proc.returncode

    @staticmethod
    def _read_stdout(proc: subprocess.Popen, state: JobState) -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                state.tail.append(line[:500])
                continue
            if not isinstance(event, dict):
                continue
            kind = event.get("event")
            if kind == "progress":
                state.stage = str(event.get("stage") or state.stage)
                try:
                    state.progress = min(max(float(event.get("progress", state.progress)), 0.0), 1.0)
                except (TypeError, ValueError):
                    pass
                state.message = event.get("message") or state.message
                state.tail.append(f"[{state.stage}] {state.message or ''}".strip())
            elif kind in ("done", "error"):
                state.final = event
                state.tail.append(f"[{kind}] {event.get('message', '')}".strip())

    @staticmethod
    def _read_stderr(proc: subprocess.Popen, state: JobState) -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            if line.strip():
                state.tail.append(line.rstrip()[:500])


def engine_option_args(job: dict[str, Any]) -> list[str]:
    """The engine flags for the project's options. Built here from the claim's `options` (not taken verbatim
    from the server) so that a worker only ever passes the flags it knows; servers without options send only
    `quality`."""
    options = job.get("options") or {}
    args = ["--quality", str(options.get("quality") or job.get("quality") or "standard")]
    if options.get("masks") in ("auto", "off", "user"):
        args += ["--masks", options["masks"]]
    for key, flag in (("texture_size", "--texture-size"), ("target_faces", "--target-faces")):
        if isinstance(options.get(key), int):
            args += [flag, str(options[key])]
    formats = [f for f in options.get("formats") or [] if f in ("glb", "obj", "ply", "stl", "usdz")]
    if formats:
        args += ["--formats", ",".join(formats)]
    return args


def detect_gpu() -> str | None:
    """The first NVIDIA GPU's name (nvidia-smi), or None: shown to the operator, not used for scheduling."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=name,memory.total", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.stdout.strip().splitlines()[:1]
    return first[0].strip()[:200] if out.returncode == 0 and first else None


def _make_die_with_parent() -> Any:
    """A `preexec_fn` for the engine child (Linux): if the worker is killed (kill -9, OOM), the kernel sends the
    engine SIGKILL too (PR_SET_PDEATHSIG), so no orphaned reconstruction keeps burning CPU for a job that will be
    re-run. libc is loaded here, before any fork: the function run in the child only makes the system call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    kill = int(signal.SIGKILL)

    def die_with_parent() -> None:
        prctl(1, kill)  # PR_SET_PDEATHSIG

    return die_with_parent


_DIE_WITH_PARENT = _make_die_with_parent()


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the engine's whole process group, SIGKILL what is left after 10 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def _zip_dir(src: Path, dest: Path) -> None:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for path in sorted(src.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(src).as_posix())


def _file_chunks(fh: Any, size: int = 1 << 20) -> Iterator[bytes]:
    while block := fh.read(size):
        yield block


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class ServerBusy(RuntimeError):
    """502/503/504 from a load balancer or a restarting server: worth retrying."""


def _raise(r: httpx.Response) -> None:
    if r.status_code in (502, 503, 504):
        raise ServerBusy(f"server answered {r.status_code}")
    if r.status_code >= 400:
        try:
            r.read()
            detail = r.json().get("detail") or r.json().get("message")
        except Exception:
            detail = r.text[:200] if hasattr(r, "text") else ""
        raise RuntimeError(f"server answered {r.status_code}: {detail}")
