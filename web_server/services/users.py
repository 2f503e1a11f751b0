"""Operator users: creation and password login with throttling."""

from __future__ import annotations

import datetime as dt

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from sqlalchemy import select

from web_server.errors import Conflict, Unauthorized, ValidationFailed
from web_server.extensions import db
from web_server.models import User
from web_server.services.grammar import is_ascii_digits, text_problem

_hasher = PasswordHasher()
# Verifying against a dummy hash when the user does not exist keeps the response time the same,
# so a login form does not tell which usernames exist.
_DUMMY_HASH = _hasher.hash("not-a-real-password")
MIN_PASSWORD_LENGTH = 12


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


def authenticate(username: str, password: str, *, now: dt.datetime | None = None) -> User:
    """Return the user if the password is right; count failures and lock after too many.

    Raises:
        Unauthorized: wrong username or password, or the account is locked for a while.
    """
    now = now or dt.datetime.now(dt.UTC)
    if text_problem(username):
        # No such user can exist (and PostgreSQL cannot compare a NUL): the same answer, the
        # same time, as a wrong password.
        _verify(_DUMMY_HASH, password)
        raise Unauthorized("Wrong username or password.")
    user = db.session.scalar(
        select(User).where(User.username == username.strip()).with_for_update()
    )
    if user is None or not user.is_enabled:
        _verify(_DUMMY_HASH, password)
        raise Unauthorized("Wrong username or password.")
    if user.locked_until and user.locked_until > now:
        _verify(_DUMMY_HASH, password)  # the same time as a real check: no timing tell
        raise Unauthorized("Too many failed logins; try again in a few minutes.")
    if not _verify(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= current_app.config["LOGIN_MAX_FAILURES"]:
            lockout = current_app.config["LOGIN_LOCKOUT_SECONDS"]
            user.locked_until = now + dt.timedelta(seconds=lockout)
            user.failed_logins = 0
        db.session.flush()
        raise Unauthorized("Wrong username or password.")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    db.session.flush()
    return user


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
