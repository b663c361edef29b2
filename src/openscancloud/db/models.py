"""SQLAlchemy models. The database is the single source of truth shared by every API process and worker.

Times are naive UTC datetimes (SQLite keeps no zone); `utcnow()` is the only clock used to write them.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Token(Base):
    """An API token. Only the sha256 of the secret is stored; `hint` (first characters) helps humans."""

    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # public | private | worker | admin
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | pending | revoked
    label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    forename: Mapped[str | None] = mapped_column(String(200), nullable=True)
    surname: Mapped[str | None] = mapped_column(String(200), nullable=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True, index=True)
    limit_photos: Mapped[int] = mapped_column(Integer)
    limit_filesize: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class LedgerEntry(Base):
    """One credit movement. Positive amounts give credit (grant, top-up, refund), negative ones take it."""

    __tablename__ = "ledger"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("tokens.id"), index=True)
    project_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(16))  # grant | topup | charge | refund
    amount_gb: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("token_id", "name", name="uq_project_token_name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("tokens.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), index=True)
    photos: Mapped[int] = mapped_column(Integer)
    parts: Mapped[int] = mapped_column(Integer)
    filesize: Mapped[int] = mapped_column(BigInteger)
    quality: Mapped[str] = mapped_column(String(16), default="standard")
    # JSON of the other processing options (masks, texture_size, target_faces, formats); None = defaults
    options: Mapped[str | None] = mapped_column(Text, nullable=True)
    charged_gb: Mapped[float] = mapped_column(Float, default=0.0)
    upload_generation: Mapped[int] = mapped_column(Integer, default=0)
    keep_for_research: Mapped[bool] = mapped_column(Boolean, default=False)
    webhook_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    result_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    result_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    upload_expires_at: Mapped[datetime] = mapped_column(DateTime)
    queued_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    delete_after: Mapped[datetime | None] = mapped_column(DateTime, nullable=True, index=True)
    data_deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    # Public-token projects only: the unguessable key REST callers must send as X-Project-Key (see
    # docs/security.md). Private projects have None: their owner's token is secret enough.
    project_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Set while one request joins and checks the parts (start): other starts, resets, cancels, deletes and
    # uploads answer 409 instead of touching the files under it.
    starting_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # Who created it (client address; public-token quotas count per client).
    client_ip: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)


class Part(Base):
    """A completely received upload part (partial `Content-Range` uploads only exist in storage)."""

    __tablename__ = "parts"
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class PartWriter(Base):
    """The one request currently writing a part. A second writer gets 409 while this row is fresh; the
    writer refreshes `touched_at` while bytes flow, so a row left by a dead process goes stale quickly."""

    __tablename__ = "part_writers"
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    writer: Mapped[str] = mapped_column(String(32))
    touched_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Job(Base):
    """One processing run of a project, claimed by workers under a lease."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_claim", "status", "priority", "queued_at"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))  # queued | running | done | failed | cancelled
    priority: Mapped[int] = mapped_column(Integer)  # lower runs first: private 0, public 1
    quality: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    stage: Mapped[str | None] = mapped_column(String(64), nullable=True)
    stage_started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)  # for the ETA
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    log_tail: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    user_error: Mapped[bool] = mapped_column(Boolean, default=False)
    report: Mapped[str | None] = mapped_column(Text, nullable=True)
    queued_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Worker(Base):
    __tablename__ = "workers"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("tokens.id"))
    name: Mapped[str] = mapped_column(String(200))
    cpus: Mapped[int] = mapped_column(Integer, default=0)
    ram_mb: Mapped[int] = mapped_column(Integer, default=0)
    gpu: Mapped[str | None] = mapped_column(String(200), nullable=True)
    registered_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class TokenRequest(Base):
    """A `/requestToken` call: kept for rate limiting per address and per IP, and (when the server cannot mail
    the token itself) as the request the operator approves (`tokens requests` / `tokens approve`)."""

    __tablename__ = "token_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    ip: Mapped[str] = mapped_column(String(64), index=True)
    token_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    forename: Mapped[str | None] = mapped_column(String(100), nullable=True)
    surname: Mapped[str | None] = mapped_column(String(100), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="approved")
    approved_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class ShareLink(Base):
    """A read-only link to a finished project's viewer and files; works without a token until revoked."""

    __tablename__ = "share_links"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
