"""Processing options a user picks for a project, checked once here for every client (REST, legacy, web app,
SDK, CLI, desktop) and handed to the worker, which turns them into engine flags.

The ranges repeat the engine's own checks on purpose: a wrong value should be refused when the project is
created (one sentence, 400), not after the photos were uploaded and a worker picked the job up.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Iterable

from openscancloud.domain.errors import InvalidInput

QUALITIES = ("preview", "standard", "high")
MASK_MODES = ("auto", "off", "user")
FORMATS = ("glb", "obj", "ply", "stl", "usdz")
TEXTURE_RANGE = (256, 16384)
FACES_RANGE = (1000, 5_000_000)


@dataclass(frozen=True)
class ProjectOptions:
    quality: str = "standard"
    masks: str = "auto"
    texture_size: int | None = None  # None: the quality preset decides
    target_faces: int | None = None  # None: the quality preset decides
    formats: tuple[str, ...] = FORMATS

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["formats"] = list(self.formats)
        return out

    def extras_json(self) -> str:
        """Everything but `quality` (which has its own column) for the projects.options column."""
        extras = self.to_dict()
        extras.pop("quality")
        return json.dumps(extras, sort_keys=True)

    def engine_args(self) -> list[str]:
        """The engine command-line flags for these options."""
        args = ["--quality", self.quality, "--masks", self.masks]
        if self.texture_size is not None:
            args += ["--texture-size", str(self.texture_size)]
        if self.target_faces is not None:
            args += ["--target-faces", str(self.target_faces)]
        args += ["--formats", ",".join(self.formats)]
        return args


def parse_options(
    *,
    quality: Any = None,
    masks: Any = None,
    texture_size: Any = None,
    target_faces: Any = None,
    formats: Any = None,
    default_quality: str = "standard",
) -> ProjectOptions:
    """Options from user input (JSON values or query strings); None/"" means the default. Raises InvalidInput."""
    quality = _text(quality) or default_quality
    if quality not in QUALITIES:
        raise InvalidInput(f"quality must be one of {', '.join(QUALITIES)} (got {quality!r}).", code="invalid_quality")
    masks = _text(masks) or "auto"
    if masks not in MASK_MODES:
        raise InvalidInput(f"masks must be one of {', '.join(MASK_MODES)} (got {masks!r}).", code="invalid_masks")
    return ProjectOptions(
        quality=quality,
        masks=masks,
        texture_size=_ranged("texture_size", texture_size, TEXTURE_RANGE, "pixels"),
        target_faces=_ranged("target_faces", target_faces, FACES_RANGE, "triangles"),
        formats=_formats(formats),
    )


def options_of(project: Any) -> ProjectOptions:
    """The stored options of a project row (projects made before options existed get the defaults)."""
    extras: dict[str, Any] = {}
    if getattr(project, "options", None):
        try:
            extras = json.loads(project.options)
        except ValueError:
            extras = {}
    return ProjectOptions(
        quality=project.quality,
        masks=extras.get("masks") or "auto",
        texture_size=extras.get("texture_size"),
        target_faces=extras.get("target_faces"),
        formats=tuple(extras.get("formats") or FORMATS),
    )


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip().lower()


def _ranged(name: str, value: Any, bounds: tuple[int, int], unit: str) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto", "null", "none")):
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(str(value).strip())
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number of {unit} or empty for automatic (got {value!r}).",
                           code=f"invalid_{name}") from None
    lo, hi = bounds
    if not lo <= number <= hi:
        raise InvalidInput(f"{name} must be between {lo:,} and {hi:,} {unit} (got {number:,}).",
                           code=f"invalid_{name}")
    return number


def _formats(value: Any) -> tuple[str, ...]:
    if value is None or value == "" or value == []:
        return FORMATS
    items: Iterable[Any] = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) and not isinstance(value, str):
        raise InvalidInput("formats must be a list such as [\"glb\", \"stl\"] or a text such as glb,stl.",
                           code="invalid_formats")
    chosen = tuple(dict.fromkeys(str(item).strip().lower() for item in items if str(item).strip()))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise InvalidInput(f"formats must name one or more of {', '.join(FORMATS)} (got {', '.join(unknown) or 'nothing'}).",
                           code="invalid_formats")
    return chosen
