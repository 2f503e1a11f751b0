"""Broker accounts and their OAuth tokens (seed 002)."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import conv

from web_server.crypto import Encrypted
from web_server.database import Base


class Exchange(enum.StrEnum):
    """The brokers the gateway speaks to."""

    UPBIT = "UPBIT"
    BITHUMB = "BITHUMB"
    BINANCE = "BINANCE"
    KIS = "KIS"
    KIWOOM = "KIWOOM"


class AccountType(enum.StrEnum):
    """What an account trades."""

    CRYPTO = "CRYPTO"
    SECURITIES_STOCK = "SECURITIES_STOCK"


class Environment(enum.StrEnum):
    """Real money or the broker's paper-trading environment."""

    REAL = "REAL"
    PAPER = "PAPER"


CRYPTO_EXCHANGES = frozenset({Exchange.UPBIT, Exchange.BITHUMB, Exchange.BINANCE})
SECURITIES_EXCHANGES = frozenset({Exchange.KIS, Exchange.KIWOOM})


def account_type_for(exchange: Exchange) -> AccountType:
    """Return the account type an exchange implies."""
    return AccountType.CRYPTO if exchange in CRYPTO_EXCHANGES else AccountType.SECURITIES_STOCK


class Account(Base):
    """A broker account; its keys and configuration are stored encrypted.

    ``access_token`` and ``token_expires_at`` are seed 002's legacy per-account token columns. They
    are kept so the schema matches the seed, but new code keeps tokens in ``securities_tokens``.
    """

    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint(
            "exchange IN ('UPBIT', 'BITHUMB', 'BINANCE', 'KIS', 'KIWOOM')", name="exchange"
        ),
        CheckConstraint("environment IN ('REAL', 'PAPER')", name="environment"),
        CheckConstraint(
            "(account_type = 'CRYPTO' AND exchange IN ('UPBIT', 'BITHUMB', 'BINANCE'))"
            " OR (account_type = 'SECURITIES_STOCK' AND exchange IN ('KIS', 'KIWOOM'))",
            name="account_type_exchange",
        ),
        Index("idx_account_type", "account_type"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    exchange: Mapped[str] = mapped_column(String(20))
    environment: Mapped[str] = mapped_column(String(10), server_default="REAL")
    account_type: Mapped[str] = mapped_column(String(20), server_default="CRYPTO")
    api_key_ciphertext: Mapped[str] = mapped_column("api_key", Text)
    api_secret_ciphertext: Mapped[str] = mapped_column("api_secret", Text)
    securities_config_ciphertext: Mapped[str | None] = mapped_column("securities_config", Text)
    access_token_ciphertext: Mapped[str | None] = mapped_column("access_token", Text)
    token_expires_at: Mapped[dt.datetime | None]
    base_url: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    # Trades with a local simulator, not a broker (migration 0016; set by `gateway demo`).
    is_simulated: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # When the holdings snapshot was last read from the broker (an empty snapshot is one too).
    holdings_as_of: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now(), onupdate=func.now())

    api_key = Encrypted("api_key_ciphertext")
    api_secret = Encrypted("api_secret_ciphertext")
    securities_config_json = Encrypted("securities_config_ciphertext")
    legacy_access_token = Encrypted("access_token_ciphertext")

    token: Mapped[SecuritiesToken | None] = relationship(
        back_populates="account", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<Account {self.id} {self.name!r} {self.exchange} {self.environment}>"


class SecuritiesToken(Base):
    """The current OAuth token of a KIS or Kiwoom account, one row per account (seed 002).

    ``refresh_attempts``, ``last_error``, ``last_error_at`` and ``next_attempt_at`` are the refresh
    job's bookkeeping (backoff after a failure), beyond the seed's columns.
    """

    __tablename__ = "securities_tokens"
    __table_args__ = (
        UniqueConstraint("account_id", name=conv("securities_tokens_account_id_key")),
        Index("idx_securities_token_account_id", "account_id"),
        Index("idx_securities_token_expires_at", "expires_at"),
        Index("idx_securities_token_last_refreshed", "last_refreshed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    access_token_ciphertext: Mapped[str] = mapped_column("access_token", Text)
    token_type: Mapped[str] = mapped_column(String(20), server_default="Bearer")
    expires_in: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.current_timestamp())
    last_refreshed_at: Mapped[dt.datetime] = mapped_column(server_default=func.current_timestamp())
    refresh_attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[dt.datetime | None]
    next_attempt_at: Mapped[dt.datetime | None]

    access_token = Encrypted("access_token_ciphertext")

    account: Mapped[Account] = relationship(back_populates="token")

    def __repr__(self) -> str:
        return f"<SecuritiesToken account={self.account_id} expires_at={self.expires_at}>"
