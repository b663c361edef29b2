"""Errors the engine raises, split by who can fix them.

`UserInputError` means the photos (or options) are the problem and the message tells the person what to change;
any other `EngineError` is our failure. `Cancelled` is raised when the caller's cancel event is set: it is not an
error of either side, so it does not derive from `EngineError`.
"""

from __future__ import annotations


class EngineError(Exception):
    """A reconstruction failed; `str(error)` is one sentence a person can read."""


class UserInputError(EngineError):
    """The input cannot be reconstructed as given (too few images, not images, photos that do not overlap...)."""


class Cancelled(Exception):
    """The caller asked the reconstruction to stop (cancel event set, or SIGTERM in the CLI)."""
