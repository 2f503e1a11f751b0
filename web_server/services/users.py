"""Operator users: creation and password login with throttling per username and address."""

from __future__ import annotations

import datetime as dt
import hashlib

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from web_server.errors import Conflict, Unauthorized, ValidationFailed
from web_server.extensions import db
from web_server.models import LoginThrottle, User
from web_server.services.grammar import is_ascii_digits, text_problem

_hasher = PasswordHasher()
# Verifying against a dummy hash when the user does not exist keeps the response time the same,
# so a login form does not tell which usernames exist.
_DUMMY_HASH = _hasher.hash("not-a-real-password")
MIN_PASSWORD_LENGTH = 12


class LoginThrottled(Unauthorized):
    """Too many failed logins for a username or from an address (the same answer for both)."""

    code = "login_throttled"
    title = "Too many failed logins"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


def create_user(username: str, password: str) -> User:
    """Create an operator with an argon2-hashed password.

    Raises:
        ValidationFailed: the username or password is unacceptable.
        Conflict: the username is taken.
    """
    username = username.strip()
    problems: dict[str, list[str]] = {}
    if not 3 <= len(username) <= 64:
        problems["username"] = ["must be 3 to 64 characters"]
    elif problem := text_problem(username):
        problems["username"] = [problem]
    if len(password) < MIN_PASSWORD_LENGTH:
        problems["password"] = [f"must be at least {MIN_PASSWORD_LENGTH} characters"]
    if problems:
        raise ValidationFailed("The user cannot be created.", errors=problems)
    if db.session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"A user named {username!r} already exists.")
    user = User(username=username, password_hash=_hasher.hash(password))
    db.session.add(user)
    db.session.flush()
    return user


def get_enabled_user(user_id: str) -> User | None:
    """Return the enabled user with this id (as a login session stores it), or None."""
    valid = is_ascii_digits(user_id) and len(user_id) <= 18
    user = db.session.get(User, int(user_id)) if valid else None
    return user if user is not None and user.is_enabled else None


def authenticate(
    username: str,
    password: str,
    *,
    address: str | None = None,
    now: dt.datetime | None = None,
) -> User:
    """Return the user if the password is right; throttle failures per username and per address.

    Every username is counted, existing or not, and a locked one answers exactly as a locked
    address does, with the same time spent: the answers never tell which usernames exist. A
    success clears the username's count but not the address's, so an attacker who owns one account
    cannot reset the count of the address they guess from.

    Raises:
        Unauthorized: wrong username or password, or too many failures for this username or from
            this address (``login_throttled``, with ``retry_after``).
    """
    now = now or dt.datetime.now(dt.UTC)
    name = username.strip()
    valid_name = not text_problem(username)
    keys = [_user_key(name if valid_name else username)]
    if address:
        keys.append(f"addr:{address[:64]}")
    counters = _lock_counters(keys, now)
    locked = [c.locked_until for c in counters if c.locked_until and c.locked_until > now]
    if locked:
        _verify(_DUMMY_HASH, password)  # the same time as a real check: no timing tell
        retry_after = max(1, int((max(locked) - now).total_seconds()) + 1)
        raise LoginThrottled(
            "Too many failed logins for this username or from this address; try again in "
            f"{(retry_after + 59) // 60} minute(s).",
            retry_after=retry_after,
        )
    user = None
    if valid_name:
        # No NUL-bearing name can exist (and PostgreSQL cannot compare one): same path, same time.
        user = db.session.scalar(select(User).where(User.username == name))
    if user is None or not user.is_enabled:
        _verify(_DUMMY_HASH, password)
        _count_failure(counters, now)
        raise Unauthorized("Wrong username or password.")
    if not _verify(user.password_hash, password):
        _count_failure(counters, now)
        raise Unauthorized("Wrong username or password.")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    db.session.delete(counters[0])  # the username's count; the address keeps its own
    user.last_login_at = now
    db.session.flush()
    return user


def _user_key(username: str) -> str:
    # Hashed: the table fills with whatever strangers type as usernames.
    digest = hashlib.sha256(username.casefold().encode("utf-8", "surrogatepass")).hexdigest()
    return f"user:{digest}"


def _lock_counters(keys: list[str], now: dt.datetime) -> list[LoginThrottle]:
    """Return the counters of ``keys`` (created when missing), locked, in ``keys`` order."""
    db.session.execute(
        insert(LoginThrottle)
        .values([{"key": key, "failures": 0, "window_started_at": now} for key in keys])
        .on_conflict_do_nothing(index_elements=["key"])
    )
    # Locked in key order, whoever asks: two logins never wait on each other crosswise.
    rows = db.session.scalars(
        select(LoginThrottle)
        .where(LoginThrottle.key.in_(keys))
        .order_by(LoginThrottle.key)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    by_key = {row.key: row for row in rows}
    return [by_key[key] for key in keys]


def _count_failure(counters: list[LoginThrottle], now: dt.datetime) -> None:
    window = dt.timedelta(seconds=current_app.config["LOGIN_LOCKOUT_SECONDS"])
    limits = [current_app.config["LOGIN_MAX_FAILURES"]]
    limits.append(current_app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"])
    for counter, limit in zip(counters, limits, strict=False):
        if counter.window_started_at + window <= now:
            counter.failures = 0
            counter.window_started_at = now
        counter.failures += 1
        if counter.failures >= limit:
            counter.locked_until = now + window
            counter.failures = 0
            counter.window_started_at = now
    db.session.flush()


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
