"""Stage 2 — masks: hide the static background of turntable rigs (or use the user's masks).

Why: on an OpenScan rig the camera stands still while the object turns, so the wall and the rig itself appear
at identical pixels in every photo.  Structure-from-motion then sees thousands of perfect "static" matches that
say the camera never moved, and dense matching wastes time on a background that is not the object.  When most
of every photo equals the per-pixel median of all photos, the background is static: everything that differs from
that median (the object and the turntable turning with it) is kept, the rest is masked.  Handheld sets, where
the camera moves, never match their median and are left unmasked.  User masks (`NAME.png`, white = object)
override the detection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from . import backdrop
from .context import StageContext, StageResult, load_done, save_done
from .errors import UserInputError
from .ingest import IngestResult

PROBE_SIZE = (256, 192)  # all photos are compared at this size to decide whether the background is static
STATIC_FRACTION = 0.4  # handheld sets measure 0.10–0.20 here, static rigs 0.7
DIFF_THRESHOLD = 18  # grey levels: JPEG noise stays below, the object's appearance changes above
MASK_LONG_SIDE = 320  # masks are computed at this size and scaled up (they only need to be a little generous)
MAX_REFERENCES = 40  # each photo is compared with at most this many others
RECUR_FRACTION = 0.25  # a colour seen at the same pixel in a quarter of the photos is static background
PATCH = 5  # pixels (at mask size): a pixel recurs when its PATCH × PATCH neighbourhood recurs
MARGIN = 0.04  # static masks grow by this share of the long side: the object's rim often stands still
# against a textured backdrop and would be cut; the backdrop this lets in gives keypoints that stand still, which
# the sparse stage removes anyway
VERIFY_OUTSIDE = 0.02  # a mask that leaves out more than 2 % of the object's points (projected) cuts the object
VERIFY_GIVE_UP = 0.25  # when a quarter of the masks cut the object, masking is switched off for the whole set
STILL_SPREAD = 0.01  # a 3D point whose observations lie within 1 % of the image diagonal stood still: backdrop
MIN_POSE_POINTS = 6  # a photo observing fewer 3D points has a pose too weak to judge its mask by (see `verify`)
MIN_OUTSIDE_POINTS = 3  # a cut leaves out a region of the object with several points; one or two are strays
SILHOUETTES_VERSION = 2  # bump when backdrop.py's silhouettes change (masks are made again)
SMOOTH_GRADIENT = 5.0  # grey levels per pixel (at mask size): below this a region has no texture to match


@dataclass
class MaskResult(StageResult):
    mode: str  # "static-background", "user", or "none"
    masks_dir: Path | None  # masks named `<image name>.png` (COLMAP convention), 255 = use, 0 = ignore
    static_fraction: float = 0.0
    coverage: dict[str, float] = field(default_factory=dict)  # fraction of each photo kept
    unmasked: list[str] = field(default_factory=list)  # photos whose mask cut object points: used whole
    warnings: list[str] = field(default_factory=list)
    matching_dir: Path | None = None  # masks for finding keypoints when they differ from `masks_dir` (user masks)
    silhouettes_dir: Path | None = None  # tight silhouettes (the user's masks, or backdrop.py's on a static rig)
    cutting_silhouettes: list[str] = field(default_factory=list)  # photos whose automatic silhouette cut the object

    @property
    def static_rig(self) -> bool:
        """The backdrop stood still across the photos: the camera stood still and the object turned."""
        return self.static_fraction >= STATIC_FRACTION

    def mask_path(self, image_name: str) -> Path | None:
        return self.masks_dir / f"{image_name}.png" if self.masks_dir else None

    def silhouette_path(self, image_name: str) -> Path | None:
        """The photo's silhouette, if it has one that may bound the surface (None: it has none)."""
        if self.silhouettes_dir is None:
            return None
        path = self.silhouettes_dir / f"{image_name}.png"
        return path if path.is_file() else None

    def surface_mask_path(self, image_name: str) -> Path | None:
        """The pixels the dense stage reconstructs: the photo's silhouette where it has one, else its mask.

        Why: near its outline a plain object's depth maps matched the backdrop that the generous masks let in; on
        a plain bust (static rig, ring light) the tight silhouettes gave F@0.5 % 0.579 → 0.610 from the same
        cameras (docs/benchmarks.md, session 18)."""
        return self.silhouette_path(image_name) or self.mask_path(image_name)

    @property
    def keypoint_masks_dir(self) -> Path | None:
        """The masks that the sparse stage finds keypoints in."""
        return self.matching_dir or self.masks_dir


