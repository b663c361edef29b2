"""Turns domain events into e-mails and webhook calls, on a background thread so HTTP answers never wait."""

from __future__ import annotations

import logging
import threading
from typing import Any

from openscancloud.domain.service import Event
from openscancloud.notify.email import Mailer
from openscancloud.notify.webhook import post_webhook, webhook_secret
from openscancloud.settings import Settings

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, settings: Settings, secret: bytes = b"") -> None:
        self.settings = settings
        self.secret = secret
        self.mailer = Mailer(settings)

    def __call__(self, event: Event) -> None:
        threading.Thread(target=self._deliver, args=(event,), daemon=True, name="notify").start()

    def _deliver(self, event: Event) -> None:
        try:
            if event.email and self.mailer.enabled:
                subject, body = _project_mail(event)
                self.mailer.send(event.email, subject, body)
        except Exception:
            log.exception("could not send the e-mail for project %s", event.project.get("id"))
        if event.webhook_url:
            payload: dict[str, Any] = {"event": event.kind, **event.project}
            post_webhook(event.webhook_url, payload, self.settings.webhook_attempts,
                         self.settings.webhook_backoff_seconds,
                         secret=webhook_secret(self.secret, str(event.project.get("id"))),
                         allow_private=self.settings.webhook_allow_private)

    def send_token_mail(self, to: str, forename: str, token: str, confirm_url: str) -> None:
        """Sent synchronously: the caller must know whether the token reached its owner."""
        body = (
            f"Hello {forename},\n\n"
            f"here is your OpenScan Cloud token:\n\n    {token}\n\n"
            f"Activate it by opening this link once:\n\n    {confirm_url}\n\n"
            "Keep the token secret: whoever has it can use your credit.\n"
        )
        self.mailer.send(to, "Your OpenScan Cloud token", body)


    def send_approved_token_mail(self, to: str, forename: str, token: str) -> None:
        """The operator approved a token request: the token is active at once."""
        body = (
            f"Hello {forename},\n\n"
            f"your request was approved. Here is your OpenScan Cloud token:\n\n    {token}\n\n"
            "Keep the token secret: whoever has it can use your credit.\n"
        )
        self.mailer.send(to, "Your OpenScan Cloud token", body)


def _project_mail(event: Event) -> tuple[str, str]:
    name = event.project.get("name")
    if event.kind == "project_done":
        warnings = event.project.get("warnings") or []
        notes = "".join(f"\n    - {w}" for w in warnings)
        return (f"OpenScan Cloud: {name} is ready" + (" (with warnings)" if warnings else ""),
                f"Your project {name} has been processed. Download the result from your scanner or with "
                "'openscan-cloud download'.\n" + (f"\nPlease note:{notes}\n" if warnings else ""))
    return (f"OpenScan Cloud: {name} failed",
            f"Processing of your project {name} failed:\n\n    {event.project.get('error')}\n")
