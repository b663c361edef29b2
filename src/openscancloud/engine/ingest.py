"""Stage 1 — ingest: turn a folder or a zip of photos into upright, downscaled working images.

Why: OpenScan cameras give 16 MP photos and phones store portrait shots as rotated pixels plus an EXIF tag.
Every later stage wants upright pixels at a bounded working size and, when the camera says so, a focal length
in pixels (a good prior makes structure-from-motion converge faster and more often).  Files that are not
decodable images are rejected one by one with a reason; fewer than three usable images is a user error.
"""

from __future__ import annotations

import io
import math
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from PIL import Image, ImageOps, UnidentifiedImageError

from . import screening
from .context import StageContext, load_done, save_done
from .errors import UserInputError

try:  # HEIC/HEIF photos from iPhones, when the plug-in is installed
    from pillow_heif import register_heif_opener

    register_heif_opener()
    _HEIF = True
except Exception:  # pragma: no cover - optional
    _HEIF = False

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"} | (
    {".heic", ".heif"} if _HEIF else set()
)
MIN_IMAGES = 3
MIN_SIDE = 64
Image.MAX_IMAGE_PIXELS = 200_000_000  # 16 MP photos are fine; refuse decompression bombs

_EXIF_IFD = 0x8769
_FOCAL_LENGTH = 0x920A
_FOCAL_35MM = 0xA405
_FP_XRES = 0xA20E
_FP_RES_UNIT = 0xA210
_PIXEL_X_DIM = 0xA002
_PIXEL_Y_DIM = 0xA003


@dataclass
class View:
    """One usable photo after ingest."""

    name: str  # file name in the working images folder (unique, .jpg)
    source: str  # name in the user's input (relative path inside folder/zip)
    width: int  # working size, upright
    height: int
    original_width: int
    original_height: int
    focal_px: float | None  # focal length at working size when EXIF tells it, else None
    focal_source: str  # "exif-focal-plane", "exif-35mm", or "none"
    exif_orientation: int
    taken: float | None = None  # capture time (EXIF DateTimeOriginal, seconds since the epoch, no time zone)


