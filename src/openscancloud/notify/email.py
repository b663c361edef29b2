"""Plain SMTP mail (smtplib), configured from `Settings`. Sending never raises into callers' business logic."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage

from openscancloud.settings import Settings

log = logging.getLogger(__name__)


class Mailer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def enabled(self) -> bool:
        return bool(self.settings.smtp_host)

    def send(self, to: str, subject: str, body: str) -> None:
        """Send one message; raises OSError/SMTPException on failure (callers decide what that means)."""
        s = self.settings
        msg = EmailMessage()
        msg["From"] = s.mail_from
        msg["To"] = to
        msg["Subject"] = subject
        msg.set_content(body)
        smtp_cls = smtplib.SMTP_SSL if s.smtp_ssl else smtplib.SMTP
        with smtp_cls(s.smtp_host, s.smtp_port, timeout=30) as smtp:
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password or "")
            smtp.send_message(msg)
