"""Outbound webhooks: order events signed per Standard Webhooks, delivered at least once, in order.

An API key subscribes a receiver URL to some event types (all by default) of some of its
accounts (all by default). The scheduler's leader (``jobs/webhooks_job.py``) then:

1. fans new events out to deliveries: ``trade.webhook_cursor`` holds the last event fanned out
   (event ids are gap-free and in commit order, so "after the cursor" misses none), and one
   delivery row per event and matching subscription is inserted — ``(subscription, event)`` is
   unique, so doing it twice sends nothing twice;
2. sends the due deliveries, at most one per (subscription, order) at a time: a delivery waits
   while an earlier one of the same order to the same subscription is still pending, so a
   receiver gets each order's events in order;
3. records each outcome: a 2xx answer delivers; anything else (a refusal, a timeout, a closed
   port) is tried again after an exponential back-off with jitter (5 s, 10 s, … up to an hour
   apart, ``GATEWAY_WEBHOOK_RETRY_*``), for ``GATEWAY_WEBHOOK_GIVE_UP_SECONDS`` (25 h) from the
   event; then the delivery is ``failed``, which lets the order's next events go.

Each request carries ``webhook-id`` (``evt_<event id>``: the same on every attempt, the
receiver's idempotency key), ``webhook-timestamp`` and ``webhook-signature`` (``v1,`` HMAC-SHA256
of ``id.timestamp.body`` under the subscription's secret), signed with the reference
``standardwebhooks`` package. The body is ``{"type", "timestamp", "data"}`` with the event as
``GET /api/v1/events`` shows it; it is the same bytes on every attempt.

Receivers on private, loopback, link-local or otherwise reserved addresses are refused unless
the operator allows them (``GATEWAY_WEBHOOK_ALLOW_PRIVATE``; allowed outside production) or
names the host in ``GATEWAY_WEBHOOK_ALLOWLIST``: a key holder must not be able to make the
gateway call into the network it sits in. The address is checked when subscribing and again
before each attempt (a name may resolve elsewhere later).
"""

from __future__ import annotations

import base64
import concurrent.futures
import datetime as dt
import ipaddress
import json
import logging
import random
import secrets
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import current_app
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from web_server.errors import Forbidden, NotFound, ValidationFailed
from web_server.models import ApiKey, OrderEvent, WebhookDelivery, WebhookSubscription
from web_server.models.events import DELIVERY_STATUSES, EVENT_TYPES
from web_server.services import api_keys
from web_server.services.events import latest_id, to_event

log = logging.getLogger(__name__)

#: How many deliveries one pass sends at once, and how many receivers are called in parallel.
BATCH = 200
SENDERS = 16
MAX_SUBSCRIPTIONS_PER_KEY = 20


# -- subscriptions ------------------------------------------------------------------------------


def create_subscription(
    session: Session,
    key: ApiKey,
    *,
    url: str,
    event_types: Sequence[str] | None = None,
    account_ids: Sequence[int] | None = None,
) -> tuple[WebhookSubscription, str]:
    """Subscribe ``url`` for ``key``; return the row and its signing secret (shown only now).

    Raises:
        Forbidden: the key lacks ``orders:read`` or names an account it may not use.
        ValidationFailed: a bad URL, a receiver on a refused network, an unknown event type, or
            too many subscriptions.
    """
    api_keys.require(key, "orders:read")
    problems: dict[str, list[str]] = {}
    if problem := url_problem(url, **receiver_policy()):
        problems["url"] = [problem]
    types = sorted(set(event_types)) if event_types else None
    if types and any(t not in EVENT_TYPES for t in types):
        problems["event_types"] = [f"choose from {', '.join(EVENT_TYPES)}"]
    accounts = sorted(set(account_ids)) if account_ids else None
    for account in accounts or ():
        if not key.allows_account(account):
            raise Forbidden(f"This API key may not use account {account}.")
    count = session.scalar(select(func.count()).where(WebhookSubscription.api_key_id == key.id))
    if (count or 0) >= MAX_SUBSCRIPTIONS_PER_KEY:
        problems["url"] = [f"at most {MAX_SUBSCRIPTIONS_PER_KEY} subscriptions per API key"]
    if problems:
        raise ValidationFailed("The webhook subscription cannot be created.", errors=problems)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    row = WebhookSubscription(
        api_key_id=key.id,
        url=url,
        event_types=types,
        account_ids=accounts,
        start_after_event_id=latest_id(session),
    )
    row.secret = secret
    session.add(row)
    session.flush()
    return row, secret


