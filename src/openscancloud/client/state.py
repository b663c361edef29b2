"""A small local record of each upload, so a killed process (or a restarted desktop app) can continue.

One JSON file per project under `<state_dir>/projects/`, written atomically (temp file + rename), so a crash
mid-write never loses the record. The token itself is never stored here, only a fingerprint (sha256 prefix) that
tells which token a project belongs to.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openscancloud.client.archive import PartSpec, UploadPlan


def token_fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


def normalise_server(server: str) -> str:
    """One spelling per server: `host:8000/` and `http://host:8000` are the same server."""
    server = server.strip()
    if server and not server.startswith(("http://", "https://")):
        server = "http://" + server
    return server.rstrip("/")


@dataclass
class ProjectRecord:
    """Everything needed to continue an upload or find a project again, minus the token."""

    server: str
    token_fp: str
    project: str
    source: str
    zip_path: str
    zip_is_cache: bool
    size: int
    sha256: str
    part_size: int
    parts: list[dict[str, Any]]
    photos: int
    status: str = "preparing"
    progress: float = 0.0
    stage: str | None = None
    error: str | None = None
    download_path: str | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)

    @property
    def key(self) -> str:
        return record_key(self.server, self.token_fp, self.project)

    def plan(self) -> UploadPlan:
        return UploadPlan(
            zip_path=Path(self.zip_path),
            size=self.size,
            sha256=self.sha256,
            part_size=self.part_size,
            parts=[PartSpec(int(p["index"]), int(p["offset"]), int(p["size"]), str(p["sha256"])) for p in self.parts],
        )

    @classmethod
    def from_plan(
        cls, *, server: str, token: str, project: str, source: Path, plan: UploadPlan, photos: int, zip_is_cache: bool
    ) -> ProjectRecord:
        return cls(
            server=normalise_server(server),
            token_fp=token_fingerprint(token),
            project=project,
            source=str(source),
            zip_path=str(plan.zip_path),
            zip_is_cache=zip_is_cache,
            size=plan.size,
            sha256=plan.sha256,
            part_size=plan.part_size,
            parts=[dataclasses.asdict(p) for p in plan.parts],
            photos=photos,
        )


def record_key(server: str, token_fp: str, project: str) -> str:
    raw = f"{normalise_server(server)}\n{token_fp}\n{project}".encode()
    return hashlib.sha256(raw).hexdigest()[:24]


class StateStore:
    """The folder of project records. Safe to use from several threads of one process (atomic file writes)."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir) / "projects"

    def _path(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def save(self, record: ProjectRecord) -> None:
        record.updated_at = time.time()
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self._path(record.key)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(record), indent=1), encoding="utf-8")
        os.replace(tmp, path)

    def load(self, server: str, token: str, project: str) -> ProjectRecord | None:
        return self._read(self._path(record_key(server, token_fingerprint(token), project)))

    def _read(self, path: Path) -> ProjectRecord | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            names = {f.name for f in dataclasses.fields(ProjectRecord)}
            return ProjectRecord(**{k: v for k, v in data.items() if k in names})
        except (OSError, ValueError, TypeError):
            return None  # a missing or damaged record is the same as none: the server stays the truth

    def delete(self, record: ProjectRecord) -> None:
        self._path(record.key).unlink(missing_ok=True)

    def all(self) -> list[ProjectRecord]:
        """Every record on this machine, newest first."""
        if not self.dir.is_dir():
            return []
        records = [r for p in self.dir.glob("*.json") if (r := self._read(p)) is not None]
        return sorted(records, key=lambda r: r.created_at, reverse=True)

    def for_token(self, server: str, token: str) -> list[ProjectRecord]:
        fp, srv = token_fingerprint(token), normalise_server(server)
        return [r for r in self.all() if r.token_fp == fp and r.server == srv]

    def unfinished_for_source(self, server: str, token: str, source: Path) -> ProjectRecord | None:
        """The newest upload of the same folder/zip that never got started — `upload` again continues it."""
        for record in self.for_token(server, token):
            if record.source == str(source) and record.status in {"preparing", "created", "uploading", "uploaded"}:
                return record
        return None


class ProjectKeys:
    """Server ids and project keys of projects this machine created through the REST API (`<state>/keys/`).

    A project made with a server's shared public token is reachable over REST only with its key (the server
    sends it once, in the create answer; it lists no public projects). One small file per project, readable by
    this user only, so a later run — `status`, `download`, the desktop app — still finds the project."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir) / "keys"

    def _path(self, server: str, token: str, project: str) -> Path:
        return self.dir / f"{record_key(server, token_fingerprint(token), project)}.json"

    def save(self, server: str, token: str, project: str, project_id: str, key: str | None) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._path(server, token, project)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"id": project_id, "key": key}, fh)
        os.replace(tmp, path)

    def load(self, server: str, token: str, project: str) -> tuple[str, str | None] | None:
        try:
            data = json.loads(self._path(server, token, project).read_text(encoding="utf-8"))
            return str(data["id"]), (str(data["key"]) if data.get("key") else None)
        except (OSError, ValueError, KeyError, TypeError):
            return None