def static_background_fraction(images: list[np.ndarray]) -> tuple[float, np.ndarray]:
    """Median over photos of the fraction of pixels equal to the per-pixel median photo, and that median."""
    stack = np.stack(images).astype(np.int16)
    median = np.median(stack, axis=0).astype(np.int16)
    fractions = [(np.abs(img - median).max(-1) < DIFF_THRESHOLD).mean() for img in stack]
    return float(np.median(fractions)), median.astype(np.uint8)


def object_mask(image: np.ndarray, background: np.ndarray) -> np.ndarray:
    """255 where the photo differs from a background image, cleaned, holes filled and slightly grown."""
    diff = np.abs(image.astype(np.int16) - background.astype(np.int16)).max(-1)
    return clean_mask((diff >= DIFF_THRESHOLD).astype(np.uint8) * 255)


def clean_mask(mask: np.ndarray) -> np.ndarray:
    """Remove speckle, close gaps, drop small blobs, fill holes, grow by ~1 % (a margin for the silhouette)."""
    side = max(mask.shape)
    k = max(3, side // 200) | 1
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    kc = max(5, side // 60) | 1
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kc, kc)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = np.zeros_like(mask)
    min_area = 0.002 * mask.size
    for i in range(1, n):
        if stats[i, cv2.CC_STAT_AREA] >= min_area:
            keep[labels == i] = 255
    contours, _ = cv2.findContours(keep, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(keep)
    cv2.drawContours(filled, contours, -1, 255, thickness=cv2.FILLED)
    kd = max(3, side // 100) | 1
    return cv2.dilate(filled, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kd, kd)))


def _user_masks(ingest: IngestResult, user_dir: Path, out_dir: Path, ctx: StageContext) -> MaskResult:
    """The user's masks as they are for the surface; for finding keypoints, together with what turns with the
    object on a static rig (the automatic masks), else grown by MARGIN.

    Why: a careful mask holds the object alone, but on a turntable the photos are tied together by what turns
    with it — the plate under it. A plain object (an unpainted print, plaster) has no keypoints of its own: with
    its exact masks its cameras could not be found at all (48 of 48 photos unplaced on a plain grey blob, also
    with the masks grown by MARGIN). On a handheld set the margin lets in the scene around the object, which
    moves with the camera as the object does. A static backdrop let in gives keypoints that stand still, which
    the sparse stage removes (sparse.remove_static_keypoints)."""
    if not user_dir.is_dir():
        raise UserInputError(f"The masks folder {user_dir} does not exist.")
    coverage: dict[str, float] = {}
    found = 0
    matching_dir = out_dir.parent / "matching"
    matching_dir.mkdir(parents=True, exist_ok=True)
    for i, view in enumerate(ingest.views):
        stem = Path(view.source).stem
        candidates = [user_dir / f"{Path(view.source).name}.png", user_dir / f"{stem}.png",
                      user_dir / f"{stem}.jpg", user_dir / f"{view.name}.png"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            mask = np.full((view.height, view.width), 255, np.uint8)
        else:
            mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if mask is None:
                raise UserInputError(f"The mask {path.name} is not a readable image.")
            mask = cv2.resize(mask, (view.width, view.height), interpolation=cv2.INTER_NEAREST)
            mask = np.where(mask > 127, 255, 0).astype(np.uint8)
            found += 1
        cv2.imwrite(str(out_dir / f"{view.name}.png"), mask)
        cv2.imwrite(str(matching_dir / f"{view.name}.png"), grow(mask))
        coverage[view.name] = float((mask > 0).mean())
        ctx.report((i + 1) / len(ingest.views), "reading your masks")
    if found == 0:
        raise UserInputError(f"No mask in {user_dir} matches a photo name "
                             f"(expected e.g. {Path(ingest.views[0].source).stem}.png).")
    return MaskResult("user", out_dir, 0.0, coverage, matching_dir=matching_dir, silhouettes_dir=out_dir)


def _add_turning_parts(result: MaskResult, ingest: IngestResult, ctx: StageContext) -> None:
    """On a static rig, the keypoint masks become the user's masks together with the automatic ones (see
    `_user_masks`)."""
    static_dir = ctx.work_dir / "static"
    static_dir.mkdir(parents=True, exist_ok=True)
    static = _static_masks(ingest, static_dir, ctx, silhouettes=False)
    result.static_fraction = static.static_fraction
    if static.mode != "static-background" or result.matching_dir is None:
        return
    for view in ingest.views:
        user = cv2.imread(str(result.masks_dir / f"{view.name}.png"), cv2.IMREAD_GRAYSCALE)
        turning = cv2.imread(str(static.mask_path(view.name)), cv2.IMREAD_GRAYSCALE)
        if user is not None and turning is not None and user.shape == turning.shape:
            cv2.imwrite(str(result.matching_dir / f"{view.name}.png"), np.maximum(user, turning))


def grow(mask: np.ndarray) -> np.ndarray:
    """The mask dilated by MARGIN of its long side (a disc)."""
    k = int(MARGIN * max(mask.shape[:2])) | 1
    return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))


