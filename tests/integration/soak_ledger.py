"""The soak's end-of-day audit: the gateway's orders against the simulators' ledgers.

The simulator's ledger is the broker's truth. Every order the soak sends on a day differs from
the day's others in (symbol, side, type, quantity, price), so each ledger order names the one
intent it came from: two ledger orders with one intent's fields are a duplicate (an order sent
twice), a ledger order the gateway has not bound is a lost one. The gateway's orders are read
through its API; a KIS or Kiwoom order is identified by its KST day and number (numbers restart
every trading day), a crypto order by its market and id.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

KST = dt.timezone(dt.timedelta(hours=9))
TERMINAL = frozenset({"FILLED", "CANCELLED", "REJECTED", "EXPIRED"})
CASH = frozenset({"KRW", "USDT"})


def number(value: Any) -> str:
    """An order number without zero padding (KIS pads to 10 digits, Kiwoom to 7)."""
    return str(value or "").strip().lstrip("0")


def day_of(iso: str) -> dt.date:
    """The KST date of an ISO time."""
    return dt.datetime.fromisoformat(iso).astimezone(KST).date()


def fields_of(symbol: str, side: str, type_: str, quantity: Any, price: Any) -> tuple:
    """What makes an order of the soak unique within its day."""
    return (
        symbol,
        side.upper(),
        type_.upper(),
        Decimal(str(quantity)).normalize(),
        None
        if price in (None, "", "0") or type_.upper() == "MARKET"
        else Decimal(str(price)).normalize(),
    )


def _dec(value: Any) -> Decimal:
    return Decimal(str(value)).normalize()


@dataclass
class Tally:
    """One broker's day, as printed."""

    orders: int = 0
    fills: int = 0
    partials: int = 0
    amends: int = 0
    cancels: int = 0
    expiries: int = 0
    faults: int = 0
    kills: int = 0
    duplicates: int = 0
    lost: int = 0
    non_terminal: int = 0
    replays: int = 0
    repeated_numbers: int = 0
    refused: int = 0
    gateway_fills: int = 0
    #: KIS orders whose fee or tax total is within 1 won a share but not equal (KIS reports
    #: charges per day and stock only; those sums must be equal).
    estimated_charges_off: int = 0
    problems: list[str] = field(default_factory=list)

    HEADER = (
        "day        broker   orders fills partial amend cancel expire faults kills"
        " dup lost open replay renum refused gwfills est"
    )

    def line(self, day: dt.date, broker: str) -> str:
        """One printed row."""
        return (
            f"{day} {broker:<8} {self.orders:>6} {self.fills:>5} {self.partials:>7}"
            f" {self.amends:>5} {self.cancels:>6} {self.expiries:>6} {self.faults:>6}"
            f" {self.kills:>5} {self.duplicates:>3} {self.lost:>4} {self.non_terminal:>4}"
            f" {self.replays:>6} {self.repeated_numbers:>5} {self.refused:>7}"
            f" {self.gateway_fills:>7} {self.estimated_charges_off:>3}"
        )


