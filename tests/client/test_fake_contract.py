"""MiniCloud (the stand-in some SDK tests use, tests/client/conftest.py) answers exactly as the real server does:
the same requests are sent to both, and every answer must have the same status code, the same error code, the
same upload headers, and no field the real server does not send (values may differ: ids, links, credit)."""

from __future__ import annotations

import hashlib

import httpx

AUTH = ("openscan", "free")


def _photos_zip() -> bytes:
    import io
    import random
    import zipfile

    from PIL import Image

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(2):
            img = io.BytesIO()
            Image.frombytes("RGB", (32, 24), random.Random(i).randbytes(32 * 24 * 3)).save(img, "JPEG")
            zf.writestr(f"IMG_{i}.jpg", img.getvalue())
    return buf.getvalue()


DATA = _photos_zip()
HALF = len(DATA) // 2


def _conversation(base: str, token: str) -> list[tuple[str, httpx.Response]]:
    """One client's exchange with a legacy server: limits, errors, a two-part ranged and plain upload."""
    c = httpx.Client(base_url=base, auth=AUTH, timeout=30)
    answers: list[tuple[str, httpx.Response]] = []

    def get(label: str, endpoint: str, auth=AUTH, **params) -> httpx.Response:
        r = c.get(endpoint, params=params, auth=auth)
        answers.append((label, r))
        return r

    get("status", "/status")
    get("unknown token", "/getTokenInfo", token="prv_nobody")
    get("wrong basic auth", "/getTokenInfo", auth=("openscan", "nope"), token=token)
    get("token info", "/getTokenInfo", token=token)
    get("too many photos", "/createProject", token=token, project="p", photos=9, parts=1, filesize=100)
    get("too large", "/createProject", token=token, project="p", photos=2, parts=1, filesize=10**13)
    created = get("create", "/createProject", token=token, project="p", photos=2, parts=2,
                  filesize=len(DATA)).json()
    get("duplicate", "/createProject", token=token, project="p", photos=2, parts=2, filesize=len(DATA))
    get("unknown project", "/getProjectInfo", token=token, project="ghost")
    get("info before upload", "/getProjectInfo", token=token, project="p")
    get("start with parts missing", "/startProject", token=token, project="p")
    link0, link1 = created["ulink"]
    answers.append(("probe", httpx.head(link0)))
    cut = HALF - 100
    answers.append(("first chunk", httpx.put(link0, content=DATA[:cut],
                                             headers={"Content-Range": f"bytes 0-{cut - 1}/{HALF}"})))
    answers.append(("wrong offset", httpx.put(link0, content=DATA[20:25],
                                              headers={"Content-Range": f"bytes 20-24/{HALF}"})))
    answers.append(("last chunk", httpx.put(link0, content=DATA[cut:HALF],
                                            headers={"Content-Range": f"bytes {cut}-{HALF - 1}/{HALF}"})))
    answers.append(("probe complete", httpx.head(link0)))
    answers.append(("part over the limit", httpx.put(link1, content=b"z" * 10,
                                                     headers={"Content-Range": "bytes 0-9/600000"})))
    answers.append(("plain part", httpx.post(link1, content=DATA[HALF:])))
    get("info after upload", "/getProjectInfo", token=token, project="p")
    get("start", "/startProject", token=token, project="p")
    c.close()
    return answers


def _shape(value):
    """Field names (recursively) with JSON types, values left out."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__ if value is not None else None


def _fields_missing_from(fake, real, path="") -> list[str]:
    """Fields the fake sends that the real server does not (recursively)."""
    if isinstance(fake, dict) and isinstance(real, dict):
        out = []
        for key, value in fake.items():
            if key not in real:
                out.append(f"{path}.{key}")
            else:
                out += _fields_missing_from(value, real[key], f"{path}.{key}")
        return out
    if isinstance(fake, list) and isinstance(real, list) and fake and real:
        return _fields_missing_from(fake[0], real[0], path + "[]")
    return []


def test_mini_cloud_answers_like_the_real_server(real_server, mini_cloud):
    fake = mini_cloud(limit_photos=5, limit_filesize=10**10, part_limit=500_000)
    real_answers = _conversation(real_server.url, real_server.token(limit_photos=5, limit_filesize=10**10))
    fake_answers = _conversation(fake.url, fake.token)
    assert [label for label, _ in fake_answers] == [label for label, _ in real_answers]
    for (label, real), (_, mine) in zip(real_answers, fake_answers):
        assert mine.status_code == real.status_code, (label, real.text, mine.text)
        for header in ("upload-offset", "upload-complete"):
            assert mine.headers.get(header) == real.headers.get(header), (label, header)
        if real.headers.get("www-authenticate"):
            assert mine.headers.get("www-authenticate") == real.headers["www-authenticate"], label
        if not real.content or real.request.method == "HEAD":
            continue
        real_body, fake_body = real.json(), mine.json()
        assert _fields_missing_from(fake_body, real_body) == [], (label, real_body, fake_body)
        if real.status_code >= 400:
            assert fake_body["status"] == real_body["status"] == "error", label
            assert fake_body["error"] == real_body["error"], label
            assert fake_body["message"] == real_body["message"], label  # the sentence a user reads
        elif label.startswith("info"):
            assert fake_body["status"] == real_body["status"], label
            assert [p["complete"] for p in fake_body["parts"]] == [p["complete"] for p in real_body["parts"]]
            assert [p["sha256"] for p in fake_body["parts"]] == [p["sha256"] for p in real_body["parts"]]
    # both assembled the same bytes
    assert hashlib.sha256(fake.assembled("p")).hexdigest() == hashlib.sha256(DATA).hexdigest()