def run(ingest: IngestResult, ctx: StageContext, user_masks: Path | None = None,
        mode: str = "auto") -> MaskResult:
    """`mode` is the user's choice: auto (the user's masks when the input carries NAME_mask.png files, else
    detect a static rig background), off (every pixel), user (their masks: a folder, or shipped in the input)."""
    if mode != "off" and user_masks is None and ingest.user_masks_dir is not None:
        user_masks = ingest.user_masks_dir
    if mode == "user" and user_masks is None:
        raise UserInputError("masks=user needs the masks: put NAME_mask.png (white = object) beside each "
                             "NAME.jpg in the upload, or pass a folder of NAME.png masks.")
    detect_static = mode == "auto"
    key = {"ingest": ingest.to_dict(), "user": str(user_masks) if user_masks else None,
           "detect": detect_static, "mode": mode, "keypoint_margin": MARGIN, "silhouettes": SILHOUETTES_VERSION}
    if (saved := load_done(ctx.work_dir, key)) is not None:
        return MaskResult.from_dict(saved)
    out_dir = ctx.work_dir / "masks"
    out_dir.mkdir(parents=True, exist_ok=True)
    if user_masks is not None and mode != "off":
        result = _user_masks(ingest, Path(user_masks), out_dir, ctx)
        _add_turning_parts(result, ingest, ctx)
    else:
        result = _static_masks(ingest, out_dir, ctx) if detect_static else MaskResult("none", None)
    save_done(ctx.work_dir, key, result.to_dict())
    return result


def _static_masks(ingest: IngestResult, out_dir: Path, ctx: StageContext, silhouettes: bool = True) -> MaskResult:
    """The generous masks of a static rig (see `object_masks`) and, with `silhouettes`, the tight silhouettes
    (backdrop.py) beside them."""
    sizes = {(v.width, v.height) for v in ingest.views}
    if len(sizes) != 1:  # a fixed rig camera gives photos of one size
        return MaskResult("none", None)
    probes = []
    for i, view in enumerate(ingest.views):
        img = backdrop.read_photo(ingest.images_dir / view.name)
        probes.append(cv2.resize(img, PROBE_SIZE, interpolation=cv2.INTER_AREA))
        ctx.report(0.3 * (i + 1) / len(ingest.views), "looking for a static background")
        ctx.check_cancelled()
    fraction, _ = static_background_fraction(probes)
    if fraction < STATIC_FRACTION:
        return MaskResult("none", None, fraction)
    (w, h), = sizes
    scale = min(1.0, MASK_LONG_SIDE / max(w, h))
    mw, mh = round(w * scale), round(h * scale)
    smalls = [cv2.resize(backdrop.read_photo(ingest.images_dir / v.name), (mw, mh), interpolation=cv2.INTER_AREA)
              for v in ingest.views]
    ctx.report(0.5, "masking the static background")
    ctx.check_cancelled()
    coverage = {}
    for view, mask in zip(ingest.views, object_masks(smalls)):
        if (w, h) != (mw, mh):
            mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(out_dir / f"{view.name}.png"), mask)
        coverage[view.name] = float((mask > 0).mean())
    silhouettes_dir = None
    if silhouettes:
        silhouettes_dir = out_dir.parent / "silhouettes"
        backdrop.write_silhouettes([ingest.images_dir / v.name for v in ingest.views], silhouettes_dir,
                                   lambda f: ctx.report(0.7 + 0.3 * f, "finding each photo's silhouette"),
                                   ctx.check_cancelled)
    ctx.report(1.0, "masked the static background")
    return MaskResult("static-background", out_dir, fraction, coverage, silhouettes_dir=silhouettes_dir)


