"""Token requests the operator approves (REST admin API and `openscan-cloud tokens approve`): one code path that
creates the token and mails it when the server can send mail, or hands it back to the operator to pass on."""

from __future__ import annotations

import logging
from typing import Any

from openscancloud.api.context import AppContext

log = logging.getLogger(__name__)


def request_view(row: Any) -> dict[str, Any]:
    name = " ".join(x for x in (row.forename, row.surname) if x)
    return {"id": row.id, "name": name, "email": row.email,
            "created_at": row.created_at.isoformat(timespec="seconds") + "Z", "status": row.status}


def approve_and_deliver(ctx: AppContext, request_id: int) -> dict[str, Any]:
    """`{"id", "status": "approved", "mailed", "token"}`: the token only when it could not be mailed."""
    row, token = ctx.service.approve_token_request(request_id)
    mailed = False
    if ctx.notifier.mailer.enabled:
        try:
            ctx.notifier.send_approved_token_mail(row.email, row.forename or "", token)
            mailed = True
        except Exception:
            log.exception("could not mail the approved token of request %s", request_id)
    return {"id": row.id, "status": "approved", "mailed": mailed, "token": None if mailed else token}
