"""M1, M2 and the L2 races: concurrent starts, concurrent uploads of one part, and reset/cancel/delete while an
upload or a start is running — for real, against a running server, on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import threading
import time

import httpx

SLOW = 0.05  # seconds between chunks of a slowly sent body


def _slow_body(data: bytes, chunk: int, started: threading.Event | None = None):
    for i in range(0, len(data), chunk):
        if started is not None and i > 0:
            started.set()
        yield data[i:i + chunk]
        time.sleep(SLOW)


def test_concurrent_starts_queue_once_and_never_lose_the_input(live_db, make_zip, racer):
    srv = live_db()
    token = srv.private_token()
    for round_ in range(3):
        name = f"race-{round_}.zip"
        info = srv.upload(token, name, make_zip(6, seed=round_), part_size=20_000)
        answers = racer(5, lambda i: srv.legacy("startProject", token=token, project=name))
        codes = sorted(r.status_code for r in answers)
        assert codes == [200, 409, 409, 409, 409], [r.text for r in answers]
        assert all(r.json()["error"] in ("starting", "already_started") for r in answers if r.status_code == 409)
        project = srv.project(info["id"])
        assert project.status == "queued" and project.starting_at is None
        assert srv.ctx.storage.input_size(info["id"]) == project.filesize  # the winner's input is intact
        with srv.ctx.service.uow() as repo:
            assert repo.latest_job(info["id"]).status == "queued"
            assert repo.parts_of(info["id"]) == []


def test_concurrent_uploads_of_one_part_record_what_is_on_disk(live_db, make_zip, racer):
    srv = live_db()
    token = srv.private_token()
    size = 60_000
    bodies = [bytes([i]) * size for i in range(8)]  # same size, different content
    info = srv.create(token, "same-part.zip", bodies[0], part_size=size)
    link = info["ulink"][0]

    answers = racer(8, lambda i: httpx.post(link, content=_slow_body(bodies[i], 10_000), timeout=60))
    codes = [r.status_code for r in answers]
    assert 200 in codes and set(codes) <= {200, 409}, [r.text for r in answers]
    assert all(r.json()["error"] == "part_busy" for r in answers if r.status_code == 409)
    with srv.ctx.service.uow() as repo:
        (part,) = repo.parts_of(info["id"])
    on_disk = srv.ctx.settings.storage_dir / "projects" / info["id"] / "parts" / "0.part"
    assert hashlib.sha256(on_disk.read_bytes()).hexdigest() == part.sha256 and part.size == size
    assert part.sha256 in {r.json()["sha256"] for r in answers if r.status_code == 200}


def test_a_part_changed_behind_the_servers_back_is_caught_when_joining(live, make_zip):
    srv = live()
    token = srv.private_token()
    data = make_zip(4)
    info = srv.upload(token, "tampered.zip", data)
    part = srv.ctx.settings.storage_dir / "projects" / info["id"] / "parts" / "0.part"
    part.write_bytes(b"X" * len(data))  # same size, other bytes: only the hash can tell
    r = srv.legacy("startProject", token=token, project="tampered.zip")
    assert r.status_code == 409 and r.json()["error"] == "part_mismatch" and "upload it again" in r.json()["message"]
    assert srv.project(info["id"]).status == "uploading" and srv.ctx.storage.input_size(info["id"]) is None


def test_reset_cancel_delete_during_an_upload_answer_409_not_500(live_db, make_zip):
    srv = live_db()
    token = srv.private_token()
    for action in ("reset", "cancel", "delete"):
        name = f"{action}-while-uploading.zip"
        data = make_zip(3, seed=7) * 3
        info = srv.create(token, name, data, part_size=len(data))
        started = threading.Event()
        result: dict = {}

        def send() -> None:
            result["r"] = httpx.post(info["ulink"][0], content=_slow_body(data, 4000, started), timeout=60)

        t = threading.Thread(target=send)
        t.start()
        assert started.wait(30)
        if action == "reset":
            assert srv.legacy("resetProject", token=token, project=name).status_code == 200
        else:
            method = "DELETE" if action == "delete" else "POST"
            path = f"/api/v1/projects/{info['id']}" + ("/cancel" if action == "cancel" else "")
            r = httpx.request(method, srv.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=60)
            assert r.status_code in (200, 204), r.text
        t.join(60)
        r = result["r"]
        assert r.status_code in (403, 409), r.text  # a stale link (reset) or a project that changed
        assert len(r.json()["message"]) > 10
        project = srv.project(info["id"])
        if project is not None:
            with srv.ctx.service.uow() as repo:
                assert repo.parts_of(info["id"]) == []


def test_reset_racing_a_start_never_fails_with_500(live_db, make_zip, racer):
    srv = live_db()
    token = srv.private_token()
    for round_ in range(3):
        name = f"reset-vs-start-{round_}.zip"
        info = srv.upload(token, name, make_zip(8, seed=round_), part_size=20_000)
        answers = racer(4, lambda i: srv.legacy("startProject" if i % 2 == 0 else "resetProject", token=token,
                                                project=name))
        assert all(r.status_code in (200, 409) for r in answers), [r.text for r in answers]
        project = srv.project(info["id"])
        assert project.starting_at is None
        if project.status == "queued":  # the start won: its input must be there
            assert srv.ctx.storage.input_size(info["id"]) == project.filesize


def test_appends_take_turns_and_a_whole_part_upload_takes_over(live_db):
    srv = live_db()
    token = srv.private_token()
    size = 40_000
    info = srv.create(token, "turns.zip", b"t" * size, part_size=size)
    link = info["ulink"][0]
    started = threading.Event()
    result: dict = {}

    def slow_append() -> None:
        result["slow"] = httpx.put(link, content=_slow_body(b"a" * 20_000, 1000, started), timeout=60,
                                   headers={"Content-Range": f"bytes 0-19999/{size}"})

    t = threading.Thread(target=slow_append)
    t.start()
    assert started.wait(30)
    busy = httpx.put(link, content=b"b" * 100, headers={"Content-Range": f"bytes 0-99/{size}"}, timeout=60)
    assert busy.status_code == 409 and busy.json()["error"] == "part_busy"
    whole = httpx.put(link, content=b"w" * size, timeout=60)  # e.g. the client's retry: it wins
    assert whole.status_code == 200 and whole.json()["sha256"] == hashlib.sha256(b"w" * size).hexdigest()
    t.join(60)
    assert result["slow"].status_code == 409 and result["slow"].json()["error"] == "part_busy"
    with srv.ctx.service.uow() as repo:
        (part,) = repo.parts_of(info["id"])
    assert part.sha256 == hashlib.sha256(b"w" * size).hexdigest()
    assert srv.legacy("startProject", token=token, project="turns.zip").json()["error"] == "corrupt_zip"
