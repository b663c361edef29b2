"""The storage interface the rest of the server programs against."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, BinaryIO, Iterator, Protocol, Sequence


class PartTooLarge(Exception):
    """The stream went past the part limit; nothing was kept."""


class OffsetMismatch(Exception):
    """A `Content-Range` upload did not start where the stored partial part ends."""

    def __init__(self, offset: int) -> None:
        super().__init__(f"expected offset {offset}")
        self.offset = offset


class PartMismatch(Exception):
    """While joining the parts, one did not have the size and sha256 recorded for it; nothing was kept."""

    def __init__(self, index: int) -> None:
        super().__init__(f"part {index} differs from what was recorded")
        self.index = index


@dataclass(frozen=True)
class StoredPart:
    index: int
    size: int
    sha256: str


class Storage(Protocol):
    # --- upload parts -------------------------------------------------------------------------------------
    async def put_part(
        self, project_id: str, index: int, chunks: AsyncIterator[bytes], limit: int
    ) -> StoredPart: ...

    async def append_part(
        self, project_id: str, index: int, start: int, total: int, chunks: AsyncIterator[bytes], limit: int
    ) -> tuple[int, StoredPart | None]: ...

    def part_offset(self, project_id: str, index: int) -> tuple[int, bool]: ...

    def delete_parts(self, project_id: str) -> None: ...

    # --- input zip ------------------------------------------------------------------------------------------
    def assemble_input(self, project_id: str, parts: int,
                       expected: Sequence[tuple[int, str]] | None = None) -> int:
        """Join parts 0..parts-1 into input.zip. With `expected` ((size, sha256) per part) every part is checked
        while it is copied; a difference raises `PartMismatch` and leaves no input behind."""
        ...

    def local_input(self, project_id: str) -> AbstractContextManager[Path]:
        """The input zip as a local file for the duration of the `with` (a download for object stores)."""
        ...

    def open_input(self, project_id: str) -> BinaryIO: ...

    def input_size(self, project_id: str) -> int | None: ...

    def delete_input(self, project_id: str) -> None: ...

    # --- result zip -----------------------------------------------------------------------------------------
    async def put_result(self, project_id: str, chunks: AsyncIterator[bytes], limit: int) -> StoredPart: ...

    def result_size(self, project_id: str) -> int | None: ...

    def open_result(self, project_id: str) -> BinaryIO: ...

    def read_result(self, project_id: str, start: int, end: int, chunk_size: int = 1 << 20) -> Iterator[bytes]: ...

    def delete_result(self, project_id: str) -> None: ...

    # --- everything -----------------------------------------------------------------------------------------
    def delete_project(self, project_id: str) -> None: ...


class ObjectStore(Storage, Protocol):
    """A storage that can hand out presigned URLs so clients talk to it directly (S3). The API checks
    `isinstance(storage, ObjectStore)`-style capability with `supports_presign(storage)`."""

    def presign_part_put(self, project_id: str, index: int, generation: int, seconds: int) -> str: ...

    def adopt_presigned_part(self, project_id: str, index: int, generation: int, limit: int) -> StoredPart | None: ...

    def presign_input_get(self, project_id: str, seconds: int) -> str: ...

    def presign_result_get(self, project_id: str, filename: str, seconds: int) -> str: ...

    def abort_stale_uploads(self, older_than_seconds: float) -> int: ...


def supports_presign(storage: Storage) -> bool:
    return callable(getattr(storage, "presign_result_get", None))
