"""Polls without a database read: the last snapshot this process read of each polled project, kept while
PostgreSQL's change notices (`db.changes.ChangeFeed`) say nothing about it.

Almost every poll finds its project as it was a few seconds ago. What the answer is built from — token, project,
latest job, parts, place in the queue — changes only by writes to the database, and the change feed reports each
within milliseconds of its commit. So the snapshot of the last read (and the change tag computed from it) is kept
per (token hash, project, address, view): a revalidation with that tag is a 304 from here, any other poll renders
its answer from it with a fresh ETA, and only a first poll, a changed project or a feed that is not `healthy`
costs the one-statement read.

What is never kept: snapshots while parts are still being uploaded (their byte offsets live in storage, which
sends no notices), those that needed the domain layer (a refusal, a public token's per-project key), and any
read while a notice for its project — or for the queue, if it was queued — arrived (`ChangeFeed.changed_since`).
Entries also expire after `max_age` seconds, a bound on trust should a connection die unnoticed.
"""

from __future__ import annotations

import time
from typing import Any, Hashable, NamedTuple

from openscancloud.db.changes import ChangeFeed


class Cached(NamedTuple):
    project_id: str
    etag: str
    snap: Any  # db.poll.Snapshot
    queued: bool  # its place in the queue is part of the answer (forgotten on a queue notice)
    stored_at: float


class PollCache:
    """Per-process map (token hash, project, base URL, view) → the last snapshot and its tag (module docstring).
    Its owner connects `feed`, a change feed whose notices call `forget`, `clear` and `forget_queued`."""

    feed: ChangeFeed

    def __init__(self, max_entries: int = 50_000, max_age: float = 60.0) -> None:
        self.max_entries = max_entries
        self.max_age = max_age
        self._entries: dict[Hashable, Cached] = {}
        self._keys_of: dict[str, set[Hashable]] = {}
        self.hits = 0  # polls answered without a read (tests and benchmarks look at it)

    def lookup(self, key: Hashable) -> Cached | None:
        self.feed.ensure_started()
        if not self.feed.healthy:
            return None
        entry = self._entries.get(key)
        if entry is None or time.monotonic() - entry.stored_at > self.max_age:
            return None
        self.hits += 1
        return entry

    def mark(self) -> int | None:
        """Taken before a database read; passed back to `store`."""
        self.feed.ensure_started()
        return self.feed.mark()

    def store(self, key: Hashable, mark: int | None, etag: str, snap: Any) -> None:
        project_id = snap.project.id
        queued = snap.job is not None and snap.job.status == "queued"
        if self.feed.changed_since(project_id, mark, queued=queued):
            return  # a notice may have overtaken this read: keeping it could hide that change
        if len(self._entries) >= self.max_entries:
            self.clear()  # rare (that many distinct pollers in one process); the next polls refill it
        self._entries[key] = Cached(project_id, etag, snap, queued, time.monotonic())
        self._keys_of.setdefault(project_id, set()).add(key)

    def forget(self, project_id: str) -> None:
        for key in self._keys_of.pop(project_id, ()):
            self._entries.pop(key, None)

    def forget_queued(self) -> None:
        for key in [k for k, e in self._entries.items() if e.queued]:
            entry = self._entries.pop(key)
            keys = self._keys_of.get(entry.project_id)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._keys_of[entry.project_id]

    def clear(self) -> None:
        self._entries.clear()
        self._keys_of.clear()

    def __len__(self) -> int:
        return len(self._entries)


__all__ = ["PollCache", "Cached"]
