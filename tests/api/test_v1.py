"""REST API v1: Bearer auth, projects with server IDs, problem+json errors, OpenAPI and docs."""

from __future__ import annotations

import pytest

PROBLEM = "application/problem+json"


@pytest.fixture
def bearer(private_token):
    return {"Authorization": f"Bearer {private_token}"}


def test_openapi_and_docs(client):
    spec = client.get("/openapi.json").json()
    for path in ("/api/v1/projects", "/api/v1/projects/{project_id}/start", "/api/v1/worker/claim",
                 "/createProject", "/getProjectInfo"):
        assert path in spec["paths"]
    assert client.get("/docs").status_code in (200, 503)  # 503 with a sentence when the web app is not built


def test_auth_errors_are_problem_json(client, ctx, private_token):
    r = client.get("/api/v1/token")
    assert r.status_code == 401 and r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["status"] == 401 and "Bearer" in r.json()["detail"]
    r = client.get("/api/v1/token", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"
    ctx.service.revoke_token(ctx.service.find_token(private_token).id)
    r = client.get("/api/v1/token", headers={"Authorization": f"Bearer {private_token}"})
    assert r.status_code == 403 and r.json()["code"] == "token_revoked"


def test_project_resource_lifecycle(client, bearer, photos_zip):
    assert client.get("/api/v1/token", headers=bearer).json()["credit"] == 5.0
    data = photos_zip(3)
    n = -(-len(data) // 4096)
    r = client.post("/api/v1/projects", json={"photos": 3, "filesize": len(data), "parts": n, "quality": "preview"},
                    headers=bearer)
    assert r.status_code == 201, r.text
    project = r.json()
    pid = project["id"]
    assert len(pid) == 32 and project["status"] == "created" and len(project["ulink"]) == n
    assert project["quality"] == "preview" and project["name"].startswith("project-")
    for i, link in enumerate(project["ulink"]):
        assert client.put(link, content=data[i * 4096:(i + 1) * 4096]).status_code == 200
    assert [p["id"] for p in client.get("/api/v1/projects", headers=bearer).json()["projects"]] == [pid]
    r = client.post(f"/api/v1/projects/{pid}/start", headers=bearer)
    assert r.status_code == 202 and r.json()["status"] == "queued"
    r = client.get(f"/api/v1/projects/{pid}/files", headers=bearer)
    assert r.status_code == 404 and r.headers["content-type"].startswith(PROBLEM)
    assert client.get("/api/v1/queue", headers=bearer).json()["position"] == 1
    assert client.delete(f"/api/v1/projects/{pid}", headers=bearer).status_code == 204
    assert client.get(f"/api/v1/projects/{pid}", headers=bearer).status_code == 404
    # deleting returned the unused credit
    assert client.get("/api/v1/token", headers=bearer).json()["credit"] == pytest.approx(5.0)


def test_validation_and_rules_as_problems(client, bearer, public_token):
    r = client.post("/api/v1/projects", json={"photos": 0, "filesize": 10, "parts": 1}, headers=bearer)
    assert r.status_code == 422 and r.headers["content-type"].startswith(PROBLEM) and "photos" in r.json()["detail"]
    r = client.post("/api/v1/projects", json={"name": "../x", "photos": 2, "filesize": 10, "parts": 1}, headers=bearer)
    assert r.status_code == 422 and r.json()["code"] == "invalid_name"
    r = client.post("/api/v1/projects", json={"photos": 2, "filesize": 10, "parts": 1, "quality": "ultra"},
                    headers=bearer)
    assert r.status_code == 422 and r.json()["code"] == "invalid_quality"
    r = client.post("/api/v1/projects", json={"photos": 2, "filesize": 10, "parts": 1}, headers=bearer)
    pid = r.json()["id"]
    r = client.post(f"/api/v1/projects/{pid}/start", headers=bearer)
    assert r.status_code == 409 and r.json()["missing_parts"] == [0]
    # another token's project: refused, not revealed
    other = {"Authorization": f"Bearer {public_token}"}
    for method, path in (("GET", ""), ("POST", "/start"), ("POST", "/cancel"), ("DELETE", "")):
        r = client.request(method, f"/api/v1/projects/{pid}{path}", headers=other)
        assert r.status_code == 403 and r.json()["code"] == "not_your_project"
    assert client.get(f"/api/v1/projects/{'0' * 32}", headers=bearer).status_code == 404
