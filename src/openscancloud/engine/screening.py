"""Input screening: photos that would only hurt the model are set aside, each with a reason.

Why: real uploads contain a few shaky photos, the same photo twice (a retry on the scanner, a copy in the zip),
and now and then a photo from another camera (a phone shot of the setup).  Blurry photos give few, imprecise
matches; duplicates add nothing but weight two identical views; a stray camera adds a second set of intrinsics
that a handful of photos cannot calibrate.  Each decision is relative to the set itself (no absolute sharpness
threshold fits both a phone and a 16 MP rig camera) and is reported in report.json under images.rejected.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

FOCUS_SIZE = 640  # long side (px) at which sharpness is compared
BLUR_RATIO = 0.25  # a photo less than a quarter as sharp as the set's median is blurry
MIN_PHOTOS_FOR_BLUR = 8  # with fewer photos the median is no reference
THUMB_SIZE = (160, 120)  # near-duplicate comparison size
NEAR_DUPLICATE_CHANGED = 0.0005  # fewer changed pixels than this share: the same view taken twice
NEAR_DUPLICATE_LEVELS = 12  # grey levels a pixel must change by to count as changed
STRAY_CAMERA_SHARE = 0.1  # photos of a size shared by less than this share of the set are from another camera


@dataclass
class Verdict:
    name: str  # working image name
    reason: str


def focus_measure(grey: np.ndarray) -> float:
    """Variance of the Laplacian at FOCUS_SIZE: high for sharp detail, low for blur."""
    scale = FOCUS_SIZE / max(grey.shape)
    if scale < 1:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def stray_cameras(sizes: dict[str, tuple[int, int]]) -> list[Verdict]:
    """Photos whose sensor size (long × short side, so portrait and landscape shots agree) is rare in the set."""
    shapes = {name: (max(w, h), min(w, h)) for name, (w, h) in sizes.items()}
    counts = Counter(shapes.values())
    if len(counts) < 2:
        return []
    (main, main_count), = counts.most_common(1)
    out = []
    for name, shape in shapes.items():
        if shape != main and counts[shape] < STRAY_CAMERA_SHARE * len(shapes):
            out.append(Verdict(name, f"was taken at {shape[0]}×{shape[1]} px while {main_count} other photos are "
                                     f"{main[0]}×{main[1]} px (another camera?)"))
    return out


def screen(images_dir: Path, names: list[str], original_sizes: dict[str, tuple[int, int]]) -> list[Verdict]:
    """Verdicts for the photos to set aside (blurry, duplicate, other camera); reads one photo at a time."""
    verdicts = stray_cameras(original_sizes)
    excluded = {v.name for v in verdicts}
    focus: dict[str, float] = {}
    digests: dict[str, str] = {}
    thumbs: list[tuple[str, np.ndarray]] = []
    for name in names:
        if name in excluded:
            continue
        data = (images_dir / name).read_bytes()
        digest = hashlib.sha1(data).hexdigest()
        if digest in digests:
            verdicts.append(Verdict(name, f"is an exact duplicate of {digests[digest]}"))
            excluded.add(name)
            continue
        digests[digest] = name
        grey = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        if grey is None:
            continue
        focus[name] = focus_measure(grey)
        thumb = cv2.GaussianBlur(cv2.resize(grey, THUMB_SIZE, interpolation=cv2.INTER_AREA), (3, 3), 0)
        twin = next((other for other, t in thumbs if
                     (cv2.absdiff(t, thumb) > NEAR_DUPLICATE_LEVELS).mean() < NEAR_DUPLICATE_CHANGED), None)
        if twin is not None:
            verdicts.append(Verdict(name, f"is a near duplicate of {twin} (the same view taken twice)"))
            excluded.add(name)
            continue
        thumbs.append((name, thumb))
    if len(focus) >= MIN_PHOTOS_FOR_BLUR:
        median = float(np.median(list(focus.values())))
        for name, value in focus.items():
            if name not in excluded and value < BLUR_RATIO * median:
                verdicts.append(Verdict(name, f"is blurry (sharpness {value / median * 100:.0f} % of the set's "
                                              f"median)"))
    return verdicts
