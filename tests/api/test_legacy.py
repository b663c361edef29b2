"""The legacy OpenScan Cloud protocol, driven like the firmware (GET + query parameters + Basic auth), and every
bad input of issue section F: each gets a clear 4xx JSON error and changes nothing else."""

from __future__ import annotations

import hashlib

import pytest


def ledger(ctx, token: str):
    row = ctx.service.find_token(token)
    with ctx.service.uow() as repo:
        return [(e.kind, round(e.amount_gb, 9)) for e in repo.ledger(token_id=row.id)]


def test_token_info_public_and_private(legacy, public_token, private_token):
    r = legacy("getTokenInfo", token=public_token)
    assert r.status_code == 200
    info = r.json()
    assert info["credit"] == 10.0 and isinstance(info["limit_filesize"], int) and isinstance(info["limit_photos"], int)
    r = legacy("getTokenInfo", token=private_token)
    assert r.json()["credit"] == 5.0 and r.json()["kind"] == "private"


def test_basic_auth_gate(legacy, public_token, client, settings):
    assert legacy("getTokenInfo", token=public_token, auth=("openscan", "wrong")).status_code == 401
    r = legacy("getTokenInfo", token=public_token, auth=None)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
    assert r.json()["status"] == "error" and "Basic" in r.json()["message"]
    # /status needs no auth at all
    assert client.get("/status").json()["status"] == "ok"


def test_basic_auth_can_be_switched_off(tmp_path):
    from fastapi.testclient import TestClient

    from openscancloud.api.app import create_app
    from openscancloud.settings import Settings

    app = create_app(Settings(data_dir=tmp_path / "d", basic_auth=False), maintenance=False)
    token = app.state.ctx.service.public_token()
    with TestClient(app) as c:
        assert c.get("/getTokenInfo", params={"token": token}).status_code == 200


def test_unknown_and_revoked_tokens(legacy, ctx, private_token):
    r = legacy("getTokenInfo", token="prv_nonsense")
    assert r.status_code == 401 and "not known" in r.json()["message"]
    assert legacy("getTokenInfo").status_code == 401
    ctx.service.revoke_token(ctx.service.find_token(private_token).id)
    r = legacy("createProject", token=private_token, project="a.zip", photos=3, parts=1, filesize=100)
    assert r.status_code == 403 and "revoked" in r.json()["message"]


def test_full_legacy_flow_and_credit_charge(legacy, client, ctx, private_token, photos_zip):
    data = photos_zip(5)
    parts = [data[i:i + 4096] for i in range(0, len(data), 4096)]
    assert len(parts) >= 2
    r = legacy("createProject", token=private_token, project="scan-1700000000000.zip", photos=5,
               parts=len(parts), filesize=len(data))
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["status"] == "created" and len(created["ulink"]) == len(parts)
    assert created["credit"] == pytest.approx(len(data) / 1e9)
    assert ledger(ctx, private_token) == [("grant", 5.0), ("charge", -round(len(data) / 1e9, 9))]

    for link, chunk in zip(created["ulink"], parts):
        up = client.post(link, content=chunk, headers={"Content-type": "application/octet-stream"})
        assert up.status_code == 200
        assert up.json()["sha256"] == hashlib.sha256(chunk).hexdigest() and up.json()["size"] == len(chunk)

    info = legacy("getProjectInfo", token=private_token, project="scan-1700000000000.zip").json()
    assert info["status"] == "uploading" and info["dlink"] is None
    assert [p["complete"] for p in info["parts"]] == [True] * len(parts)

    r = legacy("startProject", token=private_token, project="scan-1700000000000.zip")
    assert r.status_code == 200 and r.json()["status"] == "started"
    info = legacy("getProjectInfo", token=private_token, project="scan-1700000000000.zip").json()
    assert info["status"] == "queued" and info["photos"] == 5 and info["dlink"] is None
    assert info["ulink"] == [] and 0 <= info["progress"] <= 100
    # no job finished on this server yet: no invented figure, a sentence instead
    assert info["eta_seconds"] is None and info["eta_basis"].startswith("unknown")
    # starting twice is refused
    assert legacy("startProject", token=private_token, project="scan-1700000000000.zip").status_code == 409
    est = legacy("getQueueEstimate", token=private_token).json()
    assert est["queue_length"] == 1 and est["position"] == 1 and est["estimate_seconds"] > 0
    assert client.get("/status").json()["queue_length"] == 1


def test_post_form_and_json_fields_work_like_query(client, public_token):
    r = client.post("/getTokenInfo", data={"token": public_token}, auth=("openscan", "free"))
    assert r.status_code == 200 and r.json()["credit"] == 10.0
    r = client.post("/createProject", json={"token": public_token, "project": "j.zip", "photos": 2, "parts": 1,
                                            "filesize": 10}, auth=("openscan", "free"))
    assert r.status_code == 200 and r.json()["status"] == "created"


