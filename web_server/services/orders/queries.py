"""Reading orders: one by id, pages of a listing, an account's latest, and the API's view of one."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, or_, select

from web_server.errors import NotFound, ValidationFailed
from web_server.extensions import db
from web_server.models import ApiKey, CryptoMarket, Order
from web_server.services.orders.fills import order_fills
from web_server.services.orders.lifecycle import symbol_of


def get_order(key: ApiKey, order_id: uuid.UUID) -> Order:
    """Return an order the key may see.

    Raises:
        NotFound: no such order, or not one of the key's accounts.
    """
    order = db.session.get(Order, order_id)
    if order is None or not key.allows_account(order.account_id):
        raise NotFound(f"Order {order_id} does not exist.")
    return order


def list_orders(
    key: ApiKey,
    *,
    account_id: int | None = None,
    status: str | None = None,
    symbol: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> tuple[Sequence[Order], str | None]:
    """Return a page of orders, newest first, and the cursor of the next page (or None).

    Raises:
        ValidationFailed: the cursor is not one this API issued.
    """
    statement = select(Order).order_by(Order.created_ts.desc(), Order.id.desc()).limit(limit + 1)
    if key.account_ids is not None:
        statement = statement.where(Order.account_id.in_(key.account_ids))
    if account_id is not None:
        statement = statement.where(Order.account_id == account_id)
    if status is not None:
        statement = statement.where(Order.status == status)
    if symbol is not None:
        statement = statement.outerjoin(CryptoMarket).where(
            or_(Order.symbol == symbol, CryptoMarket.symbol == symbol)
        )
    if cursor:
        created, last_id = _decode_cursor(cursor)
        statement = statement.where(
            or_(Order.created_ts < created, and_(Order.created_ts == created, Order.id < last_id))
        )
    rows = db.session.scalars(statement).all()
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor


def recent_orders(account_id: int, limit: int) -> Sequence[Order]:
    """Return an account's latest ``limit`` orders, newest first (the operator's account page)."""
    return db.session.scalars(
        select(Order)
        .where(Order.account_id == account_id)
        .order_by(Order.created_ts.desc())
        .limit(limit)
    ).all()


def _encode_cursor(order: Order) -> str:
    raw = f"{order.created_ts.isoformat()}|{order.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, order_id = raw.split("|")
        return dt.datetime.fromisoformat(created), uuid.UUID(order_id)
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed("The cursor is not valid.", errors={"cursor": ["invalid"]}) from None


def order_view(order: Order) -> dict[str, Any]:
    """Return the order as the API contract names its fields (DESIGN §5)."""
    return {
        "id": order.id,
        "account_id": order.account_id,
        "symbol": symbol_of(db.session, order),
        "side": order.side,
        "type": order.order_type,
        "quantity": order.quantity,
        "limit_price": order.limit_price,
        "route": order.route,
        "status": order.status,
        "client_order_id": order.client_order_id,
        "broker_order_id": order.broker_order_id,
        "broker_order_date": order.broker_order_date,
        "attention": order.attention,
        "quote_amount": order.quote_amount,
        "filled_quantity": order.filled_quantity,
        "net_filled_quantity": order.net_filled_quantity,
        "average_fill_price": order.average_fill_price,
        "fee_total": order.fee_total if order.fee_total is not None else Decimal(0),
        "tax_total": order.tax_total if order.tax_total is not None else Decimal(0),
        "fee_currency": order.fee_currency,
        "replaces_order_id": order.replaces_order_id,
        "replaced_by_order_id": order.replaced_by_order_id,
        "reject_code": order.reject_code,
        "reject_message": order.reject_message,
        "created_at": order.created_ts,
        "updated_at": order.updated_ts,
    }


def order_detail(order: Order) -> dict[str, Any]:
    """Return the order with its fills, oldest first (``GET /api/v1/orders/{id}``)."""
    return {**order_view(order), "fills": fill_views(order)}


def fill_views(order: Order) -> list[dict[str, Any]]:
    """Return the order's fills as the API names their fields."""
    return [
        {
            "id": fill.fill_id,
            "broker_fill_id": fill.broker_fill_id,
            "key": fill.broker_fill_key,
            "quantity": fill.quantity,
            "price": fill.price,
            "currency": fill.currency,
            "fee": fill.fee,
            "tax": fill.tax,
            "fee_currency": fill.fee_currency,
            "filled_at": fill.ts,
        }
        for fill in order_fills(db.session, order.id)
    ]
