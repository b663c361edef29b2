"""Concurrent claimers on PostgreSQL (threads with their own engines, like separate replicas): `FOR UPDATE SKIP
LOCKED` hands every job to exactly one of them, in priority order per claimer, and nobody waits on a lock.

A barrier releases all claimers together for one claim per round, so the claims really race; a second test holds
a row lock in an open transaction and shows that a claim skips that row instead of waiting for it."""

from __future__ import annotations

import math
import threading
import time
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select

from openscancloud.db.database import Database
from openscancloud.db.models import Job
from openscancloud.db.repository import unit_of_work
from openscancloud.jobs.queue import JobQueue
from openscancloud.settings import Settings
from openscancloud.storage.local import LocalStorage

CLAIMERS = 4
JOBS = 40


def _seed(pg_url: str, jobs: int, claimers: int):
    Database(pg_url).upgrade()
    setup_db = Database(pg_url)
    now = datetime(2026, 1, 1)
    with unit_of_work(setup_db)() as repo:
        tok = repo.add_token(kind="worker", token_hash="h", hint="h", limit_photos=1, limit_filesize=1)
        workers = [repo.add_worker(id=uuid.uuid4().hex, token_id=tok.id, name=f"w{w}").id for w in range(claimers)]
        for i in range(jobs):
            pid = uuid.uuid4().hex
            repo.add_project(id=pid, token_id=tok.id, name=f"p{i}", status="queued", photos=1, parts=1, filesize=1,
                             upload_expires_at=now)
            repo.add_job(id=uuid.uuid4().hex, project_id=pid, status="queued", priority=i % 2, quality="preview",
                         max_attempts=3, queued_at=now + timedelta(seconds=i))
        token_id = tok.id
    return setup_db, token_id, workers


def test_concurrent_claims_on_postgres_are_exclusive(tmp_path, pg_url, threads_together):
    setup_db, token_id, workers = _seed(pg_url, JOBS, CLAIMERS)
    settings = Settings(data_dir=tmp_path)
    rounds = math.ceil(JOBS / CLAIMERS) + 1
    round_start = threading.Barrier(CLAIMERS)

    def claimer(worker_id: str) -> list[tuple[int, str] | None]:
        db = Database(pg_url)  # own engine and connections, like another replica
        queue = JobQueue(settings, unit_of_work(db), LocalStorage(tmp_path / "s"))
        got: list[tuple[int, str] | None] = []
        try:
            for _ in range(rounds):
                round_start.wait(timeout=60)
                claim = queue.claim(token_id, worker_id)
                if claim is None:
                    got.append(None)
                    continue
                with db.transaction() as s:
                    got.append((s.get(Job, claim.job_id).priority, claim.job_id))
        finally:
            db.dispose()
        return got

    per_thread = threads_together(claimer, [(w,) for w in workers])
    ids = [c[1] for got in per_thread for c in got if c is not None]
    assert len(ids) == JOBS and len(set(ids)) == JOBS
    assert all(sum(c is not None for c in got) >= JOBS // CLAIMERS for got in per_thread), per_thread
    for got in per_thread:  # each claimer saw private (0) before public (1)
        priorities = [c[0] for c in got if c is not None]
        assert priorities == sorted(priorities)
    setup_db.dispose()


def test_a_claim_skips_a_locked_job_instead_of_waiting(tmp_path, pg_url, threads_together):
    """Another replica is in the middle of claiming the first job (its row is locked in an open transaction):
    a claim now returns the second job while that lock is still held, and fast."""
    setup_db, token_id, workers = _seed(pg_url, 2, 1)
    with setup_db.transaction() as s:
        first, second = s.scalars(select(Job.id).order_by(Job.priority, Job.queued_at, Job.id)).all()
    holder = Database(pg_url)
    claimer_db = Database(pg_url)
    try:
        with holder.transaction() as s:
            s.scalar(select(Job).where(Job.id == first).with_for_update())  # the lock a concurrent claim holds
            queue = JobQueue(Settings(data_dir=tmp_path), unit_of_work(claimer_db), LocalStorage(tmp_path / "s"))

            def claim_while_locked():
                started = time.perf_counter()
                claim = queue.claim(token_id, workers[0])
                return claim, time.perf_counter() - started

            (claim, seconds), = threads_together(claim_while_locked, [()], timeout=30)
            assert claim is not None and claim.job_id == second  # the locked row was skipped, not waited for
            held = s.get(Job, first)
            assert held.status == "queued"  # and the lock is still ours: the claim finished while it was held
        print(f"claim next to a locked row took {seconds * 1000:.1f} ms")
        assert seconds < 10  # waiting would last until the holder commits, i.e. forever here
    finally:
        holder.dispose()
        claimer_db.dispose()
        setup_db.dispose()
