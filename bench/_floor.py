"""The order path's floor: a bare Flask app doing what no gateway can avoid, and nothing else.

For an order, one loopback hop in (the client's request), two PostgreSQL commits (the intent
before the broker call, the answer after it, as DESIGN §4 requires of any gateway that must never
lose an order), and the same signed broker call the gateway makes, through the same adapter. It
runs under gunicorn with the gateway's worker settings, so the difference between the two is
what the gateway adds: authentication, validation, idempotency, locks, leases, risk checks, rate
limits. For a stored read (holdings), one loopback hop and one PostgreSQL read.

Configured from the environment by ``bench/order_path.py`` (a benchmark's loopback keys only).
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from decimal import Decimal

import sqlalchemy as sa
from flask import Flask, jsonify, request

from brokers import Credentials, OrderRequest, OrderType, Side, make_http_session

_LOCAL = threading.local()


class _StaticToken:
    """A token the benchmark issued once (the floor does no token management)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get(self) -> str:
        return self.token

    def invalidate(self, token: str) -> str:
        return self.token


def build_adapter(exchange: str, base_url: str, credentials: Credentials, token: str | None):
    """Return the gateway's own adapter for ``exchange``, as a direct caller would build it."""
    if exchange == "KIS":
        from securities.kis import KisAdapter

        return KisAdapter(
            credentials,
            base_url=base_url,
            session=make_http_session(),
            token_provider=_StaticToken(token or ""),
        )
    from crypto_exchanges.upbit import UpbitAdapter

    return UpbitAdapter(credentials, base_url=base_url, session=make_http_session())


def order_request(exchange: str, body: dict) -> OrderRequest:
    """Turn a gateway order body into the adapter's request."""
    return OrderRequest(
        symbol=body["symbol"],
        side=Side(body["side"]),
        order_type=OrderType(body["type"]),
        quantity=Decimal(body["quantity"]),
        limit_price=Decimal(body["limit_price"]),
        client_order_id=uuid.uuid4().hex,
    )


def create_table(database_url: str) -> None:
    """Create the floor's table, once, before its workers start (two workers racing on
    ``CREATE TABLE IF NOT EXISTS`` can both try to create it, and one then fails to boot)."""
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE IF NOT EXISTS floor_orders (id uuid PRIMARY KEY, body jsonb,"
                " broker_order_id text, created_ts timestamptz DEFAULT now())"
            )
        )
    engine.dispose()


def create_app() -> Flask:
    """Build the floor app from ``FLOOR_*`` environment variables."""
    settings = json.loads(os.environ["FLOOR_SETTINGS"])
    # SQLAlchemy as a plain app uses it: a ping at each checkout, BEGIN and COMMIT around each
    # write (the gateway saves both round trips; the floor's cost is what is usual, not least).
    engine = sa.create_engine(settings["database_url"], pool_size=10, pool_pre_ping=True)
    venues = settings["venues"]
    app = Flask("floor")

    def adapter(exchange: str):
        adapters = getattr(_LOCAL, "adapters", None)
        if adapters is None:
            adapters = _LOCAL.adapters = {}
        if exchange not in adapters:
            venue = venues[exchange]
            adapters[exchange] = build_adapter(
                exchange, venue["url"], Credentials(**venue["credentials"]), venue.get("token")
            )
        return adapters[exchange]

    @app.post("/orders/<exchange>")
    def place(exchange: str):
        body = request.get_json()
        order_id = uuid.uuid4()
        with engine.begin() as conn:  # commit 1: the intent, before the broker is called
            conn.execute(
                sa.text("INSERT INTO floor_orders (id, body) VALUES (:id, CAST(:body AS jsonb))"),
                {"id": order_id, "body": json.dumps(body)},
            )
        answer = adapter(exchange).place_order(order_request(exchange, body))
        with engine.begin() as conn:  # commit 2: the broker's answer
            conn.execute(
                sa.text("UPDATE floor_orders SET broker_order_id = :b WHERE id = :id"),
                {"b": answer.broker_order_id, "id": order_id},
            )
        return jsonify(id=str(order_id), broker_order_id=answer.broker_order_id), 201

    @app.get("/holdings/<exchange>")
    def holdings(exchange: str):
        # A stored read's floor: one loopback hop and one PostgreSQL read (its own transaction,
        # no BEGIN or COMMIT), answered as JSON.
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            rows = conn.execute(
                sa.text("SELECT id, body FROM floor_orders ORDER BY created_ts DESC LIMIT 2")
            ).all()
        return jsonify(exchange=exchange, holdings=[{"id": str(r.id), **r.body} for r in rows])

    return app
