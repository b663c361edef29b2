"""Read models: queue estimates, server status and the project view both APIs show."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from openscancloud.domain.accounts import TokenView
from openscancloud.domain.lifecycle import ACTIVE_JOB, ProjectStatus


class Reporting:
    """Mixin of `CloudService` (uses its `settings`, `uow`, `clock`)."""

    def average_duration(self, repo: Any) -> float:
        durations = repo.recent_durations()
        return sum(durations) / len(durations) if durations else 600.0

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
        """Public summary: queue and the processing nodes online (name and hardware, whether busy)."""
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
                "workers": [
                    {"name": w.name, "cpus": w.cpus, "ram_mb": w.ram_mb, "gpu": w.gpu, "busy": w.id in busy}
                    for w in online
                ],
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
            eta = None
            progress = 0.0
            stage = None
            if project.status == ProjectStatus.DONE:
                progress, stage = 100.0, "done"
            elif job is not None and project.status in ACTIVE_JOB:
                avg = self.average_duration(repo)
                progress = round((job.progress or 0.0) * 100, 1)
                stage = job.stage or ("queued" if job.status == "queued" else None)
                if job.status == "running" and job.started_at:
                    elapsed = (now - job.started_at).total_seconds()
                    frac = job.progress or 0.0
                    eta = elapsed / frac * (1 - frac) if frac > 0.05 else max(avg - elapsed, 0)
                else:
                    queued = repo.queued_jobs()
                    pos = next((i for i, j in enumerate(queued) if j.id == job.id), 0)
                    eta = (pos + 1) * avg
        return {
            "id": project.id,
            "project": project.name,
            "name": project.name,
            "status": project.status,
            "progress": progress,
            "stage": stage,
            "eta_seconds": None if eta is None else round(eta),
            "error": project.error,
            "photos": project.photos,
            "filesize": project.filesize,
            "parts_total": project.parts,
            "quality": project.quality,
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
