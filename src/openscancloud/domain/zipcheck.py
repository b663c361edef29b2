"""Checks an uploaded zip before it is queued: readable, safe entry names, no zip bomb, contains images,
not more photos than the token allows. Only the central directory is read (cheap even for 2 GB)."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from openscancloud.domain.errors import InvalidInput, TooLarge

AGGREGATE_FLOOR = 10_000_000  # below this, a high overall ratio (e.g. a few text files) harms nobody
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".heic", ".heif"}


@dataclass(frozen=True)
class ZipLimits:
    max_entries: int
    max_uncompressed_bytes: int
    max_ratio: float


@dataclass(frozen=True)
class ZipSummary:
    entries: int
    images: int
    uncompressed_bytes: int


def _unsafe(name: str) -> bool:
    n = name.replace("\\", "/")
    if n.startswith("/") or (len(n) > 1 and n[1] == ":"):
        return True
    return ".." in PurePosixPath(n).parts


def check_zip(path: Path, limits: ZipLimits, max_photos: int) -> ZipSummary:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise InvalidInput(
            f"The uploaded file is not a readable zip archive ({exc}).", code="corrupt_zip"
        ) from None
    if len(infos) > limits.max_entries:
        raise InvalidInput(
            f"The zip has {len(infos)} entries; at most {limits.max_entries} are allowed.", code="zip_bomb"
        )
    total = 0
    compressed = 0
    images = 0
    for info in infos:
        if _unsafe(info.filename):
            raise InvalidInput(
                f"The zip entry {info.filename!r} uses an absolute path or '..'; only plain relative names "
                "are allowed.",
                code="unsafe_zip_path",
            )
        total += info.file_size
        compressed += info.compress_size
        if info.file_size > 1_000_000 and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise InvalidInput(
                f"The zip entry {info.filename!r} expands {info.file_size / max(info.compress_size, 1):.0f} "
                f"times; more than {limits.max_ratio:.0f} looks like a zip bomb.",
                code="zip_bomb",
            )
        if not info.is_dir() and PurePosixPath(info.filename).suffix.lower() in IMAGE_SUFFIXES:
            if not PurePosixPath(info.filename).name.startswith("."):
                images += 1
    # Many small entries can be a bomb too (each under the per-entry floor): judge the archive as a whole.
    if total > AGGREGATE_FLOOR and total > limits.max_ratio * max(compressed, 1):
        raise InvalidInput(
            f"The zip expands {total / max(compressed, 1):.0f} times as a whole; more than "
            f"{limits.max_ratio:.0f} looks like a zip bomb.",
            code="zip_bomb",
        )
    if total > limits.max_uncompressed_bytes:
        raise InvalidInput(
            f"The zip would expand to {total} bytes; at most {limits.max_uncompressed_bytes} are allowed.",
            code="zip_bomb",
        )
    if images == 0:
        raise InvalidInput(
            "The zip contains no images (JPEG, PNG, TIFF or HEIC files).", code="no_images"
        )
    if images > max_photos:
        raise TooLarge(
            f"The zip contains {images} photos but this token allows at most {max_photos}.", code="too_many_photos"
        )
    return ZipSummary(entries=len(infos), images=images, uncompressed_bytes=total)
