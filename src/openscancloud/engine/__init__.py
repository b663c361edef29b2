"""The reconstruction engine: photos in, textured mesh out, on a CPU.

    from openscancloud.engine import reconstruct, ReconstructionOptions
    result = reconstruct("photos/", "out/", ReconstructionOptions(quality="preview"), progress=print)

See docs/engine.md for the stages, presets, outputs and report fields.  The heavy libraries (pycolmap, Open3D,
OpenCV) load on first use of `reconstruct`, so importing this package (e.g. for the CLI's --help) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import Cancelled, EngineError, UserInputError
from .presets import PRESETS, Preset

if TYPE_CHECKING:
    from .pipeline import STAGE_TITLES, STAGE_WEIGHTS, ReconstructionOptions, ReconstructionResult, reconstruct

_LAZY = {"STAGE_TITLES", "STAGE_WEIGHTS", "ReconstructionOptions", "ReconstructionResult", "reconstruct"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Cancelled",
    "EngineError",
    "PRESETS",
    "Preset",
    "ReconstructionOptions",
    "ReconstructionResult",
    "STAGE_TITLES",
    "STAGE_WEIGHTS",
    "UserInputError",
    "reconstruct",
]
