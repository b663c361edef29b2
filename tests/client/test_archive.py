"""Zip building like the firmware (images only, unique flat names, deterministic) and part splitting."""

from __future__ import annotations

import hashlib
import os
import zipfile

import pytest

from openscancloud.client.archive import build_zip, part_count, plan_parts, read_range, scan_source
from openscancloud.client.errors import InputError, NoImages


def test_folder_keeps_only_real_images_with_unique_names(make_photos, tmp_path):
    folder = make_photos(3)
    (folder / "notes.txt").write_text("not a photo")
    (folder / "fake.jpg").write_text("a text file pretending to be a JPEG")
    (folder / ".hidden.jpg").write_bytes((folder / "img000.jpg").read_bytes())
    sub = folder / "turn2"
    sub.mkdir()
    (sub / "IMG000.JPG").write_bytes((folder / "img001.jpg").read_bytes())  # collides case-insensitively
    (sub / "img000.jpg").write_bytes((folder / "img002.jpg").read_bytes())

    photos = scan_source(folder)

    names = [p.arcname for p in photos.photos]
    assert len(names) == 5
    assert len({n.casefold() for n in names}) == 5, names
    assert names == ["img000.jpg", "img001.jpg", "img002.jpg", "IMG000-1.JPG", "img000-2.jpg"]
    assert sorted(photos.skipped) == ["fake.jpg", "notes.txt"]
    assert photos.total_bytes == sum(p.size for p in photos.photos)

    out = build_zip(photos, tmp_path / "out.zip")
    with zipfile.ZipFile(out) as zf:
        assert zf.namelist() == names
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        assert zf.read("img000.jpg") == (folder / "img000.jpg").read_bytes()
        assert zf.testzip() is None


def test_zip_is_deterministic(make_photos, tmp_path):
    folder = make_photos(4)
    a = build_zip(scan_source(folder), tmp_path / "a.zip")
    b = build_zip(scan_source(folder), tmp_path / "b.zip")
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    assert not (tmp_path / "a.zip.tmp").exists()


def test_zip_input_is_counted_not_rebuilt(make_photos, tmp_path):
    folder = make_photos(2)
    z = tmp_path / "set.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(folder / "img000.jpg", "a/img000.jpg")
        zf.write(folder / "img001.jpg", "img001.jpg")
        zf.writestr("readme.txt", "hi")
    photos = scan_source(z)
    assert photos.is_zip and photos.photo_count == 2
    assert photos.total_bytes == z.stat().st_size
    assert photos.skipped == ["readme.txt"]


@pytest.mark.parametrize("kind", ["missing", "empty", "no-images-zip", "not-a-zip"])
def test_bad_inputs_are_sentences(tmp_path, kind):
    if kind == "missing":
        path = tmp_path / "nope"
        expected = InputError
    elif kind == "empty":
        path = tmp_path / "empty"
        path.mkdir()
        expected = NoImages
    elif kind == "no-images-zip":
        path = tmp_path / "x.zip"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("a.txt", "x")
        expected = NoImages
    else:
        path = tmp_path / "x.bin"
        path.write_bytes(os.urandom(100))
        expected = InputError
    with pytest.raises(expected) as err:
        scan_source(path)
    message = str(err.value)
    assert message.endswith(".") and "Traceback" not in message


def test_parts_cover_the_zip_exactly(make_photos, tmp_path):
    zip_path = build_zip(scan_source(make_photos(5)), tmp_path / "p.zip")
    data = zip_path.read_bytes()
    plan = plan_parts(zip_path, 100_000)
    assert len(plan.parts) == part_count(len(data), 100_000) == -(-len(data) // 100_000)
    assert plan.sha256 == hashlib.sha256(data).hexdigest()
    joined = b""
    for spec in plan.parts:
        chunk = b"".join(read_range(zip_path, spec.offset, spec.size, block=7777))
        assert hashlib.sha256(chunk).hexdigest() == spec.sha256
        assert 0 < spec.size <= 100_000
        joined += chunk
    assert joined == data
    # one part when it fits
    assert len(plan_parts(zip_path, 10**9).parts) == 1
