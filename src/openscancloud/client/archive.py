"""Turning a folder of photos (or a ready zip) into the zip the server expects, the way the firmware does.

The firmware zips the photos of a scan flat, uncompressed (JPEG/PNG do not shrink), one entry per image. We do
the same, and make the zip **deterministic** (sorted entries, each entry dated by its file's mtime, fixed
attributes): building it twice from unchanged photos gives the same bytes, so an interrupted upload can be
continued even when the cached zip was deleted — the rebuilt zip's sha256 proves it is the same upload.
"""

from __future__ import annotations

import hashlib
import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from openscancloud.client.errors import InputError, NoImages

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png"})
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_COPY_BLOCK = 1024 * 1024


def looks_like_image(head: bytes) -> bool:
    """True when the first bytes are a JPEG or PNG signature (extensions alone can lie)."""
    return head.startswith(_JPEG_MAGIC) or head.startswith(_PNG_MAGIC)


def _is_hidden(rel: Path) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in rel.parts)


@dataclass(frozen=True)
class PhotoEntry:
    """One image to upload: where it is on disk and the (unique, flat) name it gets inside the zip."""

    path: Path
    arcname: str
    size: int
    mtime: float


@dataclass(frozen=True)
class PhotoSet:
    """What the user chose: a folder of images or a zip, with what will be uploaded from it."""

    source: Path
    is_zip: bool
    photos: list[PhotoEntry]
    skipped: list[str] = field(default_factory=list)
    #: For a zip input: its size on disk (uploaded as is). For a folder: the images' total size.
    total_bytes: int = 0

    @property
    def photo_count(self) -> int:
        return len(self.photos)


def _unique_name(name: str, taken: set[str]) -> str:
    """`name`, or `stem-1.ext`, `stem-2.ext`... so no two entries collide (also on case-insensitive disks)."""
    stem, ext = os.path.splitext(name)
    candidate, n = name, 0
    while candidate.casefold() in taken:
        n += 1
        candidate = f"{stem}-{n}{ext}"
    taken.add(candidate.casefold())
    return candidate


def scan_folder(folder: Path) -> PhotoSet:
    """Every JPEG/PNG under `folder` (sub-folders too, hidden files skipped), flattened to unique names."""
    entries: list[PhotoEntry] = []
    skipped: list[str] = []
    taken: set[str] = set()
    candidates: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__MACOSX")
        for name in files:
            candidates.append(Path(root) / name)
    for path in sorted(candidates, key=lambda p: p.relative_to(folder).as_posix()):
        rel = path.relative_to(folder)
        if _is_hidden(rel) or not path.is_file():
            continue
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            skipped.append(rel.as_posix())
            continue
        with path.open("rb") as fh:
            if not looks_like_image(fh.read(8)):
                skipped.append(rel.as_posix())
                continue
        stat = path.stat()
        entries.append(PhotoEntry(path, _unique_name(path.name, taken), stat.st_size, stat.st_mtime))
    if not entries:
        raise NoImages(f"No JPEG or PNG images were found in {folder}.")
    return PhotoSet(folder, False, entries, skipped, sum(e.size for e in entries))


