"""SQLAlchemy implementation of `domain.ports.Repository` (all SQL of the server lives here)."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Iterator, Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from openscancloud.db.database import Database
from openscancloud.db.models import Job, LedgerEntry, Part, PartWriter, Project, ShareLink, Token, TokenRequest, Worker


class SqlRepository:
    def __init__(self, session: Session) -> None:
        self.s = session

    # --- tokens and ledger ----------------------------------------------------------------------------------
    def token_by_hash(self, token_hash: str) -> Token | None:
        return self.s.scalar(select(Token).where(Token.token_hash == token_hash))

    def token_by_id(self, token_id: int, *, lock: bool = False) -> Token | None:
        q = select(Token).where(Token.id == token_id)
        if lock:
            q = q.with_for_update()
        return self.s.scalar(q)

    def tokens(self, kind: str | None = None) -> Sequence[Token]:
        q = select(Token).order_by(Token.id)
        if kind:
            q = q.where(Token.kind == kind)
        return self.s.scalars(q).all()

    def add_token(self, **fields: Any) -> Token:
        token = Token(**fields)
        self.s.add(token)
        self.s.flush()
        return token

    def ledger_sum(self, token_id: int, since: datetime | None = None) -> float:
        q = select(func.coalesce(func.sum(LedgerEntry.amount_gb), 0.0)).where(LedgerEntry.token_id == token_id)
        if since is not None:
            q = q.where(LedgerEntry.created_at >= since)
        return float(self.s.scalar(q) or 0.0)

    def add_ledger(self, token_id: int, kind: str, amount_gb: float, reason: str, project_id: str | None) -> LedgerEntry:
        row = LedgerEntry(token_id=token_id, kind=kind, amount_gb=amount_gb, reason=reason, project_id=project_id)
        self.s.add(row)
        self.s.flush()
        return row

    def ledger(self, token_id: int | None = None, project_id: str | None = None) -> Sequence[LedgerEntry]:
        q = select(LedgerEntry).order_by(LedgerEntry.id)
        if token_id is not None:
            q = q.where(LedgerEntry.token_id == token_id)
        if project_id is not None:
            q = q.where(LedgerEntry.project_id == project_id)
        return self.s.scalars(q).all()

    def count_token_requests(self, *, email: str | None = None, ip: str | None = None, since: datetime) -> int:
        q = select(func.count()).select_from(TokenRequest).where(TokenRequest.created_at >= since)
        if email is not None:
            q = q.where(TokenRequest.email == email)
        if ip is not None:
            q = q.where(TokenRequest.ip == ip)
        return int(self.s.scalar(q) or 0)

    def add_token_request(self, email: str, ip: str, token_id: int | None, *, forename: str | None = None,
                          surname: str | None = None, status: str = "approved") -> TokenRequest:
        row = TokenRequest(email=email, ip=ip, token_id=token_id, forename=forename, surname=surname, status=status)
        self.s.add(row)
        self.s.flush()
        return row

    def token_requests(self, status: str | None = None) -> Sequence[TokenRequest]:
        q = select(TokenRequest).order_by(TokenRequest.id)
        if status is not None:
            q = q.where(TokenRequest.status == status)
        return self.s.scalars(q).all()

    def token_request_by_id(self, request_id: int, *, lock: bool = False) -> TokenRequest | None:
        q = select(TokenRequest).where(TokenRequest.id == request_id)
        if lock:
            q = q.with_for_update()
        return self.s.scalar(q)

    # --- projects and parts ---------------------------------------------------------------------------------
    def add_project(self, **fields: Any) -> Project:
        project = Project(**fields)
        self.s.add(project)
        self.s.flush()
        return project

    def project_by_name(self, token_id: int, name: str, *, lock: bool = False) -> Project | None:
        q = select(Project).where(Project.token_id == token_id, Project.name == name)
        if lock:
            q = q.with_for_update()
        return self.s.scalar(q)

    def project_by_id(self, project_id: str, *, lock: bool = False) -> Project | None:
        q = select(Project).where(Project.id == project_id)
        if lock:
            q = q.with_for_update()
        return self.s.scalar(q)

    def projects_of(self, token_id: int) -> Sequence[Project]:
        return self.s.scalars(
            select(Project).where(Project.token_id == token_id).order_by(Project.created_at.desc())
        ).all()

    def client_usage(self, token_id: int, client_ip: str, since: datetime) -> tuple[int, int, int]:
        """(projects created since `since`, projects still open for uploads, their declared bytes) of one
        client of one token."""
        mine = (Project.token_id == token_id, Project.client_ip == client_ip)
        created = self.s.scalar(select(func.count()).select_from(Project).where(*mine, Project.created_at >= since))
        open_count, open_bytes = self.s.execute(
            select(func.count(), func.coalesce(func.sum(Project.filesize), 0))
            .where(*mine, Project.status.in_(["created", "uploading"]))
        ).one()
        return int(created or 0), int(open_count or 0), int(open_bytes or 0)

    def claim_part_writer(self, project_id: str, index: int, writer: str, now: datetime,
                          stale_before: datetime, takeover: bool = False) -> bool:
        """Become the one writer of a part unless a fresh writer holds it and `takeover` is off (the caller
        holds the project lock)."""
        row = self.s.get(PartWriter, (project_id, index))
        if row is not None and row.touched_at >= stale_before and not takeover:
            return False
        if row is None:
            self.s.add(PartWriter(project_id=project_id, index=index, writer=writer, touched_at=now))
        else:
            row.writer, row.touched_at = writer, now
        self.s.flush()
        return True

    def touch_part_writer(self, project_id: str, index: int, writer: str, now: datetime) -> bool:
        row = self.s.get(PartWriter, (project_id, index))
        if row is None or row.writer != writer:
            return False
        row.touched_at = now
        return True

    def release_part_writer(self, project_id: str, index: int, writer: str) -> None:
        self.s.execute(delete(PartWriter).where(PartWriter.project_id == project_id, PartWriter.index == index,
                                                PartWriter.writer == writer))

    def part_writers_active(self, project_id: str, stale_before: datetime) -> int:
        return int(self.s.scalar(select(func.count()).select_from(PartWriter).where(
            PartWriter.project_id == project_id, PartWriter.touched_at >= stale_before)) or 0)

    def delete_project(self, project: Project) -> None:
        self.s.execute(delete(PartWriter).where(PartWriter.project_id == project.id))
        self.s.execute(delete(Part).where(Part.project_id == project.id))
        self.s.execute(delete(ShareLink).where(ShareLink.project_id == project.id))
        self.s.execute(delete(Job).where(Job.project_id == project.id))
        self.s.delete(project)
        self.s.flush()

    def parts_of(self, project_id: str) -> Sequence[Part]:
        return self.s.scalars(select(Part).where(Part.project_id == project_id).order_by(Part.index)).all()

    def save_part(self, project_id: str, index: int, size: int, sha256: str) -> None:
        part = self.s.get(Part, (project_id, index))
        if part is None:
            self.s.add(Part(project_id=project_id, index=index, size=size, sha256=sha256))
        else:
            part.size, part.sha256 = size, sha256
        self.s.flush()

    def delete_parts(self, project_id: str) -> None:
        self.s.execute(delete(Part).where(Part.project_id == project_id))

    def projects_to_expire(self, now: datetime) -> Sequence[Project]:
        return self.s.scalars(
            select(Project)
            .where(Project.status.in_(["created", "uploading"]), Project.upload_expires_at < now)
            .with_for_update(skip_locked=True)
        ).all()

    def projects_past_retention(self, now: datetime) -> Sequence[Project]:
        return self.s.scalars(
            select(Project)
            .where(Project.delete_after.is_not(None), Project.delete_after < now, Project.data_deleted.is_(False))
            .with_for_update(skip_locked=True)
        ).all()

    # --- jobs and workers -----------------------------------------------------------------------------------
    def add_job(self, **fields: Any) -> Job:
        job = Job(**fields)
        self.s.add(job)
        self.s.flush()
        return job

    def job_by_id(self, job_id: str, *, lock: bool = False) -> Job | None:
        q = select(Job).where(Job.id == job_id)
        if lock:
            q = q.with_for_update()
        return self.s.scalar(q)

    def latest_job(self, project_id: str) -> Job | None:
        return self.s.scalar(
            select(Job).where(Job.project_id == project_id).order_by(Job.queued_at.desc(), Job.id).limit(1)
        )

    def next_claimable_job(self) -> Job | None:
        """Highest priority, then oldest queued job. PostgreSQL: FOR UPDATE SKIP LOCKED so that concurrent
        claimers skip each other's row; SQLite: the surrounding BEGIN IMMEDIATE serialises claimers."""
        return self.s.scalar(
            select(Job)
            .where(Job.status == "queued")
            .order_by(Job.priority, Job.queued_at, Job.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )

    def expired_leases(self, now: datetime) -> Sequence[Job]:
        return self.s.scalars(
            select(Job).where(Job.status == "running", Job.lease_until < now).with_for_update(skip_locked=True)
        ).all()

    def queued_jobs(self) -> Sequence[Job]:
        return self.s.scalars(
            select(Job).where(Job.status == "queued").order_by(Job.priority, Job.queued_at, Job.id)
        ).all()

    def running_jobs(self) -> Sequence[Job]:
        return self.s.scalars(select(Job).where(Job.status == "running")).all()

    def recent_durations(self, limit: int = 20) -> Sequence[float]:
        rows = self.s.execute(
            select(Job.started_at, Job.finished_at)
            .where(Job.status == "done", Job.started_at.is_not(None), Job.finished_at.is_not(None))
            .order_by(Job.finished_at.desc())
            .limit(limit)
        ).all()
        return [(f - s).total_seconds() for s, f in rows]

    def recent_done_reports(self, quality: str, limit: int = 20) -> list[tuple[str, float]]:
        """(report JSON, wall seconds) of the newest successful jobs of one quality (for the ETA)."""
        rows = self.s.execute(
            select(Job.report, Job.started_at, Job.finished_at)
            .where(Job.status == "done", Job.quality == quality, Job.report.is_not(None),
                   Job.started_at.is_not(None), Job.finished_at.is_not(None))
            .order_by(Job.finished_at.desc())
            .limit(limit)
        ).all()
        return [(r, (f - s).total_seconds()) for r, s, f in rows]

    def add_share(self, **fields: Any) -> ShareLink:
        share = ShareLink(**fields)
        self.s.add(share)
        self.s.flush()
        return share

    def share_by_id(self, share_id: str) -> ShareLink | None:
        return self.s.get(ShareLink, share_id)

    def shares_of(self, project_id: str) -> Sequence[ShareLink]:
        return self.s.scalars(
            select(ShareLink).where(ShareLink.project_id == project_id).order_by(ShareLink.created_at)
        ).all()

    def add_worker(self, **fields: Any) -> Worker:
        worker = Worker(**fields)
        self.s.add(worker)
        self.s.flush()
        return worker

    def worker_by_id(self, worker_id: str) -> Worker | None:
        return self.s.get(Worker, worker_id)

    def workers(self, seen_since: datetime | None = None) -> Sequence[Worker]:
        q = select(Worker).order_by(Worker.last_seen_at.desc())
        if seen_since is not None:
            q = q.where(Worker.last_seen_at >= seen_since)
        return self.s.scalars(q).all()

    def workers_seen_since(self, since: datetime) -> int:
        return int(self.s.scalar(select(func.count()).select_from(Worker).where(Worker.last_seen_at >= since)) or 0)


def unit_of_work(db: Database):
    """A `domain.ports.UnitOfWork`: each `with uow() as repo:` is one transaction.

    Re-entrant per thread: a `with uow()` inside another one (same thread) joins the outer transaction instead
    of opening a second connection. Read paths that call several service methods (getProjectInfo: token,
    project, job, parts) wrap them in one outer `uow()` and pay for one transaction instead of four."""
    local = threading.local()

    @contextmanager
    def _uow() -> Iterator[SqlRepository]:
        outer = getattr(local, "repo", None)
        if outer is not None:
            yield outer
            return
        with db.transaction() as session:
            local.repo = SqlRepository(session)
            try:
                yield local.repo
            finally:
                local.repo = None

    return _uow
