"""Typed results of the SDK: plain frozen dataclasses built from the server's JSON.

The server may add fields at any time; every model keeps the original JSON in `raw` so nothing is lost, and the
parsers accept missing optional fields (older servers) instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Status strings after which a project will not change any more on its own.
FINISHED_STATUSES = frozenset({"done", "failed", "cancelled", "expired"})
#: Spellings of "done" that legacy servers use (the firmware accepts all of them).
DONE_SPELLINGS = frozenset({"done", "finished", "complete", "completed", "processing done"})


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _float_or_none(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class TokenInfo:
    """What a token may do: credit in GB (10^9 bytes), largest upload in bytes, most photos."""

    credit_gb: float
    limit_filesize: int
    limit_photos: int
    #: The server's largest upload part in bytes, when it says (this server does; the original one does not).
    part_limit: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TokenInfo:
        part_limit = data.get("part_limit")
        return cls(
            credit_gb=float(data.get("credit") or 0.0),
            limit_filesize=_int(data.get("limit_filesize")),
            limit_photos=_int(data.get("limit_photos")),
            part_limit=_int(part_limit) or None if part_limit is not None else None,
            raw=dict(data),
        )


@dataclass(frozen=True)
class ServerStatus:
    status: str
    version: str | None
    queue_length: int | None
    workers_online: int | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServerStatus:
        queue = data.get("queue_length", data.get("queue"))
        workers = data.get("workers_online", data.get("workers"))
        return cls(
            status=str(data.get("status", "unknown")),
            version=None if data.get("version") is None else str(data.get("version")),
            queue_length=None if queue is None else _int(queue),
            workers_online=None if workers is None else _int(workers),
            raw=dict(data),
        )


@dataclass(frozen=True)
class QueueEstimate:
    queue_length: int
    position: int | None
    estimate_seconds: float | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QueueEstimate:
        position = data.get("position")
        estimate = data.get("estimate_seconds", data.get("eta_seconds", data.get("estimate")))
        return cls(
            queue_length=_int(data.get("queue_length", data.get("queue", 0))),
            position=None if position is None else _int(position),
            estimate_seconds=_float_or_none(estimate),
            raw=dict(data),
        )


@dataclass(frozen=True)
class PartStatus:
    """What the server holds of one upload part."""

    index: int
    size: int
    complete: bool
    sha256: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PartStatus:
        return cls(
            index=_int(data.get("index")),
            size=_int(data.get("size")),
            complete=bool(data.get("complete")),
            sha256=data.get("sha256") or None,
        )


@dataclass(frozen=True)
class CreatedProject:
    name: str
    ulinks: list[str]
    credit_charged_gb: float | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class ProjectInfo:
    """A project as the server reports it (`getProjectInfo`)."""

    name: str
    status: str
    progress: float
    stage: str | None
    eta_seconds: float | None
    error: str | None
    dlink: str | None
    ulinks: list[str]
    photos: int | None
    parts: list[PartStatus]
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    warnings: list[str] = field(default_factory=list)  # the engine's notes on a finished model

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> ProjectInfo:
        ulink = data.get("ulink") or []
        if isinstance(ulink, str):
            ulink = [ulink]
        photos = data.get("photos")
        return cls(
            name=str(data.get("project") or data.get("name") or name),
            status=str(data.get("status") or "unknown").lower(),
            progress=float(_float_or_none(data.get("progress")) or 0.0),
            stage=data.get("stage") or None,
            eta_seconds=_float_or_none(data.get("eta_seconds")),
            error=data.get("error") or None,
            dlink=data.get("dlink") or None,
            ulinks=[str(u) for u in ulink],
            photos=None if photos is None else _int(photos),
            parts=[PartStatus.from_json(p) for p in data.get("parts") or [] if isinstance(p, dict)],
            raw=dict(data),
            warnings=[str(w) for w in data.get("warnings") or [] if w],
        )

    @property
    def is_done(self) -> bool:
        return self.status in DONE_SPELLINGS

    @property
    def is_finished(self) -> bool:
        return self.is_done or self.status in FINISHED_STATUSES

    @property
    def is_failed(self) -> bool:
        return self.is_finished and not self.is_done


@dataclass(frozen=True)
class UploadProgress:
    """One progress report of an upload, handed to the `progress` callback.

    `phase` is one of: "scanning", "zipping", "hashing", "uploading", "retrying", "uploaded".
    Byte counts only ever describe what the server has acknowledged or is being sent right now; after a dropped
    connection they go back to the server's offset, so a bar shows the truth.
    """

    phase: str
    bytes_done: int
    bytes_total: int
    part_index: int = 0  # 0-based
    part_count: int = 0
    part_bytes_done: int = 0
    part_bytes_total: int = 0
    message: str = ""


@dataclass(frozen=True)
class DownloadProgress:
    bytes_done: int
    bytes_total: int | None


@dataclass(frozen=True)
class UploadResult:
    project: str
    photos: int
    size: int
    sha256: str
    parts: int
    resumed: bool
    parts_skipped: int
    #: The project's status on the server after the upload: "created" (ready to start) unless a previous run
    #: had already started it.
    server_status: str = "created"


@dataclass(frozen=True)
class ProcessingOptions:
    """How the server should process a project; None everywhere = the server's defaults.

    quality: preview | standard | high; masks: auto | off | user (NAME_mask.png beside each photo);
    texture_size: texture side in px; target_faces: triangle budget; formats: subset of glb, obj, ply, stl, usdz.
    The server checks every value and answers a refused one with a sentence."""

    quality: str | None = None
    masks: str | None = None
    texture_size: int | None = None
    target_faces: int | None = None
    formats: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"quality": self.quality, "masks": self.masks, "texture_size": self.texture_size,
               "target_faces": self.target_faces, "formats": list(self.formats) if self.formats else None}
        return {k: v for k, v in out.items() if v is not None}

    @classmethod
    def from_text(cls, *, quality: str | None = None, masks: str | None = None, texture_size: int | None = None,
                  target_faces: int | None = None, formats: str | None = None) -> "ProcessingOptions":
        """From command-line style values (`formats="glb,stl"`)."""
        chosen = tuple(f.strip().lower() for f in formats.split(",") if f.strip()) if formats else None
        return cls(quality, masks, texture_size, target_faces, chosen)
