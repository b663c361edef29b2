"""Periodic housekeeping, started by every API process. On PostgreSQL only one replica at a time does a round
(a non-blocking advisory lock, `Database.exclusive("maintenance")`; the others skip that round), so N
replicas do not repeat the same scans. Even without the lock every step would be safe in parallel: each is a
transaction that locks the rows it changes (`SKIP LOCKED` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite) and file
deletions are idempotent.

* lease expiry → jobs claimable again (or failed after the last attempt);
* projects never started within the upload-link lifetime → `expired`, credit refunded;
* results and inputs past the retention period → deleted (public-token inputs kept for research).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Callable

from openscancloud.domain.lifecycle import ProjectStatus
from openscancloud.domain.service import CloudService
from openscancloud.jobs.queue import JobQueue

log = logging.getLogger(__name__)


@dataclass
class Maintenance:
    service: CloudService
    queue: JobQueue
    # `exclusive()` → context manager yielding whether this process may run the round now
    exclusive: Callable[[], AbstractContextManager[bool]] = field(default=lambda: nullcontext(True))

    def run_once(self) -> dict[str, int]:
        """One round; `{"skipped": 1, ...}` with zero counts when another replica is running its round."""
        with self.exclusive() as mine:
            if not mine:
                return {"leases_expired": 0, "projects_expired": 0, "projects_cleaned": 0, "skipped": 1}
            return self._round()

    def _round(self) -> dict[str, int]:
        leases = self.queue.expire_leases()
        expired = self.expire_unstarted()
        cleaned = self.retention_cleanup()
        result = {"leases_expired": leases, "projects_expired": expired, "projects_cleaned": cleaned}
        abort = getattr(self.service.storage, "abort_stale_uploads", None)
        hours = self.service.settings.stale_upload_hours
        if abort is not None and hours > 0:  # uploads broken off by a process that died mid-stream
            if aborted := abort(hours * 3600):
                result["stale_uploads_removed"] = aborted
        return result

    def expire_unstarted(self) -> int:
        now = self.service.clock()
        ids = []
        with self.service.uow() as repo:
            for project in repo.projects_to_expire(now):
                if project.charged_gb > 0:
                    repo.add_ledger(project.token_id, "refund", round(project.charged_gb, 9),
                                    "project expired before it was started", project.id)
                    project.charged_gb = 0.0
                project.status = str(ProjectStatus.EXPIRED)
                project.error = "The project was not started before its upload links expired."
                project.finished_at = now
                repo.delete_parts(project.id)
                ids.append(project.id)
        for pid in ids:
            self.service.storage.delete_project(pid)
        return len(ids)

    def retention_cleanup(self) -> int:
        now = self.service.clock()
        targets = []
        with self.service.uow() as repo:
            for project in repo.projects_past_retention(now):
                project.data_deleted = True
                project.result_size = None
                targets.append((project.id, project.keep_for_research))
        for pid, keep_input in targets:
            if keep_input:
                self.service.storage.delete_result(pid)
                self.service.storage.delete_parts(pid)
            else:
                self.service.storage.delete_project(pid)
        return len(targets)

    async def run_forever(self, interval: float) -> None:
        while True:
            try:
                result = await asyncio.to_thread(self.run_once)
                if any(result.values()):
                    log.info("maintenance: %s", result)
            except Exception:  # keep the loop alive; the next round retries
                log.exception("maintenance round failed")
            await asyncio.sleep(interval)
