"""Exceptions the SDK raises: one class per thing a person can act on, each with a readable sentence.

Every exception derives from `ClientError`, whose `str()` is a complete sentence fit to show a user (the CLI and
the desktop app print it as is). `exit_code` is the CLI's documented exit status for that kind of failure.
"""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Base class: something went wrong talking to an OpenScan Cloud server."""

    exit_code = 1

    def __init__(self, message: str, *, status_code: int | None = None, payload: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.payload = payload

    def __str__(self) -> str:  # keep the sentence exactly as written
        return self.message


class InputError(ClientError):
    """The photos or options given to the client cannot be used (missing path, no images, bad name...)."""

    exit_code = 2


class NoImages(InputError):
    """The folder or zip holds no JPEG/PNG image."""


class InvalidToken(ClientError):
    """The server does not accept the token (unknown, revoked) or the HTTP Basic credentials."""

    exit_code = 3


class LimitExceeded(ClientError):
    """More photos or bytes than the token allows, or a part larger than the server accepts."""

    exit_code = 4


class NotEnoughCredit(LimitExceeded):
    """The token's credit does not cover this upload."""


class ConnectionFailed(ClientError):
    """The server could not be reached (or kept failing) after every retry; the upload can be resumed."""

    exit_code = 5


class ServerError(ConnectionFailed):
    """The server answered with a 5xx error after every retry."""


class UploadIncomplete(ConnectionFailed):
    """An upload stopped before every part arrived; running the same upload again continues it."""


class LinkExpired(UploadIncomplete):
    """The signed upload link expired or was rejected; the project must be reset or uploaded anew."""


class ProjectFailed(ClientError):
    """Processing ended without a result (failed, cancelled or expired); `reason` says why."""

    exit_code = 6

    def __init__(self, reason: str, *, status: str = "failed", payload: Any = None) -> None:
        super().__init__(reason, payload=payload)
        self.reason = reason
        self.status = status


class WaitTimeout(ClientError):
    """`wait()` gave up before the project finished; it is still processing on the server."""

    exit_code = 7


class ProjectNotFound(ClientError):
    """The server (or this machine) knows no project with that name for this token."""

    exit_code = 8


class ProjectExists(ClientError):
    """A project with this name already exists for this token and cannot be continued."""

    exit_code = 8


class ProjectNotReady(ClientError):
    """The project is not in a state that allows the request (e.g. start with parts missing, no result yet)."""

    exit_code = 8


class UploadCancelled(ClientError):
    """The caller cancelled the upload (the progress is kept; uploading again continues)."""

    exit_code = 130
