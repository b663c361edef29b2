"""Byte-compatibility of the polled answers: `getProjectInfo` (legacy) and `GET /api/v1/projects/{id}` (REST)
must produce exactly the bytes the server produced before the polling path was rewritten for speed.

The scenario pins everything that would otherwise vary (token, project ids, signing key, clock, timestamps) and
walks one project through uploading → queued → running → done, plus a failed one. The answers were recorded
with the previous implementation into `data/poll_answers.json`; set `OPENSCAN_RECORD_POLL=1` to re-record
(only when a change of the answer is intended)."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from openscancloud.api.app import create_app
from openscancloud.domain.tokens import TokenKind
from openscancloud.settings import Settings

RECORDED = Path(__file__).with_name("data") / "poll_answers.json"
AUTH = ("openscan", "free")
TOKEN = "prv_compatcompatcompatcompatcompat0"
PID = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"
FAILED = "00000000000000000000000000000042"
NOW = datetime(2026, 11, 30, 12, 0, 0)


def _sql(ctx, statement: str, **params) -> None:
    with ctx.db.engine.begin() as conn:
        conn.execute(text(statement), params)


def _create(client, name: str, new_id: str, ctx, filesize: int = 10000, parts: int = 3) -> None:
    r = client.get("/createProject", params=dict(token=TOKEN, project=name, photos=3, parts=parts,
                                                  filesize=filesize), auth=AUTH)
    assert r.status_code == 200, r.text
    _sql(ctx, "UPDATE projects SET id=:new, created_at=:c, updated_at=:c, upload_expires_at=:e WHERE id=:old",
         new=new_id, old=r.json()["id"], c=datetime(2026, 11, 30, 11, 0, 0), e=datetime(2026, 12, 1, 11, 0, 0))


def poll_answers(tmp_path: Path, database_url: str | None = None) -> dict[str, dict[str, str]]:
    """The scenario: {state: {"legacy": body, "rest": body}} as text (UTF-8)."""
    settings = Settings(data_dir=tmp_path / "data", part_limit_bytes=4096, maintenance_interval_seconds=0,
                        secret_key="compat-secret", private_credit_gb=5.0, database_url=database_url)
    app = create_app(settings, maintenance=False)
    ctx = app.state.ctx
    ctx.service.clock = lambda: NOW
    ctx.service.create_token(TokenKind.PRIVATE, secret_token=TOKEN, email="compat@example.org")
    answers: dict[str, dict[str, str]] = {}
    with TestClient(app) as client:
        def record(state: str, name: str, pid: str) -> None:
            legacy = client.get("/getProjectInfo", params={"token": TOKEN, "project": name}, auth=AUTH)
            rest = client.get(f"/api/v1/projects/{pid}", headers={"Authorization": f"Bearer {TOKEN}"})
            assert legacy.status_code == 200 and rest.status_code == 200, (legacy.text, rest.text)
            answers[state] = {"legacy": legacy.content.decode(), "rest": rest.content.decode()}

        _create(client, "compat.zip", PID, ctx)
        record("created", "compat.zip", PID)
        links = json.loads(answers["created"]["legacy"])["ulink"]
        assert client.post(links[0], content=b"a" * 4096).status_code == 200
        assert client.post(links[1], content=b"b" * 1000,
                           headers={"Content-Range": "bytes 0-999/4096"}).status_code in (200, 202, 308)
        _sql(ctx, "UPDATE projects SET status='uploading', updated_at=:t WHERE id=:p", t=NOW, p=PID)
        _sql(ctx, "UPDATE parts SET sha256=:h WHERE project_id=:p", h="ab" * 32, p=PID)
        record("uploading", "compat.zip", PID)

        # a finished job of another project gives the average duration (300 s) the ETA uses
        _create(client, "other.zip", OTHER, ctx)
        _sql(ctx, "INSERT INTO jobs (id, project_id, status, priority, quality, attempt, max_attempts, "
                  "cancel_requested, progress, user_error, queued_at, started_at, finished_at) VALUES "
                  "('j-other', :p, 'done', 0, 'standard', 1, 3, false, 1.0, false, :q, :s, :f)",
             p=OTHER, q=datetime(2026, 11, 30, 9, 0, 0), s=datetime(2026, 11, 30, 9, 0, 0),
             f=datetime(2026, 11, 30, 9, 5, 0))
        _sql(ctx, "UPDATE projects SET status='queued', queued_at=:t, updated_at=:t WHERE id=:p", t=NOW, p=PID)
        _sql(ctx, "INSERT INTO jobs (id, project_id, status, priority, quality, attempt, max_attempts, "
                  "cancel_requested, progress, user_error, queued_at, stage) VALUES "
                  "('j-main', :p, 'queued', 0, 'standard', 0, 3, false, 0.0, false, :q, 'queued')",
             p=PID, q=datetime(2026, 11, 30, 11, 30, 0))
        record("queued", "compat.zip", PID)

        _sql(ctx, "UPDATE jobs SET status='running', attempt=1, started_at=:s, stage='dense', progress=0.4237, "
                  "log_tail=:log WHERE id='j-main'",
             s=datetime(2026, 11, 30, 11, 50, 0), log="sparse: 3/3 registered\ndense: fusing — “depth maps” ü")
        _sql(ctx, "UPDATE projects SET status='processing', started_at=:s, updated_at=:s WHERE id=:p",
             s=datetime(2026, 11, 30, 11, 50, 0), p=PID)
        record("running", "compat.zip", PID)

        _sql(ctx, "UPDATE jobs SET status='done', progress=1.0, stage='done', finished_at=:f, report=:r "
                  "WHERE id='j-main'", f=datetime(2026, 11, 30, 11, 58, 0),
             r=json.dumps({"photos": 3, "registered": 3, "faces": 12345, "seconds": 480.5, "note": "ünïcode"}))
        _sql(ctx, "UPDATE projects SET status='done', finished_at=:f, updated_at=:f, delete_after=:d, "
                  "result_size=123456, result_sha256=:h WHERE id=:p", f=datetime(2026, 11, 30, 11, 58, 0),
             d=datetime(2026, 12, 30, 11, 58, 0), h="cd" * 32, p=PID)
        record("done", "compat.zip", PID)

        _create(client, "failed.zip", FAILED, ctx, filesize=1_000_000_000 // 4096 * 4096 // 100000, parts=3)
        _sql(ctx, "UPDATE projects SET status='failed', error=:e, finished_at=:f, updated_at=:f WHERE id=:p",
             e="The photos could not be matched: only 1 of 3 images registered “too few”.",
             f=datetime(2026, 11, 30, 11, 59, 0), p=FAILED)
        record("failed", "failed.zip", FAILED)
    ctx.db.dispose()
    return answers


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_poll_answers_are_byte_identical_to_the_recording(tmp_path, request, database):
    """Recorded on SQLite with the previous implementation; PostgreSQL (the other read implementation: native
    async psycopg) must give the same bytes."""
    answers = poll_answers(tmp_path, request.getfixturevalue("pg_url") if database == "postgresql" else None)
    if os.environ.get("OPENSCAN_RECORD_POLL") == "1" and database == "sqlite":
        RECORDED.parent.mkdir(exist_ok=True)
        RECORDED.write_text(json.dumps(answers, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        pytest.skip("recorded the answers (OPENSCAN_RECORD_POLL=1)")
    recorded = json.loads(RECORDED.read_text(encoding="utf-8"))
    assert set(answers) == set(recorded)
    for state in recorded:
        assert answers[state]["legacy"] == recorded[state]["legacy"], state
        assert answers[state]["rest"] == recorded[state]["rest"], state
