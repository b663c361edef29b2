"""Project names are chosen by clients (the firmware sends `<name>-<ms>.zip`); they are labels only and never
become file paths — storage paths are built from server-generated IDs."""

from __future__ import annotations

import re

from openscancloud.domain.errors import InvalidInput

_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")


def validate_project_name(name: str | None) -> str:
    if name is None or name == "":
        raise InvalidInput("The project name is missing (parameter 'project').", code="invalid_name")
    if not _NAME.fullmatch(name) or name in {".", ".."}:
        raise InvalidInput(
            "The project name may only use letters, digits, '.', '_' and '-' and be 1 to 128 characters long.",
            code="invalid_name",
        )
    return name
