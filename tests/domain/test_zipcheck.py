"""Zip validation on real zip files."""

from __future__ import annotations

import zipfile

import pytest

from openscancloud.domain.errors import InvalidInput, TooLarge
from openscancloud.domain.zipcheck import ZipLimits, check_zip

LIMITS = ZipLimits(max_entries=50, max_uncompressed_bytes=10_000_000, max_ratio=100)


def make(tmp_path, entries, name="t.zip"):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, data in entries.items():
            zf.writestr(n, data)
    return path


def test_counts_images_only(tmp_path):
    path = make(tmp_path, {"a.JPG": b"1" * 10, "sub/b.png": b"2" * 10, "notes.txt": b"x", "sub/": b"",
                           "c.heic": b"3", ".hidden.jpg": b"4"})
    summary = check_zip(path, LIMITS, max_photos=10)
    assert summary.images == 3 and summary.entries == 6


@pytest.mark.parametrize("entries, code", [
    ({"/abs.jpg": b"x"}, "unsafe_zip_path"),
    ({"a/../../b.jpg": b"x"}, "unsafe_zip_path"),
    ({"..\\win.jpg": b"x"}, "unsafe_zip_path"),
    ({"C:/win.jpg": b"x"}, "unsafe_zip_path"),
    ({"readme.md": b"hi"}, "no_images"),
    ({f"{i}.jpg": b"x" for i in range(51)}, "zip_bomb"),
    ({"a.jpg": b"x", "zeros": b"\0" * 3_000_000}, "zip_bomb"),
    ({"a.jpg": b"x", **{f"r{i}": bytes(range(256)) * 4000 for i in range(11)}}, "zip_bomb"),
])
def test_rejections(tmp_path, entries, code):
    with pytest.raises(InvalidInput) as exc:
        check_zip(make(tmp_path, entries), LIMITS, max_photos=100)
    assert exc.value.code == code


def test_corrupt_and_truncated(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(InvalidInput, match="not a readable zip"):
        check_zip(bad, LIMITS, 10)
    good = make(tmp_path, {"a.jpg": b"x" * 1000})
    cut = tmp_path / "cut.zip"
    cut.write_bytes(good.read_bytes()[:-30])
    with pytest.raises(InvalidInput):
        check_zip(cut, LIMITS, 10)


def test_too_many_photos(tmp_path):
    with pytest.raises(TooLarge):
        check_zip(make(tmp_path, {f"{i}.jpg": b"x" for i in range(4)}), LIMITS, max_photos=3)
