"""Input screening: blurry photos, exact and near duplicates and a stray camera are set aside with a reason."""

from __future__ import annotations

import cv2

from openscancloud.engine import ingest


def test_blur_duplicates_and_another_camera_are_set_aside(photo_set, tmp_path, make_ctx):
    kermit = photo_set("kermit")
    names = sorted(p.name for p in kermit.glob("*.jpg"))[:10]
    src = tmp_path / "in"
    src.mkdir()
    for name in names:
        (src / name).write_bytes((kermit / name).read_bytes())
    (src / "zz_copy.jpg").write_bytes((kermit / names[3]).read_bytes())  # the same file twice
    again = cv2.imread(str(kermit / names[5]))
    cv2.imwrite(str(src / "zz_again.jpg"), again, [cv2.IMWRITE_JPEG_QUALITY, 97])  # re-encoded: near duplicate
    shaky = cv2.GaussianBlur(cv2.imread(str(kermit / names[7])), (0, 0), 6)
    cv2.imwrite(str(src / "zz_shaky.jpg"), shaky)
    phone = cv2.resize(cv2.imread(str(kermit / names[1])), (300, 400))
    cv2.imwrite(str(src / "zz_phone.jpg"), phone)

    result = ingest.run(src, make_ctx("ingest", tmp_path / "w"))
    reasons = {r["name"]: r["reason"] for r in result.rejected}
    assert reasons.keys() == {"zz_copy.jpg", "zz_again.jpg", "zz_shaky.jpg", "zz_phone.jpg"}, reasons
    assert reasons["zz_copy.jpg"] == f"is an exact duplicate of {names[3]}"
    assert reasons["zz_again.jpg"].startswith(f"is a near duplicate of {names[5]}")
    assert reasons["zz_shaky.jpg"].startswith("is blurry")
    assert "another camera" in reasons["zz_phone.jpg"]
    assert sorted(v.source for v in result.views) == names  # the genuine photos all stay


def test_a_turntable_set_loses_nothing(synthetic_set, tmp_path, make_ctx):
    """Consecutive turntable photos of a plain object are alike but not duplicates: none may be set aside."""
    root = synthetic_set("small_plain_static")
    result = ingest.run(root / "images", make_ctx("ingest", tmp_path))
    assert result.rejected == [] and len(result.views) == 24
