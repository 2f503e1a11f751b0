"""Order checks against a market's tick, lot and notional rules, and the market-list cache.

Every adapter checks an order here *before* anything is sent, so an order an exchange would refuse
for its shape never reaches it (and never burns a client order id: Upbit refuses an ``identifier``
forever once it has seen it, even on a rejected order). The messages name the rule, so a strategy
author can fix the order without reading exchange documentation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from decimal import Decimal

from brokers import MarketRule, OrderRequest, OrderType, Side
from brokers.errors import InvalidOrder

__all__ = ["MarketCache", "TickRule", "check_order", "format_decimal"]

TickRule = Callable[[Decimal], Decimal | None]
"""A price → tick size function for exchanges whose tick depends on the price (Upbit KRW)."""


def format_decimal(value: Decimal) -> str:
    """Return ``value`` as a plain decimal string: no exponent, no trailing zeros.

    ``Decimal("1E+2")`` becomes ``"100"`` and ``Decimal("0.00100")`` becomes ``"0.001"``; exchanges
    refuse scientific notation and some refuse superfluous zeros.
    """
    text = format(value.normalize(), "f")
    return "0" if text in {"-0", ""} else text


def _is_multiple(value: Decimal, step: Decimal) -> bool:
    return value % step == 0


def _invalid(broker: str, rule: str, message: str) -> InvalidOrder:
    # broker_code carries the rule so the API client sees which one failed, exchange-style.
    return InvalidOrder(message, broker=broker, broker_code=f"RULE_{rule}", broker_message=message)


def check_order(
    request: OrderRequest,
    rule: MarketRule,
    *,
    broker: str,
    tick_rule: TickRule | None = None,
) -> None:
    """Check ``request`` against ``rule`` before it is sent.

    Checks, in order: the market is tradable; the order's shape (a positive quantity, a positive
    limit price for LIMIT, ``quote_amount`` only on a MARKET BUY); the price is a multiple of the
    tick (``tick_rule(price)`` when the tick depends on the price, else ``rule.tick_size``); the
    quantity is a multiple of the lot; the notional (price × quantity, or ``quote_amount``) reaches
    the minimum. A MARKET order by quantity has no known price here, so its notional is left to
    the exchange.

    Args:
        request: the order as the gateway asks for it (not modified).
        rule: the market's rules from ``list_markets``.
        broker: the exchange name for the error (``"UPBIT"``…).
        tick_rule: a price-dependent tick, overriding ``rule.tick_size``.

    Raises:
        InvalidOrder: the order breaks a rule; ``broker_code`` is ``RULE_<name>`` (``RULE_TICK``,
            ``RULE_LOT``, ``RULE_MIN_NOTIONAL``, ``RULE_TRADABLE``, ``RULE_SHAPE``).
    """
    symbol = request.symbol
    if not rule.is_tradable:
        raise _invalid(broker, "TRADABLE", f"{symbol} is not tradable now")
    by_amount = request.quote_amount is not None
    if by_amount:
        if request.order_type is not OrderType.MARKET or request.side is not Side.BUY:
            raise _invalid(broker, "SHAPE", "quote_amount is only for a MARKET BUY")
        if request.quote_amount <= 0:  # type: ignore[operator]
            raise _invalid(broker, "SHAPE", "quote_amount must be positive")
    elif request.quantity <= 0:
        raise _invalid(broker, "SHAPE", "quantity must be positive")
    price = request.limit_price
    if request.order_type is OrderType.LIMIT:
        if price is None or price <= 0:
            raise _invalid(broker, "SHAPE", "a LIMIT order needs a positive limit_price")
        tick = tick_rule(price) if tick_rule is not None else rule.tick_size
        if tick is not None and tick > 0 and not _is_multiple(price, tick):
            raise _invalid(
                broker,
                "TICK",
                f"tick size rule: price {format_decimal(price)} of {symbol} is not a multiple "
                f"of the tick size {format_decimal(tick)}",
            )
    elif price is not None:
        raise _invalid(broker, "SHAPE", "a MARKET order takes no limit_price")
    lot = rule.lot_size
    if not by_amount and lot is not None and lot > 0 and not _is_multiple(request.quantity, lot):
        raise _invalid(
            broker,
            "LOT",
            f"lot size rule: quantity {format_decimal(request.quantity)} of {symbol} is not a "
            f"multiple of the lot size {format_decimal(lot)}",
        )
    minimum = rule.min_notional
    if minimum is None or minimum <= 0:
        return
    if by_amount:
        notional: Decimal | None = request.quote_amount
    elif price is not None:
        notional = price * request.quantity
    else:
        notional = None
    if notional is not None and notional < minimum:
        raise _invalid(
            broker,
            "MIN_NOTIONAL",
            f"minimum notional rule: order value {format_decimal(notional)} {rule.quote_asset} "
            f"of {symbol} is below the minimum {format_decimal(minimum)} {rule.quote_asset}",
        )


class MarketCache:
    """The market list of one adapter instance, kept for ``ttl`` seconds.

    Rules change rarely (a listing, a tick-table change), while an order checks them every time;
    a short TTL keeps the checks local without serving week-old rules. Thread-safe: concurrent
    callers after expiry wait for one fetch instead of each fetching.

    Args:
        fetch: returns the current market list (may raise a ``BrokerError``; nothing is cached
            then).
        ttl: seconds a list stays fresh.
        monotonic: the time source (``time.monotonic``; tests pass a fake).
    """

    def __init__(
        self,
        fetch: Callable[[], list[MarketRule]],
        *,
        ttl: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._markets: list[MarketRule] | None = None
        self._by_symbol: dict[str, MarketRule] = {}
        self._fetched_at = 0.0

    def markets(self) -> list[MarketRule]:
        """Return the cached list, fetching it when missing or older than the TTL."""
        with self._lock:
            now = self._monotonic()
            if self._markets is None or now - self._fetched_at >= self._ttl:
                markets = self._fetch()
                self._markets = list(markets)
                self._by_symbol = {m.symbol: m for m in self._markets}
                self._fetched_at = now
            return list(self._markets)

    def get(self, symbol: str) -> MarketRule | None:
        """Return the rule of ``symbol``, or None if the exchange does not list it."""
        self.markets()
        with self._lock:
            return self._by_symbol.get(symbol)

    def invalidate(self) -> None:
        """Forget the list, so the next call fetches it again."""
        with self._lock:
            self._markets = None
            self._by_symbol = {}
