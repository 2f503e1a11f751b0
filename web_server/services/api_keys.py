"""API keys: created and shown once, stored hashed, checked on every API request."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence

from flask import g, has_request_context
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from web_server.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from web_server.extensions import db
from web_server.models import Account, ApiKey
from web_server.models.api_keys import SCOPES
from web_server.services.grammar import text_problem

_KEY_FORMAT = re.compile(r"^gw_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$")
# last_used_at is a hint for the operator, not an audit log: writing it on every request would
# turn every read into a write, so it is refreshed at most this often.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(
    label: str, scopes: Iterable[str], account_ids: Iterable[int] | None = None
) -> tuple[ApiKey, str]:
    """Create a key; return the row and the key itself, which is never retrievable again.

    Raises:
        ValidationFailed: a scope is unknown, the label is empty, or an account does not exist.
    """
    scopes = sorted(set(scopes))
    accounts = sorted(set(account_ids)) if account_ids else None
    problems: dict[str, list[str]] = {}
    if not label.strip() or len(label) > 100:
        problems["label"] = ["must be 1 to 100 characters"]
    elif problem := text_problem(label):
        problems["label"] = [problem]
    unknown = [s for s in scopes if s not in SCOPES]
    if not scopes or unknown:
        problems["scopes"] = [f"choose from {', '.join(SCOPES)}"]
    if accounts:
        found = set(db.session.scalars(select(Account.id).where(Account.id.in_(accounts))))
        missing = [a for a in accounts if a not in found]
        if missing:
            problems["account_ids"] = [f"no such account: {', '.join(map(str, missing))}"]
    if problems:
        raise ValidationFailed("The API key cannot be created.", errors=problems)
    prefix = "".join(secrets.choice("abcdefghijkmnopqrstuvwxyz23456789") for _ in range(12))
    key = f"gw_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(
        label=label.strip(), prefix=prefix, key_hash=_hash(key), scopes=scopes, account_ids=accounts
    )
    db.session.add(row)
    db.session.flush()
    return row, key


def authenticate(authorization: str | None, *, now: dt.datetime | None = None) -> ApiKey:
    """Return the live key named by an ``Authorization: Bearer …`` header.

    Raises:
        Unauthorized: no header, not a gateway key, unknown, or revoked (one message for all, so
            a caller learns nothing about which keys exist).
    """
    scheme, _, value = (authorization or "").partition(" ")
    match = _KEY_FORMAT.fullmatch(value.strip()) if scheme.lower() == "bearer" else None
    if match is None:
        raise Unauthorized("Send an API key as 'Authorization: Bearer gw_…'.")
    row = db.session.scalar(select(ApiKey).where(ApiKey.prefix == match.group(1)))
    if row is None or row.revoked_at is not None:
        raise Unauthorized("The API key is not valid.")
    if not hmac.compare_digest(row.key_hash, _hash(value.strip())):
        raise Unauthorized("The API key is not valid.")
    now = now or dt.datetime.now(dt.UTC)
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        # Its own short transaction: a read request never commits, and holding this row's lock
        # for a whole request would queue every concurrent request of the same key behind it.
        with Session(db.engine) as session, session.begin():
            session.execute(
                update(ApiKey)
                .where(
                    ApiKey.id == row.id,
                    or_(
                        ApiKey.last_used_at.is_(None),
                        ApiKey.last_used_at < now - LAST_USED_RESOLUTION,
                    ),
                )
                .values(last_used_at=now)
            )
    return row


def require(key: ApiKey, scope: str, account_id: int | None = None) -> None:
    """Check that ``key`` has ``scope`` (or admin) and may touch ``account_id``.

    Raises:
        Forbidden: the scope or the account is not granted to this key.
    """
    if scope not in key.scopes and "admin" not in key.scopes:
        raise Forbidden(f"This API key lacks the {scope!r} scope.")
    if scope == "admin" and has_request_context():
        g.admin_call = True  # an admin action: the audit log records it (services/audit.py)
    if account_id is not None and not key.allows_account(account_id):
        raise Forbidden(f"This API key may not use account {account_id}.")


def require_unrestricted(key: ApiKey) -> None:
    """Check that ``key`` is not limited to some accounts (actions on the whole instance).

    Creating an account is such an action: a key limited to accounts 1 and 2 could otherwise
    make a third and, through it, reach a broker the operator never gave it.

    Raises:
        Forbidden: the key is limited to some accounts.
    """
    if key.account_ids is not None:
        raise Forbidden(
            "This API key is limited to some accounts; this action concerns the whole gateway "
            "and needs an admin key that is not."
        )


def list_api_keys() -> Sequence[ApiKey]:
    """Return every API key, revoked ones included, newest first."""
    return db.session.scalars(select(ApiKey).order_by(ApiKey.id.desc())).all()


def revoke_api_key(key_id: int) -> ApiKey:
    """Revoke a key; it stops working at once.

    Raises:
        NotFound: no such key.
    """
    row = db.session.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"API key {key_id} does not exist.")
    row.revoked_at = row.revoked_at or dt.datetime.now(dt.UTC)
    db.session.flush()
    return row
