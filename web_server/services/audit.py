"""The audit log: who did what, when, with what before and after — never a secret (issue 15.6).

Two writers:

- :func:`record`, called by the console's views in the transaction of the change they make (the
  entry commits with it, or not at all); refused attempts are recorded too, in a transaction of
  their own, with the refusal's code.
- :func:`install`'s ``after_request`` hook, for every mutating API call (POST, PUT, PATCH,
  DELETE) made with an ``admin``-scope key: method, path, key id and status, written on its own
  connection after the request's work. Bodies are never recorded: they carry broker keys.

``before`` and ``after`` pass through :func:`redact` on the way in: a value under a secret-like
name (``api_secret``, ``password``, ``token`` …) and any string shaped like a gateway API key
become ``"[redacted]"``, so the log can be shown to any operator.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from flask import Flask, Response, g, request
from sqlalchemy import String, cast, func, insert, or_, select

from brokers import utc_now
from web_server.extensions import db
from web_server.models import AuditEntry
from web_server.services.events import jsonable

__all__ = ["REDACTED", "install", "record", "redact", "search"]

log = logging.getLogger(__name__)

REDACTED = "[redacted]"
#: Names whose values are secrets whatever they hold (matched anywhere in the name).
_SECRET_NAME = re.compile(
    r"secret|password|passphrase|passwd|token|api_?key|app_?key|access_?key|private|credential"
    r"|authorization|cookie|cert|signature",
    re.IGNORECASE,
)
#: Names that match the pattern above yet hold no secret: ids and idempotency keys.
_PUBLIC_NAME = re.compile(r"(_id|_ids|_prefix|idempotency_key|_state|_status)$", re.IGNORECASE)
#: A gateway API key, wherever it turns up (``gw_<prefix>_<secret>``).
_GATEWAY_KEY = re.compile(r"gw_[A-Za-z0-9]{12}_[A-Za-z0-9_-]{43}")
_MUTATING = ("POST", "PUT", "PATCH", "DELETE")
#: The longest text kept of one value: the log is a record, not a store.
_MAX_TEXT = 2000


def redact(value: Any) -> Any:
    """Return ``value`` as JSON-able data with every secret replaced by :data:`REDACTED`."""
    value = jsonable(value)
    if isinstance(value, Mapping):
        return {
            str(name): (
                REDACTED
                if _SECRET_NAME.search(str(name))
                and not _PUBLIC_NAME.search(str(name))
                and item not in (None, "", [], {})
                else redact(item)
            )
            for name, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return _GATEWAY_KEY.sub(REDACTED, value)[:_MAX_TEXT]
    return value


def record(
    actor: str,
    action: str,
    target: str | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Add an entry to the session: it commits with the change it records."""
    entry = AuditEntry(
        ts=utc_now(),
        actor=actor,
        action=action,
        target=target,
        before=redact(dict(before)) if before is not None else None,
        after=redact(dict(after)) if after is not None else None,
    )
    db.session.add(entry)
    return entry


def search(
    *,
    actor: str | None = None,
    action: str | None = None,
    text: str | None = None,
    page: int = 1,
    per_page: int = 50,
) -> tuple[Sequence[AuditEntry], bool]:
    """Return a page of entries, newest first, and whether another page follows.

    ``actor`` and ``text`` match anywhere (case-insensitive; ``text`` searches the target and the
    before and after values), ``action`` matches from the start (``order.`` finds every order
    action).
    """
    statement = select(AuditEntry).order_by(AuditEntry.ts.desc(), AuditEntry.id.desc())
    if actor:
        statement = statement.where(AuditEntry.actor.ilike(f"%{_escape(actor)}%", escape="\\"))
    if action:
        statement = statement.where(AuditEntry.action.ilike(f"{_escape(action)}%", escape="\\"))
    if text:
        pattern = f"%{_escape(text)}%"
        statement = statement.where(
            or_(
                AuditEntry.target.ilike(pattern, escape="\\"),
                cast(AuditEntry.before, String).ilike(pattern, escape="\\"),
                cast(AuditEntry.after, String).ilike(pattern, escape="\\"),
            )
        )
    page = max(page, 1)
    rows = db.session.scalars(statement.offset((page - 1) * per_page).limit(per_page + 1)).all()
    return rows[:per_page], len(rows) > per_page


def count() -> int:
    """Return how many entries the log holds."""
    return int(db.session.scalar(select(func.count()).select_from(AuditEntry)) or 0)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def install(app: Flask) -> None:
    """Record every mutating API call of an ``admin`` key (method, path, key id, status)."""

    @app.after_request
    def _audit_admin_call(response: Response) -> Response:
        # Only admin actions (a view or a check that required the admin scope), not every call
        # of a key that happens to hold it: an order is not an admin action, and auditing each
        # would put a write on the order path.
        ref = g.get("api_key_ref")
        if (
            ref is None
            or not g.get("admin_call")
            or request.method not in _MUTATING
            or not request.path.startswith("/api/")
        ):
            return response
        key_id, key_prefix = ref
        try:
            # Its own connection: the request's session may be rolled back or closed by now.
            with db.engine.begin() as connection:
                connection.execute(
                    insert(AuditEntry).values(
                        ts=utc_now(),
                        actor=f"api_key:{key_id}",
                        action=f"api.{request.method}",
                        # A NUL cannot be stored; hostile paths carry them.
                        target=redact(request.path.replace("\x00", "\ufffd")),
                        after={"status": response.status_code, "key_prefix": key_prefix},
                    )
                )
        except Exception:  # noqa: BLE001 - the call's answer stands; the log says what was lost
            log.exception(
                "audit: the admin call %s %s was not recorded", request.method, request.path
            )
        return response
