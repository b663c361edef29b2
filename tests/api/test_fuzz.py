"""Schemathesis against the app's own `/openapi.json`: generated requests for every operation (valid and
invalid bodies, path and query values) never get a 5xx. Requests carry an admin token, which every v1, worker
and admin route accepts, so the generated data reaches the domain code instead of stopping at 401. The quick
version runs in the default suite (few examples per operation); the slow one digs deeper."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from openscancloud.api.app import create_app  # noqa: E402
from openscancloud.domain.tokens import TokenKind  # noqa: E402
from openscancloud.settings import Settings  # noqa: E402


def _fuzz(tmp_path, examples: int) -> tuple[int, list[str]]:
    app = create_app(Settings(data_dir=tmp_path / "data", part_limit_bytes=4096, maintenance_interval_seconds=0),
                     maintenance=False)
    ctx = app.state.ctx
    admin, _ = ctx.service.create_token(TokenKind.ADMIN, label="fuzz")
    headers = {"Authorization": f"Bearer {admin}"}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            nonlocal calls
            response = case.call(headers=headers)
            calls += 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} → {response.status_code}: "
                                f"{response.text[:200]}")

        check()
    return calls, failures


def test_openapi_fuzz_quick_no_5xx(tmp_path):
    calls, failures = _fuzz(tmp_path, examples=8)
    assert calls > 100  # every operation was exercised
    assert failures == []


@pytest.mark.slow
def test_openapi_fuzz_deep_no_5xx(tmp_path):
    calls, failures = _fuzz(tmp_path, examples=150)
    assert calls > 2000
    assert failures == []