def scan_zip(path: Path) -> PhotoSet:
    """The images inside a ready zip (it is uploaded unchanged; the server checks it again)."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{path} is not a readable zip file ({exc}).") from None
    entries: list[PhotoEntry] = []
    skipped: list[str] = []
    for info in infos:
        if info.is_dir():
            continue
        name = info.filename
        if Path(name).suffix.lower() in IMAGE_EXTENSIONS and not _is_hidden(Path(name)):
            mtime = time.mktime(info.date_time + (0, 0, -1))
            entries.append(PhotoEntry(path, name, info.file_size, mtime))
        else:
            skipped.append(name)
    if not entries:
        raise NoImages(f"The zip file {path} contains no JPEG or PNG images.")
    return PhotoSet(path, True, entries, skipped, path.stat().st_size)


def scan_source(path: str | os.PathLike[str]) -> PhotoSet:
    """A folder of photos or a `.zip` file → the `PhotoSet` to upload; clear errors for anything else."""
    source = Path(path).expanduser()
    if not source.exists():
        raise InputError(f"{source} does not exist.")
    if source.is_dir():
        return scan_folder(source.resolve())
    if source.is_file() and zipfile.is_zipfile(source):
        return scan_zip(source.resolve())
    raise InputError(f"{source} is neither a folder of images nor a zip file.")


def _zip_date(mtime: float) -> tuple[int, int, int, int, int, int]:
    t = time.gmtime(max(mtime, 315532800))  # UTC: same bytes in any time zone; zip dates start in 1980
    return (max(t.tm_year, 1980), t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)


def build_zip(
    photos: PhotoSet,
    dest: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write the photos into `dest` as a stored (uncompressed), deterministic zip, streaming file by file.

    Written to a temporary name and renamed at the end, so a killed process never leaves a half zip behind that a
    later resume would trust.
    """
    if photos.is_zip:
        raise ValueError("a zip input is uploaded as it is; nothing to build")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    total = sum(p.size for p in photos.photos)
    done = 0
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for entry in photos.photos:
            info = zipfile.ZipInfo(entry.arcname, date_time=_zip_date(entry.mtime))
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            info.create_system = 3  # Unix: identical bytes whichever OS built it
            info.file_size = entry.size
            with entry.path.open("rb") as src, zf.open(info, "w", force_zip64=entry.size >= 2**31) as out:
                while block := src.read(_COPY_BLOCK):
                    out.write(block)
                    done += len(block)
                    if progress:
                        progress(done, total)
    os.replace(tmp, dest)
    return dest


@dataclass(frozen=True)
class PartSpec:
    """Byte range `[offset, offset+size)` of the zip that forms upload part `index`, with its sha256."""

    index: int
    offset: int
    size: int
    sha256: str


@dataclass(frozen=True)
class UploadPlan:
    """The zip to upload and how it is cut into parts."""

    zip_path: Path
    size: int
    sha256: str
    part_size: int
    parts: list[PartSpec]


def part_count(size: int, part_size: int) -> int:
    if part_size <= 0:
        raise ValueError("part size must be positive")
    return max(1, -(-size // part_size))


def plan_parts(
    zip_path: Path,
    part_size: int,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> UploadPlan:
    """Hash the zip once (whole file and each part) and cut it into parts of at most `part_size` bytes."""
    size = zip_path.stat().st_size
    if size == 0:
        raise InputError(f"{zip_path} is empty.")
    whole = hashlib.sha256()
    parts: list[PartSpec] = []
    done = 0
    with zip_path.open("rb") as fh:
        for index in range(part_count(size, part_size)):
            offset = index * part_size
            length = min(part_size, size - offset)
            h = hashlib.sha256()
            remaining = length
            while remaining:
                block = fh.read(min(_COPY_BLOCK, remaining))
                if not block:
                    raise InputError(f"{zip_path} changed while it was being read.")
                h.update(block)
                whole.update(block)
                remaining -= len(block)
                done += len(block)
                if progress:
                    progress(done, size)
            parts.append(PartSpec(index, offset, length, h.hexdigest()))
    return UploadPlan(zip_path, size, whole.hexdigest(), part_size, parts)


def read_range(path: Path, offset: int, length: int, block: int = 64 * 1024):
    """Yield the bytes `[offset, offset+length)` of `path` in blocks: a part is never held in memory whole."""
    with path.open("rb") as fh:
        fh.seek(offset)
        remaining = length
        while remaining > 0:
            data = fh.read(min(block, remaining))
            if not data:
                raise OSError(f"{path} ended early while reading bytes {offset}..{offset + length}")
            remaining -= len(data)
            yield data