def list_subscriptions(session: Session, key: ApiKey) -> Sequence[WebhookSubscription]:
    """Return the key's subscriptions, oldest first."""
    return session.scalars(
        select(WebhookSubscription)
        .where(WebhookSubscription.api_key_id == key.id)
        .order_by(WebhookSubscription.id)
    ).all()


def get_subscription(session: Session, key: ApiKey, subscription_id: int) -> WebhookSubscription:
    """Return one of the key's subscriptions.

    Raises:
        NotFound: no such subscription, or another key's.
    """
    row = session.get(WebhookSubscription, subscription_id)
    if row is None or row.api_key_id != key.id:
        raise NotFound(f"Webhook subscription {subscription_id} does not exist.")
    return row


def delete_subscription(session: Session, key: ApiKey, subscription_id: int) -> None:
    """Delete one of the key's subscriptions and its deliveries (nothing more is sent)."""
    session.delete(get_subscription(session, key, subscription_id))
    session.flush()


def list_deliveries(
    session: Session,
    key: ApiKey,
    subscription_id: int,
    *,
    status: str | None = None,
    after: int = 0,
    limit: int = 100,
) -> Sequence[WebhookDelivery]:
    """Return a subscription's deliveries after a delivery id, oldest first."""
    get_subscription(session, key, subscription_id)
    statement = (
        select(WebhookDelivery)
        .where(WebhookDelivery.subscription_id == subscription_id, WebhookDelivery.id > after)
        .order_by(WebhookDelivery.id)
        .limit(limit)
    )
    if status is not None:
        statement = statement.where(WebhookDelivery.status == status)
    return session.scalars(statement).all()


def subscription_view(row: WebhookSubscription) -> dict[str, Any]:
    """Return a subscription as the API shows it (never its secret)."""
    return {
        "id": row.id,
        "url": row.url,
        "event_types": row.event_types,
        "account_ids": row.account_ids,
        "start_after_event_id": row.start_after_event_id,
        "created_at": row.created_ts,
    }


def delivery_view(row: WebhookDelivery) -> dict[str, Any]:
    """Return a delivery and its outcome as the API shows them."""
    return {
        "id": row.id,
        "webhook_id": message_id(row.event_id),
        "event_id": row.event_id,
        "order_id": row.order_id,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_ts if row.status == "pending" else None,
        "last_attempt_at": row.last_attempt_ts,
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
        "delivered_at": row.delivered_ts,
        "created_at": row.created_ts,
    }


# -- where receivers may be ---------------------------------------------------------------------


def receiver_policy() -> dict[str, Any]:
    """Return the operator's rules for receiver addresses, from the app's settings."""
    config = current_app.config
    allow = config.get("WEBHOOK_ALLOW_PRIVATE")
    if allow is None:
        allow = config.get("ENV") != "production"
    allowlist = config.get("WEBHOOK_ALLOWLIST") or []
    if isinstance(allowlist, str):
        allowlist = [h.strip() for h in allowlist.split(",") if h.strip()]
    return {"allow_private": bool(allow), "allowlist": [h.lower() for h in allowlist]}


def url_problem(
    url: str, *, allow_private: bool, allowlist: Iterable[str] = (), resolve: bool = True
) -> str | None:
    """Return why ``url`` may not receive webhooks, or None when it may."""
    if len(url) > 2000 or not url.isascii() or any(c.isspace() for c in url):
        return "an http(s) URL of at most 2000 ASCII characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "an http:// or https:// URL"
    if parts.username or parts.password:
        return "no user or password in the URL (the signature authenticates the gateway)"
    host = parts.hostname.lower()
    if host in allowlist or allow_private:
        return None
    if parts.scheme != "https":
        return "https:// only (or ask the operator to allow the host)"
    if not resolve:
        return None
    try:
        infos = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return f"{host} does not resolve"
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global:
            return (
                f"{host} resolves to {address}, a private, loopback or reserved address; the "
                "operator can allow it (GATEWAY_WEBHOOK_ALLOWLIST)"
            )
    return None


# -- delivering ---------------------------------------------------------------------------------


