"""HMAC-signed, expiring link parameters. The URL layout lives in the API layer; this only signs tuples.

A signature covers the purpose, the project ID, the part index, the project's upload generation (so a reset
invalidates old links) and the expiry time. Expiry is judged by `clock` (seconds since the epoch): the server
passes its service clock, so that the expiry of a link and the retention dates in the database follow one idea
of now (and a test that moves that clock sees links expire over HTTP).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field
from typing import Callable

from openscancloud.domain.errors import Forbidden, Gone


@dataclass(frozen=True)
class Signer:
    key: bytes
    clock: Callable[[], float] = field(default=time.time, compare=False)

    # HMAC's keyed inner/outer state, computed once: each signature copies it instead of re-deriving the key
    # pads (a poll of a project signs one link per upload part).
    _keyed: "hmac.HMAC" = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_keyed", hmac.new(self.key, digestmod=hashlib.sha256))

    def now(self) -> float:
        return self.clock()

    def sign(self, purpose: str, *fields: object, expires: int) -> str:
        mac = self._keyed.copy()
        mac.update("|".join([purpose, *map(str, fields), str(expires)]).encode())
        return mac.hexdigest()[:40]

    def verify(self, purpose: str, *fields: object, expires: int, signature: str, now: float | None = None) -> None:
        """Raise Forbidden (403) for a bad signature, Gone (410) for an expired link."""
        expected = self.sign(purpose, *fields, expires=expires)
        # bytes: compare_digest refuses non-ASCII str (a tampered link may carry any character)
        if not hmac.compare_digest(expected.encode(), (signature or "").encode("utf-8", "replace")):
            raise Forbidden("This link is not valid (its signature does not match).", code="bad_signature")
        if (now if now is not None else self.clock()) > expires:
            raise Gone("This link has expired; ask for a new one (getProjectInfo).", code="link_expired")