def audit_day(
    *,
    securities: bool,
    day: dt.date,
    orders: list[dict[str, Any]],
    ledger: list[dict[str, Any]],
    gateway_fills: dict[str, list[dict[str, Any]]] | None = None,
    seen_numbers: set[str] | None = None,
    charges_per_day: bool = False,
) -> Tally:
    """Compare one broker's day: the gateway's ``orders`` (API views) with the ``ledger``.

    Args:
        securities: KIS/Kiwoom (identity: KST day and number) or crypto (symbol and id).
        day: the KST trading day audited (crypto: the orders the gateway created that day).
        orders: the gateway's orders of the account created that day.
        ledger: the simulator's ledger entries of the account from the day's start on.
        gateway_fills: the gateway's ``trade.fills`` rows by order id (None: not checked).
        seen_numbers: numbers of earlier days (KIS/Kiwoom), to count the repeated ones.
        charges_per_day: the broker reports its charges per day and stock only (KIS
            ``inquire-period-trade-profit``): those sums must match exactly, each order's within
            the estimate's bound. Otherwise (Kiwoom ``ka10076``, the crypto venues) every
            order's charges must match exactly.
    """
    tally = Tally(orders=len(orders))
    placed = [e for e in ledger if e["kind"] == "order_placed"]
    if securities:
        placed = [e for e in placed if day_of(e["time"]) == day]

    def ident(symbol: str, value: Any) -> tuple:
        return (symbol, number(value)) if not securities else (day, number(value))

    broker_orders = {ident(e["symbol"], e["order_no"]): e for e in placed}
    closed: dict[tuple, str] = {}
    if securities:
        # A KRX amendment (정정) gives the remainder a new number and closes the old order; the
        # crypto venues' cancel-and-new and cancel-replace show as a cancel and a placement.
        for entry in ledger:
            old = broker_orders.get(ident(entry.get("symbol", ""), entry.get("order_no")))
            if entry["kind"] != "order_amended" or old is None:
                continue
            new = {**old, "order_no": entry["new_order_no"]}
            new.update(quantity=entry["quantity"], price=entry["price"], time=entry["time"])
            broker_orders[ident(entry["symbol"], entry["new_order_no"])] = new
            closed[ident(entry["symbol"], entry["order_no"])] = "CANCELLED"
    fills: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for entry in ledger:
        key = ident(entry.get("symbol", ""), entry.get("order_no"))
        if key not in broker_orders:
            continue
        if entry["kind"] == "fill":
            fills[key].append(entry)
        elif entry["kind"] == "order_cancelled":
            closed[key] = "CANCELLED"
        elif entry["kind"] == "order_expired":
            closed[key] = "EXPIRED"
    # Duplicates: one intent's fields at the broker more than once.
    by_fields = Counter(
        fields_of(e["symbol"], e["side"], e["order_type"], e["quantity"], e["price"])
        for e in broker_orders.values()
    )
    tally.duplicates = sum(n - 1 for n in by_fields.values() if n > 1)
    bound: Counter = Counter()
    day_charges: dict[str, list[Decimal]] = {}  # symbol: gateway fee, tax; broker fee, tax
    for order in orders:
        tally.amends += order.get("replaces_order_id") is not None
        status = order["status"]
        if status not in TERMINAL or order.get("attention"):
            tally.non_terminal += 1
            tally.problems.append(f"non-terminal {order['id']} {status} {order.get('attention')}")
        if order["broker_order_id"] is None:
            continue
        if securities and order["broker_order_date"] != day.isoformat():
            tally.problems.append(f"{order['id']} bound to day {order['broker_order_date']}")
        key = ident(order["symbol"], order["broker_order_id"])
        bound[key] += 1
        entry = broker_orders.get(key)
        if entry is None:
            tally.problems.append(f"{order['id']} bound to {key}, which the broker lacks")
            continue
        if seen_numbers is not None and number(order["broker_order_id"]) in seen_numbers:
            tally.repeated_numbers += 1
        want = fields_of(
            order["symbol"], order["side"], order["type"], order["quantity"], order["limit_price"]
        )
        got = fields_of(
            entry["symbol"], entry["side"], entry["order_type"], entry["quantity"], entry["price"]
        )
        if want != got:
            tally.problems.append(f"{order['id']}: gateway {want} vs broker {got}")
        _compare_fills(order, entry, fills.get(key, []), closed.get(key), tally)
        if gateway_fills is not None:
            rows = gateway_fills.get(order["id"], [])
            _compare_fill_rows(order, fills.get(key, []), rows, tally, estimated=charges_per_day)
            per_symbol = day_charges.setdefault(order["symbol"], [Decimal(0)] * 4)
            for n, value in enumerate(
                (
                    sum((Decimal(str(r["fee"] or 0)) for r in rows), Decimal(0)),
                    sum((Decimal(str(r["tax"] or 0)) for r in rows), Decimal(0)),
                    sum((Decimal(f["fee"]) for f in fills.get(key, [])), Decimal(0)),
                    sum((Decimal(f["tax"]) for f in fills.get(key, [])), Decimal(0)),
                )
            ):
                per_symbol[n] += value
    tally.duplicates += sum(n - 1 for n in bound.values() if n > 1)
    if charges_per_day:  # the broker's grain: the day's charges per stock, exactly
        for symbol, (fee, tax, broker_fee, broker_tax) in sorted(day_charges.items()):
            if (fee, tax) != (broker_fee, broker_tax):
                tally.problems.append(
                    f"day charges of {symbol}: gateway fee {fee} tax {tax}"
                    f" vs broker fee {broker_fee} tax {broker_tax}"
                )
    # Lost: a broker order no gateway order is bound to.
    for key, entry in broker_orders.items():
        if key not in bound:
            tally.lost += 1
            tally.problems.append(f"lost: broker order {key} {entry['side']} {entry['quantity']}")
    tally.fills = sum(len(f) for k, f in fills.items() if k in bound)
    tally.faults = len({e["fault_id"] for e in ledger if e["kind"] == "fault_applied"})
    return tally


