"""Token kinds, generation and hashing.

Tokens are 32+ random bytes (URL-safe) with a short kind prefix; the database stores only their sha256.
Two tokens are derived from the server secret instead of being random: the shared public token (so
`tokens public` can print it again without storing it in clear) and the built-in worker token of `serve`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum


class TokenKind(StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"
    WORKER = "worker"
    ADMIN = "admin"


class TokenStatus(StrEnum):
    ACTIVE = "active"
    PENDING = "pending"  # requested via /requestToken, waits for the e-mail confirmation link
    REVOKED = "revoked"


_PREFIX = {TokenKind.PUBLIC: "pub", TokenKind.PRIVATE: "prv", TokenKind.WORKER: "wrk", TokenKind.ADMIN: "adm"}


@dataclass(frozen=True)
class TokenLimits:
    limit_photos: int
    limit_filesize: int


def new_token(kind: TokenKind) -> str:
    return f"{_PREFIX[kind]}_{secrets.token_urlsafe(32)}"


def derived_token(secret: bytes, kind: TokenKind, purpose: str) -> str:
    digest = hmac.new(secret, f"derived-token:{purpose}".encode(), hashlib.sha256).hexdigest()
    return f"{_PREFIX[kind]}_{digest[:40]}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_hint(token: str) -> str:
    return token[:8]


def priority_for(kind: str) -> int:
    """Queue priority (lower first): private work before public work."""
    return 0 if kind in (TokenKind.PRIVATE, TokenKind.ADMIN) else 1
