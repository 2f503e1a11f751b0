"""OAuth tokens of KIS and Kiwoom accounts: issued once, refreshed before expiry, never doubled.

Three locks make each issuance happen once across every process and host (DESIGN §4):

1. A session-level advisory lock per app key (``web_server.locks``, on its own connection) makes
   issuance single-flight: a request that finds no valid token waits for an issuance already
   under way and then uses its result instead of asking again. The refresh job only *tries* this
   lock and skips an app key another process is serving.
2. The token row is locked ``FOR UPDATE`` while the broker is asked (in the job ``FOR UPDATE SKIP
   LOCKED``: a row another process holds is skipped), so revocation or deletion cannot interleave
   with a refresh.
3. ``system.token_issuance_windows`` records each attempt per app key, committed *before* the
   broker is called, so the broker's issuance limit (KIS: one a minute, EGW00133) holds even when
   a process dies mid-call and another takes over.

The window is kept on one clock, the database's (``clock_timestamp()``), never a host's: a host
whose clock runs ahead cannot open it early. It is counted from the *latest* moment the broker
may have received the request: recorded when the request is sent, and again when its answer (or
its failure) comes back, since a request that took 2 s to reach the broker started the broker's
minute 2 s late. And it is longer than the broker's by a margin (``TOKEN_ISSUE_MARGIN_SECONDS``,
2 s) for the broker's own clock and the next request's network path.

A failure keeps the old token in use while it is valid, records ``last_error``, and schedules the
next attempt with exponential backoff (``next_attempt_at``; on the issuance window when the account
has no token yet). This module deliberately runs its own
short transactions (like the order intent of STYLE H8): the attempt must be on record before the
broker is asked, whatever the caller's transaction does.

Each issuance, failed issuance and revocation notifies :data:`CHANNEL` with the account's id
(nothing else: no token, no key) in the transaction that records it, so PostgreSQL delivers it
at commit; the operator's live pages (``services.console.token_events``) re-read the token's
state when they hear it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import and_, exists, or_, select, text
from sqlalchemy.orm import Session

from brokers import utc_now
from web_server.errors import (
    BrokerError,
    BrokerRateLimited,
    BrokerUnavailable,
    GatewayError,
    NotFound,
)
from web_server.extensions import db
from web_server.locks import LockTimeout, advisory_lock, lock_key
from web_server.models import Account, SecuritiesToken, TokenIssuanceWindow

log = logging.getLogger(__name__)

#: The PostgreSQL channel a token change is announced on; the payload is the account id only.
CHANNEL = "token_events"

# Seconds between issuance attempts with one app key (overridable: TOKEN_ISSUE_INTERVAL_SECONDS).
# KIS allows one a minute (EGW00133). Kiwoom publishes no number: one a second keeps a retry loop
# from hammering it. The margin (TOKEN_ISSUE_MARGIN_SECONDS) comes on top.
ISSUE_INTERVAL_SECONDS = {"KIS": 60, "KIWOOM": 1}
ISSUE_MARGIN_SECONDS = 2.0
# A token this close to its expiry is not handed out: a call could outlive it.
USABLE_MARGIN = dt.timedelta(seconds=60)
MAX_BACKOFF_SECONDS = 1800


def now() -> dt.datetime:
    """Return the gateway's current time (injectable as ``app.extensions["gateway.clock"]``)."""
    clock = current_app.extensions.get("gateway.clock", utc_now)
    return clock()  # type: ignore[no-any-return]


def backoff_seconds(attempts: int, *, jitter: float | None = None) -> float:
    """Return the wait before retry number ``attempts`` after a failed issuance (30 s doubling)."""
    base = min(30.0 * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS)
    spread = random.uniform(0, 0.1) if jitter is None else jitter  # noqa: S311 - not crypto
    return base * (1 + spread)


def app_key_fingerprint(exchange: str, environment: str, app_key: str) -> str:
    """Return the SHA-256 that identifies an app key's issuance window (REAL and PAPER apart)."""
    return hashlib.sha256(f"{exchange}:{environment}:{app_key}".encode()).hexdigest()


def _announce(session: Session, account_id: int) -> None:
    """Tell the live pages the account's token changed (delivered when ``session`` commits)."""
    session.execute(
        text("SELECT pg_notify(:channel, :id)"), {"channel": CHANNEL, "id": str(account_id)}
    )


