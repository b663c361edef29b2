"""The engine's warnings travel with a finished project: getProjectInfo, REST, e-mail and webhook all show them."""

from __future__ import annotations

import time

from openscancloud.domain.tokens import TokenKind

WARNINGS = ["3 of 40 photos could not be placed (too few reliable matches with the others): a.jpg, b.jpg, c.jpg; "
            "the model may miss the parts only they show."]


def test_warnings_reach_every_view_of_the_project(mail_app, smtp, webhook_receiver, run_job):
    ctx, client = mail_app
    _, inbox = smtp
    url, received = webhook_receiver
    token, _ = ctx.service.create_token(TokenKind.PRIVATE, forename="Ada", surname="L", email="ada@example.org")
    # what the worker sends: the engine's report.json plus the done event's warnings
    report = {"engine": {"warnings": WARNINGS, "images": {"used": 40, "registered": 37}}, "warnings": WARNINGS}
    created = run_job(ctx, client, token, "partial.zip", "done", webhook=url, report=report)

    legacy = client.get("/getProjectInfo", params={"token": token, "project": "partial.zip"},
                        auth=("openscan", "free")).json()
    assert legacy["status"] == "done" and legacy["warnings"] == WARNINGS
    rest = client.get(f"/api/v1/projects/{created['id']}", headers={"Authorization": f"Bearer {token}"}).json()
    assert rest["warnings"] == WARNINGS

    mail = inbox.wait(1)[0]
    assert "(with warnings)" in mail["subject"] and WARNINGS[0] in " ".join(mail["body"].split())
    deadline = time.time() + 10
    while len(received) < 2 and time.time() < deadline:
        time.sleep(0.05)
    assert received[-1]["event"] == "project_done" and received[-1]["warnings"] == WARNINGS


def test_a_clean_result_has_an_empty_warning_list(mail_app, run_job):
    ctx, client = mail_app
    token = ctx.service.public_token()
    run_job(ctx, client, token, "clean.zip", "done")
    info = client.get("/getProjectInfo", params={"token": token, "project": "clean.zip"},
                      auth=("openscan", "free")).json()
    assert info["status"] == "done" and info["warnings"] == []
