"""Concurrent claimers on PostgreSQL (threads with their own engines, like separate replicas): `FOR UPDATE SKIP
LOCKED` hands every job to exactly one of them, in priority order per claimer, and nobody waits on a lock."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta

from openscancloud.db.database import Database
from openscancloud.db.repository import unit_of_work
from openscancloud.jobs.queue import JobQueue
from openscancloud.settings import Settings
from openscancloud.storage.local import LocalStorage


def test_concurrent_claims_on_postgres_are_exclusive(tmp_path, pg_url):
    Database(pg_url).upgrade()
    setup_db = Database(pg_url)
    setup = unit_of_work(setup_db)
    now = datetime(2026, 1, 1)
    with setup() as repo:
        tok = repo.add_token(kind="worker", token_hash="h", hint="h", limit_photos=1, limit_filesize=1)
        workers = [repo.add_worker(id=uuid.uuid4().hex, token_id=tok.id, name=f"w{w}").id for w in range(4)]
        for i in range(40):
            pid = uuid.uuid4().hex
            repo.add_project(id=pid, token_id=tok.id, name=f"p{i}", status="queued", photos=1, parts=1, filesize=1,
                             upload_expires_at=now)
            repo.add_job(id=uuid.uuid4().hex, project_id=pid, status="queued", priority=i % 2, quality="preview",
                         max_attempts=3, queued_at=now + timedelta(seconds=i))
    claimed: dict[str, list[tuple[int, str]]] = {w: [] for w in workers}
    settings = Settings(data_dir=tmp_path)

    def claimer(worker_id: str) -> None:
        db = Database(pg_url)  # own engine and connections, like another replica
        queue = JobQueue(settings, unit_of_work(db), LocalStorage(tmp_path / "s"))
        while (claim := queue.claim(tok.id, worker_id)) is not None:
            with db.transaction() as s:
                from openscancloud.db.models import Job

                claimed[worker_id].append((s.get(Job, claim.job_id).priority, claim.job_id))
        db.dispose()

    threads = [threading.Thread(target=claimer, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    ids = [job for got in claimed.values() for _, job in got]
    assert len(ids) == 40 and len(set(ids)) == 40
    for got in claimed.values():  # each claimer saw private (0) before public (1)
        priorities = [p for p, _ in got]
        assert priorities == sorted(priorities)
    setup_db.dispose()
