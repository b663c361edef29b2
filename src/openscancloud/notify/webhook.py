"""Per-project webhooks: POST a JSON body, retried with exponential back-off on errors and 5xx answers."""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx

log = logging.getLogger(__name__)


def post_webhook(url: str, payload: dict[str, Any], attempts: int, backoff: float) -> bool:
    for attempt in range(1, attempts + 1):
        try:
            r = httpx.post(url, json=payload, timeout=15)
            if r.status_code < 500:
                if r.status_code >= 400:
                    log.warning("webhook %s answered %s; not retrying", url, r.status_code)
                    return False
                return True
            log.warning("webhook %s answered %s (attempt %d/%d)", url, r.status_code, attempt, attempts)
        except httpx.HTTPError as exc:
            log.warning("webhook %s failed: %s (attempt %d/%d)", url, exc, attempt, attempts)
        if attempt < attempts:
            time.sleep(backoff * 2 ** (attempt - 1))
    return False