def message_id(event_id: int) -> str:
    """Return the ``webhook-id`` of an event: the same on every attempt."""
    return f"evt_{event_id}"


def fan_out(session: Session, *, limit: int = 2000) -> int:
    """Turn events after the cursor into deliveries; return how many events were read."""
    cursor = session.execute(
        text("SELECT last_event_id FROM trade.webhook_cursor FOR UPDATE")
    ).scalar_one()
    rows = session.scalars(
        select(OrderEvent).where(OrderEvent.id > cursor).order_by(OrderEvent.id).limit(limit)
    ).all()
    if not rows:
        return 0
    subscriptions = session.execute(
        select(WebhookSubscription, ApiKey)
        .join(ApiKey, ApiKey.id == WebhookSubscription.api_key_id)
        .where(ApiKey.revoked_at.is_(None))
    ).all()
    now = dt.datetime.now(dt.UTC)
    values = []
    for event in rows:
        for sub, key in subscriptions:
            if event.id <= sub.start_after_event_id:
                continue
            if sub.event_types and event.type not in sub.event_types:
                continue
            if sub.account_ids and event.account_id not in sub.account_ids:
                continue
            if not key.allows_account(event.account_id) or not (
                "orders:read" in key.scopes or "admin" in key.scopes
            ):
                continue
            values.append(
                {
                    "subscription_id": sub.id,
                    "event_id": event.id,
                    "order_id": event.order_id,
                    "next_attempt_ts": now,
                }
            )
    if values:
        session.execute(
            pg_insert(WebhookDelivery.__table__)
            .values(values)
            .on_conflict_do_nothing(constraint="uq_webhook_deliveries_subscription_event")
        )
    session.execute(
        text("UPDATE trade.webhook_cursor SET last_event_id = :id"), {"id": rows[-1].id}
    )
    return len(rows)


@dataclass(frozen=True)
class Attempt:
    """One delivery to send: where, what, and with which secret."""

    delivery_id: int
    url: str
    secret: str
    webhook_id: str
    body: str
    created: dt.datetime


@dataclass(frozen=True)
class Outcome:
    """What a receiver answered (or why it could not)."""

    delivery_id: int
    status_code: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        """Tell whether the receiver took the event (any 2xx)."""
        return self.status_code is not None and 200 <= self.status_code < 300


_DUE = text(
    """
    SELECT d.id FROM trade.webhook_deliveries d
    WHERE d.status = 'pending' AND d.next_attempt_ts <= now()
      AND NOT EXISTS (
        SELECT 1 FROM trade.webhook_deliveries p
        WHERE p.subscription_id = d.subscription_id AND p.order_id = d.order_id
          AND p.event_id < d.event_id AND p.status = 'pending')
    ORDER BY d.event_id
    LIMIT :limit
    """
)


def due_attempts(session: Session, *, limit: int = BATCH) -> list[Attempt]:
    """Return the deliveries to send now: the first pending one of each order, when it is due."""
    ids = list(session.scalars(_DUE, {"limit": limit}))
    if not ids:
        return []
    rows = session.execute(
        select(WebhookDelivery, WebhookSubscription, OrderEvent)
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .join(OrderEvent, OrderEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.id.in_(ids))
        .order_by(WebhookDelivery.event_id)
    ).all()
    attempts = []
    for delivery, sub, event in rows:
        data = to_event(event).data
        body = (
            f'{{"type":{json.dumps(event.type)},"timestamp":{json.dumps(event.ts.isoformat())},'
            f'"data":{data}}}'
        )
        attempts.append(
            Attempt(
                delivery_id=delivery.id,
                url=sub.url,
                secret=sub.secret,
                webhook_id=message_id(delivery.event_id),
                body=body,
                created=delivery.created_ts,
            )
        )
    return attempts


def sign(secret: str, webhook_id: str, timestamp: dt.datetime, body: str) -> str:
    """Return the ``webhook-signature`` header, by the reference implementation."""
    from standardwebhooks.webhooks import Webhook

    return Webhook(secret).sign(webhook_id, timestamp, body)


