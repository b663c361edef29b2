"""H1 and L3: strangers sharing the public token cannot see or touch each other's projects, and links die with
their token and with the result they were made for."""

from __future__ import annotations

import httpx



def _rest(live, token: str, method: str, path: str, key: str | None = None, **kw) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["X-Project-Key"] = key
    return httpx.request(method, f"{live.url}/api/v1{path}", headers=headers, timeout=60, **kw)


def test_public_projects_need_their_key_and_are_never_listed(live):
    srv = live()
    alice = _rest(srv, srv.public_token, "POST", "/projects",
                  json={"name": "alice-scan", "photos": 3, "filesize": 5000, "parts": 1})
    assert alice.status_code == 201, alice.text
    project, key = alice.json(), alice.json()["project_key"]
    assert len(key) >= 32
    pid = project["id"]

    # Mallory uses the same public token: the listing shows nothing, and every call on Alice's id without the
    # key answers exactly like an unknown id (existence is not revealed)
    assert _rest(srv, srv.public_token, "GET", "/projects").json() == {"projects": []}
    unknown = _rest(srv, srv.public_token, "GET", "/projects/" + "0" * 32)
    for method, path in [("GET", f"/projects/{pid}"), ("DELETE", f"/projects/{pid}"),
                         ("POST", f"/projects/{pid}/start"), ("POST", f"/projects/{pid}/reset"),
                         ("POST", f"/projects/{pid}/cancel"), ("GET", f"/projects/{pid}/result"),
                         ("GET", f"/projects/{pid}/files")]:
        for key_sent in (None, "wrong-key", key[:-1]):
            r = _rest(srv, srv.public_token, method, path, key_sent)
            assert r.status_code == 404, (method, path, r.text)
            assert r.json()["detail"] == unknown.json()["detail"] and "X-Project-Key" in r.json()["detail"]
            assert "ulink" not in r.text
    # another token holding the right key gets nothing either
    other = srv.private_token()
    assert _rest(srv, other, "GET", f"/projects/{pid}", key).status_code == 404

    # Alice, with the key, has her project (links included) and can delete it
    mine = _rest(srv, srv.public_token, "GET", f"/projects/{pid}", key)
    assert mine.status_code == 200 and len(mine.json()["ulink"]) == 1 and mine.json()["project_key"] == key
    assert _rest(srv, srv.public_token, "DELETE", f"/projects/{pid}", key).status_code == 204
    assert srv.project(pid) is None


def test_private_projects_work_as_before_without_a_key(live):
    srv = live()
    token = srv.private_token()
    created = _rest(srv, token, "POST", "/projects", json={"name": "p", "photos": 3, "filesize": 5000, "parts": 1})
    assert created.status_code == 201 and "project_key" not in created.json()
    assert [p["name"] for p in _rest(srv, token, "GET", "/projects").json()["projects"]] == ["p"]
    assert _rest(srv, token, "GET", f"/projects/{created.json()['id']}").status_code == 200


def test_sdk_keeps_the_key_and_finds_a_public_project_in_a_later_run(live, tmp_path, make_zip):
    from openscancloud.client import Client
    from openscancloud.client.config import ClientPaths

    srv = live()
    data = make_zip(4)
    paths = ClientPaths(config_dir=tmp_path / "cfg", state_dir=tmp_path / "state", cache_dir=tmp_path / "cache")
    with Client(srv.url, srv.public_token, api="v1", paths=paths) as first:
        created = first.create_project("sdk-scan", photos=4, parts=1, filesize=len(data))
        assert httpx.post(created.ulinks[0], content=data, timeout=60).status_code == 200
    key_files = list((tmp_path / "state" / "keys").glob("*.json"))
    assert len(key_files) == 1 and oct(key_files[0].stat().st_mode & 0o777) == "0o600"
    with Client(srv.url, srv.public_token, api="v1", paths=paths) as later:  # a new process: no memory
        assert later.project_info("sdk-scan").status == "uploading"
        later.start("sdk-scan")
        assert later.project_info("sdk-scan").status == "queued"


def test_links_die_with_their_token_and_with_their_result(live, make_zip):
    srv = live()
    token = srv.private_token()
    data = make_zip(3)
    info = srv.create(token, "revoked.zip", data)
    srv.ctx.service.revoke_token(srv.ctx.service.find_token(token).id)
    r = httpx.post(info["ulink"][0], content=data, timeout=60)
    assert r.status_code == 403 and "revoked" in r.json()["message"]
    assert httpx.head(info["ulink"][0], timeout=60).status_code == 403

    # a finished result: the download link works, then stops after a reprocessing and after revocation
    token = srv.private_token("b@example.org")
    info = srv.upload(token, "done.zip", data)
    assert srv.legacy("startProject", token=token, project="done.zip").status_code == 200
    srv.finish_job(b"first result")
    dlink = srv.legacy("getProjectInfo", token=token, project="done.zip").json()["dlink"]
    assert httpx.get(dlink, timeout=60).content == b"first result"
    reset = srv.legacy("resetProject", token=token, project="done.zip").json()
    for i, link in enumerate(reset["ulink"]):
        assert httpx.post(link, content=data, timeout=60).status_code == 200
    assert srv.legacy("startProject", token=token, project="done.zip").status_code == 200
    srv.finish_job(b"second result")
    old = httpx.get(dlink, timeout=60)
    assert old.status_code == 404 and "second" not in old.text
    new = srv.legacy("getProjectInfo", token=token, project="done.zip").json()["dlink"]
    assert httpx.get(new, timeout=60).content == b"second result"
    srv.ctx.service.revoke_token(srv.ctx.service.find_token(token).id)
    gone = httpx.get(new, timeout=60)
    assert gone.status_code == 403 and "revoked" in gone.json()["message"]

