"""Ingest: orientation, focal length, working size, and clear refusals of bad input."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from openscancloud.engine import ingest
from openscancloud.engine.errors import UserInputError


def _photo(path, size=(400, 300), orientation=None, exif_focal=None, seed=0):
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    if exif_focal:
        exif.get_ifd(0x8769)[0xA405] = exif_focal  # FocalLengthIn35mmFilm
    img.save(path, exif=exif.tobytes())
    return path


def test_exif_orientation_and_35mm_focal(tmp_path, make_ctx):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        _photo(src / f"p{i}.jpg", size=(400, 300), orientation=6, exif_focal=28, seed=i)
    result = ingest.run(src, make_ctx("ingest", tmp_path / "w"))
    assert len(result.views) == 3
    v = result.views[0]
    # orientation 6 = rotate 90°: stored landscape becomes portrait
    assert (v.width, v.height) == (300, 400)
    assert Image.open(result.images_dir / v.name).size == (300, 400)
    # 28 mm equivalent on the 500 px diagonal: 28 / 43.27 * 500
    assert v.focal_source == "exif-35mm"
    assert v.focal_px == pytest.approx(28 / 43.2666 * 500, rel=1e-3)


def test_real_exif_orientation_and_focal_plane(photo_set, tmp_path, make_ctx):
    monstree = photo_set("monstree")
    sub = tmp_path / "m"
    sub.mkdir()
    for name in ["IMG_1025.jpg", "IMG_1047.jpg", "IMG_1049.jpg"]:  # orientation 6, 1, 1 in this set
        (sub / name).write_bytes((monstree / name).read_bytes())
    result = ingest.run(sub, make_ctx("ingest", tmp_path / "w", preset=None))
    sizes = {v.source: (v.width, v.height) for v in result.views}
    orientations = {v.source: v.exif_orientation for v in result.views}
    for name, (w, h) in sizes.items():
        assert (h > w) == (orientations[name] in (5, 6, 7, 8)), (name, w, h)
    assert all(v.focal_source == "exif-35mm" for v in result.views)
    # README: about 1244–1326 px at 1600 px; the working size is 1024 px in preview
    assert all(750 < v.focal_px < 900 for v in result.views)

    kermit = photo_set("kermit")
    k = ingest.run(kermit, make_ctx("ingest", tmp_path / "k"))
    assert k.views[0].focal_source == "exif-focal-plane"
    assert k.views[0].focal_px == pytest.approx(656, rel=0.03)
    # already at working size and upright: the original bytes are kept (no re-encoding loss)
    assert (k.images_dir / k.views[0].name).read_bytes() == (kermit / k.views[0].source).read_bytes()


def test_downscale_to_working_size(tmp_path, make_ctx, tiny_preset):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        _photo(src / f"big{i}.jpg", size=(2400, 1600), seed=i)
    result = ingest.run(src, make_ctx("ingest", tmp_path / "w"))
    assert all(max(v.width, v.height) == tiny_preset.max_image_size for v in result.views)
    assert result.views[0].original_width == 2400


def test_bad_files_are_rejected_with_reasons(tmp_path, make_ctx):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        _photo(src / f"ok{i}.jpg", seed=i)
    (src / "notes.jpg").write_text("this is a text file, not a photo")
    good = (src / "ok0.jpg").read_bytes()
    (src / "broken.jpg").write_bytes(good[: len(good) // 3])
    (src / "readme.txt").write_text("hello")
    result = ingest.run(src, make_ctx("ingest", tmp_path / "w"))
    assert len(result.views) == 3
    reasons = {r["name"]: r["reason"] for r in result.rejected}
    assert "not an image" in reasons["notes.jpg"]
    assert "damaged or truncated" in reasons["broken.jpg"]
    assert "not a photo" in reasons["readme.txt"]


def test_two_images_is_a_user_error(tmp_path, make_ctx):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        _photo(src / f"p{i}.jpg", seed=i)
    with pytest.raises(UserInputError, match="at least 3"):
        ingest.run(src, make_ctx("ingest", tmp_path / "w"))


def test_corrupt_and_text_only_input(tmp_path, make_ctx):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.jpg").write_text("not really")
    (src / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 50)
    (src / "c.jpg").write_bytes(b"")
    with pytest.raises(UserInputError) as err:
        ingest.run(src, make_ctx("ingest", tmp_path / "w"))
    message = str(err.value)
    assert "Only 0 usable photos" in message and "a.jpg" in message


def test_empty_zip_and_bad_zip(tmp_path, make_ctx):
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w"):
        pass
    with pytest.raises(UserInputError, match="no files"):
        ingest.run(empty, make_ctx("ingest", tmp_path / "w1"))
    fake = tmp_path / "fake.zip"
    fake.write_text("not a zip")
    with pytest.raises(UserInputError, match="not a valid zip"):
        ingest.run(fake, make_ctx("ingest", tmp_path / "w2"))
    with pytest.raises(UserInputError, match="does not exist"):
        ingest.run(tmp_path / "missing", make_ctx("ingest", tmp_path / "w3"))


def test_zip_input_with_folders_and_junk(tmp_path, make_ctx):
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(3):
            buf = io.BytesIO()
            Image.fromarray(np.full((100, 120, 3), i * 40, np.uint8)).save(buf, format="JPEG")
            zf.writestr(f"set/sub/img{i}.jpg", buf.getvalue())
        zf.writestr("__MACOSX/set/._img0.jpg", b"junk")
        zf.writestr("set/.DS_Store", b"junk")
    result = ingest.run(archive, make_ctx("ingest", tmp_path / "w"))
    assert sorted(v.name for v in result.views) == ["img0.jpg", "img1.jpg", "img2.jpg"]
    assert result.rejected == []


def test_resume_skips_finished_ingest(tmp_path, make_ctx):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        _photo(src / f"p{i}.jpg", seed=i)
    ctx = make_ctx("ingest", tmp_path / "w")
    first = ingest.run(src, ctx)
    calls = []
    ctx.progress = lambda *a: calls.append(a)
    second = ingest.run(src, ctx)
    assert second.to_dict() == first.to_dict()
    assert calls == []  # nothing recomputed


def test_downscaled_photos_keep_an_upright_full_resolution_original(tmp_path, make_ctx, tiny_preset):
    src = tmp_path / "in"
    src.mkdir()
    _photo(src / "rotated.jpg", size=(1200, 800), orientation=6, seed=1)  # stored landscape, shown portrait
    _photo(src / "plain.jpg", size=(1200, 800), seed=2)
    _photo(src / "small.jpg", size=(200, 150), seed=3)  # not downscaled: the working image is the original
    result = ingest.run(src, make_ctx("ingest", tmp_path / "w"))
    by_source = {v.source: v for v in result.views}
    with Image.open(result.original_path(by_source["rotated.jpg"])) as img:
        assert img.size == (800, 1200)
    assert result.original_path(by_source["plain.jpg"]).read_bytes() == (src / "plain.jpg").read_bytes()
    assert result.original_path(by_source["small.jpg"]).parent == result.images_dir
