"""Per-project webhooks: POST a signed JSON body, retried with exponential back-off on errors and 5xx answers.

Guarded against server-side request forgery: the host is resolved here, every address it resolves to must be
public (`domain.webhooks.is_public`), and the request is sent to exactly that checked address (the Host header
and TLS server name stay the original name), so a DNS answer that changes between check and connect cannot
point the request at this server or its network. Redirects are not followed.

Receivers verify the body with the project's webhook secret (`webhook_secret` in the project's REST view):
`X-OpenScan-Signature: sha256=<hex HMAC-SHA256(secret, "<X-OpenScan-Timestamp>." + body)>`.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from openscancloud.domain.webhooks import check_webhook_url, is_public, literal_address

log = logging.getLogger(__name__)


class WebhookRefused(Exception):
    """The target is not a public address (or cannot be resolved); nothing was sent."""


def webhook_secret(server_secret: bytes, project_id: str) -> str:
    """The per-project key receivers use to check `X-OpenScan-Signature` (derived, so nothing is stored)."""
    return hmac.new(server_secret, f"webhook:{project_id}".encode(), hashlib.sha256).hexdigest()


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def resolve_target(url: str, allow_private: bool) -> str:
    """The one address to connect to for `url`, after checking all of them."""
    check_webhook_url(url, allow_private=allow_private)
    parts = urlsplit(url)
    host = parts.hostname or ""
    literal = literal_address(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80),
                                       type=socket.SOCK_STREAM)
        except OSError as exc:
            raise WebhookRefused(f"cannot resolve {host}: {exc}") from None
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses:
        raise WebhookRefused(f"{host} has no address")
    if not allow_private and not all(is_public(a) for a in addresses):
        raise WebhookRefused(f"{host} resolves to a non-public address")
    return str(addresses[0])


def post_webhook(url: str, payload: dict[str, Any], attempts: int, backoff: float, *, secret: str = "",
                 allow_private: bool = False) -> bool:
    body = json.dumps(payload, separators=(",", ":")).encode()
    parts = urlsplit(url)
    for attempt in range(1, attempts + 1):
        try:
            address = resolve_target(url, allow_private)  # again on every attempt: DNS may change
        except Exception as exc:  # WebhookRefused or InvalidInput
            log.warning("webhook %s refused: %s", url, exc)
            return False
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "Host": parts.netloc.rpartition("@")[2],
                   "User-Agent": "OpenScan-Cloud-Webhook", "X-OpenScan-Timestamp": timestamp,
                   "X-OpenScan-Signature": signature(secret, timestamp, body)}
        target = httpx.URL(url).copy_with(host=address)
        try:
            with httpx.Client(timeout=15, follow_redirects=False) as client:
                request = client.build_request("POST", target, content=body, headers=headers,
                                               extensions={"sni_hostname": parts.hostname})
                r = client.send(request)
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
