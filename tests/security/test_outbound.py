"""M3 and M8: the server never sends requests into its own or a private network on a stranger's behalf, signs
what it sends, and `/requestToken` mails exactly one person with links built from the configured address only.
Also: token requests without SMTP are recorded and approved by the operator (REST and CLI)."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from aiosmtpd.controller import Controller

from openscancloud.domain.tokens import TokenKind

AUTH = ("openscan", "free")


@pytest.fixture
def receiver():
    """A webhook receiver on 127.0.0.1 recording (headers, body) of every POST."""
    got: list[tuple[dict, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            got.append((dict(self.headers), self.rfile.read(int(self.headers.get("Content-Length", 0)))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], got
    server.shutdown()


@pytest.mark.parametrize("host", ["127.0.0.1", "[::ffff:127.0.0.1]", "2130706433", "127.1", "0x7f.1", "[::1]",
                                  "10.1.2.3", "192.168.1.1", "169.254.169.254", "0.0.0.0", "[fe80::1]",
                                  "100.64.0.1", "[::ffff:7f00:1]"])
def test_webhooks_to_loopback_or_private_addresses_are_refused(live, host):
    srv = live()
    url = f"http://{host}:8080/hook"
    r = srv.legacy("createProject", token=srv.public_token, project="h.zip", photos=1, parts=1, filesize=10,
                   webhook=url)
    assert r.status_code == 422 and r.json()["error"] == "webhook_not_public", (host, r.text)
    r = httpx.post(f"{srv.url}/api/v1/projects", headers={"Authorization": f"Bearer {srv.public_token}"},
                   json={"name": "h", "photos": 1, "parts": 1, "filesize": 10, "webhook_url": url})
    assert r.status_code == 422 and "public internet address" in r.json()["detail"]


def test_webhook_urls_are_length_capped(live):
    srv = live()
    r = srv.legacy("createProject", token=srv.public_token, project="long.zip", photos=1, parts=1, filesize=10,
                   webhook="https://example.org/" + "a" * 3000)
    assert r.status_code == 422 and "longer than 2000" in r.json()["message"]


def test_a_name_resolving_to_loopback_is_refused_when_sending(live, receiver, make_zip):
    """`localhost` passes the create check (it is a name) but resolves to loopback: nothing is sent, neither to
    a local receiver nor to the server's own worker API."""
    port, got = receiver
    srv = live()
    token = srv.private_token()
    data = make_zip(3)
    for name, url in [("rebind.zip", f"http://localhost:{port}/hook"),
                      ("self.zip", f"{srv.url.replace('127.0.0.1', 'localhost')}/api/v1/worker/register")]:
        srv.upload(token, name, data, webhook=url)
        assert srv.legacy("startProject", token=token, project=name).status_code == 200
        srv.finish_job()
    time.sleep(1.0)  # the notifier runs on a background thread
    assert got == []
    with srv.ctx.service.uow() as repo:
        assert [w.name for w in repo.workers()] == ["w", "w"]  # only the test's own registrations


def test_webhook_bodies_are_signed_with_the_projects_secret(live, receiver, make_zip):
    port, got = receiver
    srv = live(webhook_allow_private=True)  # a closed network: the operator allowed private targets
    token = srv.private_token()
    info = srv.upload(token, "signed.zip", make_zip(3), webhook=f"http://127.0.0.1:{port}/hook")
    assert srv.legacy("startProject", token=token, project="signed.zip").status_code == 200
    srv.finish_job()
    view = httpx.get(f"{srv.url}/api/v1/projects/{info['id']}", headers={"Authorization": f"Bearer {token}"}).json()
    secret = view["webhook_secret"]
    deadline = time.time() + 10
    while not got and time.time() < deadline:
        time.sleep(0.05)
    headers, body = got[0]
    expected = hmac.new(secret.encode(), headers["X-OpenScan-Timestamp"].encode() + b"." + body,
                        hashlib.sha256).hexdigest()
    assert headers["X-OpenScan-Signature"] == f"sha256={expected}"
    assert json.loads(body)["event"] == "project_done"
    # a receiver with another project's secret would reject it
    other = srv.legacy("getProjectInfo", token=token, project="signed.zip").json()
    assert "webhook_secret" not in other  # the legacy view (by name) does not hand out secrets


class Inbox:
    def __init__(self) -> None:
        self.messages: list[dict] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append({"to": envelope.rcpt_tos, "body": msg.get_content()})
        return "250 OK"


@pytest.fixture
def inbox():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    box = Inbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, box
    controller.stop()


def _wait(box: Inbox, n: int) -> list[dict]:
    deadline = time.time() + 10
    while len(box.messages) < n and time.time() < deadline:
        time.sleep(0.05)
    return box.messages