def test_names_are_scoped_per_token_and_duplicates_rejected(legacy, public_token, private_token, ctx):
    args = dict(project="same.zip", photos=3, parts=1, filesize=1000)
    assert legacy("createProject", token=public_token, **args).status_code == 200
    before = ledger(ctx, public_token)
    r = legacy("createProject", token=public_token, **args)
    assert r.status_code == 409 and "already exists" in r.json()["message"]
    assert ledger(ctx, public_token) == before  # nothing charged for the refused one
    assert legacy("createProject", token=private_token, **args).status_code == 200


@pytest.mark.parametrize("name", ["../evil.zip", "a/b.zip", "", "x" * 129, "spa ce.zip", "..", "ü.zip"])
def test_unsafe_or_invalid_names_rejected(legacy, public_token, name, settings):
    r = legacy("createProject", token=public_token, project=name, photos=3, parts=1, filesize=100)
    assert r.status_code == 422 and r.json()["error"] == "invalid_name"
    assert not any(p.name.startswith("evil") for p in settings.data_dir.rglob("*"))


def test_limits_parts_and_credit(legacy, ctx, public_token, private_token):
    lim = legacy("getTokenInfo", token=public_token).json()
    r = legacy("createProject", token=public_token, project="p.zip", photos=lim["limit_photos"] + 1, parts=1,
               filesize=100)
    assert r.status_code == 413 and r.json()["error"] == "too_many_photos"
    r = legacy("createProject", token=public_token, project="p.zip", photos=3, parts=10**6,
               filesize=lim["limit_filesize"] + 1)
    assert r.status_code == 413 and r.json()["error"] == "file_too_large"
    # part limit is 4096 bytes in these tests: 10000 bytes need at least 3 parts
    r = legacy("createProject", token=public_token, project="p.zip", photos=3, parts=2, filesize=10000)
    assert r.status_code == 422 and r.json()["error"] == "invalid_parts"
    r = legacy("createProject", token=public_token, project="p.zip", photos=3, parts=20, filesize=10)
    assert r.status_code == 422
    r = legacy("createProject", token=public_token, project="p.zip", photos="many", parts=1, filesize=10)
    assert r.status_code == 422 and "whole number" in r.json()["message"]
    # not enough credit: a private token with 5 GB asking for 6 GB (its filesize limit is larger)
    r = legacy("createProject", token=private_token, project="big.zip", photos=3, parts=1500, filesize=6_000_000)
    assert r.status_code == 200  # 0.006 GB is fine
    row = ctx.service.find_token(private_token)
    with ctx.service.uow() as repo:
        repo.add_ledger(row.id, "charge", -4.999, "test: use up credit", None)
    before = ledger(ctx, private_token)
    r = legacy("createProject", token=private_token, project="big2.zip", photos=3, parts=3, filesize=10_000)
    assert r.status_code == 402 and "Not enough credit" in r.json()["message"]
    assert ledger(ctx, private_token) == before


def test_missing_parts_at_start(legacy, client, public_token, photos_zip):
    data = photos_zip(4)
    parts = [data[i:i + 4096] for i in range(0, len(data), 4096)]
    info = legacy("createProject", token=public_token, project="m.zip", photos=4, parts=len(parts),
                  filesize=len(data)).json()
    client.post(info["ulink"][0], content=parts[0])
    r = legacy("startProject", token=public_token, project="m.zip")
    assert r.status_code == 409
    body = r.json()
    assert body["error"] == "missing_parts" and body["missing_parts"] == list(range(1, len(parts)))
    assert "1" in body["message"]
    assert legacy("getProjectInfo", token=public_token, project="m.zip").json()["status"] == "uploading"


def test_size_mismatch_at_start(legacy, client, public_token, photos_zip):
    data = photos_zip(2)
    parts = [data[i:i + 4096] for i in range(0, len(data), 4096)]
    info = legacy("createProject", token=public_token, project="s.zip", photos=2, parts=len(parts),
                  filesize=len(data) + 5).json()
    for link, chunk in zip(info["ulink"], parts):
        assert client.post(link, content=chunk).status_code == 200
    r = legacy("startProject", token=public_token, project="s.zip")
    assert r.status_code == 409 and r.json()["error"] == "size_mismatch"


@pytest.fixture
def start_with(legacy, uploaded, public_token, ctx):
    """Upload `data` as a new project and start it; returns (response, project name, ledger before start)."""
    counter = {"n": 0}

    def run(data: bytes):
        counter["n"] += 1
        name = f"bad-{counter['n']}.zip"
        uploaded(public_token, name, data)
        before = ledger(ctx, public_token)
        return legacy("startProject", token=public_token, project=name), name, before

    return run


