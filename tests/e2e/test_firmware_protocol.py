"""The legacy protocol against a real uvicorn server, sent exactly like the OpenScan3 firmware does it
(requests, GET + params + Basic auth, parts POSTed as a streamed generator = chunked transfer encoding),
plus two API processes sharing one data dir and database."""

from __future__ import annotations

import io
import json
import math
import random
import zipfile

import requests

AUTH = ("openscan", "free")


def photos_zip(n: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(n):
            img = io.BytesIO()
            Image.frombytes("RGB", (64, 48), random.Random(i).randbytes(64 * 48 * 3)).save(img, "JPEG")
            zf.writestr(f"IMG_{i:04d}.jpg", img.getvalue())
    return buf.getvalue()


def chunked(data: bytes, size: int = 1000):
    for i in range(0, len(data), size):
        yield data[i:i + size]


def _stream_until_answered(url: str, data: bytes, chunk: int) -> tuple[int, bytes, int]:
    """POST `data` with chunked transfer encoding, as the firmware's generator upload does, but watch the socket
    after every chunk: as soon as the server answers, stop sending and read the answer. Returns (status, body,
    bytes sent). (A client that keeps sending into a refusal may see the connection reset before it reads the
    answer; this one reads it as a careful client would.)"""
    import select
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(url)
    head = (f"POST {u.path}?{u.query} HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Type: application/octet-stream\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    sent = 0
    with socket.create_connection((u.hostname, u.port), timeout=30) as sock:
        sock.sendall(head.encode())
        while sent < len(data):
            if select.select([sock], [], [], 0.05)[0]:
                break  # the server has answered
            piece = data[sent:sent + chunk]
            sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            sent += len(piece)
        else:
            sock.sendall(b"0\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < _content_length(answer):
            block = sock.recv(65536)
            if not block:
                break
            answer += block
    head_bytes, _, body = answer.partition(b"\r\n\r\n")
    return int(head_bytes.split()[1]), body, sent


def _content_length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def test_firmware_flow_chunked_multipart_upload(start_server):
    server = start_server(workers=0, part_limit_bytes=8192)
    s = requests.Session()
    base = server.url
    assert s.get(f"{base}/status").json()["status"] == "ok"
    assert s.get(f"{base}/getTokenInfo", params={"token": server.public_token}, auth=("openscan", "x")).status_code == 401
    info = s.get(f"{base}/getTokenInfo", params={"token": server.public_token}, auth=AUTH).json()
    data = photos_zip(6)
    parts = math.ceil(len(data) / 8192)
    assert parts >= 2 and len(data) <= info["limit_filesize"]
    name = "kermit-1764000000000.zip"
    r = s.get(f"{base}/createProject", auth=AUTH, params={"token": server.public_token, "photos": 6,
                                                          "filesize": len(data), "parts": parts, "project": name})
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["status"] == "created" and len(created["ulink"]) == parts
    for i, link in enumerate(created["ulink"]):
        chunk = data[i * 8192:(i + 1) * 8192]
        up = requests.post(link, data=chunked(chunk), headers={"Content-type": "application/octet-stream"})
        assert up.status_code == 200, up.text
        assert up.request.headers.get("Transfer-Encoding") == "chunked"
        assert up.json()["size"] == len(chunk)
    r = s.get(f"{base}/startProject", auth=AUTH, params={"token": server.public_token, "project": name})
    assert r.status_code == 200 and r.json() == {"status": "started", "project": name, "id": created["id"]}
    p = s.get(f"{base}/getProjectInfo", auth=AUTH, params={"token": server.public_token, "project": name}).json()
    assert p["status"] == "queued" and p["dlink"] is None and p["photos"] == 6
    # an oversize streamed part: exactly 413 with the sentence, and the server stops reading
    r2 = s.get(f"{base}/createProject", auth=AUTH, params={"token": server.public_token, "photos": 1,
                                                           "filesize": 9000, "parts": 2, "project": "big.zip"}).json()
    status, body, sent = _stream_until_answered(r2["ulink"][0], b"x" * 200_000, 4096)
    assert status == 413, body
    assert json.loads(body) == {"status": "error", "error": "part_too_large",
                                "message": "An upload part may be at most 8192 bytes; split the zip into more parts."}
    assert sent < 200_000  # refused while the part was still coming, not after all of it
    head = requests.head(r2["ulink"][0])
    assert head.headers["Upload-Offset"] == "0"


def test_two_api_processes_share_one_database(start_server, tmp_path):
    """Nothing lives only in one process: a project created on A is uploaded, started and seen on B."""
    a = start_server(workers=0)
    b = start_server(workers=0, data_dir=a.data_dir)
    assert a.public_token == b.public_token  # derived from the shared secret in the data dir
    data = photos_zip(2)
    created = requests.get(f"{a.url}/createProject", auth=AUTH, params={
        "token": a.public_token, "photos": 2, "filesize": len(data), "parts": 1, "project": "shared.zip"}).json()
    link_on_b = created["ulink"][0].replace(a.url, b.url)
    assert requests.put(link_on_b, data=data).status_code == 200
    assert requests.get(f"{b.url}/startProject", auth=AUTH,
                        params={"token": a.public_token, "project": "shared.zip"}).status_code == 200
    info = requests.get(f"{a.url}/getProjectInfo", auth=AUTH,
                        params={"token": a.public_token, "project": "shared.zip"}).json()
    assert info["status"] == "queued"
    # the admin CLI works on the same data dir while both servers run
    made = json.loads(a.cli("tokens", "create", "--kind", "private", "--forename", "Ada", "--surname", "L",
                            "--email", "ada@example.org", "--credit-gb", "2", "--json"))
    assert requests.get(f"{b.url}/getTokenInfo", auth=AUTH, params={"token": made["token"]}).json()["credit"] == 2.0


def _send_then_drop(url: str, headers: dict[str, str], body: bytes) -> None:
    """Send the request head and only `body` (less than announced), then close the connection."""
    import socket
    import time
    from urllib.parse import urlsplit

    u = urlsplit(url)
    head = f"POST {u.path}?{u.query} HTTP/1.1\r\nHost: {u.netloc}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection((u.hostname, u.port)) as sock:
        sock.sendall(head.encode() + body)
        time.sleep(0.5)


def _offset_once_settled(url: str, timeout: float = 10.0) -> int:
    """The offset HEAD reports once the server has noticed the dropped connection and kept what arrived: it does
    so when its read fails, which on a loaded machine can be after the client's next request (until then HEAD
    reports 0, and a client that resumes from there only sends the bytes again)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        offset = int(requests.head(url).headers["Upload-Offset"])
        if offset > 0 or time.monotonic() > deadline:
            return offset
        time.sleep(0.1)


def test_broken_uploads_keep_ranged_bytes_and_drop_plain_ones(start_server):
    server = start_server(workers=0)
    created = requests.get(f"{server.url}/createProject", auth=AUTH, params={
        "token": server.public_token, "photos": 1, "filesize": 3000, "parts": 1, "project": "drop.zip"}).json()
    link = created["ulink"][0]
    data = bytes(range(250)) * 12
    # a plain POST that breaks off leaves nothing that counts as a part
    _send_then_drop(link, {"Content-Length": "3000", "Content-Type": "application/octet-stream"}, data[:1200])
    head = requests.head(link)
    assert head.headers["Upload-Offset"] == "0" and head.headers["Upload-Complete"] == "?0"
    # a ranged chunk that breaks off keeps what arrived; the client continues from the offset HEAD reports
    _send_then_drop(link, {"Content-Length": "2000", "Content-Range": "bytes 0-1999/3000"}, data[:700])
    offset = _offset_once_settled(link)
    assert 0 < offset <= 700
    r = requests.put(link, data=data[offset:], headers={"Content-Range": f"bytes {offset}-2999/3000"})
    assert r.status_code == 200 and r.json()["size"] == 3000
    import hashlib

    assert r.json()["sha256"] == hashlib.sha256(data).hexdigest()
    assert requests.head(link).headers["Upload-Complete"] == "?1"