def recurring_pixels(smalls: list[np.ndarray]) -> list[np.ndarray]:
    """Per photo: True where this pixel's colour recurs at the same place in many other photos.

    (A per-pixel median is not enough: behind the object the median is the object itself, and the backdrop
    around the silhouette would survive as "object" and bring its static features back.)"""
    step = max(1, len(smalls) // MAX_REFERENCES)
    refs = smalls[::step]
    needed = max(3, int(RECUR_FRACTION * (len(refs) - 1)))
    patch = np.ones((PATCH, PATCH), np.uint8)
    out = []
    for i, small in enumerate(smalls):
        same = np.zeros(small.shape[:2], np.int32)
        for ref in refs:
            # the whole neighbourhood must match: a sparsely dotted object keeps its plain colour at most pixels
            # while it turns, but its dots move, so no patch of it stays the same
            same += cv2.erode((cv2.absdiff(ref, small).max(-1) < DIFF_THRESHOLD).astype(np.uint8), patch)
        same -= 1 if i % step == 0 and i // step < len(refs) else 0  # the photo itself
        out.append(same >= needed)
    return out


def smooth_pixels(small: np.ndarray) -> np.ndarray:
    """True where the photo has no texture (mean gradient over 5×5 pixels below SMOOTH_GRADIENT grey levels).

    Why: a plain, uniformly coloured object (an unpainted print, plaster, a sprayed part) looks identical in
    every photo while it turns, exactly like the backdrop, so "what stays still" alone would cut it away.  But
    masking only has to remove what would give static keypoints, and a smooth region gives none.  So static
    pixels are masked only where they are textured; smooth static pixels are kept (they cost nothing)."""
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3) / 8
    return cv2.blur(np.hypot(gx, gy), (5, 5)) < SMOOTH_GRADIENT


