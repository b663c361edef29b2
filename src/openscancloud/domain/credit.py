"""Credit rules. Credit is counted in GB (10^9 bytes) of uploaded zip.

* private tokens: a balance = the sum of their ledger rows (grants, top-ups, charges, refunds);
* the public token: a daily allowance over a rolling 24 hours = allowance + sum of its ledger rows of the
  last 24 hours (charges are negative), never more than the allowance.

Every movement is a ledger row, so the balance can always be audited and recomputed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from openscancloud.domain.tokens import TokenKind

GB = 1_000_000_000
PUBLIC_WINDOW = timedelta(hours=24)


def bytes_to_gb(size: int) -> float:
    return round(size / GB, 9)


def public_window_start(now: datetime) -> datetime:
    return now - PUBLIC_WINDOW


def available_credit(kind: str, ledger_sum: float, public_allowance_gb: float) -> float:
    """`ledger_sum`: all rows for private tokens, rows in the rolling window for the public token."""
    if kind == TokenKind.PUBLIC:
        return round(min(public_allowance_gb, public_allowance_gb + ledger_sum), 9)
    if kind == TokenKind.PRIVATE:
        return round(ledger_sum, 9)
    return 0.0


def has_credit_for(available_gb: float, needed_gb: float) -> bool:
    return available_gb + 1e-9 >= needed_gb