def _lock_key(fingerprint: str) -> int:
    return lock_key("token", fingerprint)


@dataclass(frozen=True)
class RefreshResult:
    """What one refresh did: ``issued``, ``fresh`` (nothing to do), ``deferred`` or ``failed``."""

    account_id: int
    outcome: str
    token: str | None = None
    error: BrokerError | None = None


def is_usable(token: SecuritiesToken | None, at: dt.datetime) -> bool:
    """Tell whether a token may still be handed to a broker call."""
    return token is not None and token.expires_at > at + USABLE_MARGIN


def is_due(token: SecuritiesToken | None, at: dt.datetime) -> bool:
    """Tell whether a token should be refreshed now (within the refresh margin of expiry)."""
    margin = dt.timedelta(seconds=current_app.config["TOKEN_REFRESH_MARGIN_SECONDS"])
    return token is None or token.expires_at <= at + margin


@contextlib.contextmanager
def _app_key_lock(fingerprint: str, *, wait: bool) -> Iterator[bool]:
    """Hold the app key's advisory lock; yield whether we got it.

    Raises:
        BrokerUnavailable: another process has held the lock for 30 s (a broker call hanging).
    """
    try:
        with advisory_lock(db.engine, _lock_key(fingerprint), wait=wait) as got:
            yield got
    except LockTimeout:
        raise BrokerUnavailable(
            "Another process has been asking the broker for this app key's token for 30 s; "
            "try again shortly.",
            retry_after=5,
        ) from None


def refresh_token(
    account_id: int, *, force: bool = False, stale_token: str | None = None, wait: bool = True
) -> RefreshResult:
    """Make sure the account has a valid token, asking the broker only when needed and allowed.

    Args:
        account_id: a KIS or Kiwoom account.
        force: issue even if the current token is not due (operator's "refresh now").
        stale_token: the broker just refused this token; replace it unless already replaced.
        wait: wait for another process's issuance (request path) instead of skipping (job).

    Raises:
        NotFound: no such securities account.
    """
    with Session(db.engine) as session:
        account = session.get(Account, account_id)
        if account is None or account.account_type != "SECURITIES_STOCK":
            raise NotFound(f"Securities account {account_id} does not exist.")
        fingerprint = app_key_fingerprint(account.exchange, account.environment, account.api_key)
    with _app_key_lock(fingerprint, wait=wait) as got:
        if not got:
            return RefreshResult(account_id, "deferred")
        return _refresh_locked(
            account_id, fingerprint, force=force, stale_token=stale_token, skip_locked=not wait
        )


def _refresh_locked(
    account_id: int, fingerprint: str, *, force: bool, stale_token: str | None, skip_locked: bool
) -> RefreshResult:
    from web_server.services.brokers import adapter_for

    with Session(db.engine, expire_on_commit=False) as session, session.begin():
        account = session.get(Account, account_id)
        if account is None:
            raise NotFound(f"Securities account {account_id} does not exist.")
        token = session.scalar(
            select(SecuritiesToken)
            .where(SecuritiesToken.account_id == account_id)
            .with_for_update(skip_locked=skip_locked)
        )
        if (
            token is None
            and skip_locked
            and session.scalar(select(exists().where(SecuritiesToken.account_id == account_id)))
        ):
            return RefreshResult(account_id, "deferred")  # another process holds the row
        at = now()
        current = token.access_token if token is not None else None
        if stale_token is not None and current is not None and current != stale_token:
            if is_usable(token, at):
                return RefreshResult(account_id, "fresh", current)  # already replaced
        elif not force and stale_token is None and token is not None and not is_due(token, at):
            return RefreshResult(account_id, "fresh", current)
        usable = current if stale_token is None and is_usable(token, at) else None
        if not force and token is not None and token.next_attempt_at and token.next_attempt_at > at:
            return _deferred(account_id, usable, token.next_attempt_at, token.last_error, at)
        refusal = _claim_issuance_window(account, fingerprint, at, respect_backoff=not force)
        if refusal is not None:
            retry_at, last_error = refusal
            if token is not None:
                token.next_attempt_at = max(token.next_attempt_at or retry_at, retry_at)
            return _deferred(account_id, usable, retry_at, last_error, at)

        try:
            issued = adapter_for(account, token_provider=_NoTokenProvider()).issue_token()
        except Exception as exc:  # noqa: BLE001 - every failure is recorded and backed off
            error = exc if isinstance(exc, BrokerError) else _unexpected(account_id, exc)
            failures = _record_failure(fingerprint, error, at)
            if token is not None:
                token.refresh_attempts += 1
                token.last_error = _describe(error)
                token.last_error_at = at
                token.next_attempt_at = at + dt.timedelta(
                    seconds=backoff_seconds(token.refresh_attempts)
                )
            _announce(session, account_id)
            log.warning(
                "account %s: token issuance failed (%d in a row): %s",
                account_id,
                failures,
                _describe(error),
            )
            return RefreshResult(account_id, "failed", usable, error)

        if token is None:
            token = SecuritiesToken(account_id=account_id)
            session.add(token)
        token.access_token = issued.access_token
        token.token_type = issued.token_type or "Bearer"
        token.expires_in = issued.expires_in
        token.expires_at = issued.expires_at
        token.last_refreshed_at = at
        token.refresh_attempts = 0
        token.last_error = None
        token.last_error_at = None
        token.next_attempt_at = None
        _record_issued(fingerprint, at)
        _announce(session, account_id)
        log.info("account %s: token issued, expires %s", account_id, issued.expires_at)
        return RefreshResult(account_id, "issued", issued.access_token)


