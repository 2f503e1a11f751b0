"""Issued OAuth tokens (KIS, Kiwoom): expiry on the SimClock, revocation, ledger records."""

from __future__ import annotations

import enum
import hashlib
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from simulators.engine import Ledger, LedgerKind, SimClock

__all__ = ["IssuedToken", "TokenRegistry", "TokenStatus"]


class TokenStatus(enum.StrEnum):
    """What :meth:`TokenRegistry.status` says about a presented token."""

    VALID = "valid"
    EXPIRED = "expired"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class IssuedToken:
    """A token the simulator issued."""

    token: str
    app_key: str
    issued_at: datetime
    expires_at: datetime
    account_id: str | None = None
    revoked_at: datetime | None = None

    @property
    def fingerprint(self) -> str:
        """A short hash that identifies the token in the ledger without revealing it."""
        return hashlib.sha256(self.token.encode()).hexdigest()[:16]

    def expires_in(self, now: datetime) -> int:
        """Whole seconds left until expiry (0 when expired)."""
        return max(0, int((self.expires_at - now).total_seconds()))


class TokenRegistry:
    """Issued OAuth tokens (KIS, Kiwoom), with expiry on the SimClock; thread-safe.

    Generic on purpose: the facade implements its broker's rules (KIS re-serves the same token
    within 6 h and refuses a second issuance within a minute) with :meth:`latest` and
    :meth:`seconds_until_next_issue`. Issuances, re-serves, refusals and revocations go to the
    ledger with the app key and the token's fingerprint, never the token or a secret.

    Args:
        clock: the simulator's clock.
        ledger: the simulator's ledger.
        token_factory: ``app_key -> token`` when :meth:`issue` gets no token (random by default).
    """

    def __init__(
        self,
        clock: SimClock,
        ledger: Ledger,
        token_factory: Callable[[str], str] | None = None,
    ) -> None:
        self._clock = clock
        self._ledger = ledger
        self._factory = token_factory or (lambda _key: secrets.token_urlsafe(48))
        self._tokens: dict[str, IssuedToken] = {}
        self._last_issue: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def issue(
        self,
        app_key: str,
        lifetime: timedelta,
        *,
        token: str | None = None,
        account_id: str | None = None,
        **details: Any,
    ) -> IssuedToken:
        """Issue a token valid for ``lifetime`` and record it (``details`` go to the ledger)."""
        now = self._clock.now()
        issued = IssuedToken(
            token=token if token is not None else self._factory(app_key),
            app_key=app_key,
            issued_at=now,
            expires_at=now + lifetime,
            account_id=account_id,
        )
        with self._lock:
            self._tokens[issued.token] = issued
            self._last_issue[app_key] = now
        self._ledger.record(
            LedgerKind.TOKEN_ISSUED,
            account_id=account_id,
            app_key=app_key,
            token_fingerprint=issued.fingerprint,
            expires_at=issued.expires_at,
            **details,
        )
        return issued

    def record_reuse(self, issued: IssuedToken, **details: Any) -> None:
        """Record that an existing token was served again (KIS within 6 hours)."""
        self._ledger.record(
            LedgerKind.TOKEN_REUSED,
            account_id=issued.account_id,
            app_key=issued.app_key,
            token_fingerprint=issued.fingerprint,
            expires_at=issued.expires_at,
            **details,
        )

    def record_refusal(self, app_key: str | None, reason: str, **details: Any) -> None:
        """Record that the token endpoint refused ``app_key`` (rate rule, fault, bad secret)."""
        self._ledger.record(LedgerKind.TOKEN_REFUSED, app_key=app_key, reason=reason, **details)

    def status(self, token: str) -> TokenStatus:
        """Classify a presented token."""
        with self._lock:
            issued = self._tokens.get(token)
        if issued is None:
            return TokenStatus.UNKNOWN
        if issued.revoked_at is not None:
            return TokenStatus.REVOKED
        if issued.expires_at <= self._clock.now():
            return TokenStatus.EXPIRED
        return TokenStatus.VALID

    def lookup(self, token: str) -> IssuedToken | None:
        """Return the token if it is valid now, else None."""
        if self.status(token) is not TokenStatus.VALID:
            return None
        with self._lock:
            return self._tokens.get(token)

    def latest(self, app_key: str) -> IssuedToken | None:
        """Return the newest valid token of ``app_key``, or None."""
        now = self._clock.now()
        with self._lock:
            candidates = [
                t
                for t in self._tokens.values()
                if t.app_key == app_key and t.revoked_at is None and t.expires_at > now
            ]
        return max(candidates, key=lambda t: t.issued_at, default=None)

    def seconds_until_next_issue(self, app_key: str, window: timedelta) -> float:
        """Seconds (simulated) until ``app_key`` may be issued again under a one-per-window rule."""
        with self._lock:
            last = self._last_issue.get(app_key)
        if last is None:
            return 0.0
        return max(0.0, (last + window - self._clock.now()).total_seconds())

    def revoke(self, token: str, *, reason: str = "revoked") -> bool:
        """Revoke one token; return whether it was valid."""
        now = self._clock.now()
        with self._lock:
            issued = self._tokens.get(token)
            if issued is None or issued.revoked_at is not None:
                return False
            self._tokens[token] = _revoked(issued, now)
        self._ledger.record(
            LedgerKind.TOKEN_REVOKED,
            account_id=issued.account_id,
            app_key=issued.app_key,
            token_fingerprint=issued.fingerprint,
            reason=reason,
        )
        return issued.expires_at > now

    def revoke_all(self, *, reason: str = "maintenance") -> int:
        """Revoke every unrevoked, unexpired token at once; return how many."""
        now = self._clock.now()
        with self._lock:
            live = [t for t in self._tokens.values() if t.revoked_at is None and t.expires_at > now]
            for issued in live:
                self._tokens[issued.token] = _revoked(issued, now)
        self._ledger.record(LedgerKind.TOKENS_REVOKED_ALL, reason=reason, revoked=len(live))
        return len(live)


def _revoked(issued: IssuedToken, now: datetime) -> IssuedToken:
    return IssuedToken(
        issued.token, issued.app_key, issued.issued_at, issued.expires_at, issued.account_id, now
    )
