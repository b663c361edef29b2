"""Per-project webhooks: POST JSON to a real HTTP receiver, retried after a 5xx answer."""

from __future__ import annotations

import time


def test_webhook_is_posted_and_retried(mail_app, webhook_receiver, run_job):
    ctx, client = mail_app
    url, received = webhook_receiver
    run_job(ctx, client, ctx.service.public_token(), "hooked.zip", "done", webhook=url)
    deadline = time.time() + 10
    while len(received) < 2 and time.time() < deadline:
        time.sleep(0.05)
    assert len(received) == 2  # the first answer was 500, the retry succeeded
    assert received[1]["event"] == "project_done" and received[1]["name"] == "hooked.zip"
    assert received[1]["status"] == "done"


def test_webhook_must_be_http(mail_app):
    ctx, client = mail_app
    r = client.get("/createProject", params=dict(token=ctx.service.public_token(), project="w.zip", photos=1,
                                                 parts=1, filesize=10, webhook="file:///etc/passwd"),
                   auth=("openscan", "free"))
    assert r.status_code == 422 and r.json()["error"] == "invalid_webhook"


def test_webhook_on_failure_backs_off_and_gives_up(tmp_path, webhook_receiver_failing, run_job):
    """A failed project posts `project_failed` with the reason; a receiver answering 5xx is retried
    `webhook_attempts` times with growing pauses (backoff, 2×backoff, ...), then given up."""
    from fastapi.testclient import TestClient

    from openscancloud.api.app import create_app
    from openscancloud.settings import Settings

    url, received = webhook_receiver_failing
    settings = Settings(data_dir=tmp_path / "d", webhook_attempts=4, webhook_backoff_seconds=0.2,
                        webhook_allow_private=True)  # the receiver listens on 127.0.0.1
    app = create_app(settings, maintenance=False)
    with TestClient(app) as client:
        ctx = app.state.ctx
        run_job(ctx, client, ctx.service.public_token(), "broken.zip", "failed", webhook=url)
        deadline = time.monotonic() + 15
        while len(received) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(2.0)  # a fifth attempt would come 1.6 s after the fourth: there must be none
    assert len(received) == 4
    bodies = [body for _, body in received]
    assert all(b == bodies[0] for b in bodies)  # the same payload every time
    assert bodies[0]["event"] == "project_failed" and bodies[0]["name"] == "broken.zip"
    assert bodies[0]["status"] == "failed" and bodies[0]["error"] == "Too few photos overlap."
    gaps = [b[0] - a[0] for a, b in zip(received, received[1:])]
    for gap, pause in zip(gaps, (0.2, 0.4, 0.8)):
        assert gap >= pause, gaps  # sleeps are never shorter than asked
    assert gaps[0] < gaps[1] < gaps[2], gaps
