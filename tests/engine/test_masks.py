"""Masks: a static rig background is detected and masked; a handheld set is left alone; user masks are used."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from openscancloud.engine import ingest, masks
from openscancloud.engine.errors import UserInputError


def _subset(src, dst, names):
    dst.mkdir()
    for n in names:
        (dst / n).write_bytes((src / n).read_bytes())
    return dst


def test_static_background_rig_is_masked(datasets_dir, photo_set, tmp_path, make_ctx):
    images = photo_set("synth_rig_static")
    # one elevation ring (12 photos, the object turns 30° between them)
    sub = _subset(images, tmp_path / "ring", [f"img_{i:04d}.jpg" for i in range(12, 24)])
    ing = ingest.run(sub, make_ctx("ingest", tmp_path))
    result = masks.run(ing, make_ctx("masks", tmp_path))
    assert result.mode == "static-background"
    assert result.static_fraction > 0.5
    gt_dir = datasets_dir / "synth_rig_static" / "ground_truth" / "masks"
    checked = 0
    for view in ing.views:
        mask = cv2.imread(str(result.mask_path(view.name)), cv2.IMREAD_GRAYSCALE)
        assert mask.shape == (view.height, view.width)
        kept = mask > 0
        assert 0.05 < kept.mean() < 0.8  # the backdrop is mostly gone
        gt_path = next(iter(gt_dir.glob(view.name.rsplit(".", 1)[0] + ".*")), None)
        if gt_path is not None:
            gt = cv2.imread(str(gt_path), cv2.IMREAD_GRAYSCALE) > 127
            gt = cv2.resize(gt.astype(np.uint8), (view.width, view.height), interpolation=cv2.INTER_NEAREST) > 0
            # every object pixel must survive (the mask may add the turntable and a margin)
            assert (kept & gt).sum() / gt.sum() > 0.98
            checked += 1
    assert checked > 0


def _kept_against_truth(root, tmp_path, make_ctx) -> dict[str, tuple[list[float], list[float]]]:
    """Automatic masks and silhouettes of a rendered set (they must detect its static background), and per photo
    the share of the true silhouette each keeps and the share of the backdrop each keeps."""
    ing = ingest.run(root / "images", make_ctx("ingest", tmp_path))
    result = masks.run(ing, make_ctx("masks", tmp_path))
    assert result.mode == "static-background" and result.silhouettes_dir is not None
    shares: dict[str, tuple[list[float], list[float]]] = {"masks": ([], []), "silhouettes": ([], [])}
    for view in ing.views:
        gt = cv2.imread(str(root / "ground_truth" / "masks" / (view.name.rsplit(".", 1)[0] + ".png")),
                        cv2.IMREAD_GRAYSCALE) > 127
        for kind, path in (("masks", result.mask_path(view.name)), ("silhouettes", result.silhouette_path(view.name))):
            mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) > 0
            shares[kind][0].append((mask & gt).sum() / gt.sum())
            shares[kind][1].append(mask[~gt].mean())
    return shares


@pytest.mark.parametrize("name", ["small_plain_static", "small_dots_static"])
def test_masks_never_eat_plain_or_dotted_objects(name, synthetic_set, tmp_path, make_ctx):
    """A uniformly coloured object (or one with sparse dots) looks the same at most pixels in every photo, like
    the backdrop; its pixels must be kept all the same (median ≥ 98 % of the true silhouette, every view ≥ 95 %).
    The tight silhouettes (engine/backdrop.py) keep the object as well, and much less of the backdrop."""
    shares = _kept_against_truth(synthetic_set(name), tmp_path, make_ctx)
    kept, backdrop = shares["masks"]
    assert np.median(kept) >= 0.98 and min(kept) >= 0.95, kept
    assert np.median(backdrop) < 0.6  # most of the static backdrop is still masked
    tight_kept, tight_backdrop = shares["silhouettes"]
    assert np.median(tight_kept) >= 0.99 and min(tight_kept) >= 0.95, tight_kept
    # what they keep of the backdrop is mostly the turning plate (measured: 0.24 against the masks' 0.34 on the
    # plain blob, 0.19 against 0.27 on the dotted bust)
    assert np.median(tight_backdrop) < 0.8 * np.median(backdrop), (tight_backdrop, backdrop)


def test_plain_backdrop_is_masked(synthetic_set, tmp_path, make_ctx):
    """A plain dark backdrop is smooth and static like the inside of a plain object, but it must not be kept (it
    once was, whole, and the dense stage reconstructed it beside the object): what is left of it is the turntable
    plate, which turns with the object, and the margin."""
    # rich blob, plain dark backdrop, lights fixed in the room
    shares = _kept_against_truth(synthetic_set("small_rings_rich"), tmp_path, make_ctx)
    kept, backdrop = shares["masks"]
    assert np.median(kept) >= 0.98 and min(kept) >= 0.95, kept
    assert np.median(backdrop) < 0.35, backdrop  # 0.29 measured; the whole frame before, 0.39 with the hull alone
    tight_kept, tight_backdrop = shares["silhouettes"]
    assert np.median(tight_kept) >= 0.99 and np.median(tight_backdrop) < np.median(backdrop)


def test_handheld_set_is_not_masked(photo_set, tmp_path, make_ctx):
    ing = ingest.run(photo_set("kermit"), make_ctx("ingest", tmp_path))
    result = masks.run(ing, make_ctx("masks", tmp_path))
    assert result.mode == "none"
    assert result.masks_dir is None
    assert result.static_fraction < masks.STATIC_FRACTION


def test_user_masks(photo_set, tmp_path, make_ctx):
    ing = ingest.run(photo_set("kermit"), make_ctx("ingest", tmp_path))
    user = tmp_path / "user_masks"
    user.mkdir()
    m = np.zeros((480, 640), np.uint8)
    m[100:400, 200:500] = 255
    cv2.imwrite(str(user / "kermit000.png"), m)
    result = masks.run(ing, make_ctx("masks", tmp_path), user_masks=user)
    assert result.mode == "user"
    first = cv2.imread(str(result.mask_path("kermit000.jpg")), cv2.IMREAD_GRAYSCALE)
    assert first[250, 300] == 255 and first[10, 10] == 0
    other = cv2.imread(str(result.mask_path("kermit001.jpg")), cv2.IMREAD_GRAYSCALE)
    assert (other == 255).all()  # photos without a mask are used whole
    # keypoints (handheld: no static rig) are looked for in the mask grown by MARGIN of the long side
    grown = cv2.imread(str(result.keypoint_masks_dir / "kermit000.jpg.png"), cv2.IMREAD_GRAYSCALE)
    reach = int(masks.MARGIN * 640) // 2
    assert grown[100 - reach + 2, 300] == 255 and grown[100 - reach - 3, 300] == 0 and grown[10, 10] == 0
    with pytest.raises(UserInputError, match="does not exist"):
        masks.run(ing, make_ctx("masks", tmp_path / "x"), user_masks=tmp_path / "nope")


def _zip_with_masks(photo_dir, names, zip_path, mask_for=None, mask_size=None):
    """A zip of photos; for the names in `mask_for`, a NAME_mask.png beside NAME.jpg (white box = object)."""
    import zipfile

    with zipfile.ZipFile(zip_path, "w") as zf:
        for name in names:
            zf.write(photo_dir / name, f"scan/{name}")
            if mask_for and name in mask_for:
                img = cv2.imread(str(photo_dir / name))
                h, w = img.shape[:2] if mask_size is None else mask_size
                m = np.zeros((h, w), np.uint8)
                m[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 255
                ok, png = cv2.imencode(".png", m)
                zf.writestr(f"scan/{name.rsplit('.', 1)[0]}_mask.png", png.tobytes())
    return zip_path


def test_masks_shipped_in_the_zip_are_used_and_are_not_photos(photo_set, tmp_path, make_ctx):
    kermit = photo_set("kermit")
    names = sorted(p.name for p in kermit.glob("*.jpg"))[:4]
    archive = _zip_with_masks(kermit, names, tmp_path / "scan.zip", mask_for=names[:2])
    ing = ingest.run(archive, make_ctx("ingest", tmp_path))
    assert [v.source for v in ing.views] == [f"scan/{n}" for n in names]  # the masks are not photos
    assert not ing.rejected and ing.total_files == 4
    for mode in ("user", "auto"):  # auto uses the masks the user shipped
        result = masks.run(ing, make_ctx("masks", tmp_path / mode), mode=mode)
        assert result.mode == "user"
        first = cv2.imread(str(result.mask_path(ing.views[0].name)), cv2.IMREAD_GRAYSCALE)
        h, w = first.shape
        assert (h, w) == (ing.views[0].height, ing.views[0].width)
        assert first[h // 2, w // 2] == 255 and first[5, 5] == 0
        assert result.coverage[ing.views[0].name] == pytest.approx(0.25, abs=0.02)
        assert result.coverage[ing.views[3].name] == 1.0  # no mask shipped: the whole photo is used
    off = masks.run(ing, make_ctx("masks", tmp_path / "off"), mode="off")
    assert off.mode == "none" and off.masks_dir is None


def test_user_mode_without_masks_and_a_mask_of_the_wrong_size_are_refused(photo_set, tmp_path, make_ctx):
    kermit = photo_set("kermit")
    names = sorted(p.name for p in kermit.glob("*.jpg"))[:3]
    plain = _zip_with_masks(kermit, names, tmp_path / "plain.zip")
    ing = ingest.run(plain, make_ctx("ingest", tmp_path / "a"))
    with pytest.raises(UserInputError, match="NAME_mask.png"):
        masks.run(ing, make_ctx("masks", tmp_path / "a"), mode="user")
    wrong = _zip_with_masks(kermit, names, tmp_path / "wrong.zip", mask_for=names[:1], mask_size=(50, 70))
    with pytest.raises(UserInputError, match="must have its photo's size"):
        ingest.run(wrong, make_ctx("ingest", tmp_path / "b"))


def test_structure_from_motion_overrules_masks_that_cut_the_object(synthetic_set, tmp_path, make_ctx):
    """The points SfM places on the object must project inside every mask: good masks pass untouched; masks
    that cut the object (here: its middle blacked out in every photo) are not trusted and masking is switched off."""
    import shutil

    from openscancloud.engine import sparse

    root = synthetic_set("small_dots_static")  # dots: enough points on the object itself in one ring
    ring = _subset(root / "images", tmp_path / "ring", [f"img_{i:04d}.jpg" for i in range(12)])  # one ring
    ing = ingest.run(ring, make_ctx("ingest", tmp_path))
    result = masks.run(ing, make_ctx("masks", tmp_path))
    sp = sparse.run(ing, result, make_ctx("sparse", tmp_path))
    # every photo placed, or left out by the turntable check: on one ring of a dotted object the mapper sometimes
    # places a photo from its neighbours alone, 6–36° off (see masks.verify), and then no turn of the ring may agree
    # with its few points (engine/turntable.py); seen once in three runs
    assert len(sp.registered) + len(sp.extra["off_turntable"]) == 12 and len(sp.registered) >= 9
    assert sp.extra["static_keypoints_removed"] > 0  # the backdrop the margin let in was filtered again
    checked = masks.verify(result, sp, make_ctx("masks", tmp_path))
    # good masks pass. The mapper now and then places one photo of this single dotted ring off while it still sees
    # six or more points of its own (so it is judged); its mask then seems to cut the object and that photo alone
    # is used whole, the safe side (seen in a clean-clone CI run of 710f9ec: img_0005)
    assert checked.mode == "static-background" and len(checked.unmasked) <= 1 and not checked.warnings
    # the tight silhouettes leave no object point out either (the same misplaced photo aside)
    misplaced = set(checked.cutting_silhouettes) | set(checked.unmasked)
    assert checked.silhouettes_dir is not None and len(misplaced) <= 1
    assert sum(checked.silhouette_path(name) is None for name in sp.registered) == len(checked.cutting_silhouettes)

    cut_dir = tmp_path / "cut"
    shutil.copytree(result.masks_dir, cut_dir)
    for path in cut_dir.glob("*.png"):
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        h, w = mask.shape
        mask[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 0
        cv2.imwrite(str(path), mask)
    cut = masks.MaskResult("static-background", cut_dir, result.static_fraction, dict(result.coverage))
    verdict = masks.verify(cut, sp, make_ctx("masks", tmp_path / "again"))
    assert verdict.mode == "none" and verdict.masks_dir is None
    assert len(verdict.unmasked) > 6 and "cut the object" in verdict.warnings[0]

    # silhouettes cut in a few photos: those are not used, the rest are
    cut_names = sorted(set(sp.registered) - misplaced)[:2]
    tight_dir = tmp_path / "tight"
    shutil.copytree(result.silhouettes_dir, tight_dir)
    for name in cut_names:
        path = tight_dir / f"{name}.png"
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        h, w = mask.shape
        mask[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 0
        cv2.imwrite(str(path), mask)
    some_cut = masks.MaskResult("static-background", result.masks_dir, result.static_fraction,
                                dict(result.coverage), silhouettes_dir=tight_dir)
    verdict = masks.verify(some_cut, sp, make_ctx("masks", tmp_path / "third"))
    assert verdict.mode == "static-background"
    assert set(cut_names) <= set(verdict.cutting_silhouettes) <= set(cut_names) | misplaced
    assert all(verdict.silhouette_path(name) is None for name in cut_names)
    assert sum(verdict.silhouette_path(name) is not None for name in sp.registered) \
        == len(sp.registered) - len(verdict.cutting_silhouettes)


def test_exact_user_masks_of_a_plain_object_still_place_every_photo(synthetic_set, tmp_path, make_ctx):
    """A careful user masks the object alone. A plain object has no keypoints of its own: the photos are tied
    together by the turntable plate that turns with it, so keypoints are found in the user's masks together with
    what the static rig's own masks keep, while the surface stages get the user's masks as they are."""
    from openscancloud.engine import sparse

    root = synthetic_set("small_plain_static")
    ing = ingest.run(root / "images", make_ctx("ingest", tmp_path))
    result = masks.run(ing, make_ctx("masks", tmp_path), user_masks=root / "ground_truth" / "masks")
    assert result.mode == "user" and result.matching_dir is not None
    name = ing.views[0].name
    exact = cv2.imread(str(result.mask_path(name)), cv2.IMREAD_GRAYSCALE) > 127
    truth = cv2.imread(str(root / "ground_truth" / "masks" / f"{name[:-4]}.png"), cv2.IMREAD_GRAYSCALE) > 127
    assert (exact == truth).mean() > 0.999  # the surface stages get the user's mask
    for_keypoints = cv2.imread(str(result.keypoint_masks_dir / f"{name}.png"), cv2.IMREAD_GRAYSCALE) > 127
    assert for_keypoints[exact].all() and for_keypoints.sum() > 1.5 * exact.sum()  # plus the plate around it
    sp = sparse.run(ing, result, make_ctx("sparse", tmp_path))
    # (a photo the mapper placed by a look-alike and no turn of the turntable agrees with is left out, with a warning)
    assert len(sp.registered) + len(sp.extra["off_turntable"]) == len(ing.views)
    assert len(sp.registered) >= 0.9 * len(ing.views)
