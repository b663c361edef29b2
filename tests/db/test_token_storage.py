"""Tokens are never stored in plain text: after creating every kind of token (and using them), neither the
SQLite file with its write-ahead log nor any row of PostgreSQL contains a token or any 12-character piece of it;
only its sha256 and an 8-character hint are kept, and the token still authenticates."""

from __future__ import annotations

import hashlib
import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from openscancloud.api.app import create_app
from openscancloud.domain.tokens import TokenKind
from openscancloud.settings import Settings

AUTH = ("openscan", "free")


def _make_tokens(ctx) -> list[str]:
    private, _ = ctx.service.create_token(TokenKind.PRIVATE, forename="Ada", surname="Lovelace",
                                          email="ada@example.org")
    worker, _ = ctx.service.create_token(TokenKind.WORKER, label="gpu box")
    admin, _ = ctx.service.create_token(TokenKind.ADMIN, label="operator")
    return [ctx.service.public_token(), private, worker, admin]


def _pieces(token: str, width: int = 12) -> list[str]:
    """Every `width`-character window of the secret part (after the 8-character hint)."""
    return [token[i:i + width] for i in range(8, len(token) - width + 1)]


def _use_tokens(app, tokens: list[str]) -> None:
    with TestClient(app) as client:
        for token in tokens[:2]:
            assert client.get("/getTokenInfo", params={"token": token}, auth=AUTH).status_code == 200
        assert client.get("/api/v1/token", headers={"Authorization": f"Bearer {tokens[1]}"}).status_code == 200


def test_sqlite_file_holds_no_token(tmp_path):
    app = create_app(Settings(data_dir=tmp_path / "d"), maintenance=False)
    ctx = app.state.ctx
    tokens = _make_tokens(ctx)
    _use_tokens(app, tokens)
    ctx.db.dispose()  # whatever is only in the WAL stays in the -wal file, which is read too
    stored = b"".join(p.read_bytes() for p in (tmp_path / "d").rglob("*") if p.is_file() and "openscan.db" in p.name)
    assert len(stored) > 10_000
    for token in tokens:
        assert token.encode() not in stored
        assert not [piece for piece in _pieces(token) if piece.encode() in stored], token[:8]
        assert hashlib.sha256(token.encode()).hexdigest().encode() in stored  # what is kept instead
    app2 = create_app(Settings(data_dir=tmp_path / "d"), maintenance=False)  # a new process: still valid
    assert app2.state.ctx.service.authenticate(tokens[1]).kind == "private"


def test_postgres_rows_hold_no_token(tmp_path, pg_url):
    app = create_app(Settings(data_dir=tmp_path / "d", database_url=pg_url), maintenance=False)
    tokens = _make_tokens(app.state.ctx)
    _use_tokens(app, tokens)
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        tables = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")).scalars()
        dump = "\n".join(json.dumps(row) for table in list(tables)
                         for row in conn.execute(text(f'SELECT row_to_json(t)::text FROM "{table}" t')).scalars())
    engine.dispose()
    assert "Ada" in dump and hashlib.sha256(tokens[1].encode()).hexdigest() in dump  # the dump is real
    for token in tokens:
        assert token not in dump
        assert not [piece for piece in _pieces(token) if piece in dump], token[:8]