def _deferred(
    account_id: int,
    usable: str | None,
    retry_at: dt.datetime,
    last_error: str | None,
    at: dt.datetime,
) -> RefreshResult:
    seconds = max((retry_at - at).total_seconds(), 1.0)
    if last_error:
        error: BrokerError = BrokerUnavailable(
            f"The last token issuance failed ({last_error}); next attempt in {seconds:.0f} s.",
            retry_after=seconds,
        )
    else:
        error = BrokerRateLimited(
            f"A token was asked for with this app key less than the broker's interval ago; "
            f"next attempt in {seconds:.0f} s.",
            retry_after=seconds,
        )
    return RefreshResult(account_id, "deferred", usable, error)


def _claim_issuance_window(
    account: Account, fingerprint: str, at: dt.datetime, *, respect_backoff: bool = True
) -> tuple[dt.datetime, str | None] | None:
    """Record an attempt for this app key, committed at once.

    Returns:
        None when the attempt may go ahead; otherwise when the next one is allowed and the last
        error, if a failure (not the broker's interval) is the reason to wait.
    """
    interval = dt.timedelta(seconds=issue_interval_seconds(account.exchange))
    with Session(db.engine) as window_session, window_session.begin():
        # The database's clock, the one every host shares (the host's ``at`` may run ahead).
        db_now: dt.datetime = window_session.scalar(text("SELECT clock_timestamp()"))
        window_session.execute(
            text(
                "INSERT INTO system.token_issuance_windows"
                " (app_key_fingerprint, exchange, environment) VALUES (:fp, :exchange, :env)"
                " ON CONFLICT DO NOTHING"
            ),
            {"fp": fingerprint, "exchange": account.exchange, "env": account.environment},
        )
        window = window_session.get(TokenIssuanceWindow, fingerprint, with_for_update=True)
        assert window is not None
        # Where the window ends, on the host's clock: only to tell callers when to come back.
        interval_ends = at + ((window.last_attempt_at or db_now) + interval - db_now)
        backing_off = (
            respect_backoff and window.next_attempt_at is not None and window.next_attempt_at > at
        )
        if backing_off:
            assert window.next_attempt_at is not None
            return max(window.next_attempt_at, interval_ends), window.last_error
        if window.last_attempt_at is not None and window.last_attempt_at + interval > db_now:
            return interval_ends, None
        window.last_attempt_at = db_now
    return None


def issue_interval_seconds(exchange: str) -> float:
    """Return the seconds between two token requests of one app key, margin included."""
    configured = current_app.config.get("TOKEN_ISSUE_INTERVAL_SECONDS") or {}
    interval = float(configured.get(exchange, ISSUE_INTERVAL_SECONDS.get(exchange, 1)))
    return interval + float(
        current_app.config.get("TOKEN_ISSUE_MARGIN_SECONDS", ISSUE_MARGIN_SECONDS)
    )


def _record_answered(session: Session, fingerprint: str) -> None:
    """Move the window's start to now (database clock): the broker answered only now.

    The broker may have received the request at any moment until its answer; counting the
    window from the send alone would let the next request reach it too early when this one was
    slow on the way.
    """
    session.execute(
        text(
            "UPDATE system.token_issuance_windows"
            " SET last_attempt_at = greatest(last_attempt_at, clock_timestamp())"
            " WHERE app_key_fingerprint = :fp"
        ),
        {"fp": fingerprint},
    )


