"""API keys: how strategies authenticate to ``/api/v1``."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from web_server.database import Base

SCOPES = ("orders:write", "orders:read", "holdings:read", "accounts:read", "admin")


class ApiKey(Base):
    """A hashed API key with its scopes and, optionally, the accounts it may touch."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint(
            "scopes <@ ARRAY['orders:write', 'orders:read', 'holdings:read', 'accounts:read',"
            " 'admin']::text[] AND cardinality(scopes) > 0",
            name="scopes",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    account_ids: Mapped[list[int] | None] = mapped_column(ARRAY(Integer))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]

    def allows_account(self, account_id: int) -> bool:
        """Tell whether this key may touch ``account_id``."""
        return self.account_ids is None or account_id in self.account_ids

    def __repr__(self) -> str:
        return f"<ApiKey {self.id} {self.label!r} gw_{self.prefix}_… {self.scopes}>"