@dataclass
class IngestResult:
    images_dir: Path
    views: list[View]
    rejected: list[dict] = field(default_factory=list)  # {"name": ..., "reason": ...}
    total_files: int = 0
    user_masks_dir: Path | None = None  # masks shipped as NAME_mask.png beside NAME.jpg, saved as <view>.png

    @property
    def originals_dir(self) -> Path:
        """Upright full-resolution copies of photos that were downscaled for work (dense and texture read them)."""
        return self.images_dir.parent / "originals"

    def original_path(self, view: View) -> Path:
        """The photo at its own resolution, upright: the kept original, or the working image when it was not
        downscaled.  Read one at a time (never all of them at once: 300 × 16 MP is 14 GB of pixels)."""
        original = self.originals_dir / view.name
        return original if original.is_file() else self.images_dir / view.name

    def view(self, name: str) -> View:
        return next(v for v in self.views if v.name == name)

    def to_dict(self) -> dict:
        return {
            "images_dir": str(self.images_dir),
            "views": [asdict(v) for v in self.views],
            "rejected": self.rejected,
            "total_files": self.total_files,
            "user_masks_dir": str(self.user_masks_dir) if self.user_masks_dir else None,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "IngestResult":
        masks_dir = d.get("user_masks_dir")
        return cls(Path(d["images_dir"]), [View(**v) for v in d["views"]], d["rejected"], d["total_files"],
                   Path(masks_dir) if masks_dir else None)


Opener = Callable[[], io.BufferedIOBase]
MAX_FILE_BYTES = 150 * 2 ** 20  # no photo is this large; refusing protects memory (zip bombs, videos)


def _list_inputs(input_path: Path) -> tuple[list[tuple[str, Opener]], zipfile.ZipFile | None]:
    """(name, opener) for every file of the input, images or not, skipping hidden/system files."""
    if not input_path.exists():
        raise UserInputError(f"The input {input_path} does not exist.")
    if input_path.is_dir():
        files = sorted(p for p in input_path.rglob("*") if p.is_file() and not _is_hidden(p.relative_to(input_path)))
        return [(str(p.relative_to(input_path)), (lambda p=p: _guarded(open(p, "rb"), p.stat().st_size)))
                for p in files], None
    if zipfile.is_zipfile(input_path):
        try:
            zf = zipfile.ZipFile(input_path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise UserInputError(f"The zip file {input_path.name} cannot be read ({exc}).") from exc
        infos = sorted((i for i in zf.infolist() if not i.is_dir() and not _is_hidden(Path(i.filename))),
                       key=lambda i: i.filename)
        return [(i.filename, (lambda i=i: _guarded(zf.open(i), i.file_size))) for i in infos], zf
    if input_path.suffix.lower() == ".zip":
        raise UserInputError(f"The file {input_path.name} is not a valid zip archive.")
    raise UserInputError(f"The input {input_path.name} must be a folder of photos or a .zip of photos.")


def _guarded(handle, size: int):
    if size > MAX_FILE_BYTES:
        handle.close()
        raise OSError(f"the file is too large ({size / 2 ** 20:.0f} MB) to be a photo")
    return handle


def _is_hidden(rel: Path) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in rel.parts)


def _exif_focal_px(img: Image.Image, width: int, height: int, stored: tuple[int, int]) -> tuple[float | None, str]:
    """Focal length in pixels of the upright `width`×`height` working image, from EXIF, or (None, "none").

    `stored` is the size of the pixels in the file (before any draft-mode reduction)."""
    try:
        exif = img.getexif()
        sub = exif.get_ifd(_EXIF_IFD)
    except Exception:
        return None, "none"
    long_side = max(width, height)
    focal_mm = _as_float(sub.get(_FOCAL_LENGTH))
    xres = _as_float(sub.get(_FP_XRES))
    unit = sub.get(_FP_RES_UNIT, 2)
    stored_w, stored_h = stored
    if focal_mm and xres and unit in (2, 3, 4, 5):
        mm_per_unit = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}[unit]
        px_per_mm = xres / mm_per_unit
        # the resolution refers to the sensor read-out size recorded in EXIF (or the stored size if absent)
        ref_long = max(_as_float(sub.get(_PIXEL_X_DIM)) or 0, _as_float(sub.get(_PIXEL_Y_DIM)) or 0)
        if not ref_long:  # the resolution then refers to the stored pixels
            ref_long = max(stored_w, stored_h)
        f = focal_mm * px_per_mm * long_side / ref_long
        if 0.2 * long_side < f < 20 * long_side:
            return f, "exif-focal-plane"
    f35 = _as_float(sub.get(_FOCAL_35MM))
    if f35:
        diag = math.hypot(width, height)
        f = f35 * diag / math.hypot(36.0, 24.0)
        if 0.2 * long_side < f < 20 * long_side:
            return f, "exif-35mm"
    return None, "none"


