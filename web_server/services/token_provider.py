"""The token provider a KIS or Kiwoom adapter gets (``services/brokers.py``).

It answers from this process's copy of the token, else the stored token, else a new one;
``services/tokens.py`` issues and refreshes them and keeps the copies.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from web_server.errors import BrokerUnavailable
from web_server.extensions import db
from web_server.models import SecuritiesToken
from web_server.services.tokens import (
    RefreshResult,
    cached_token,
    forget_token,
    is_usable,
    now,
    refresh_token,
    remember_token,
)


class AccountTokenProvider:
    """The ``TokenProvider`` an adapter of one account gets: stored token, or one issued now.

    Given ``identity`` (what the account's adapter was built from: its app key and host, see
    ``tokens.provider_identity``), it keeps a copy of the stored token in this process (see
    "this process's copy" in ``services/tokens.py``); without, it reads the database on every
    ``get``.
    """

    def __init__(self, account_id: int, identity: str | None = None) -> None:
        self.account_id = account_id
        self.identity = identity

    def in_memory(self) -> bool:
        """Tell whether this process holds a usable copy of the token (no read needed)."""
        return self.identity is not None and (
            cached_token(self.account_id, self.identity) is not None
        )

    def prefetch(self) -> None:
        """Copy the stored token into this process's cache if it is usable; never issue one."""
        if self.identity is None or cached_token(self.account_id, self.identity) is not None:
            return
        with Session(db.engine) as session:
            token = session.scalar(
                select(SecuritiesToken).where(SecuritiesToken.account_id == self.account_id)
            )
            if token is not None and is_usable(token, now()):
                remember_token(self.account_id, self.identity, token.access_token, token.expires_at)

    def get(self) -> str:
        """Return a valid token; issue one (single-flight) if none is.

        Raises:
            BrokerError: no valid token and the broker could not give one now.
        """
        if self.identity is not None:
            cached = cached_token(self.account_id, self.identity)
            if cached is not None:
                return cached
        with Session(db.engine) as session:
            token = session.scalar(
                select(SecuritiesToken).where(SecuritiesToken.account_id == self.account_id)
            )
            if is_usable(token, now()):
                assert token is not None
                if self.identity is not None:
                    remember_token(
                        self.account_id, self.identity, token.access_token, token.expires_at
                    )
                return token.access_token
        return self._require(refresh_token(self.account_id))

    def invalidate(self, token: str) -> str:
        """The broker refused ``token`` (expired, revoked): replace it once and return the new one.

        Raises:
            BrokerError: the broker could not give a new token now.
        """
        forget_token(self.account_id)
        return self._require(refresh_token(self.account_id, stale_token=token))

    @staticmethod
    def _require(result: RefreshResult) -> str:
        if result.token:
            return result.token
        if result.error is not None:
            raise result.error
        raise BrokerUnavailable("No valid token and none could be issued now.")