def _record_issued(fingerprint: str, at: dt.datetime) -> None:
    with Session(db.engine) as window_session, window_session.begin():
        _record_answered(window_session, fingerprint)
        window_session.execute(
            text(
                "UPDATE system.token_issuance_windows SET last_issued_at = :at,"
                " issued_count = issued_count + 1, failures = 0, last_error = NULL,"
                " last_error_at = NULL, next_attempt_at = NULL WHERE app_key_fingerprint = :fp"
            ),
            {"fp": fingerprint, "at": at},
        )


def _record_failure(fingerprint: str, error: BrokerError, at: dt.datetime) -> int:
    """Count a failed issuance on the app key's window and schedule the next attempt."""
    with Session(db.engine) as window_session, window_session.begin():
        _record_answered(window_session, fingerprint)
        window = window_session.get(TokenIssuanceWindow, fingerprint, with_for_update=True)
        if window is None:
            return 0
        window.failures += 1
        window.last_error = _describe(error)
        window.last_error_at = at
        window.next_attempt_at = at + dt.timedelta(seconds=backoff_seconds(window.failures))
        return window.failures


def _unexpected(account_id: int, exc: Exception) -> BrokerError:
    # A broker answer the adapter could not read (or a bug): logged with its traceback, recorded
    # like any failure, and never allowed to stop the refresh of other accounts.
    log.error("account %s: token issuance failed unexpectedly", account_id, exc_info=exc)
    return BrokerUnavailable(f"Token issuance failed unexpectedly ({type(exc).__name__}).")


def _describe(exc: BrokerError) -> str:
    # Codes and the broker's message only: never a token, key or secret.
    parts = [exc.code]
    if exc.broker_code:
        parts.append(str(exc.broker_code))
    if exc.broker_message:
        parts.append(str(exc.broker_message)[:200])
    return " ".join(parts)


class _NoTokenProvider:
    """Stands in while a token is being issued: issuance itself needs no token."""

    def get(self) -> str:
        raise RuntimeError("issuing a token needs no token")

    def invalidate(self, token: str) -> str:
        raise RuntimeError("issuing a token needs no token")


def due_account_ids(limit: int = 5000) -> list[int]:
    """Return securities accounts whose token is missing or due.

    The first query is seed 002's (``expires_at <= now() + margin``, index-backed). Each account
    is then refreshed with its token row locked ``FOR UPDATE SKIP LOCKED`` (``_refresh_locked``):
    a row another process is working on is skipped, not waited for.
    """
    at = now()
    margin = dt.timedelta(seconds=current_app.config["TOKEN_REFRESH_MARGIN_SECONDS"])
    with Session(db.engine) as session, session.begin():
        due = session.scalars(
            select(SecuritiesToken.account_id)
            .join(Account, Account.id == SecuritiesToken.account_id)
            .where(
                SecuritiesToken.expires_at <= at + margin,
                Account.is_active.is_(True),
                or_(
                    SecuritiesToken.next_attempt_at.is_(None), SecuritiesToken.next_attempt_at <= at
                ),
            )
            .order_by(SecuritiesToken.expires_at)
            .limit(limit)
        ).all()
        missing = session.scalars(
            select(Account.id)
            .where(
                and_(Account.account_type == "SECURITIES_STOCK", Account.is_active.is_(True)),
                ~exists().where(SecuritiesToken.account_id == Account.id),
            )
            .order_by(Account.id)
            .limit(limit)
        ).all()
    return list(missing) + list(due)