def _as_float(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return f if math.isfinite(f) and f > 0 else None


def _load_one(name: str, opener: Opener, max_size: int, out_dir: Path, out_name: str,
              originals_dir: Path | None = None) -> View:
    """Decode, rotate upright, downscale and save one photo; raise ValueError with a reason if unusable.
    When the photo is downscaled and `originals_dir` is given, an upright full-resolution copy is kept there
    (the user's own bytes when they are an upright JPEG)."""
    try:
        with opener() as fh:
            data = fh.read()
    except (OSError, zipfile.BadZipFile, RuntimeError) as exc:  # RuntimeError: encrypted zip member
        raise ValueError(f"cannot be read ({exc})") from exc
    if not data:
        raise ValueError("is an empty file")
    try:
        img = Image.open(io.BytesIO(data))
        fmt = img.format
        mode = img.mode
        orientation = int(img.getexif().get(0x0112, 1) or 1)
        taken = _capture_time(img)
        ow, oh = img.size
        if orientation in (5, 6, 7, 8):
            up_w, up_h = oh, ow
        else:
            up_w, up_h = ow, oh
        scale = min(1.0, max_size / max(up_w, up_h))
        keep_original = originals_dir is not None and scale < 1.0
        if fmt == "JPEG" and scale < 1.0 and not keep_original:
            img.draft("RGB", (max(1, int(ow * scale)), max(1, int(oh * scale))))
        img.load()
    except UnidentifiedImageError as exc:
        raise ValueError("is not an image (its content is not a format we can read)") from exc
    except Image.DecompressionBombError as exc:
        raise ValueError("is too large to be a photo") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"is a damaged or truncated image ({exc})") from exc
    focal, focal_source = _exif_focal_px(img, max(1, round(up_w * scale)), max(1, round(up_h * scale)), (ow, oh))
    img = ImageOps.exif_transpose(img)
    if img.mode != "RGB":
        img = img.convert("RGB")
    w, h = img.size
    if min(w, h) < MIN_SIDE:
        raise ValueError(f"is too small ({w}×{h} px)")
    tw, th = max(1, round(up_w * scale)), max(1, round(up_h * scale))
    if keep_original:
        if fmt == "JPEG" and mode == "RGB" and orientation == 1:
            (originals_dir / out_name).write_bytes(data)
        else:
            img.save(originals_dir / out_name, quality=95, subsampling=0)
    if (w, h) != (tw, th):
        img = img.resize((tw, th), Image.Resampling.LANCZOS)
    if fmt == "JPEG" and mode == "RGB" and orientation == 1 and (w, h) == (tw, th) == (ow, oh):
        (out_dir / out_name).write_bytes(data)  # already upright at working size: keep the original pixels
    else:
        img.save(out_dir / out_name, quality=95, subsampling=0)
    return View(
        name=out_name,
        source=name,
        width=tw,
        height=th,
        original_width=up_w,
        original_height=up_h,
        focal_px=focal,
        focal_source=focal_source,
        exif_orientation=orientation,
        taken=taken,
    )


def _capture_time(img: Image.Image) -> float | None:
    """EXIF DateTimeOriginal (else DateTime) as seconds since the epoch, read as UTC; None when absent or bad.

    Why: a second scanning session (the object turned over) starts minutes after the first one ends, so the
    capture times tell sessions apart (engine/sessions.py)."""
    import calendar
    import time as _time

    try:
        exif = img.getexif()
        stamp = exif.get_ifd(_EXIF_IFD).get(0x9003) or exif.get(0x0132)
        if not stamp:
            return None
        return float(calendar.timegm(_time.strptime(str(stamp).strip().rstrip("\x00"), "%Y:%m:%d %H:%M:%S")))
    except (ValueError, TypeError, OSError, KeyError, AttributeError):
        return None


MASK_SUFFIX = "_mask"  # NAME_mask.png beside NAME.jpg is the user's mask of that photo (as OpenDroneMap does)


def split_masks(entries: list[tuple[str, Opener]]) -> tuple[list[tuple[str, Opener]], dict[str, tuple[str, Opener]]]:
    """Separate the user's masks from the photos: `NAME_mask.EXT` is a mask when a photo `NAME.*` sits in the
    same folder; the mask dict is keyed by that photo's name in the input."""
    by_stem = {str(Path(n).with_suffix("")): n for n, _ in entries if Path(n).suffix.lower() in IMAGE_SUFFIXES}
    photos, found = [], {}
    for name, opener in entries:
        stem = str(Path(name).with_suffix(""))
        if (Path(name).suffix.lower() in IMAGE_SUFFIXES and stem.endswith(MASK_SUFFIX)
                and stem[: -len(MASK_SUFFIX)] in by_stem):
            found[by_stem[stem[: -len(MASK_SUFFIX)]]] = (name, opener)
        else:
            photos.append((name, opener))
    return photos, found


def _save_user_mask(name: str, opener: Opener, view: View, out_path: Path) -> None:
    """Decode a user mask, bring it to the working size of its (upright) photo, white (>127) = object."""
    import numpy as np

    try:
        with opener() as fh:
            img = Image.open(io.BytesIO(fh.read()))
            img.load()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise UserInputError(f"The mask {name} is not a readable image ({exc}).") from exc
    img = ImageOps.exif_transpose(img).convert("L")
    if img.size != (view.original_width, view.original_height) and img.size != (view.width, view.height):
        raise UserInputError(f"The mask {name} is {img.size[0]}×{img.size[1]} px but its photo is "
                             f"{view.original_width}×{view.original_height} px: a mask must have its photo's size.")
    img = img.resize((view.width, view.height), Image.Resampling.NEAREST)
    Image.fromarray(np.where(np.asarray(img) > 127, 255, 0).astype(np.uint8)).save(out_path)