def _zip(entries):
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name) if name.startswith("/") else name, data,
                        compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


@pytest.mark.parametrize(
    "case, code",
    [
        ("corrupt", "corrupt_zip"),
        ("absolute", "unsafe_zip_path"),
        ("dotdot", "unsafe_zip_path"),
        ("bomb_ratio", "zip_bomb"),
        ("no_images", "no_images"),
    ],
)
def test_bad_zips_are_refused_and_change_nothing(case, code, start_with, legacy, public_token, ctx):
    data = {
        "corrupt": b"PK\x03\x04 this is not really a zip" * 20,
        "absolute": _zip({"/etc/photo.jpg": b"x" * 100, "a.jpg": b"y" * 100}),
        "dotdot": _zip({"../../photo.jpg": b"x" * 100}),
        "bomb_ratio": _zip({"a.jpg": b"1", "bomb.bin": b"\0" * 5_000_000}),
        "no_images": _zip({"readme.txt": b"hello" * 50}),
    }[case]
    r, name, before = start_with(data)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == code and len(r.json()["message"]) > 10
    info = legacy("getProjectInfo", token=public_token, project=name).json()
    assert info["status"] == "uploading"  # still waiting: the user can reset and upload again
    assert ledger(ctx, public_token) == before
    assert ctx.service.server_status()["queue_length"] == 0


def test_zip_entry_count_limit(tmp_path):
    from fastapi.testclient import TestClient

    from openscancloud.api.app import create_app
    from openscancloud.settings import Settings

    app = create_app(Settings(data_dir=tmp_path / "d", zip_max_entries=5), maintenance=False)
    token = app.state.ctx.service.public_token()
    data = _zip({f"p{i}.jpg": b"x" * 10 for i in range(6)})
    with TestClient(app) as c:
        auth = ("openscan", "free")
        info = c.get("/createProject", params=dict(token=token, project="n.zip", photos=6, parts=1,
                                                   filesize=len(data)), auth=auth).json()
        assert c.post(info["ulink"][0], content=data).status_code == 200
        r = c.get("/startProject", params=dict(token=token, project="n.zip"), auth=auth)
        assert r.status_code == 422 and r.json()["error"] == "zip_bomb" and "entries" in r.json()["message"]


def test_more_photos_in_zip_than_token_allows(ctx, legacy, uploaded, public_token, photos_zip):
    row = ctx.service.find_token(public_token)
    with ctx.service.uow() as repo:
        repo.token_by_id(row.id).limit_photos = 3
    uploaded(public_token, "many.zip", photos_zip(4))
    r = legacy("startProject", token=public_token, project="many.zip")
    assert r.status_code == 413 and r.json()["error"] == "too_many_photos"


def test_project_of_another_token_is_invisible(legacy, uploaded, public_token, private_token, photos_zip):
    uploaded(public_token, "mine.zip", photos_zip(2))
    for cmd in ("getProjectInfo", "startProject", "resetProject"):
        r = legacy(cmd, token=private_token, project="mine.zip")
        assert r.status_code == 404 and "no project named" in r.json()["message"]
    assert legacy("getProjectInfo", token=public_token, project="mine.zip").json()["status"] == "uploading"


def test_reset_refunds_and_issues_fresh_links(legacy, client, ctx, uploaded, private_token, photos_zip):
    data = photos_zip(3)
    created = uploaded(private_token, "r.zip", data)
    legacy("startProject", token=private_token, project="r.zip")
    r = legacy("resetProject", token=private_token, project="r.zip")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "created" and body["refunded"] == pytest.approx(len(data) / 1e9)
    assert body["credit"] == pytest.approx(5.0)
    assert ledger(ctx, private_token)[-1][0] == "refund"
    info = legacy("getProjectInfo", token=private_token, project="r.zip").json()
    assert info["status"] == "created" and all(not p["complete"] for p in info["parts"])
    assert info["ulink"] != created["ulink"]
    # an old link no longer works, a new one does; starting again charges again
    assert client.post(created["ulink"][0], content=b"x").status_code == 403
    chunks = [data[i:i + 4096] for i in range(0, len(data), 4096)]
    for link, chunk in zip(body["ulink"], chunks):
        assert client.post(link, content=chunk).status_code == 200
    assert legacy("startProject", token=private_token, project="r.zip").status_code == 200
    assert ledger(ctx, private_token)[-1] == ("charge", -round(len(data) / 1e9, 9))


def test_request_token_without_email_configured(legacy, ctx):
    # without SMTP the request is recorded for the operator to approve (it used to be refused with 503)
    r = legacy("requestToken", mail="a@b.org", forename="A", lastname="B")
    assert r.status_code == 200 and "operator" in r.json()["message"] and "prv_" not in r.text
    assert [(q.email, q.status) for q in ctx.service.token_requests()] == [("a@b.org", "pending")]