def refresh_due_tokens() -> dict[str, int]:
    """The refresh job: refresh every due token once; return counts by outcome."""
    counts: dict[str, int] = {}
    for account_id in due_account_ids():
        try:
            outcome = refresh_token(account_id, wait=False).outcome
        except NotFound:
            outcome = "gone"
        except Exception:  # noqa: BLE001 - one bad account must not stop the others
            log.exception("account %s: token refresh failed", account_id)
            outcome = "error"
        counts[outcome] = counts.get(outcome, 0) + 1
    if counts:
        log.info("token refresh: %s", ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return counts


def revoke_at_broker(account: Account, access_token: str) -> None:
    """Ask the broker to revoke a token (account deleted, keys replaced).

    Raises:
        BrokerError: the broker refused or could not be reached.
    """
    from web_server.services.brokers import adapter_for

    adapter_for(account, token_provider=_NoTokenProvider()).revoke_token(access_token)


def revoke_and_forget(account: Account) -> None:
    """Revoke the account's current token at the broker and delete it (keys replaced, deleted).

    Taken under the app key's lock, so a refresh running at the same moment either finishes
    first (and its token is the one revoked) or starts after (and finds no token to reuse).
    A broker that cannot be reached does not block the operator: the failure is logged and the
    token, now forgotten, dies at its expiry.
    """
    forget_token(account.id)
    fingerprint = app_key_fingerprint(account.exchange, account.environment, account.api_key)
    with _app_key_lock(fingerprint, wait=True), Session(db.engine) as session, session.begin():
        token = session.scalar(
            select(SecuritiesToken)
            .where(SecuritiesToken.account_id == account.id)
            .with_for_update()
        )
        if token is None:
            return
        try:
            revoke_at_broker(account, token.access_token)
        except GatewayError as exc:
            log.warning("account %s: token revocation failed: %s", account.id, exc.code)
        session.delete(token)
        _announce(session, account.id)


def token_status(account: Account, at: dt.datetime | None = None) -> dict[str, Any]:
    """Describe an account's token for the API, the UI and ``gateway tokens status``; no secret."""
    at = at or now()
    token = account.token
    if token is None:
        window = db.session.get(
            TokenIssuanceWindow,
            app_key_fingerprint(account.exchange, account.environment, account.api_key),
        )
        if window is None or not window.last_error:
            return {"state": "missing"}
        return {
            "state": "missing",
            "refresh_attempts": window.failures,
            "last_error": window.last_error,
            "last_error_at": window.last_error_at,
            "next_attempt_at": window.next_attempt_at,
        }
    state = "valid" if is_usable(token, at) else "expired"
    if state == "valid" and is_due(token, at):
        state = "due"
    return {
        "state": state,
        "expires_at": token.expires_at,
        "last_refreshed_at": token.last_refreshed_at,
        "refresh_attempts": token.refresh_attempts,
        "last_error": token.last_error,
        "last_error_at": token.last_error_at,
        "next_attempt_at": token.next_attempt_at,
    }


# -- this process's copy of each account's token (issue 12: no token read per order) ---------
#
# The database stays the source of truth: a token is copied here when read from it, and used
# until it is within USABLE_MARGIN of its expiry, like a stored one. Issuing, revoking or a
# broker's refusal in this process forgets the copy; another process's copy of a token replaced
# meanwhile is at worst refused by the broker once, which re-reads the stored token
# (``token_provider.AccountTokenProvider.invalidate``), as a refusal always did.

_TOKEN_CACHE_LOCK = threading.Lock()


def provider_identity(account: Account, base_url: str) -> str:
    """Return what a cached token is valid for: the account's app key at its host.

    New keys or a new host name another cache entry, so a token is never taken for the wrong
    key, nor for another account that reuses a deleted one's id.
    """
    key = app_key_fingerprint(account.exchange, account.environment, account.api_key)
    return f"{account.id}:{key}:{base_url}"


def _token_cache() -> dict[tuple[int, str], tuple[str, dt.datetime]]:
    cache = current_app.extensions.get("gateway.token_cache")
    if cache is None:
        with _TOKEN_CACHE_LOCK:
            cache = current_app.extensions.setdefault("gateway.token_cache", {})
    return cache  # type: ignore[no-any-return]


def cached_token(account_id: int, identity: str) -> str | None:
    """Return this process's copy of the account's token if it is still usable, else None."""
    entry = _token_cache().get((account_id, identity))
    if entry is None or entry[1] <= now() + USABLE_MARGIN:
        return None
    return entry[0]


def remember_token(
    account_id: int, identity: str, access_token: str, expires_at: dt.datetime
) -> None:
    """Keep a copy of a token just read from the database."""
    cache = _token_cache()
    with _TOKEN_CACHE_LOCK:
        cache[(account_id, identity)] = (access_token, expires_at)


def forget_token(account_id: int) -> None:
    """Drop this process's copies of the account's token (issued anew, revoked, refused)."""
    cache = _token_cache()
    with _TOKEN_CACHE_LOCK:
        for key in [key for key in cache if key[0] == account_id]:
            del cache[key]
