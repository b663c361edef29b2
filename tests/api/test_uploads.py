"""Signed part links: raw, chunked and multipart-envelope bodies, resumable Content-Range uploads, HEAD,
size limit, expiry and tampering."""

from __future__ import annotations

import hashlib
import time
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest


@pytest.fixture
def project(legacy, public_token):
    """A project with 3 parts of at most 4096 bytes (10000 bytes in total)."""
    r = legacy("createProject", token=public_token, project="up.zip", photos=3, parts=3, filesize=10000)
    assert r.status_code == 200
    return r.json()


def _with(link: str, **changes: str) -> str:
    parts = urlsplit(link)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_chunked_body_is_stored_whole(client, project, legacy, public_token):
    data = bytes(range(256)) * 16  # 4096 bytes

    def gen():
        for i in range(0, len(data), 1000):
            yield data[i:i + 1000]

    r = client.post(project["ulink"][0], content=gen(), headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200
    assert r.json() == {"part": 0, "size": 4096, "sha256": hashlib.sha256(data).hexdigest(), "offset": 4096,
                        "complete": True}
    parts = legacy("getProjectInfo", token=public_token, project="up.zip").json()["parts"]
    assert parts[0] == {"index": 0, "size": 4096, "complete": True, "sha256": hashlib.sha256(data).hexdigest()}
    assert parts[1]["complete"] is False


def test_put_works_and_resending_replaces(client, project):
    assert client.put(project["ulink"][1], content=b"a" * 100).json()["size"] == 100
    r = client.post(project["ulink"][1], content=b"b" * 50)
    assert r.json()["size"] == 50 and r.json()["sha256"] == hashlib.sha256(b"b" * 50).hexdigest()
    head = client.head(project["ulink"][1])
    assert head.headers["Upload-Offset"] == "50" and head.headers["Upload-Complete"] == "?1"


def test_multipart_envelope_under_octet_stream_header(client, project):
    """The legacy uploader: requests.post(url, files={'file': f}, headers={'Content-type': 'application/octet-stream'})."""
    import requests

    payload = b"\x00PK-binary\r\n--not-a-boundary\r\n" * 100
    prepared = requests.Request("POST", project["ulink"][2], files={"file": ("part_1", payload)},
                                headers={"Content-type": "application/octet-stream"}).prepare()
    assert prepared.headers["Content-type"] == "application/octet-stream"
    assert prepared.body.startswith(b"--")
    r = client.post(project["ulink"][2], content=prepared.body, headers=dict(prepared.headers))
    assert r.status_code == 200, r.text
    assert r.json()["size"] == len(payload) and r.json()["sha256"] == hashlib.sha256(payload).hexdigest()


def test_multipart_with_its_proper_content_type(client, project):
    payload = b"0123456789" * 300
    r = client.post(project["ulink"][0], files={"file": ("x.zip", payload, "application/zip")})
    assert r.status_code == 200 and r.json()["size"] == len(payload)
    assert r.json()["sha256"] == hashlib.sha256(payload).hexdigest()


def test_content_range_resume(client, project):
    link = project["ulink"][0]
    data = bytes(range(200)) * 20  # 4000 bytes
    head = client.head(link)
    assert head.status_code == 200 and head.headers["Upload-Offset"] == "0" and head.headers["Upload-Complete"] == "?0"
    r = client.put(link, content=data[:1500], headers={"Content-Range": f"bytes 0-1499/{len(data)}"})
    assert r.status_code == 202 and r.json()["offset"] == 1500
    head = client.head(link)
    assert head.headers["Upload-Offset"] == "1500" and head.headers["Upload-Complete"] == "?0"
    # a chunk that does not continue where the part ends is refused with the right offset
    r = client.put(link, content=data[1000:2000], headers={"Content-Range": f"bytes 1000-1999/{len(data)}"})
    assert r.status_code == 409 and r.json()["offset"] == 1500
    r = client.put(link, content=data[1500:], headers={"Content-Range": f"bytes 1500-3999/{len(data)}"})
    assert r.status_code == 200
    assert r.json()["size"] == len(data) and r.json()["sha256"] == hashlib.sha256(data).hexdigest()
    head = client.head(link)
    assert head.headers["Upload-Offset"] == str(len(data)) and head.headers["Upload-Complete"] == "?1"
    # start 0 restarts the part
    r = client.put(link, content=data[:10], headers={"Content-Range": f"bytes 0-9/{len(data)}"})
    assert r.status_code == 202 and client.head(link).headers["Upload-Complete"] == "?0"


def test_bad_content_range(client, project):
    r = client.put(project["ulink"][0], content=b"x", headers={"Content-Range": "bytes nonsense"})
    assert r.status_code == 422 and r.json()["error"] == "bad_range"
    r = client.put(project["ulink"][0], content=b"x" * 10, headers={"Content-Range": "bytes 0-9999/10000"})
    assert r.status_code == 413


def test_oversize_part_is_refused_and_not_kept(client, project, legacy, public_token):
    too_big = b"z" * 5000  # the test part limit is 4096

    def gen():  # chunked: no Content-Length to refuse early, the server must count and stop
        for i in range(0, len(too_big), 512):
            yield too_big[i:i + 512]

    r = client.post(project["ulink"][0], content=gen())
    assert r.status_code == 413 and r.json()["error"] == "part_too_large"
    r = client.post(project["ulink"][0], content=too_big)
    assert r.status_code == 413
    head = client.head(project["ulink"][0])
    assert head.headers["Upload-Offset"] == "0" and head.headers["Upload-Complete"] == "?0"
    assert legacy("getProjectInfo", token=public_token, project="up.zip").json()["status"] == "created"


def test_tampered_links_are_refused(client, project, settings):
    link = project["ulink"][0]
    sig = parse_qs(urlsplit(link).query)["s"][0]
    bad = _with(link, s=("0" if sig[0] != "0" else "1") + sig[1:])
    assert client.post(bad, content=b"x").status_code == 403
    # the signature of part 0 does not open part 1
    other = link.replace("/0?", "/1?")
    r = client.post(other, content=b"x")
    assert r.status_code == 403 and r.json()["error"] == "bad_signature"
    # extending the expiry breaks the signature
    later = _with(link, e=str(int(parse_qs(urlsplit(link).query)["e"][0]) + 3600))
    assert client.post(later, content=b"x").status_code == 403
    assert not any(settings.storage_dir.rglob("*.part"))


def test_expired_link(tmp_path):
    from fastapi.testclient import TestClient

    from openscancloud.api.app import create_app
    from openscancloud.settings import Settings

    app = create_app(Settings(data_dir=tmp_path / "d", upload_link_seconds=1), maintenance=False)
    token = app.state.ctx.service.public_token()
    with TestClient(app) as c:
        info = c.get("/createProject", params=dict(token=token, project="e.zip", photos=2, parts=1, filesize=10),
                     auth=("openscan", "free")).json()
        time.sleep(2.1)
        r = c.post(info["ulink"][0], content=b"0123456789")
        assert r.status_code == 410 and r.json()["error"] == "link_expired"
        assert c.head(info["ulink"][0]).status_code == 410


def test_upload_to_started_project_is_refused(client, legacy, uploaded, public_token, photos_zip):
    created = uploaded(public_token, "done.zip", photos_zip(2))
    assert legacy("startProject", token=public_token, project="done.zip").status_code == 200
    r = client.post(created["ulink"][0], content=b"x")
    assert r.status_code == 409 and "accepts no more uploads" in r.json()["message"]
