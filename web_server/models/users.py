"""Operator users of the web UI."""

from __future__ import annotations

import datetime as dt

from flask_login import UserMixin
from sqlalchemy import Boolean, CheckConstraint, Integer, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from web_server.database import Base


class User(UserMixin, Base):
    """An operator who logs in to the web UI; the password is stored as an argon2 hash."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    is_enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    failed_logins: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    locked_until: Mapped[dt.datetime | None]
    last_login_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())

    @property
    def is_active(self) -> bool:  # type: ignore[override]
        """Tell Flask-Login whether the user may log in."""
        return self.is_enabled


class LoginThrottle(Base):
    """Failed logins per username (hashed; existing or not) or per client address (0016).

    Written only by ``web_server.services.users``; ``key`` is ``user:<sha256>`` or ``addr:<ip>``.
    """

    __tablename__ = "login_throttle"
    __table_args__ = (
        CheckConstraint("key ~ '^(user|addr):'", name="key_kind"),
        {"schema": "system"},
    )

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    window_started_at: Mapped[dt.datetime]
    locked_until: Mapped[dt.datetime | None]