def _compare_fills(
    order: dict[str, Any],
    entry: dict[str, Any],
    fills: list[dict[str, Any]],
    closed: str | None,
    tally: Tally,
) -> None:
    quantity = Decimal(entry["quantity"])
    filled = sum((Decimal(f["quantity"]) for f in fills), Decimal(0))
    if Decimal(order["filled_quantity"]) != filled:
        tally.problems.append(
            f"{order['id']}: filled {order['filled_quantity']} vs broker {filled}"
        )
    if filled:
        vwap = sum(Decimal(f["price"]) * Decimal(f["quantity"]) for f in fills) / filled
        shown = Decimal(order["average_fill_price"] or "0")
        if abs(shown - vwap) > vwap * Decimal("0.000001"):
            tally.problems.append(f"{order['id']}: average {shown} vs broker {vwap}")
    if 0 < filled < quantity or len(fills) > 1:
        tally.partials += 1
    expected = closed or ("FILLED" if filled == quantity else None)
    if expected is not None and order["status"] != expected:
        tally.problems.append(f"{order['id']}: {order['status']} vs broker {expected}")
    if expected is None:
        tally.problems.append(f"{order['id']}: still open at the broker ({order['status']})")
    tally.cancels += order["status"] == "CANCELLED"
    tally.expiries += order["status"] == "EXPIRED"


def _compare_fill_rows(
    order: dict[str, Any],
    broker: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    tally: Tally,
    *,
    estimated: bool,
) -> None:
    """The gateway's fills of one order against the broker's: quantities, fees, taxes, keys.

    ``estimated``: the broker reports charges per day and stock only (KIS; audit_day checks
    those sums exactly), so an order's own share is the gateway's: its per-fill KRX-rule
    estimate (at most k − 1 won high for a fill spanning k executions) less its part of the
    day's true-up (at most quantity − 1 won per fill, ``fills._spread``) — within 1 won per
    share either way. Otherwise (the broker reports each order's charges) they must be equal.
    """

    def total(items: list[dict[str, Any]], name: str) -> Decimal:
        return sum((Decimal(str(i[name] or 0)) for i in items), Decimal(0))

    allowed = total(broker, "quantity") if estimated else Decimal(0)
    if total(rows, "quantity") != total(broker, "quantity"):
        tally.problems.append(
            f"{order['id']}: fills' quantity {total(rows, 'quantity')}"
            f" vs broker {total(broker, 'quantity')}"
        )
    for name, field_name in (("fee", "fee_total"), ("tax", "tax_total")):
        for label, value in (
            (f"fills' {name}", total(rows, name)),
            (field_name, Decimal(order.get(field_name) or 0)),
        ):
            difference = abs(value - total(broker, name))
            if difference > allowed:
                tally.problems.append(
                    f"{order['id']}: {label} {value} vs broker {total(broker, name)}"
                )
            elif difference and label == field_name:
                tally.estimated_charges_off += 1
    ids = {str(f["fill_id"]) for f in broker}
    cumulative, running = set(), Decimal(0)
    for fill in broker:
        running += Decimal(fill["quantity"])
        cumulative.add(running.normalize())
    for row in rows:
        key = row["broker_fill_key"]
        if key.startswith("cum:"):  # KIS/Kiwoom: a cumulative quantity the broker really had
            if Decimal(key[4:]).normalize() not in cumulative:
                tally.problems.append(f"{order['id']}: fill {key} matches no broker cumulative")
        elif (
            row["broker_fill_id"] is not None
            and not _uuid_like(row["broker_fill_id"])
            and row["broker_fill_id"] not in ids
        ):
            tally.problems.append(f"{order['id']}: fill {row['broker_fill_id']} unknown")
    if rows and not rows[0]["broker_fill_key"].startswith("cum:") and len(rows) != len(broker):
        tally.problems.append(f"{order['id']}: {len(rows)} fills vs broker {len(broker)}")
    if len({r["broker_fill_key"] for r in rows}) != len(rows):
        tally.problems.append(f"{order['id']}: a fill written twice")
    tally.gateway_fills += len(rows)


def _uuid_like(value: str) -> bool:
    """Upbit's trade uuids are derived from the simulator's ids, not equal to them."""
    return "-" in value


def holdings_match(gateway: dict[str, Any], broker: dict[str, Any]) -> list[str]:
    """Compare the gateway's holdings answer with the simulator's account view (non-cash)."""
    shown = {
        (h.get("symbol") or h.get("asset")): Decimal(h["quantity"])
        for h in gateway["holdings"]
        if (h.get("symbol") or h.get("asset")) not in CASH and Decimal(h["quantity"]) > 0
    }
    held = {
        asset: Decimal(b["total"])
        for asset, b in broker["balances"].items()
        if asset not in CASH and Decimal(b["total"]) > 0
    }
    return [] if shown == held else [f"holdings: gateway {shown} vs broker {held}"]
