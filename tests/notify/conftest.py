"""A real SMTP server (aiosmtpd) and a real webhook receiver on 127.0.0.1, plus an app wired to them."""

from __future__ import annotations

import email
import email.policy
import io
import json
import socket
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self) -> None:
        self.messages: list[dict] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd API)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append({"to": envelope.rcpt_tos, "subject": msg["subject"], "body": msg.get_content()})
        return "250 OK"

    def wait(self, count: int = 1, timeout: float = 10.0) -> list[dict]:
        deadline = time.time() + timeout
        while len(self.messages) < count and time.time() < deadline:
            time.sleep(0.05)
        return self.messages


@pytest.fixture
def smtp():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, inbox
    finally:
        controller.stop()


@pytest.fixture
def webhook_receiver():
    """Answers 500 to the first POST and 200 afterwards; records every JSON body."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append(json.loads(body))
            self.send_response(500 if len(received) == 1 else 200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()


@pytest.fixture
def webhook_receiver_failing():
    """Answers 503 to every POST; records (arrival time.monotonic(), JSON body)."""
    received: list[tuple[float, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append((time.monotonic(), json.loads(body)))
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()


@pytest.fixture
def mail_app(tmp_path, smtp):
    from openscancloud.api.app import create_app
    from openscancloud.settings import Settings

    port, _ = smtp
    # public_url: confirmation links are built from it only; private webhooks: the receiver is on 127.0.0.1
    settings = Settings(data_dir=tmp_path / "d", smtp_host="127.0.0.1", smtp_port=port,
                        mail_from="cloud@example.org", webhook_backoff_seconds=0.1,
                        public_url="http://testserver", webhook_allow_private=True)
    app = create_app(settings, maintenance=False)
    with TestClient(app) as client:
        yield app.state.ctx, client


@pytest.fixture
def run_job():
    """Create, upload, start and process a project through the real HTTP APIs; `outcome` done or failed."""

    def run(ctx, client, token: str, name: str, outcome: str = "done", webhook: str | None = None,
            report: dict | None = None) -> dict:
        from openscancloud.domain.tokens import TokenKind

        auth = ("openscan", "free")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("a.jpg", b"jpeg-bytes")
        data = buf.getvalue()
        params = dict(token=token, project=name, photos=1, parts=1, filesize=len(data))
        if webhook:
            params["webhook"] = webhook
        info = client.get("/createProject", params=params, auth=auth).json()
        assert client.post(info["ulink"][0], content=data).status_code == 200
        assert client.get("/startProject", params=dict(token=token, project=name), auth=auth).status_code == 200
        wtoken, _ = ctx.service.create_token(TokenKind.WORKER, label="w")
        h = {"Authorization": f"Bearer {wtoken}"}
        wid = client.post("/api/v1/worker/register", json={"name": "w"}, headers=h).json()["worker_id"]
        job = client.post("/api/v1/worker/claim", json={"worker_id": wid}, headers=h).json()
        if outcome == "done":
            assert client.put(job["result_url"], content=data).status_code == 200
            body = {"attempt": 1} if report is None else {"attempt": 1, "report": report}
            r = client.post(f"/api/v1/worker/jobs/{job['job_id']}/complete", json=body, headers=h)
        else:
            r = client.post(f"/api/v1/worker/jobs/{job['job_id']}/fail",
                            json={"attempt": 1, "message": "Too few photos overlap.", "user_error": True}, headers=h)
        assert r.status_code == 200
        return info

    return run
