"""Several claimers at once (threads, each with its own engine like separate processes) never get the same
job twice on SQLite (BEGIN IMMEDIATE serialises the claim transactions).

The claimers run in rounds: a barrier releases all of them together for one claim each, so every round really
has four claim transactions racing for the same rows, and every claimer is guaranteed to take part."""

from __future__ import annotations

import math
import threading
import uuid
from datetime import datetime, timedelta

from openscancloud.db.database import Database
from openscancloud.db.repository import unit_of_work
from openscancloud.jobs.queue import JobQueue
from openscancloud.settings import Settings
from openscancloud.storage.local import LocalStorage

CLAIMERS = 4
JOBS = 30


def test_concurrent_claims_are_exclusive(tmp_path, threads_together):
    settings = Settings(data_dir=tmp_path)
    url = f"sqlite:///{tmp_path / 'q.db'}"
    Database(url).upgrade()
    setup = unit_of_work(Database(url))
    now = datetime(2026, 1, 1)
    with setup() as repo:
        tok = repo.add_token(kind="worker", token_hash="h", hint="h", limit_photos=1, limit_filesize=1)
        worker_ids = [repo.add_worker(id=uuid.uuid4().hex, token_id=tok.id, name=f"w{w}").id
                      for w in range(CLAIMERS)]
        for i in range(JOBS):
            pid = uuid.uuid4().hex
            repo.add_project(id=pid, token_id=tok.id, name=f"p{i}", status="queued", photos=1, parts=1, filesize=1,
                             upload_expires_at=now)
            repo.add_job(id=uuid.uuid4().hex, project_id=pid, status="queued", priority=i % 2, quality="preview",
                         max_attempts=3, queued_at=now + timedelta(seconds=i))
    rounds = math.ceil(JOBS / CLAIMERS) + 1  # the last round finds the queue empty
    round_start = threading.Barrier(CLAIMERS)

    def claimer(worker_id: str) -> list[str | None]:
        queue = JobQueue(settings, unit_of_work(Database(url)), LocalStorage(tmp_path / "s"))  # own engine
        got: list[str | None] = []
        for _ in range(rounds):
            round_start.wait(timeout=60)  # all claimers race for the next rows together
            claim = queue.claim(tok.id, worker_id)
            got.append(claim.job_id if claim else None)
        return got

    per_thread = threads_together(claimer, [(w,) for w in worker_ids])
    claimed = [job for got in per_thread for job in got if job is not None]
    assert len(claimed) == JOBS and len(set(claimed)) == JOBS
    # every claimer did work: at least JOBS // CLAIMERS jobs each (a thread only sees None once the queue is empty)
    assert all(sum(j is not None for j in got) >= JOBS // CLAIMERS for got in per_thread), per_thread
    for got in per_thread:  # once empty, always empty: no claim was lost to an error
        first_none = got.index(None)
        assert all(j is None for j in got[first_none:])
