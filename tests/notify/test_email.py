"""E-mail through a real SMTP server: project done/failed for private tokens, token requests."""

from __future__ import annotations

import re
import time

from openscancloud.domain.tokens import TokenKind

AUTH = ("openscan", "free")


def test_private_owner_gets_done_and_failed_mail(mail_app, smtp, run_job):
    ctx, client = mail_app
    _, inbox = smtp
    token, _ = ctx.service.create_token(TokenKind.PRIVATE, forename="Ada", surname="L", email="ada@example.org")
    run_job(ctx, client, token, "ok.zip", "done")
    msgs = inbox.wait(1)
    assert msgs[0]["to"] == ["ada@example.org"] and "ok.zip is ready" in msgs[0]["subject"]
    run_job(ctx, client, token, "bad.zip", "failed")
    msgs = inbox.wait(2)
    assert "bad.zip failed" in msgs[1]["subject"] and "Too few photos overlap." in msgs[1]["body"]


def test_public_token_projects_send_no_mail(mail_app, smtp, run_job):
    ctx, client = mail_app
    _, inbox = smtp
    run_job(ctx, client, ctx.service.public_token(), "pub.zip", "done")
    time.sleep(0.5)
    assert inbox.messages == []


def test_request_token_mails_it_and_confirmation_activates_it(mail_app, smtp):
    ctx, client = mail_app
    _, inbox = smtp
    r = client.get("/requestToken", params={"mail": "grace@example.org", "forename": "Grace", "lastname": "Hopper"},
                   auth=AUTH)
    assert r.status_code == 200 and "prv_" not in r.text  # the answer never contains the token
    body = inbox.wait(1)[0]["body"]
    token = re.search(r"(prv_[A-Za-z0-9_-]+)", body).group(1)
    confirm = re.search(r"(http://\S+/confirmToken\S+)", body).group(1)
    r = client.get("/getTokenInfo", params={"token": token}, auth=AUTH)
    assert r.status_code == 403 and "not confirmed" in r.json()["message"]
    assert client.get(confirm.replace("s=", "s=x")).status_code == 403
    assert client.get(confirm).json()["status"] == "confirmed"
    info = client.get("/getTokenInfo", params={"token": token}, auth=AUTH).json()
    assert info["credit"] == ctx.settings.private_credit_gb and info["kind"] == "private"
    row = ctx.service.find_token(token)
    assert (row.forename, row.surname, row.email) == ("Grace", "Hopper", "grace@example.org")


def test_request_token_rate_limits_and_validation(mail_app, smtp):
    ctx, client = mail_app
    params = {"mail": "spam@example.org", "forename": "S", "lastname": "P"}
    for _ in range(ctx.settings.request_token_per_email_per_day):
        assert client.get("/requestToken", params=params, auth=AUTH).status_code == 200
    r = client.get("/requestToken", params=params, auth=AUTH)
    assert r.status_code == 429 and "today" in r.json()["message"]
    for i in range(ctx.settings.request_token_per_ip_per_hour - ctx.settings.request_token_per_email_per_day):
        assert client.get("/requestToken", params={**params, "mail": f"u{i}@example.org"}, auth=AUTH).status_code == 200
    r = client.get("/requestToken", params={**params, "mail": "fresh@example.org"}, auth=AUTH)
    assert r.status_code == 429 and "network" in r.json()["message"]
    r = client.get("/requestToken", params={**params, "mail": "not-an-address"}, auth=AUTH)
    assert r.status_code == 422
