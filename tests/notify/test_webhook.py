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
