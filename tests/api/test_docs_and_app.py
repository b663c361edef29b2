"""The OpenAPI description (legacy parameters, Basic and Bearer schemes, unique operation ids), `/docs` and
`/redoc` from local files, and the web app page with its Content-Security-Policy."""

from __future__ import annotations

import warnings
from collections import Counter

import pytest

from openscancloud.api.app import create_app
from openscancloud.api.webapp import web_dir

built = pytest.mark.skipif(not (web_dir() / "index.html").is_file(),
                           reason="the web app is not built (make install builds it with npm)")


def test_openapi_describes_both_apis_without_duplicates(client):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = client.get("/openapi.json").json()
    assert not [w for w in caught if "Duplicate Operation ID" in str(w.message)]
    ids = Counter(op["operationId"] for item in spec["paths"].values() for op in item.values())
    assert [i for i, n in ids.items() if n > 1] == []
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    create = spec["paths"]["/createProject"]["get"]
    assert create["security"] == [{"basic": []}]
    names = {p["name"] for p in create["parameters"]}
    assert {"token", "project", "photos", "parts", "filesize", "quality", "masks", "formats"} <= names
    assert spec["paths"]["/api/v1/projects"]["post"]["security"] == [{"bearer": []}]
    assert "security" not in spec["paths"]["/api/v1/status"]["get"]


@built
def test_docs_pages_load_only_local_files(client):
    for path in ("/docs", "/redoc"):
        r = client.get(path)
        assert r.status_code == 200, r.text
        assert "http" not in r.text.replace("http-equiv", "")  # no CDN, no absolute URL at all
        assert "script-src 'self'" in r.headers["content-security-policy"]
    assert client.get("/app/vendor/swagger-ui-bundle.js").status_code == 200


@built
def test_app_page_and_its_policy(client):
    r = client.get("/", headers={"Accept": "text/html"})
    assert r.status_code == 200 and "<main" in r.text
    assert r.headers["content-security-policy"].startswith("default-src 'self'")
    assert client.get("/", headers={"Accept": "application/json"}).json()["docs"] == "/docs"


def test_without_a_build_the_pages_say_how_to_get_one(tmp_path, monkeypatch, settings):
    monkeypatch.setenv("OPENSCAN_WEB_DIR", str(tmp_path / "nothing"))
    from fastapi.testclient import TestClient

    with TestClient(create_app(settings, maintenance=False)) as c:
        r = c.get("/", headers={"Accept": "text/html"})
        assert r.status_code == 503 and "make install" in r.text
        assert c.get("/docs").status_code == 503 and c.get("/openapi.json").status_code == 200
