"""Tokens and credit: authentication, token creation (random or derived from the server secret), the
ledger-based balance, top-ups, and `/requestToken` with its rate limits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from openscancloud.domain import credit as creditrules
from openscancloud.domain.errors import Conflict, Forbidden, InvalidInput, NotFound, RateLimited, Unauthorized
from openscancloud.domain.tokens import (
    TokenKind,
    TokenStatus,
    derived_token,
    hash_token,
    new_token,
    token_hint,
)


@dataclass
class TokenView:
    id: int
    kind: str
    status: str
    limit_photos: int
    limit_filesize: int
    email: str | None = None
    forename: str | None = None
    surname: str | None = None


_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
                            r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+")
MAX_PERSON_NAME = 100


def check_plain_address(email: str | None) -> str:
    """Exactly one plain address (`name@example.org`): no display name, no list, no comments. Lower-cased, so
    spelling variants count against the same daily limit."""
    email = (email or "").strip()
    if len(email) > 254 or not _PLAIN_ADDRESS.fullmatch(email) or ".." in email:
        raise InvalidInput("Please give one plain e-mail address like name@example.org (parameter 'mail').",
                           code="invalid_email")
    return email.lower()


def check_person_name(value: str | None, field: str) -> str:
    """A short name that can go into an e-mail: no control characters, no links."""
    value = " ".join((value or "").split())
    if not value:
        raise InvalidInput("Please give your forename and lastname.", code="invalid_name")
    if len(value) > MAX_PERSON_NAME:
        raise InvalidInput(f"The {field} may be at most {MAX_PERSON_NAME} characters.", code="invalid_name")
    lowered = value.lower()
    if any(not ch.isprintable() for ch in value) or any(m in lowered for m in ("://", "www.", "<", ">")):
        raise InvalidInput(f"The {field} may not contain links or markup.", code="invalid_name")
    return value


class Accounts:
    """Mixin of `CloudService` (uses its `settings`, `uow`, `secret`, `clock`)."""

    def authenticate(self, token: str | None, kinds: tuple[str, ...] | None = None) -> TokenView:
        if not token:
            raise Unauthorized("A token is required (parameter 'token' or 'Authorization: Bearer').")
        with self.uow() as repo:
            row = repo.token_by_hash(hash_token(token))
            if row is None:
                raise Unauthorized("This token is not known to this server.")
            view = _view(row)
        if view.status == TokenStatus.REVOKED:
            raise Forbidden("This token has been revoked.", code="token_revoked")
        if view.status == TokenStatus.PENDING:
            raise Forbidden(
                "This token is not confirmed yet: open the confirmation link in the e-mail first.",
                code="token_pending",
            )
        if kinds is not None and view.kind not in kinds:
            raise Forbidden(f"A {view.kind} token cannot be used here.", code="wrong_token_kind")
        return view

    def create_token(
        self,
        kind: TokenKind,
        *,
        forename: str | None = None,
        surname: str | None = None,
        email: str | None = None,
        label: str | None = None,
        credit_gb: float | None = None,
        limit_photos: int | None = None,
        limit_filesize: int | None = None,
        status: TokenStatus = TokenStatus.ACTIVE,
        secret_token: str | None = None,
    ) -> tuple[str, TokenView]:
        """Create a token; returns the secret (shown once) and its record."""
        s = self.settings
        token = secret_token or new_token(kind)
        public = kind == TokenKind.PUBLIC
        with self.uow() as repo:
            row = repo.add_token(
                kind=str(kind),
                token_hash=hash_token(token),
                hint=token_hint(token),
                status=str(status),
                label=label,
                forename=forename,
                surname=surname,
                email=email,
                limit_photos=limit_photos or (s.public_limit_photos if public else s.private_limit_photos),
                limit_filesize=limit_filesize or (s.public_limit_filesize if public else s.private_limit_filesize),
            )
            if kind == TokenKind.PRIVATE:
                amount = s.private_credit_gb if credit_gb is None else credit_gb
                if amount:
                    repo.add_ledger(row.id, "grant", float(amount), "initial credit", None)
            return token, _view(row)

    def public_token(self) -> str:
        """The shared public token, derived from the server secret and created on first use."""
        token = derived_token(self.secret, TokenKind.PUBLIC, "public")
        with self.uow() as repo:
            if repo.token_by_hash(hash_token(token)) is not None:
                return token
        try:
            self.create_token(TokenKind.PUBLIC, label="public", secret_token=token)
        except Exception:  # another process created it at the same moment
            with self.uow() as repo:
                if repo.token_by_hash(hash_token(token)) is None:
                    raise
        return token

    def builtin_worker_token(self) -> str:
        """The token of the worker(s) `serve` starts itself (derived, so restarts reuse it)."""
        token = derived_token(self.secret, TokenKind.WORKER, "builtin-worker")
        with self.uow() as repo:
            if repo.token_by_hash(hash_token(token)) is not None:
                return token
        try:
            self.create_token(TokenKind.WORKER, label="built-in worker", secret_token=token)
        except Exception:
            with self.uow() as repo:
                if repo.token_by_hash(hash_token(token)) is None:
                    raise
        return token

    def find_token(self, ref: str) -> Any:
        """Find a token record by its numeric id, its secret or its hint (CLI use)."""
        with self.uow() as repo:
            if ref.isdigit():
                row = repo.token_by_id(int(ref))
            else:
                row = repo.token_by_hash(hash_token(ref))
                if row is None:
                    matches = [t for t in repo.tokens() if t.hint == ref or (len(ref) >= 4 and t.hint.startswith(ref))]
                    row = matches[0] if len(matches) == 1 else None
            if row is None:
                raise NotFound(f"No token matches {ref!r} (use the id shown by 'tokens list').")
            return row

    def list_tokens(self) -> list[Any]:
        with self.uow() as repo:
            return list(repo.tokens())

    def revoke_token(self, token_id: int) -> None:
        with self.uow() as repo:
            row = repo.token_by_id(token_id, lock=True)
            if row is None:
                raise NotFound("No such token.")
            row.status = str(TokenStatus.REVOKED)
            row.revoked_at = self.clock()

    def topup(self, token_id: int, amount_gb: float, reason: str = "top-up") -> float:
        if amount_gb <= 0:
            raise InvalidInput("The top-up amount must be a positive number of GB.")
        with self.uow() as repo:
            row = repo.token_by_id(token_id, lock=True)
            if row is None:
                raise NotFound("No such token.")
            if row.kind != TokenKind.PRIVATE:
                raise InvalidInput("Only private tokens have a credit balance (the public one has a daily allowance).")
            repo.add_ledger(row.id, "topup", float(amount_gb), reason, None)
        return self.credit_of(token_id)

    def credit_of(self, token_id: int) -> float:
        with self.uow() as repo:
            row = repo.token_by_id(token_id)
            return self._available(repo, row)

    def _available(self, repo: Any, token: Any) -> float:
        since = creditrules.public_window_start(self.clock()) if token.kind == TokenKind.PUBLIC else None
        return creditrules.available_credit(
            token.kind, repo.ledger_sum(token.id, since), self.settings.public_daily_credit_gb
        )

    def token_info(self, token: TokenView) -> dict[str, Any]:
        with self.uow() as repo:
            row = repo.token_by_id(token.id)
            return {
                "credit": self._available(repo, row),
                "limit_filesize": int(row.limit_filesize),
                "limit_photos": int(row.limit_photos),
                "kind": row.kind,
                "part_limit": self.settings.part_limit_bytes,
                "status": row.status,
            }

    def request_token(self, email: str, forename: str, lastname: str, ip: str, *,
                      issue_now: bool) -> tuple[Any, str | None]:
        """Record a person's request for a private token. `issue_now` (the server can mail and knows its own
        public URL): also create a pending token for the caller to mail with a confirmation link. Otherwise the
        request waits for the operator (`approve_token_request`). Rate-limited per address and per client."""
        email = check_plain_address(email)
        forename, lastname = check_person_name(forename, "forename"), check_person_name(lastname, "lastname")
        now = self.clock()
        with self.uow() as repo:
            if repo.count_token_requests(email=email, since=now - timedelta(days=1)) >= (
                self.settings.request_token_per_email_per_day
            ):
                raise RateLimited("Too many token requests for this e-mail address today; try again tomorrow.")
            if repo.count_token_requests(ip=ip, since=now - timedelta(hours=1)) >= (
                self.settings.request_token_per_ip_per_hour
            ):
                raise RateLimited("Too many token requests from your network in the last hour; try again later.")
            row = repo.add_token_request(email, ip[:64], None, forename=forename, surname=lastname,
                                         status="approved" if issue_now else "pending")
            if not issue_now:
                return row, None
            token, view = self.create_token(TokenKind.PRIVATE, forename=forename, surname=lastname, email=email,
                                            status=TokenStatus.PENDING)
            row.token_id, row.approved_at = view.id, now
            return row, token

    def token_requests(self) -> list[Any]:
        with self.uow() as repo:
            return list(repo.token_requests())

    def approve_token_request(self, request_id: int) -> tuple[Any, str]:
        """Create the (active) private token of a pending request; returns the request and the token secret."""
        now = self.clock()
        with self.uow() as repo:
            row = repo.token_request_by_id(request_id, lock=True)
            if row is None:
                raise NotFound(f"There is no token request {request_id}.")
            if row.status != "pending":
                raise Conflict(f"Token request {request_id} was already approved.", code="already_approved")
            token, view = self.create_token(TokenKind.PRIVATE, forename=row.forename, surname=row.surname,
                                            email=row.email)
            row.status, row.token_id, row.approved_at = "approved", view.id, now
            return row, token

    def confirm_token_hash(self, token_hash: str) -> None:
        with self.uow() as repo:
            row = repo.token_by_hash(token_hash)
            if row is None:
                raise NotFound("This confirmation link does not match any token.")
            if row.status == TokenStatus.PENDING:
                row.status = str(TokenStatus.ACTIVE)


def _view(row: Any) -> TokenView:
    return TokenView(
        id=row.id, kind=row.kind, status=row.status, limit_photos=int(row.limit_photos),
        limit_filesize=int(row.limit_filesize), email=row.email, forename=row.forename, surname=row.surname,
    )