def keep_moving_components(mask: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """Drop kept regions that hold no moving pixel: smooth patches of the backdrop, not attached to the object."""
    n, labels = cv2.connectedComponents(mask, connectivity=8)
    if n <= 2:
        return mask
    moving_count = np.bincount(labels[moving > 0], minlength=n)
    min_moving = max(4, int(0.0005 * mask.size))
    good = moving_count >= min_moving
    good[0] = False
    return np.where(good[labels], 255, 0).astype(np.uint8)


def moving_hull(moving: np.ndarray) -> np.ndarray:
    """255 inside the convex hull of the moving pixels: the region the object and the turntable occupy.

    Why: a smooth static pixel may belong to a plain object or to a plain backdrop. A plain object is enclosed by
    what moves (its own shifting silhouette and shading, the turntable around its foot); a plain backdrop lies
    around all of that. Kept, a dark plain backdrop was reconstructed by the dense stage as a band along the
    plate and blobs beside the object (synth_bust, preset standard: F@0.5 % 0.80 instead of 0.93)."""
    hull = np.zeros_like(moving)
    points = cv2.findNonZero(moving)
    if points is not None:
        cv2.fillConvexPoly(hull, cv2.convexHull(points), 255)
    return hull


def border_regions(region: np.ndarray) -> np.ndarray:
    """True on the connected parts (8-connected) of `region` that touch the image border.

    Why: the hull of what moves still holds much backdrop (beside a bust's head, above the plate), and a plain
    backdrop there is one smooth static region that runs on to the edge of the photo.  The smooth static inside
    of a plain object is cut off from it by the object's own outline (its contrast is texture), and the object
    stands inside the frame, so it does not reach the border.  Measured on eight synthetic sets (plain, white,
    dotted and rich objects; static cluttered and plain dark backdrops): the object is kept whole on all of
    them, and the backdrop kept on plain-backdrop sets falls from 36–42 % to 25–32 % of the photo's backdrop
    (what is left is mostly the turntable plate, which turns with the object).  An object as plain as a
    backdrop of its very colour would lose its inside; nothing in the pixels tells them apart then."""
    n, labels = cv2.connectedComponents(region.astype(np.uint8), connectivity=8)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return np.isin(labels, border[border > 0])


def object_masks(smalls: list[np.ndarray]) -> list[np.ndarray]:
    """255 = keep: what moves in this photo, plus what is smooth (see `smooth_pixels`) near the hull of what
    moves (see `moving_hull`) and not part of a smooth static region that reaches the border (see
    `border_regions`), in the regions that hold moving pixels; cleaned, holes filled, grown by a margin."""
    out = []
    k = int(MARGIN * max(smalls[0].shape[:2])) | 1
    margin = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    for same, small in zip(recurring_pixels(smalls), smalls):
        moving = clean_mask(np.where(same, 0, 255).astype(np.uint8))
        smooth = smooth_pixels(small)
        smooth_near = smooth & (cv2.dilate(moving_hull(moving), margin) > 0) & ~border_regions(smooth & same)
        raw = np.where(~same | smooth_near, 255, 0).astype(np.uint8)
        mask = keep_moving_components(clean_mask(raw), moving)
        out.append(cv2.dilate(mask, margin))
    return out


def verify(masks: MaskResult, sparse, ctx: StageContext) -> MaskResult:
    """Check the automatic masks against what structure-from-motion placed on the object; never cut the object.

    The object's 3D points (`_object_points`: seen in at least three trusted photos and moving across them)
    must project inside the mask of every photo: a silhouette contains the projection of all of its object's
    points, hidden or not.  A photo whose mask leaves out more than VERIFY_OUTSIDE of them, and at least
    MIN_OUTSIDE_POINTS, is used whole (no mask); when that happens to a quarter of the judged photos the masks
    are not trusted at all and masking is switched off, with a warning.

    Only trusted photos are judged: they observe at least MIN_POSE_POINTS of the model's points themselves
    (`_anchored_images`).  Why: the projection is only as right as the photo's pose.  On a weak set (one ring of
    a dotted object) the mapper can place a photo from the poses of its neighbours, with none or a handful of
    points of its own; such poses were found 18–185 mm and 6–36° off, the object's points then fell beside the
    true silhouette, and a correct mask was refused (a flaky test on the small dotted set, with the old masks and
    with the tighter ones).  A photo that is not judged keeps its mask.  The same weak models hold a few stray
    points (a mismatch triangulated through a doubtful pose); with 50 points in a photo one of them is already
    2 %, hence MIN_OUTSIDE_POINTS.  Over 180 sparse models of that set, a trusted photo with a correct mask left
    out more than two points only in three: a photo 77 mm off that still saw ten points, and two folded models
    (a third of the ring 10–50 % off its circle, consistently with its own points).  Masks that really cut the
    object leave out dozens of points per photo.  (Also requiring each judged camera to share its height with
    two others, as on a turntable ring, was tried: one misplaced camera tilts the fitted axis, the rings fall
    apart, and too few photos are left judged to notice masks that really cut the object.)

    The tight silhouettes of a static rig (backdrop.py) are judged by the same points and rule: one that leaves
    points out is not used, and none are when a quarter of them do."""
    if masks.mode != "static-background" or masks.masks_dir is None:
        return masks
    rec = sparse.load()
    trusted = _anchored_images(rec)
    # With several scanning sessions (the object turned over), each photo is judged by the points its own
    # session saw: the other session's plate turned with the object there, not here, and lies outside this
    # photo's silhouette (engine/sessions.py).
    groups = (sparse.extra.get("sessions") or {}).get("groups") or [[i.name for i in rec.images.values()]]
    session_of = {name: index for index, group in enumerate(groups) for name in group}
    points_of = [_object_points(rec, trusted & {i for i, img in rec.images.items() if session_of.get(img.name) == s})
                 for s in range(len(groups))]
    out_dir = ctx.work_dir / "checked"
    out_dir.mkdir(parents=True, exist_ok=True)
    unmasked: list[str] = []
    cutting_silhouettes: list[str] = []
    judged = 0
    for image in rec.images.values():
        if not image.has_pose or image.image_id not in trusted or image.name not in session_of:
            continue
        xyz = points_of[session_of[image.name]]
        mask = cv2.imread(str(masks.mask_path(image.name)), cv2.IMREAD_GRAYSCALE)
        if mask is None or not len(xyz):
            continue
        uv = _projections(image, xyz, mask.shape)
        if len(uv) < 20:
            continue
        judged += 1
        if _cuts(mask, uv):
            unmasked.append(image.name)
        silhouette_path = masks.silhouette_path(image.name)
        silhouette = cv2.imread(str(silhouette_path), cv2.IMREAD_GRAYSCALE) if silhouette_path else None
        if silhouette is not None and _cuts(silhouette, _projections(image, xyz, silhouette.shape)):
            cutting_silhouettes.append(image.name)
    if judged and len(unmasked) > VERIFY_GIVE_UP * judged:
        return MaskResult("none", None, masks.static_fraction, {}, sorted(unmasked), [
            f"The background masks cut the object in {len(unmasked)} of {judged} photos, so the photos "
            f"were used unmasked."])
    coverage = dict(masks.coverage)
    for path in masks.masks_dir.glob("*.png"):
        name = path.name[: -len(".png")]
        if name in unmasked:
            mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            cv2.imwrite(str(out_dir / path.name), np.full_like(mask, 255))
            coverage[name] = 1.0
        else:
            (out_dir / path.name).write_bytes(path.read_bytes())
    silhouettes_dir = _checked_silhouettes(masks, set(cutting_silhouettes), judged, ctx.work_dir / "checked_silhouettes")
    return MaskResult(masks.mode, out_dir, masks.static_fraction, coverage, sorted(unmasked),
                      silhouettes_dir=silhouettes_dir, cutting_silhouettes=sorted(cutting_silhouettes))


def _projections(image, xyz: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Integer (u, v) pixels, in a mask of `shape`, of the points in front of the photo and inside its frame."""
    pose = np.asarray(image.cam_from_world().matrix())  # 3×4 world → camera
    cam_points = xyz @ pose[:, :3].T + pose[:, 3]
    cam_points = cam_points[cam_points[:, 2] > 1e-9]
    uv = np.asarray(image.camera.img_from_cam(cam_points), dtype=np.float64).reshape(-1, 2)
    h, w = shape
    u = np.floor(uv[:, 0] * w / image.camera.width).astype(int)
    v = np.floor(uv[:, 1] * h / image.camera.height).astype(int)
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    return np.stack([u[inside], v[inside]], 1)


def _cuts(mask: np.ndarray, uv: np.ndarray) -> bool:
    """The mask leaves out more than VERIFY_OUTSIDE of the object's points (and at least MIN_OUTSIDE_POINTS)."""
    left_out = int((mask[uv[:, 1], uv[:, 0]] == 0).sum())
    return left_out >= MIN_OUTSIDE_POINTS and left_out > VERIFY_OUTSIDE * len(uv)


def _checked_silhouettes(masks: MaskResult, cutting: set[str], judged: int, out_dir: Path) -> Path | None:
    """The silhouettes that leave no object point out, in their own folder (a photo whose silhouette does has
    none: it bounds nothing); none at all when a quarter of the judged photos' silhouettes cut the object (the
    backdrop was not what it seemed)."""
    if masks.silhouettes_dir is None or masks.mode != "static-background":
        return masks.silhouettes_dir
    if not judged or len(cutting) > VERIFY_GIVE_UP * judged:
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in masks.silhouettes_dir.glob("*.png"):
        if path.name[: -len(".png")] not in cutting:
            (out_dir / path.name).write_bytes(path.read_bytes())
    return out_dir


def _anchored_images(rec) -> set[int]:
    """Ids of the registered photos whose pose rests on points of their own: they observe at least
    MIN_POSE_POINTS 3D points of the model (the direct linear transform needs six to fix a camera)."""
    return {image_id for image_id, image in rec.images.items()
            if image.has_pose and image.num_points3D >= MIN_POSE_POINTS}


def _object_points(rec, trusted: set[int]) -> np.ndarray:
    """Positions of the 3D points that lie on the object or the turntable: seen in at least three trusted photos
    (a point placed through a doubtful pose is doubtful too), with observations that move across the photos by
    more than STILL_SPREAD of the image diagonal (on a turntable the object turns between photos; a backdrop
    feature that survived the static-keypoint filter stays where it was, and the masks rightly leave it out)."""
    kept = []
    for point in rec.points3D.values():
        elements = [e for e in point.track.elements if e.image_id in trusted]
        if len(elements) < 3:
            continue
        xy = []
        diagonal = 0.0
        for element in elements:
            image = rec.images[element.image_id]
            xy.append(image.points2D[element.point2D_idx].xy)
            diagonal = max(diagonal, float(np.hypot(image.camera.width, image.camera.height)))
        if np.ptp(np.asarray(xy, dtype=np.float64), axis=0).max() > STILL_SPREAD * diagonal:
            kept.append(point.xyz)
    return np.array(kept, dtype=np.float64).reshape(-1, 3)
