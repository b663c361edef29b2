"""Read models: queue estimates, server status and the project view both APIs show."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from openscancloud.domain.accounts import TokenView
from openscancloud.domain.eta import ETA_UNKNOWN, EtaInputs, StageModel, build_model, estimate
from openscancloud.domain.lifecycle import ACTIVE_JOB, ProjectStatus
from openscancloud.domain.options import options_of

ETA_HISTORY = 20  # recent finished jobs per quality the stage speeds are measured on


class Reporting:
    """Mixin of `CloudService` (uses its `settings`, `uow`, `clock`)."""

    def average_duration(self, repo: Any) -> float:
        durations = repo.recent_durations()
        return sum(durations) / len(durations) if durations else 600.0

    def stage_model(self, repo: Any, quality: str) -> StageModel | None:
        return build_model(quality, repo.recent_done_reports(quality, ETA_HISTORY))

    def eta_inputs(self, quality: str) -> EtaInputs:
        """What every ETA of this quality rests on (the measured stage model, workers online, jobs running);
        the polling path caches it for a few seconds, since it moves slowly."""
        with self.uow() as repo:
            return self._eta_inputs(repo, quality, self.clock())

    def _eta_inputs(self, repo: Any, quality: str, now: datetime) -> EtaInputs:
        workers = repo.workers_seen_since(now - timedelta(seconds=self.settings.worker_offline_seconds))
        return EtaInputs(self.stage_model(repo, quality), max(1, workers), len(repo.running_jobs()))

    def _eta(self, repo: Any, job: Any, project: Any, now: datetime) -> tuple[float | None, str | None]:
        """(seconds left, what the figure is based on), or (None, None) without any measured job."""
        if job.status == "running":
            inputs = EtaInputs(self.stage_model(repo, job.quality), 1, 0)
            return estimate(inputs, job, project.photos, now, ahead=0)
        queued = repo.queued_jobs()
        ahead = next((i for i, j in enumerate(queued) if j.id == job.id), 0)
        return estimate(self._eta_inputs(repo, job.quality, now), job, project.photos, now, ahead=ahead)

    def queue_estimate(self, token: TokenView) -> dict[str, Any]:
        now = self.clock()
        with self.uow() as repo:
            queued = repo.queued_jobs()
            running = repo.running_jobs()
            avg = self.average_duration(repo)
            workers = max(1, repo.workers_seen_since(now - timedelta(seconds=self.settings.worker_offline_seconds)))
            mine = {p.id for p in repo.projects_of(token.id)}
        position = next((i + 1 for i, j in enumerate(queued) if j.project_id in mine), None)
        ahead = (position - 1) if position else len(queued)
        estimate = (ahead + len(running)) * avg / workers + avg
        return {
            "queue_length": len(queued),
            "processing": len(running),
            "position": position,
            "estimate_seconds": round(estimate),
            "average_job_seconds": round(avg),
            "workers_online": workers,
        }

    def server_status(self) -> dict[str, Any]:
        """Public summary, answered without any token: how long the queue is and how many processing nodes
        are online and busy. Names and hardware of the nodes are for the operator (`/api/v1/admin/workers`)."""
        now = self.clock()
        online_since = now - timedelta(seconds=self.settings.worker_offline_seconds)
        with self.uow() as repo:
            running = repo.running_jobs()
            busy = {j.worker_id for j in running}
            online = repo.workers(seen_since=online_since)
            return {
                "queue_length": len(repo.queued_jobs()),
                "processing": len(running),
                "workers_online": len(online),
                "workers_busy": sum(1 for w in online if w.id in busy),
            }

    def worker_listing(self, include_offline_hours: float = 24.0) -> list[dict[str, Any]]:
        """Admin view of every processing node seen recently: online, current job, last seen."""
        now = self.clock()
        online_since = now - timedelta(seconds=self.settings.worker_offline_seconds)
        with self.uow() as repo:
            jobs = {j.worker_id: j for j in repo.running_jobs()}
            rows = repo.workers(seen_since=now - timedelta(hours=include_offline_hours))
            out = []
            for w in rows:
                job = jobs.get(w.id)
                token = repo.token_by_id(w.token_id)
                out.append({
                    "id": w.id, "name": w.name, "cpus": w.cpus, "ram_mb": w.ram_mb, "gpu": w.gpu,
                    "online": w.last_seen_at >= online_since,
                    "last_seen_at": _iso(w.last_seen_at), "registered_at": _iso(w.registered_at),
                    "last_seen_seconds_ago": round((now - w.last_seen_at).total_seconds(), 1),
                    "token": token.hint if token is not None else None,
                    "current_job": None if job is None else {
                        "job_id": job.id, "project_id": job.project_id, "attempt": job.attempt,
                        "stage": job.stage, "progress": round((job.progress or 0.0) * 100, 1),
                    },
                })
            return out

    def project_view(self, project: Any) -> dict[str, Any]:
        """Everything both APIs report about a project (links are added by the API layer)."""
        now = self.clock()
        with self.uow() as repo:
            job = repo.latest_job(project.id)
            eta = ETA_UNKNOWN
            if job is not None and project.status in ACTIVE_JOB:
                eta = self._eta(repo, job, project, now)
        return render_project_view(project, job, eta)


def render_project_view(project: Any, job: Any | None, eta: tuple[float | None, str | None]) -> dict[str, Any]:
    """The project view from already-read records and an ETA (seconds, basis), without any I/O, so the ORM path
    (`project_view`) and the one-query polling path (`api.poll`) produce the same answer byte for byte."""
    eta_seconds, basis = eta
    progress = 0.0
    stage = None
    if project.status == ProjectStatus.DONE:
        progress, stage = 100.0, "done"
    elif job is not None and project.status in ACTIVE_JOB:
        progress = round((job.progress or 0.0) * 100, 1)
        stage = job.stage or ("queued" if job.status == "queued" else None)
    return {
        "id": project.id,
        "project": project.name,
        "name": project.name,
        "status": project.status,
        "progress": progress,
        "stage": stage,
        "eta_seconds": None if eta_seconds is None else round(eta_seconds),
        "eta_basis": basis if eta_seconds is not None else (
            "unknown: this server has not finished a job of this quality yet"
            if project.status in ACTIVE_JOB else None),
        "error": project.error,
        "photos": project.photos,
        "filesize": project.filesize,
        "parts_total": project.parts,
        "quality": project.quality,
        "options": options_of(project).to_dict(),
        "credit_charged": round(project.charged_gb, 9),
        "keep_for_research": project.keep_for_research,
        "created_at": _iso(project.created_at),
        "updated_at": _iso(project.updated_at),
        "upload_expires_at": _iso(project.upload_expires_at),
        "queued_at": _iso(project.queued_at),
        "started_at": _iso(project.started_at),
        "finished_at": _iso(project.finished_at),
        "delete_after": _iso(project.delete_after),
        "result_size": project.result_size,
        "result_sha256": project.result_sha256,
        "log_tail": job.log_tail if job is not None else None,
        "report": _report(job) if project.status == ProjectStatus.DONE else None,
        "warnings": report_warnings(_report(job)) if project.status == ProjectStatus.DONE else [],
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds") + "Z"




def report_warnings(report: Any) -> list[str]:
    """The engine's warnings of a finished job ("12 of 40 photos could not be placed: ..."), never None."""
    if not isinstance(report, dict):
        return []
    warnings = report.get("warnings")
    if warnings is None and isinstance(report.get("engine"), dict):
        warnings = report["engine"].get("warnings")
    return [str(w) for w in warnings] if isinstance(warnings, list) else []


def _report(job: Any) -> Any:
    """The worker's report of a finished job (engine summary, result checksum), or None."""
    try:
        return json.loads(job.report) if job is not None and job.report else None
    except ValueError:
        return None
