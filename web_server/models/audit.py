"""The operators' and admin keys' audit log (migration 0018): who did what, when, before, after."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Index, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from web_server.database import Base


class AuditEntry(Base):
    """One operator or admin-key action; ``before``/``after`` are redacted of secrets on write."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("idx_audit_log_ts", "ts"),
        Index("idx_audit_log_actor", "actor", "ts"),
        {"schema": "system"},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ts: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    target: Mapped[str | None] = mapped_column(Text)
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]
