"""The job queue, kept in the database so that any number of API processes and workers can share it.

* claim: the highest-priority, oldest queued job (private before public) is given to a worker under a lease;
  each claim is a new *attempt* (1, 2, ...). A running job whose lease ran out is put back in the queue, or
  failed with a reason once `max_attempts` attempts were used up.
* heartbeat: extends the lease and stores stage/progress/log tail; its answer carries the cancel flag.
  An attempt that lost its lease gets 409 and must stop.
* complete/fail: only the current attempt may finish a job. Internal failures refund the credit, failures
  caused by the user's photos do not.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from openscancloud.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from openscancloud.domain.lifecycle import ProjectStatus
from openscancloud.domain.options import options_of
from openscancloud.domain.reporting import report_warnings
from openscancloud.domain.ports import UnitOfWork
from openscancloud.domain.service import Event
from openscancloud.settings import Settings
from openscancloud.storage.base import Storage

LOG_TAIL_CHARS = 8000


@dataclass
class Claim:
    job_id: str
    project_id: str
    attempt: int
    quality: str
    lease_seconds: int
    input_size: int | None
    options: dict[str, Any] = field(default_factory=dict)  # the project's ProjectOptions as a dict


@dataclass
class JobQueue:
    settings: Settings
    uow: UnitOfWork
    storage: Storage
    clock: Callable[[], datetime] = field(default=None)  # type: ignore[assignment]
    on_event: Callable[[Event], None] = field(default=lambda event: None)

    def __post_init__(self) -> None:
        if self.clock is None:
            from openscancloud.db.models import utcnow

            self.clock = utcnow

    # --- workers --------------------------------------------------------------------------------------------
    def register(self, token_id: int, name: str, cpus: int, ram_mb: int, gpu: str | None) -> str:
        if not name or len(name) > 200:
            raise InvalidInput("A worker needs a name of 1 to 200 characters.")
        with self.uow() as repo:
            worker = repo.add_worker(
                id=uuid.uuid4().hex, token_id=token_id, name=name, cpus=int(cpus or 0), ram_mb=int(ram_mb or 0),
                gpu=str(gpu) if gpu else None,
            )
            return worker.id

    def _worker(self, repo: Any, token_id: int, worker_id: str) -> Any:
        worker = repo.worker_by_id(worker_id)
        if worker is None:
            raise NotFound("Unknown worker: register first.", code="unknown_worker")
        if worker.token_id != token_id:
            raise Forbidden("This worker was registered with another token.")
        worker.last_seen_at = self.clock()
        return worker

    # --- claim ----------------------------------------------------------------------------------------------
    def claim(self, token_id: int, worker_id: str) -> Claim | None:
        self.expire_leases()
        now = self.clock()
        with self.uow() as repo:
            self._worker(repo, token_id, worker_id)
            job = repo.next_claimable_job()
            if job is None:
                return None
            project = repo.project_by_id(job.project_id, lock=True)
            job.status = "running"
            job.attempt += 1
            job.worker_id = worker_id
            job.lease_until = now + timedelta(seconds=self.settings.lease_seconds)
            job.started_at = now
            job.stage, job.progress, job.message = "starting", 0.0, None
            job.stage_started_at = now
            project.status = str(ProjectStatus.PROCESSING)
            project.started_at = project.started_at or now
            options = options_of(project)
            claim = Claim(job.id, project.id, job.attempt, job.quality, self.settings.lease_seconds, None,
                          options.to_dict())
        claim.input_size = self.storage.input_size(claim.project_id)
        return claim

    # --- during processing ----------------------------------------------------------------------------------
    def _current(self, repo: Any, job_id: str, attempt: int, *, lock: bool = True,
                 holder_token: int | None = None) -> Any:
        """The job if `attempt` is its current one; with `holder_token`, also only if a worker registered with
        that token holds it (a worker token cannot touch jobs other workers claimed)."""
        job = repo.job_by_id(job_id, lock=lock)
        if job is None:
            raise NotFound("Unknown job.", code="unknown_job")
        if holder_token is not None:
            holder = repo.worker_by_id(job.worker_id) if job.worker_id else None
            if holder is None or holder.token_id != holder_token:
                raise Forbidden("This job is held by another worker.", code="not_your_job")
        if job.attempt != attempt or job.status not in ("running", "cancelled"):
            raise Conflict(
                "This attempt lost its lease; the job was given to another worker. Stop working on it.",
                code="lease_lost",
            )
        return job

    def heartbeat(
        self, token_id: int | None, worker_id: str | None, job_id: str, attempt: int, *, stage: str | None,
        progress: float | None, message: str | None, log_tail: str | None,
    ) -> bool:
        """Extend the lease; returns True when the worker must cancel."""
        now = self.clock()
        with self.uow() as repo:
            if worker_id and token_id is not None:
                self._worker(repo, token_id, worker_id)
            job = self._current(repo, job_id, attempt, holder_token=token_id)
            if job.status == "cancelled" or job.cancel_requested:
                return True
            job.lease_until = now + timedelta(seconds=self.settings.lease_seconds)
            if stage:
                if stage[:64] != job.stage:
                    job.stage_started_at = now
                job.stage = stage[:64]
            if progress is not None:
                job.progress = min(max(float(progress), 0.0), 1.0)
            if message is not None:
                job.message = message[:2000]
            if log_tail is not None:
                job.log_tail = log_tail[-LOG_TAIL_CHARS:]
            return False

    def check_result_upload(self, job_id: str, attempt: int) -> str:
        """The project ID the result of this attempt belongs to (409 if the attempt is not current)."""
        with self.uow() as repo:
            job = self._current(repo, job_id, attempt, lock=False)
            if job.status != "running":
                raise Conflict("This job was cancelled.", code="cancelled")
            return job.project_id

    def input_for(self, job_id: str, attempt: int) -> str:
        with self.uow() as repo:
            job = self._current(repo, job_id, attempt, lock=False)
            return job.project_id

    def complete(self, job_id: str, attempt: int, report: Any, token_id: int | None = None) -> None:
        now = self.clock()
        with self.uow() as repo:
            job = self._current(repo, job_id, attempt, holder_token=token_id)
            if job.status != "running":
                raise Conflict("This job was cancelled; its result is not kept.", code="cancelled")
            size = self.storage.result_size(job.project_id)
            if size is None:
                raise Conflict("Upload the result zip (result_url) before completing the job.", code="no_result")
            project = repo.project_by_id(job.project_id, lock=True)
            job.status, job.finished_at, job.progress, job.stage = "done", now, 1.0, "done"
            job.lease_until = None
            job.report = json.dumps(report)[:200_000] if report is not None else None
            project.status = str(ProjectStatus.DONE)
            project.finished_at = now
            project.result_size = size
            project.result_sha256 = (report or {}).get("result_sha256") if isinstance(report, dict) else None
            project.delete_after = now + timedelta(days=self.settings.retention_days)
            event = self._event(repo, project, "project_done", report_warnings(report))
        # the photos stay until the retention cleanup so that the project can be reprocessed with other options
        self.on_event(event)

    def fail(self, job_id: str, attempt: int, message: str, user_error: bool, token_id: int | None = None) -> None:
        now = self.clock()
        with self.uow() as repo:
            job = self._current(repo, job_id, attempt, holder_token=token_id)
            if job.status != "running":
                return  # cancelled meanwhile: nothing to record
            project = repo.project_by_id(job.project_id, lock=True)
            self._fail(repo, job, project, message or "Processing failed.", bool(user_error), now)
            event = self._event(repo, project, "project_failed")
        self.on_event(event)

    def _fail(self, repo: Any, job: Any, project: Any, message: str, user_error: bool, now: datetime) -> None:
        job.status, job.finished_at, job.lease_until = "failed", now, None
        job.error, job.user_error = message[:2000], user_error
        project.status = str(ProjectStatus.FAILED)
        project.error = message[:2000]
        project.finished_at = now
        project.delete_after = now + timedelta(days=self.settings.retention_days)
        if not user_error and project.charged_gb > 0:
            repo.add_ledger(project.token_id, "refund", round(project.charged_gb, 9),
                            "processing failed (server side)", project.id)
            project.charged_gb = 0.0

    def _event(self, repo: Any, project: Any, kind: str, warnings: list[str] | None = None) -> Event:
        token = repo.token_by_id(project.token_id)
        return Event(
            kind=kind,
            project={"id": project.id, "name": project.name, "status": project.status, "error": project.error,
                     "warnings": warnings or []},
            email=token.email if token is not None and token.kind == "private" else None,
            webhook_url=project.webhook_url,
        )

    # --- maintenance ----------------------------------------------------------------------------------------
    def expire_leases(self) -> int:
        """Requeue running jobs whose lease ran out, or fail them after the last attempt."""
        now = self.clock()
        events = []
        with self.uow() as repo:
            jobs = repo.expired_leases(now)
            for job in jobs:
                project = repo.project_by_id(job.project_id, lock=True)
                if job.attempt >= job.max_attempts:
                    self._fail(
                        repo, job, project,
                        f"Processing was interrupted {job.attempt} times (the worker stopped answering); "
                        "your credit was returned.",
                        False, now,
                    )
                    events.append(self._event(repo, project, "project_failed"))
                else:
                    job.status, job.worker_id, job.lease_until = "queued", None, None
                    job.stage, job.progress = "queued", 0.0
                    project.status = str(ProjectStatus.QUEUED)
            count = len(jobs)
        for event in events:
            self.on_event(event)
        return count
