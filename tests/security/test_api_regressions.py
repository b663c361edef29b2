"""L2 leftovers: answers that used to be 500s."""

from __future__ import annotations

import httpx


def test_files_of_a_result_that_is_not_a_zip(live, make_zip):
    srv = live()
    token = srv.private_token()
    info = srv.upload(token, "nozip.zip", make_zip(3))
    assert srv.legacy("startProject", token=token, project="nozip.zip").status_code == 200
    srv.finish_job(b"this is not a zip archive")
    r = httpx.get(f"{srv.url}/api/v1/projects/{info['id']}/files", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 409 and r.json()["code"] == "result_not_zip" and "download it" in r.json()["detail"]
    whole = httpx.get(f"{srv.url}/api/v1/projects/{info['id']}/result", headers={"Authorization": f"Bearer {token}"})
    assert whole.status_code == 200 and whole.content == b"this is not a zip archive"