def send(
    attempt: Attempt, *, http: requests.Session, timeout: float, policy: dict[str, Any]
) -> Outcome:
    """Send one delivery; never raises."""
    problem = url_problem(attempt.url, **policy)
    if problem is not None:
        return Outcome(attempt.delivery_id, None, f"refused: {problem}"[:500])
    now = dt.datetime.now(dt.UTC)
    headers = {
        "content-type": "application/json",
        "user-agent": "trading-gateway-webhooks/1",
        "webhook-id": attempt.webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": sign(attempt.secret, attempt.webhook_id, now, attempt.body),
    }
    try:
        response = http.post(
            attempt.url,
            data=attempt.body.encode(),
            headers=headers,
            timeout=timeout,
            allow_redirects=False,  # a redirect could point anywhere, private networks included
        )
        response.close()
    except requests.RequestException as exc:
        return Outcome(attempt.delivery_id, None, type(exc).__name__)
    error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
    return Outcome(attempt.delivery_id, response.status_code, error)


def backoff(attempts: int, *, base: float, longest: float) -> float:
    """Return seconds until the next attempt after ``attempts`` failures (doubling, jittered)."""
    pause = min(base * 2 ** max(attempts - 1, 0), longest)
    return random.uniform(pause * 0.8, pause)  # noqa: S311 - jitter, not crypto


def record_outcomes(
    session: Session, outcomes: Iterable[Outcome], *, settings: dict[str, float]
) -> None:
    """Store each outcome: delivered, or the next attempt, or failed after the give-up time."""
    now = dt.datetime.now(dt.UTC)
    for outcome in outcomes:
        delivery = session.get(WebhookDelivery, outcome.delivery_id, with_for_update=True)
        if delivery is None or delivery.status != "pending":
            continue  # deleted with its subscription meanwhile, or settled by another pass
        delivery.attempts += 1
        delivery.last_attempt_ts = now
        delivery.last_status_code = outcome.status_code
        delivery.last_error = outcome.error
        if outcome.delivered:
            delivery.status = "delivered"
            delivery.delivered_ts = now
            continue
        pause = backoff(delivery.attempts, base=settings["base"], longest=settings["longest"])
        if (now - delivery.created_ts).total_seconds() + pause > settings["give_up"]:
            delivery.status = "failed"
            log.warning(
                "webhook delivery %s given up after %d attempts", delivery.id, delivery.attempts
            )
        else:
            delivery.next_attempt_ts = now + dt.timedelta(seconds=pause)
    session.flush()


def retry_settings() -> dict[str, float]:
    """Return the back-off settings of the app."""
    config = current_app.config
    return {
        "base": float(config.get("WEBHOOK_RETRY_BASE_SECONDS", 5.0)),
        "longest": float(config.get("WEBHOOK_RETRY_MAX_SECONDS", 3600.0)),
        "give_up": float(config.get("WEBHOOK_GIVE_UP_SECONDS", 25 * 3600)),
        "timeout": float(config.get("WEBHOOK_TIMEOUT_SECONDS", 10.0)),
    }


def dispatch(
    engine: Any, *, http: requests.Session | None = None, passes: int = 20
) -> dict[str, int]:
    """Fan out and send until nothing is due (at most ``passes`` rounds); return a tally.

    Each round is three short transactions — fan out, pick, record — with the receivers called
    in between, outside any transaction, in parallel (one call per order at a time).
    """
    settings = retry_settings()
    policy = receiver_policy()
    http = http or requests.Session()
    tally = {"events": 0, "sent": 0, "delivered": 0}
    with concurrent.futures.ThreadPoolExecutor(SENDERS) as pool:
        for _ in range(passes):
            with Session(engine) as session, session.begin():
                tally["events"] += fan_out(session)
            with Session(engine) as session:
                attempts = due_attempts(session)
            if not attempts:
                break
            outcomes = list(
                pool.map(
                    lambda a: send(a, http=http, timeout=settings["timeout"], policy=policy),
                    attempts,
                )
            )
            with Session(engine) as session, session.begin():
                record_outcomes(session, outcomes, settings=settings)
            tally["sent"] += len(outcomes)
            tally["delivered"] += sum(o.delivered for o in outcomes)
    return tally


__all__ = [
    "DELIVERY_STATUSES",
    "create_subscription",
    "delete_subscription",
    "delivery_view",
    "dispatch",
    "get_subscription",
    "list_deliveries",
    "list_subscriptions",
    "message_id",
    "sign",
    "subscription_view",
    "url_problem",
]
