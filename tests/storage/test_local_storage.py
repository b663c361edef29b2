"""Local storage: atomic parts, resumable appends, limits, assembly, ranged reads, ID-only paths."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import pytest

from openscancloud.storage.base import OffsetMismatch, PartTooLarge
from openscancloud.storage.local import LocalStorage


async def agen(*chunks: bytes):
    for c in chunks:
        yield c


async def broken(*chunks: bytes):
    for c in chunks:
        yield c
    raise ConnectionError("client went away")


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def store(tmp_path):
    return LocalStorage(tmp_path / "s")


def test_put_part_atomic_and_replace(store):
    pid = uuid.uuid4().hex
    part = run(store.put_part(pid, 0, agen(b"abc", b"def"), 100))
    assert (part.size, part.sha256) == (6, hashlib.sha256(b"abcdef").hexdigest())
    assert store.part_offset(pid, 0) == (6, True)
    with pytest.raises(ConnectionError):
        run(store.put_part(pid, 0, broken(b"xxxxxxxx"), 100))
    assert store.part_offset(pid, 0) == (6, True)  # the broken re-send left the old part untouched
    with pytest.raises(PartTooLarge):
        run(store.put_part(pid, 1, agen(b"x" * 60, b"x" * 60), 100))
    assert store.part_offset(pid, 1) == (0, False)
    assert not [p for p in (store.root / "projects" / pid / "parts").iterdir() if p.name.startswith(".tmp")]


def test_append_part_resume(store):
    pid = uuid.uuid4().hex
    assert run(store.append_part(pid, 0, 0, 10, agen(b"0123"), 100)) == (4, None)
    with pytest.raises(OffsetMismatch) as exc:
        run(store.append_part(pid, 0, 2, 10, agen(b"23"), 100))
    assert exc.value.offset == 4
    offset, part = run(store.append_part(pid, 0, 4, 10, agen(b"456789"), 100))
    assert offset == 10 and part.sha256 == hashlib.sha256(b"0123456789").hexdigest()
    assert store.part_offset(pid, 0) == (10, True)


def test_assemble_and_ranges(store):
    pid = uuid.uuid4().hex
    run(store.put_part(pid, 0, agen(b"hello "), 100))
    run(store.put_part(pid, 1, agen(b"world"), 100))
    assert store.assemble_input(pid, 2) == 11
    with store.open_input(pid) as fh:
        assert fh.read() == b"hello world"
    run(store.put_result(pid, agen(b"0123456789"), 100))
    assert b"".join(store.read_result(pid, 2, 5, chunk_size=2)) == b"2345"
    store.delete_project(pid)
    assert store.result_size(pid) is None and store.input_size(pid) is None


@pytest.mark.parametrize("bad", ["../etc", "abc", "A" * 32, "/tmp/x"])
def test_only_server_ids_become_paths(store, bad):
    with pytest.raises(ValueError):
        store.part_offset(bad, 0)


def test_abort_stale_uploads_removes_temp_files_of_dead_processes(store):
    """A process killed mid-stream leaves `.tmp-*` (never a part); maintenance removes it once it is old."""
    import os
    import time

    pid = uuid.uuid4().hex
    run(store.put_part(pid, 0, agen(b"kept"), 100))
    parts = store.root / "projects" / pid / "parts"
    leftover = parts / ".tmp-deadbeef"
    leftover.write_bytes(b"half a part")
    assert store.part_offset(pid, 1) == (0, False)
    assert store.abort_stale_uploads(3600) == 0  # young: could still be streaming
    old = time.time() - 7200
    os.utime(leftover, (old, old))
    assert store.abort_stale_uploads(3600) == 1
    assert not leftover.exists() and store.part_offset(pid, 0) == (4, True)
