"""Process coordination (seed 004 ``system.process_locks``)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Float, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from web_server.database import Base


class ProcessLock(Base):
    """Who holds a leader lock (a PostgreSQL advisory lock) and when it last proved it is alive."""

    __tablename__ = "process_locks"
    __table_args__ = (
        Index("idx_process_locks_heartbeat", text("heartbeat_ts DESC")),
        {"schema": "system"},
    )

    lock_name: Mapped[str] = mapped_column(Text, primary_key=True)
    instance_id: Mapped[str] = mapped_column(Text)
    acquired_ts: Mapped[dt.datetime]
    heartbeat_ts: Mapped[dt.datetime]
    host: Mapped[str] = mapped_column(Text)
    pid: Mapped[int] = mapped_column(Integer)


class TokenIssuanceWindow(Base):
    """When a token was last asked for with an app key, across all processes and hosts."""

    __tablename__ = "token_issuance_windows"
    __table_args__ = {"schema": "system"}

    app_key_fingerprint: Mapped[str] = mapped_column(Text, primary_key=True)
    exchange: Mapped[str] = mapped_column(String(20))
    environment: Mapped[str] = mapped_column(String(10))
    last_attempt_at: Mapped[dt.datetime | None]
    last_issued_at: Mapped[dt.datetime | None]
    issued_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[dt.datetime | None]
    failures: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[dt.datetime | None]


class RateLimitBucket(Base):
    """One broker budget's pacing state, when Redis is not configured (migration 0011).

    Written only by ``web_server.services.rate_limits.PostgresBuckets`` in plain SQL; the model
    exists so that models and migrations agree.
    """

    __tablename__ = "rate_limit_buckets"
    __table_args__ = {"schema": "system"}

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    tat: Mapped[float] = mapped_column(Float(precision=53), server_default=text("0"))
    banned_until: Mapped[dt.datetime | None]
    ban_reason: Mapped[str | None] = mapped_column(Text)