def _unique_names(names: list[str]) -> Iterator[str]:
    used: set[str] = set()
    for name in names:
        stem = Path(name).stem.replace(" ", "_") or "image"
        candidate, i = f"{stem}.jpg", 1
        while candidate.lower() in used:
            candidate, i = f"{stem}_{i}.jpg", i + 1
        used.add(candidate.lower())
        yield candidate


def run(input_path: Path, ctx: StageContext) -> IngestResult:
    input_path = Path(input_path)
    max_size = ctx.preset.max_image_size
    key = {"input": str(input_path.resolve()), "max_size": max_size, "mtime": input_path.stat().st_mtime
           if input_path.exists() else None}
    if (saved := load_done(ctx.work_dir, key)) is not None:
        return IngestResult.from_dict(saved)
    entries, zf = _list_inputs(input_path)
    try:
        out_dir = ctx.work_dir / "images"
        out_dir.mkdir(parents=True, exist_ok=True)
        originals_dir = ctx.work_dir / "originals"
        originals_dir.mkdir(parents=True, exist_ok=True)
        for old in [*out_dir.glob("*"), *originals_dir.glob("*")]:
            old.unlink()
        rejected: list[dict] = []
        candidates = []
        photo_entries, user_masks = split_masks(entries)
        for name, opener in photo_entries:
            if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                candidates.append((name, opener))
            else:
                rejected.append({"name": name, "reason": "is not a photo (unsupported file type)"})
        if not entries:
            raise UserInputError("The input contains no files: upload at least 3 photos of the object.")
        out_names = list(_unique_names([n for n, _ in candidates]))
        views: list[View] = []
        done = 0

        def work(item):
            (name, opener), out_name = item
            try:
                return _load_one(name, opener, max_size, out_dir, out_name, originals_dir)
            except ValueError as exc:
                return {"name": name, "reason": str(exc)}

        with ThreadPoolExecutor(max(1, ctx.num_threads)) as pool:
            for result in pool.map(work, zip(candidates, out_names)):
                done += 1
                if isinstance(result, View):
                    views.append(result)
                else:
                    rejected.append(result)
                ctx.report(done / max(1, len(candidates)), f"read {done}/{len(candidates)} photos")
                ctx.check_cancelled()
        verdicts = screening.screen(out_dir, [v.name for v in views],
                                    {v.name: (v.original_width, v.original_height) for v in views})
        if len(views) - len(verdicts) >= MIN_IMAGES:  # screening never turns a small set into a refusal
            set_aside = {v.name: v.reason for v in verdicts}
            rejected += [{"name": v.source, "reason": set_aside[v.name]} for v in views if v.name in set_aside]
            views = [v for v in views if v.name not in set_aside]
        masks_dir = None
        if user_masks:
            masks_dir = ctx.work_dir / "user_masks"
            masks_dir.mkdir(exist_ok=True)
            for old in masks_dir.glob("*"):
                old.unlink()
            for view in views:
                if view.source in user_masks:
                    mask_name, opener = user_masks[view.source]
                    _save_user_mask(mask_name, opener, view, masks_dir / f"{view.name}.png")
    finally:
        if zf is not None:
            zf.close()
    if len(views) < MIN_IMAGES:
        detail = ""
        if rejected:
            shown = "; ".join(f"{r['name']} {r['reason']}" for r in rejected[:3])
            more = f" (and {len(rejected) - 3} more)" if len(rejected) > 3 else ""
            detail = f" Rejected: {shown}{more}."
        raise UserInputError(
            f"Only {len(views)} usable photo{'s' if len(views) != 1 else ''} found; at least {MIN_IMAGES} "
            f"overlapping photos of the object are needed.{detail}"
        )
    result = IngestResult(out_dir, views, rejected, total_files=len(entries) - len(user_masks),
                          user_masks_dir=masks_dir)
    save_done(ctx.work_dir, key, result.to_dict())
    return result
