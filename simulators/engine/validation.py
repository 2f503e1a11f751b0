"""The order rules: shape (what a limit or market order needs), tick, lot and minimums.

Each failure raises :class:`~simulators.engine.InvalidOrder` with the
:class:`~simulators.engine.RuleViolated` a facade maps to its broker's code.
"""

from __future__ import annotations

from decimal import Decimal

from simulators.engine.errors import InvalidOrder, RuleViolated
from simulators.engine.instruments import Instrument, is_on_tick
from simulators.engine.model import OrderType, Side
from simulators.engine.money import Number, to_decimal
from simulators.engine.orders import OrderRecord

__all__ = ["checked_quantity", "validate_amendment", "validate_shape"]


def _positive(value: Number, what: str, rule: RuleViolated) -> Decimal:
    try:
        result = to_decimal(value, what)
    except ValueError as exc:
        raise InvalidOrder(rule, str(exc)) from exc
    if result <= 0:
        raise InvalidOrder(rule, f"{what} must be positive")
    return result


def validate_shape(
    instrument: Instrument,
    side: Side,
    order_type: OrderType,
    quantity: Number | None,
    price: Number | None,
    quote_amount: Number | None,
    current: Decimal,
) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
    """Check a new order against the rules; return its ``(quantity, price, quote_amount)``.

    ``current`` is the market price, which values a market order sized by quantity.

    Raises:
        InvalidOrder: for the first rule the order breaks.
    """
    qty = None if quantity is None else _positive(quantity, "quantity", RuleViolated.QUANTITY)
    limit = None if price is None else _positive(price, "price", RuleViolated.PRICE)
    amount = (
        None if quote_amount is None else _positive(quote_amount, "amount", RuleViolated.QUANTITY)
    )
    if order_type is OrderType.LIMIT:
        if qty is None or limit is None or amount is not None:
            raise InvalidOrder(RuleViolated.ORDER_SHAPE, "a limit order needs quantity and price")
    else:
        if limit is not None:
            raise InvalidOrder(RuleViolated.ORDER_SHAPE, "a market order takes no price")
        if (qty is None) == (amount is None):
            raise InvalidOrder(
                RuleViolated.ORDER_SHAPE, "a market order needs quantity or quote amount"
            )
        if amount is not None and side is Side.SELL:
            raise InvalidOrder(RuleViolated.ORDER_SHAPE, "a market sell is sized by quantity")
    if limit is not None and not is_on_tick(limit, instrument.tick_rule):
        raise InvalidOrder(
            RuleViolated.PRICE_TICK,
            f"price {limit} is not a multiple of the tick {instrument.tick_rule(limit)}",
        )
    if qty is not None:
        if qty % instrument.lot_size:
            raise InvalidOrder(
                RuleViolated.LOT_SIZE,
                f"quantity {qty} is not a multiple of {instrument.lot_size}",
            )
        if qty < max(instrument.min_quantity, instrument.lot_size):
            raise InvalidOrder(RuleViolated.MIN_QUANTITY, f"quantity {qty} is below the minimum")
    notional = amount if amount is not None else qty * (limit or current)  # type: ignore[operator]
    if notional < instrument.min_notional:
        raise InvalidOrder(
            RuleViolated.MIN_NOTIONAL,
            f"order value {notional} is below the minimum {instrument.min_notional}",
        )
    return qty, limit, amount


def checked_quantity(instrument: Instrument, value: Number) -> Decimal:
    """Return ``value`` as a quantity of whole lots (for cancels and amendments).

    Raises:
        InvalidOrder: if it is not a number, not positive, or not a whole number of lots.
    """
    try:
        qty = to_decimal(value, "quantity")
    except ValueError as exc:
        raise InvalidOrder(RuleViolated.QUANTITY, str(exc)) from exc
    if qty <= 0 or qty % instrument.lot_size:
        raise InvalidOrder(RuleViolated.LOT_SIZE, f"quantity {qty} is not a positive lot")
    return qty


def validate_amendment(
    record: OrderRecord, new_price: Number | None, new_quantity: Number | None
) -> tuple[Decimal, Decimal]:
    """Check an amendment of an open order; return the amended ``(price, quantity)``.

    Omitted values keep the order's price and its whole remainder.

    Raises:
        InvalidOrder: if the order is not a limit order, or the new price or quantity breaks a
            rule.
        ValueError: if ``new_price`` is not a decimal.
    """
    if record.order_type is not OrderType.LIMIT:
        raise InvalidOrder(RuleViolated.ORDER_SHAPE, "only limit orders can be amended")
    instrument = record.instrument
    price = record.price if new_price is None else to_decimal(new_price, "price")
    if price is None or record.remaining is None:  # limit orders always have both
        raise InvalidOrder(RuleViolated.ORDER_SHAPE, "not a limit order")
    if price <= 0 or not is_on_tick(price, instrument.tick_rule):
        raise InvalidOrder(RuleViolated.PRICE_TICK, f"price {price} is not on the tick")
    qty = record.remaining if new_quantity is None else checked_quantity(instrument, new_quantity)
    if qty * price < instrument.min_notional:
        raise InvalidOrder(RuleViolated.MIN_NOTIONAL, "amended order below the minimum")
    return price, qty
