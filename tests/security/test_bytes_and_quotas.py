"""H2, M4, L1, L6: what is stored is bounded by what was declared and charged; one client cannot use up the
public allowance or the disk; zip bombs made of many small entries; upload bodies that lie about themselves."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import httpx


def _stored(srv, project_id: str) -> list[Path]:
    folder = srv.ctx.settings.storage_dir / "projects" / project_id
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def _endless(total: int, chunk: int = 64 * 1024):
    sent = 0
    while sent < total:
        yield b"\0" * chunk
        sent += chunk


def test_a_part_larger_than_the_declared_filesize_is_refused_while_streaming(live):
    srv = live(part_limit_bytes=50_000_000)
    token = srv.private_token()
    info = srv.create(token, "tiny.zip", b"x" * 1000)
    r = httpx.post(info["ulink"][0], content=_endless(20_000_000), timeout=60)
    assert r.status_code == 413 and r.json()["error"] == "part_too_large" and "1000 bytes" in r.json()["message"]
    assert all(p.stat().st_size <= 1000 for p in _stored(srv, info["id"]))

    # two parts of a 1500-byte declaration: once the first has 1000 bytes, the second may only have 500
    srv2 = live(part_limit_bytes=1000)
    info = srv2.create(token2 := srv2.private_token(), "two.zip", b"y" * 1500, part_size=1000)
    assert httpx.post(info["ulink"][0], content=b"a" * 1000, timeout=60).status_code == 200
    r = httpx.post(info["ulink"][1], content=b"b" * 1000, timeout=60)
    assert r.status_code == 413 and "500 bytes" in r.json()["message"]
    assert httpx.post(info["ulink"][1], content=b"b" * 500, timeout=60).status_code == 200
    assert token2


def test_parts_are_capped_near_what_the_part_limit_needs(live):
    srv = live(part_limit_bytes=1_000_000)
    token = srv.private_token()
    r = srv.legacy("createProject", token=token, project="many.zip", photos=3, parts=10000, filesize=10000)
    assert r.status_code == 422 and r.json()["error"] == "invalid_parts" and "between 1 and 2" in r.json()["message"]
    ok = srv.legacy("createProject", token=token, project="fine.zip", photos=3, parts=2, filesize=10000)
    assert ok.status_code == 200


def _as_client(srv, ip: str, **params) -> httpx.Response:
    return httpx.get(f"{srv.url}/createProject", params={"token": srv.public_token, "photos": 3, **params},
                     auth=("openscan", "free"), headers={"X-Forwarded-For": ip}, timeout=60)


def test_one_client_cannot_use_up_the_public_allowance_or_the_disk(live):
    srv = live(trusted_proxies="127.0.0.1", public_open_projects_per_client=3,
               public_open_bytes_per_client=4_000_000_000, public_creates_per_minute=100)
    big = dict(filesize=2_000_000_000, parts=2000)
    answers = [_as_client(srv, "203.0.113.7", project=f"hog-{i}.zip", **big) for i in range(5)]
    assert [r.status_code for r in answers] == [200, 200, 429, 429, 429]
    assert answers[2].json()["error"] == "too_many_open_bytes" and "bytes" in answers[2].json()["message"]
    # announcing is free: the shared daily allowance is untouched for everybody else
    info = httpx.get(f"{srv.url}/getTokenInfo", params={"token": srv.public_token}, auth=("openscan", "free"))
    assert info.json()["credit"] == srv.ctx.settings.public_daily_credit_gb
    assert _as_client(srv, "198.51.100.9", project="someone-else.zip", **big).status_code == 200
    # small projects: the number of open projects per client is capped too
    small = [_as_client(srv, "192.0.2.1", project=f"s{i}.zip", filesize=100, parts=1) for i in range(4)]
    assert [r.status_code for r in small] == [200, 200, 200, 429]
    assert small[3].json()["error"] == "too_many_open_projects"


def test_public_creates_per_minute_are_limited_per_client(live):
    srv = live(trusted_proxies="127.0.0.1", public_creates_per_minute=3, public_open_projects_per_client=100)
    codes = [_as_client(srv, "203.0.113.50", project=f"r{i}.zip", filesize=100, parts=1).status_code
             for i in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    assert _as_client(srv, "203.0.113.51", project="other.zip", filesize=100, parts=1).status_code == 200


def test_the_public_token_is_charged_when_the_project_starts(live, make_zip):
    srv = live()
    data = make_zip(3)
    srv.upload(srv.public_token, "charged.zip", data)
    before = srv.ctx.service.credit_of(srv.ctx.service.find_token(srv.public_token).id)
    assert before == srv.ctx.settings.public_daily_credit_gb
    assert srv.legacy("startProject", token=srv.public_token, project="charged.zip").status_code == 200
    after = srv.ctx.service.credit_of(srv.ctx.service.find_token(srv.public_token).id)
    assert round(before - after, 9) == round(len(data) / 1e9, 9)


def test_many_small_entries_that_inflate_enormously_are_a_zip_bomb(live, make_zip):
    srv = live()
    token = srv.private_token()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("photo.jpg", make_zip(1))  # one "image" so only the ratio can refuse it
        for i in range(30):  # 30 × 900 KB of zeros: each entry is under the per-entry threshold
            zf.writestr(f"pad/{i}.bin", b"\0" * 900_000)
    data = buf.getvalue()
    assert len(data) < 200_000
    srv.upload(token, "bomb.zip", data)
    r = srv.legacy("startProject", token=token, project="bomb.zip")
    assert r.status_code == 422 and r.json()["error"] == "zip_bomb" and "as a whole" in r.json()["message"]


def test_content_range_must_match_the_body(live):
    srv = live()
    token = srv.private_token()
    info = srv.create(token, "range.zip", b"z" * 1000)
    r = httpx.put(info["ulink"][0], content=b"z" * 1000, headers={"Content-Range": "bytes 0-9/1000"}, timeout=60)
    assert r.status_code == 422 and r.json()["error"] == "bad_range" and "announces 10 bytes" in r.json()["message"]

    def chunked(n: int):
        yield b"z" * n

    r = httpx.put(info["ulink"][0], content=chunked(1000), headers={"Content-Range": "bytes 0-9/1000"}, timeout=60)
    assert r.status_code == 422 and r.json()["error"] == "bad_range" and "longer" in r.json()["message"]
    assert all(p.stat().st_size <= 10 for p in _stored(srv, info["id"]))
    ok = httpx.put(info["ulink"][0], content=b"z" * 10, headers={"Content-Range": "bytes 0-9/1000"}, timeout=60)
    assert ok.status_code == 202 and ok.json()["offset"] == 10


def test_large_non_file_multipart_fields_are_refused(live):
    srv = live()
    token = srv.private_token()
    info = srv.create(token, "multi.zip", b"m" * 1000)
    boundary = "osc-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"comment\"\r\n\r\n".encode()
            + b"c" * 1_000_000
            + f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.zip\"\r\n"
              f"Content-Type: application/zip\r\n\r\n".encode() + b"m" * 1000 + f"\r\n--{boundary}--\r\n".encode())

    def streamed():  # no Content-Length: the server can only count what arrives
        for i in range(0, len(body), 65536):
            yield body[i:i + 65536]

    r = httpx.post(info["ulink"][0], content=streamed(), timeout=60,
                   headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413 and r.json()["error"] == "multipart_fields_too_large"
    ok = httpx.post(info["ulink"][0], files={"file": ("a.zip", b"m" * 1000)}, data={"comment": "hi"}, timeout=60)
    assert ok.status_code == 200 and ok.json()["size"] == 1000
