"""HTTP plumbing shared by the SDK: retry with exponential backoff, and server errors → typed exceptions."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, Callable

import httpx

from openscancloud.client.errors import (
    ClientError,
    ConnectionFailed,
    InputError,
    InvalidToken,
    LimitExceeded,
    LinkExpired,
    NotEnoughCredit,
    ProjectExists,
    ProjectNotFound,
    ProjectNotReady,
    ServerError,
)

#: Answers worth trying again: the server is busy, restarting, or a proxy in between hiccupped.
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: `base_delay * 2**n` seconds (with jitter), capped at `max_delay`, `attempts` tries.

    For uploads the count restarts whenever the server acknowledged new bytes, so a long upload over a flaky line
    keeps going as long as it makes progress.
    """

    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: bool = True

    def delay(self, failures: int) -> float:
        d = min(self.max_delay, self.base_delay * (2 ** max(0, failures - 1)))
        return d * (0.5 + random.random() / 2) if self.jitter else d


def describe_transport_error(exc: Exception) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "could not connect"
    if isinstance(exc, httpx.TimeoutException):
        return "the server did not answer in time"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return "the connection was dropped"
    return str(exc) or type(exc).__name__


def server_message(response: httpx.Response) -> str | None:
    """The human sentence in an error answer: legacy `{"message"|"error"|"detail"}` or problem+json."""
    try:
        data = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:300] if text and "<html" not in text.lower() else None
    if isinstance(data, dict):
        for key in ("message", "detail", "error", "title"):
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
            if isinstance(value, list) and value:  # FastAPI validation errors
                msgs = [str(v.get("msg", v)) if isinstance(v, dict) else str(v) for v in value]
                return "; ".join(msgs)
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return value["message"]
    return None


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def error_from_response(response: httpx.Response, *, action: str) -> ClientError:
    """Map an error answer to the exception a caller can act on. `action` reads like "create the project"."""
    status = response.status_code
    said = server_message(response)
    detail = f" The server said: {_sentence(said)}" if said else ""
    kwargs: dict[str, Any] = {"status_code": status, "payload": said}
    if status == 401 and response.headers.get("www-authenticate", "").lower().startswith("basic"):
        return InvalidToken(
            f"The server refused the HTTP Basic user name/password while trying to {action}.{detail}", **kwargs
        )
    if status in (401, 403):
        return InvalidToken(f"The server did not accept the token while trying to {action}.{detail}", **kwargs)
    if status == 402:
        return NotEnoughCredit(f"Not enough credit to {action}.{detail}", **kwargs)
    if status == 404:
        return ProjectNotFound(f"Could not {action}: not found on the server.{detail}", **kwargs)
    if status == 409:
        if action.startswith("create"):
            return ProjectExists(f"Could not {action}: that name is already taken.{detail}", **kwargs)
        return ProjectNotReady(f"Could not {action} yet.{detail}", **kwargs)
    if status == 410:
        return LinkExpired(f"Could not {action}: the link has expired.{detail}", **kwargs)
    if status == 413:
        return LimitExceeded(f"Could not {action}: it is larger than the server allows.{detail}", **kwargs)
    if status == 422:
        lowered = (said or "").lower()
        if any(word in lowered for word in ("limit", "too many", "too large", "exceed", "maximum")):
            return LimitExceeded(f"Could not {action}: a limit was exceeded.{detail}", **kwargs)
        return InputError(f"Could not {action}: the server rejected the request.{detail}", **kwargs)
    if 400 <= status < 500:
        return InputError(f"Could not {action} (HTTP {status}).{detail}", **kwargs)
    return ServerError(f"The server failed while trying to {action} (HTTP {status}).{detail}", **kwargs)


def send_with_retry(
    send: Callable[[], httpx.Response],
    *,
    action: str,
    retry: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[str, float], None] | None = None,
) -> httpx.Response:
    """Call `send()` until it gives a non-retryable answer; raise `ConnectionFailed` when every try failed.

    Returns the response whatever its status (non-retryable errors are the caller's to map).
    """
    failures = 0
    while True:
        try:
            response = send()
        except httpx.TransportError as exc:
            reason = describe_transport_error(exc)
            response = None
        else:
            if response.status_code not in RETRYABLE_STATUS:
                return response
            reason = f"HTTP {response.status_code}"
        failures += 1
        if failures >= retry.attempts:
            if response is not None:
                raise error_from_response(response, action=action)
            raise ConnectionFailed(f"Could not {action}: {reason} after {failures} tries.")
        delay = retry.delay(failures)
        if on_retry:
            on_retry(f"Could not {action} ({reason}); trying again in {delay:.0f} s.", delay)
        sleep(delay)