def test_request_token_takes_one_plain_address_and_short_names(live, inbox):
    port, box = inbox
    srv = live(smtp_host="127.0.0.1", smtp_port=port, public_url="https://cloud.example.org")
    bad = [
        {"mail": "a@x.org,b@y.org,c@z.org"},
        {"mail": "a@x.org;b@y.org"},
        {"mail": "Eve <eve@example.org>"},
        {"mail": "\"Eve\" eve@example.org"},
        {"mail": "eve@example.org\r\nBcc: victim@example.org"},
        {"mail": "eve@example.org", "forename": "x" * 3000},
        {"mail": "eve@example.org", "forename": "Visit https://evil.example/win"},
        {"mail": "eve@example.org", "lastname": "<b>bold</b>"},
    ]
    for params in bad:
        full = {"forename": "Eve", "lastname": "Doe", **params}
        r = httpx.get(f"{srv.url}/requestToken", params=full, auth=AUTH)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["error"] in ("invalid_email", "invalid_name") and len(r.json()["message"]) > 10
    assert box.messages == []
    # spelling variants of one address share its daily limit
    variants = ["Eve@Example.org", "eve@example.org", "EVE@EXAMPLE.ORG", "eve@EXAMPLE.org"]
    codes = [httpx.get(f"{srv.url}/requestToken", params={"mail": m, "forename": "Eve", "lastname": "Doe"},
                       auth=AUTH).status_code for m in variants]
    assert codes == [200, 200, 200, 429]


def test_confirmation_links_use_the_configured_public_url_not_the_host_header(live, inbox):
    port, box = inbox
    srv = live(smtp_host="127.0.0.1", smtp_port=port, public_url="https://cloud.example.org")
    r = httpx.get(f"{srv.url}/requestToken", params={"mail": "grace@example.org", "forename": "Grace",
                                                     "lastname": "Hopper"},
                  headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"}, auth=AUTH)
    assert r.status_code == 200 and "prv_" not in r.text
    (msg,) = _wait(box, 1)
    assert msg["to"] == ["grace@example.org"]
    assert "evil.example" not in msg["body"] and "https://cloud.example.org/confirmToken?h=" in msg["body"]


def test_without_a_public_url_nothing_is_mailed_and_the_request_waits(live, inbox):
    port, box = inbox
    srv = live(smtp_host="127.0.0.1", smtp_port=port)  # SMTP, but no configured address for links
    r = httpx.get(f"{srv.url}/requestToken", params={"mail": "ada@example.org", "forename": "Ada",
                                                     "lastname": "L"}, headers={"Host": "evil.example"}, auth=AUTH)
    assert r.status_code == 200 and "operator" in r.json()["message"]
    time.sleep(0.3)
    assert box.messages == []
    admin, _ = srv.ctx.service.create_token(TokenKind.ADMIN, label="ops")
    h = {"Authorization": f"Bearer {admin}"}
    (req,) = httpx.get(f"{srv.url}/api/v1/admin/token-requests", headers=h).json()["requests"]
    approved = httpx.post(f"{srv.url}/api/v1/admin/token-requests/{req['id']}/approve", headers=h).json()
    assert approved == {"id": req["id"], "status": "approved", "mailed": True, "token": None}
    (msg,) = _wait(box, 1)
    token = re.search(r"(prv_[A-Za-z0-9_-]+)", msg["body"]).group(1)
    info = httpx.get(f"{srv.url}/getTokenInfo", params={"token": token}, auth=AUTH).json()
    assert info["kind"] == "private" and info["status"] == "active"


def test_token_requests_without_smtp_are_recorded_and_approved_by_the_operator(live):
    srv = live()
    r = httpx.get(f"{srv.url}/requestToken", params={"mail": "Linus@Example.org", "forename": "Linus",
                                                     "lastname": "T"}, auth=AUTH)
    assert r.status_code == 200 and "operator" in r.json()["message"] and "prv_" not in r.text
    admin, _ = srv.ctx.service.create_token(TokenKind.ADMIN, label="ops")
    h = {"Authorization": f"Bearer {admin}"}
    assert httpx.get(f"{srv.url}/api/v1/admin/token-requests",
                     headers={"Authorization": f"Bearer {srv.public_token}"}).status_code == 403
    listing = httpx.get(f"{srv.url}/api/v1/admin/token-requests", headers=h).json()["requests"]
    assert len(listing) == 1
    req = listing[0]
    assert (req["name"], req["email"], req["status"]) == ("Linus T", "linus@example.org", "pending")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", req["created_at"])
    approved = httpx.post(f"{srv.url}/api/v1/admin/token-requests/{req['id']}/approve", headers=h).json()
    assert approved["status"] == "approved" and approved["mailed"] is False and approved["token"].startswith("prv_")
    info = httpx.get(f"{srv.url}/getTokenInfo", params={"token": approved["token"]}, auth=AUTH).json()
    assert info["kind"] == "private" and info["credit"] == srv.ctx.settings.private_credit_gb
    again = httpx.post(f"{srv.url}/api/v1/admin/token-requests/{req['id']}/approve", headers=h)
    assert again.status_code == 409 and "already approved" in again.json()["detail"]
    assert httpx.post(f"{srv.url}/api/v1/admin/token-requests/999/approve", headers=h).status_code == 404
