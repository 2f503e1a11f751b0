"""Positions and P&L per account: the stored holdings snapshot, and the fills the gateway recorded.

Nothing here asks a broker: the operator's pages read this while a broker may be slow or down.

**What the broker says** (``trade.holdings``, the last snapshot): quantity, average price and
the valuation price as the broker reported them. Unrealized P&L is the broker's own figure when
it gives one (KIS, Kiwoom), else ``(price − average price) × quantity`` when both are known
(Upbit and Bithumb report an average buying price but no current price: then it is unknown).

**What the gateway saw** (``trade.fills``): realized P&L, today (the KST calendar day, as a KRX
statement counts it) and to date, by the average-cost method, fees and taxes included: a buy's
fee and tax go into the position's cost, a sale realizes ``proceeds − fee − tax − average cost
× quantity``. A fee charged in the bought asset itself (Binance without BNB) reduces the
quantity received instead. When a sale is larger than what the recorded fills bought (shares
held before the account was added to the gateway), the rest of its cost is taken from the
snapshot's average price, and the row says ``basis_estimated``; without one that part of the
sale realizes nothing rather than a made-up figure, and the row says so too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from web_server.extensions import db
from web_server.models import Account, CryptoMarket, Fill, Holding, Order, OrderEvent
from web_server.services import clock
from web_server.services.holdings import stored_holdings

__all__ = ["AccountPositions", "PositionRow", "account_positions", "positions_summary"]

KST = dt.timezone(dt.timedelta(hours=9), "KST")
ZERO = Decimal(0)
#: The currency a crypto exchange's positions are valued in when the snapshot does not say.
_QUOTE = {"UPBIT": "KRW", "BITHUMB": "KRW", "BINANCE": "USDT"}


@dataclass
class PositionRow:
    """One instrument of an account: what is held now and what its fills realized."""

    instrument: str
    currency: str
    name: str | None = None
    quantity: Decimal = ZERO
    available_quantity: Decimal | None = None
    avg_price: Decimal | None = None
    price: Decimal | None = None
    valuation: Decimal | None = None
    unrealized: Decimal | None = None
    unrealized_pct: Decimal | None = None
    realized_today: Decimal = ZERO
    realized_total: Decimal = ZERO
    fees: Decimal = ZERO
    taxes: Decimal = ZERO
    fills: int = 0
    held: bool = False
    basis_estimated: bool = False
    basis_missing: bool = False


@dataclass
class AccountPositions:
    """An account's positions, their totals per currency, and the snapshot's time."""

    account_id: int
    as_of: dt.datetime | None
    rows: list[PositionRow]
    totals: dict[str, dict[str, Decimal]] = field(default_factory=dict)


@dataclass
class _Book:
    """The running average-cost book of one instrument over its fills."""

    quantity: Decimal = ZERO
    cost: Decimal = ZERO
    realized_today: Decimal = ZERO
    realized_total: Decimal = ZERO
    fees: Decimal = ZERO
    taxes: Decimal = ZERO
    fills: int = 0
    estimated: bool = False
    missing: bool = False


def _fills(account_id: int) -> list[Any]:
    accepted = (
        select(func.min(OrderEvent.id))
        .where(OrderEvent.order_id == Order.id)
        .correlate(Order)
        .scalar_subquery()
    )
    statement = (
        select(
            Fill.ts,
            Fill.quantity,
            Fill.price,
            Fill.currency,
            Fill.fee,
            Fill.tax,
            Fill.fee_currency,
            Order.side,
            Order.symbol,
            CryptoMarket.base_asset,
            CryptoMarket.quote_asset,
        )
        .join(Order, Order.id == Fill.order_id)
        .outerjoin(CryptoMarket, CryptoMarket.id == Order.crypto_market_id)
        .where(Order.account_id == account_id)
        # Brokers stamp fills to the second at best: a buy and a sale stamped alike keep the
        # order they were accepted in (their first event's id, a gapless sequence), or a sale
        # could come before the shares it sold.
        .order_by(Fill.ts, accepted, Order.created_ts, Fill.broker_fill_key)
    )
    return list(db.session.execute(statement))


def _apply(
    book: _Book, fill: Any, today: dt.date, basis: Decimal | None, *, securities: bool
) -> None:
    quantity, price = Decimal(fill.quantity), Decimal(fill.price)
    fee, tax = Decimal(fill.fee or 0), Decimal(fill.tax or 0)
    # A fee in the traded asset (not in money) changes the quantity, not the cost.
    fee_in_asset = (
        not securities and fill.fee_currency is not None and fill.fee_currency == fill.base_asset
    )
    money_fee = ZERO if fee_in_asset else fee
    book.fills += 1
    book.fees += money_fee
    book.taxes += tax
    if fill.side == "BUY":
        book.quantity += quantity - (fee if fee_in_asset else ZERO)
        book.cost += quantity * price + money_fee + tax
        return
    sold = quantity + (fee if fee_in_asset else ZERO)
    known = min(sold, max(book.quantity, ZERO))
    cost = book.cost * known / book.quantity if book.quantity > 0 else ZERO
    unknown = sold - known
    if unknown > 0:
        if basis is not None:
            cost += basis * unknown
            book.estimated = True
        else:
            # No basis for these shares: realize nothing on them rather than the whole price.
            cost += price * unknown
            book.missing = True
    realized = quantity * price - money_fee - tax - cost
    book.realized_total += realized
    if fill.ts.astimezone(KST).date() == today:
        book.realized_today += realized
    book.cost -= book.cost * known / book.quantity if book.quantity > 0 else ZERO
    book.quantity -= known


def _currency(account: Account, holding: Holding | None, fill: Any | None) -> str:
    if account.account_type == "SECURITIES_STOCK":
        return "KRW"
    if fill is not None and (fill.currency or fill.quote_asset):
        return str(fill.currency or fill.quote_asset)
    raw = (holding.raw or {}) if holding is not None else {}
    return str(raw.get("unit_currency") or _QUOTE.get(account.exchange, ""))


def _instrument_of_fill(fill: Any, securities: bool) -> str:
    return str(fill.symbol if securities else fill.base_asset)


def account_positions(account: Account, *, now: dt.datetime | None = None) -> AccountPositions:
    """Return ``account``'s positions from its stored snapshot and recorded fills; no broker call.

    Rows are the snapshot's positions, then instruments the fills traded that are no longer
    held (their realized P&L), by instrument.
    """
    securities = account.account_type == "SECURITIES_STOCK"
    today = (now or clock.now()).astimezone(KST).date()
    snapshot = stored_holdings(account)
    stored = {
        (h.symbol or h.broker_symbol or h.asset): h
        for h in db.session.scalars(select(Holding).where(Holding.account_id == account.id))
    }
    held = {(p.symbol if securities else p.asset) or "": p for p in snapshot.holdings}
    books: dict[str, _Book] = {}
    first_fill: dict[str, Any] = {}
    for fill in _fills(account.id):
        instrument = _instrument_of_fill(fill, securities)
        first_fill.setdefault(instrument, fill)
        position = held.get(instrument)
        basis = position.avg_price if position is not None else None
        _apply(books.setdefault(instrument, _Book()), fill, today, basis, securities=securities)

    rows: list[PositionRow] = []
    for instrument in sorted(set(held) | set(books)):
        position, book = held.get(instrument), books.get(instrument, _Book())
        row = PositionRow(
            instrument=instrument,
            currency=_currency(account, stored.get(instrument), first_fill.get(instrument)),
            realized_today=book.realized_today,
            realized_total=book.realized_total,
            fees=book.fees,
            taxes=book.taxes,
            fills=book.fills,
            basis_estimated=book.estimated,
            basis_missing=book.missing,
        )
        if position is not None:
            _fill_from_snapshot(row, position)
        rows.append(row)
    return AccountPositions(account.id, snapshot.as_of, rows, _totals(rows))


def _fill_from_snapshot(row: PositionRow, position: Any) -> None:
    row.held = True
    row.name = position.name
    row.quantity = position.quantity
    row.available_quantity = position.available_quantity
    row.avg_price = position.avg_price
    row.price = position.current_price
    if row.price is not None:
        row.valuation = row.price * row.quantity
    if position.pnl is not None:
        row.unrealized = position.pnl
    elif row.price is not None and row.avg_price is not None:
        row.unrealized = (row.price - row.avg_price) * row.quantity
    if position.pnl_pct is not None:
        row.unrealized_pct = position.pnl_pct
    elif row.unrealized is not None and row.avg_price:
        row.unrealized_pct = row.unrealized / (row.avg_price * row.quantity) * 100


def _totals(rows: Iterable[PositionRow]) -> dict[str, dict[str, Decimal]]:
    """Add up each currency's valuation and P&L (a figure nobody knows adds nothing)."""
    totals: dict[str, dict[str, Decimal]] = {}
    for row in rows:
        total = totals.setdefault(
            row.currency,
            {
                "valuation": ZERO,
                "unrealized": ZERO,
                "realized_today": ZERO,
                "realized_total": ZERO,
                "fees": ZERO,
                "taxes": ZERO,
            },
        )
        total["valuation"] += row.valuation or ZERO
        total["unrealized"] += row.unrealized or ZERO
        total["realized_today"] += row.realized_today
        total["realized_total"] += row.realized_total
        total["fees"] += row.fees
        total["taxes"] += row.taxes
    return dict(sorted(totals.items()))


def positions_summary(accounts: Sequence[Account], *, now: dt.datetime | None = None) -> list[Any]:
    """Return, per account, its name, snapshot time, open positions and totals per currency."""
    summary = []
    for account in accounts:
        positions = account_positions(account, now=now)
        summary.append(
            {
                "account": account,
                "as_of": positions.as_of,
                "held": sum(1 for r in positions.rows if r.held),
                "totals": positions.totals,
            }
        )
    return summary
