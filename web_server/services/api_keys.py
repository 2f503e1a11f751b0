"""API keys: created and shown once, stored hashed, checked on every API request."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from flask import current_app, g, has_request_context
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
#: How long a process trusts a key it has checked without reading it again (overridable:
#: ``API_KEY_CACHE_SECONDS``; 0 reads it on every request). A revocation is seen at once by the
#: process that made it and within this many seconds by every other; kill switches are not
#: cached (the order gate reads them in the intent's transaction) and stop orders at once.
AUTH_CACHE_SECONDS = 2.0
#: Keys remembered per process at most (the oldest entry goes first).
AUTH_CACHE_SIZE = 1024
_AUTH_LOCK = threading.Lock()
_CACHED_FIELDS = ("id", "label", "prefix", "key_hash", "scopes", "account_ids", "created_at",
                  "last_used_at", "revoked_at")  # fmt: skip


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

    A key checked in the last :data:`AUTH_CACHE_SECONDS` is answered from this process's memory
    (keyed by the key's hash, as a copy of its row no session holds), without a query.

    Raises:
        Unauthorized: no header, not a gateway key, unknown, or revoked (one message for all, so
            a caller learns nothing about which keys exist).
    """
    scheme, _, value = (authorization or "").partition(" ")
    match = _KEY_FORMAT.fullmatch(value.strip()) if scheme.lower() == "bearer" else None
    if match is None:
        raise Unauthorized("Send an API key as 'Authorization: Bearer gw_…'.")
    digest = _hash(value.strip())
    cache, ttl = _auth_cache()
    with _AUTH_LOCK:
        cached = cache.get(digest)
    if cached is not None and cached[0] > time.monotonic():
        return ApiKey(**cached[1])
    row = db.session.scalar(select(ApiKey).where(ApiKey.prefix == match.group(1)))
    if row is None or row.revoked_at is not None:
        raise Unauthorized("The API key is not valid.")
    if not hmac.compare_digest(row.key_hash, digest):
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
    if ttl > 0:
        values = {name: getattr(row, name) for name in _CACHED_FIELDS}
        values["scopes"] = list(values["scopes"])
        if values["account_ids"] is not None:
            values["account_ids"] = list(values["account_ids"])
        with _AUTH_LOCK:
            cache[digest] = (time.monotonic() + ttl, values)
            while len(cache) > AUTH_CACHE_SIZE:
                cache.pop(next(iter(cache)))
    return row


def _auth_cache() -> tuple[dict[str, tuple[float, dict[str, Any]]], float]:
    """Return this app's cache of checked keys (hash → expiry and row values) and its TTL."""
    app = current_app
    ttl = float(app.config.get("API_KEY_CACHE_SECONDS", AUTH_CACHE_SECONDS) or 0)
    cache = app.extensions.get("gateway.api_key_cache")
    if cache is None:
        with _AUTH_LOCK:
            cache = app.extensions.setdefault("gateway.api_key_cache", {})
    return cache, ttl


def forget_cached_keys(key_id: int | None = None) -> None:
    """Drop this process's cached checks of one key (all keys with ``None``): revoked, changed."""
    cache, _ = _auth_cache()
    with _AUTH_LOCK:
        for digest in [d for d, (_, v) in cache.items() if key_id is None or v["id"] == key_id]:
            del cache[digest]


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
    """Revoke a key: it stops working at once here, within :data:`AUTH_CACHE_SECONDS` elsewhere.

    This process forgets its cached check of the key now; every other process trusts its own
    for at most :data:`AUTH_CACHE_SECONDS` more.

    Raises:
        NotFound: no such key.
    """
    row = db.session.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"API key {key_id} does not exist.")
    row.revoked_at = row.revoked_at or dt.datetime.now(dt.UTC)
    db.session.flush()
    # This process stops trusting it now; others within AUTH_CACHE_SECONDS.
    forget_cached_keys(key_id)
    return row
