"""Errors a person can understand. Each carries the HTTP-ish status the API layers translate it to."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None, **extra: Any):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.extra = extra


class InvalidInput(DomainError):
    status, code = 422, "invalid_input"


class Unauthorized(DomainError):
    status, code = 401, "invalid_token"


class Forbidden(DomainError):
    status, code = 403, "forbidden"


class NotFound(DomainError):
    status, code = 404, "not_found"


class Conflict(DomainError):
    status, code = 409, "conflict"


class TooLarge(DomainError):
    status, code = 413, "too_large"


class PaymentRequired(DomainError):
    status, code = 402, "not_enough_credit"


class Gone(DomainError):
    status, code = 410, "gone"


class RateLimited(DomainError):
    status, code = 429, "rate_limited"


class Unavailable(DomainError):
    status, code = 503, "unavailable"
