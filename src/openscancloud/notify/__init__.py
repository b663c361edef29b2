"""Notifications: e-mail over SMTP (off when no SMTP host is set) and per-project webhooks."""

from openscancloud.notify.notifier import Notifier

__all__ = ["Notifier"]
