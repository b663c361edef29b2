"""Several claimers at once (threads, each with its own engine like separate processes) never get the same
job twice on SQLite (BEGIN IMMEDIATE serialises the claim transactions)."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta

from openscancloud.db.database import Database
from openscancloud.db.repository import unit_of_work
from openscancloud.jobs.queue import JobQueue
from openscancloud.settings import Settings
from openscancloud.storage.local import LocalStorage


def test_concurrent_claims_are_exclusive(tmp_path):
    settings = Settings(data_dir=tmp_path)
    url = f"sqlite:///{tmp_path / 'q.db'}"
    Database(url).upgrade()
    setup = unit_of_work(Database(url))
    now = datetime(2026, 1, 1)
    with setup() as repo:
        tok = repo.add_token(kind="worker", token_hash="h", hint="h", limit_photos=1, limit_filesize=1)
        worker_ids = []
        for w in range(4):
            worker_ids.append(repo.add_worker(id=uuid.uuid4().hex, token_id=tok.id, name=f"w{w}").id)
        for i in range(30):
            pid = uuid.uuid4().hex
            repo.add_project(id=pid, token_id=tok.id, name=f"p{i}", status="queued", photos=1, parts=1, filesize=1,
                             upload_expires_at=now)
            repo.add_job(id=uuid.uuid4().hex, project_id=pid, status="queued", priority=i % 2, quality="preview",
                         max_attempts=3, queued_at=now + timedelta(seconds=i))
    claimed: list[str] = []
    lock = threading.Lock()

    def claimer(worker_id: str) -> None:
        queue = JobQueue(settings, unit_of_work(Database(url)), LocalStorage(tmp_path / "s"))  # own engine
        while (claim := queue.claim(tok.id, worker_id)) is not None:
            with lock:
                claimed.append(claim.job_id)

    threads = [threading.Thread(target=claimer, args=(w,)) for w in worker_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(claimed) == 30 and len(set(claimed)) == 30
