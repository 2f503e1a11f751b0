"""The part of a crypto adapter that does not depend on the exchange.

Construction (everything injected, DESIGN §6 / STYLE H5), the market-list cache, the rule check
before an order is sent, holdings and balances (one account read, mapped two ways) and the
selection that ends every ``list_orders``. Exchange adapters subclass :class:`CryptoAdapterBase`
and implement the rest of the protocol with their own client and mapping.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, ClassVar

import requests

from brokers import (
    Balance,
    BrokerOrder,
    Capabilities,
    Clock,
    Credentials,
    MarketRule,
    OrderRequest,
    Position,
    utc_now,
)
from brokers.errors import InvalidOrder
from brokers.limits import NO_LIMIT, RateLimiter
from crypto_exchanges._http import ExchangeClient, RetryPolicy
from crypto_exchanges._rules import MarketCache, check_order

__all__ = ["MARKET_CACHE_TTL", "CryptoAdapterBase", "orders_since"]

#: Seconds a market list is reused for order checks. Long enough that a burst of orders costs one
#: fetch, short enough that a new listing or a changed rule is seen within a minute.
MARKET_CACHE_TTL = 60.0

CRYPTO_CAPABILITIES = Capabilities(
    client_order_id=True, market_orders=True, amend_order=False, oauth_tokens=False
)


def orders_since(orders: Iterable[BrokerOrder], since: dt.datetime) -> list[BrokerOrder]:
    """Return the orders created at or after ``since``, oldest first.

    An order without a creation time is kept and sorts as if created at ``since``.
    """
    selected = [o for o in orders if o.created_at is None or o.created_at >= since]
    return sorted(selected, key=lambda o: o.created_at or since)


class CryptoAdapterBase:
    """Shared construction, market cache, pre-send rule checks and account reads.

    Subclasses name their client (:attr:`client_class`) and account endpoint
    (:attr:`account_path`, :attr:`account_params`), and map its answer in
    :meth:`_parse_positions` and :meth:`_parse_balances`.

    Args:
        credentials: the account's keys.
        base_url: the exchange host (``DEFAULT_BASE_URLS``) or a simulator.
        session: the HTTP session, e.g. ``make_http_session()``.
        clock: aware UTC time.
        timeout: seconds to connect and to wait for each answer.
        retry_policy: how reads are retried (orders are never retried).
        sleep: how read retries wait (tests pin it).
        monotonic: the market cache's time source.
        limiter: the shared rate limiter every request asks first (default: none).
    """

    exchange: ClassVar[str]
    capabilities: ClassVar[Capabilities] = CRYPTO_CAPABILITIES
    client_class: ClassVar[type[ExchangeClient]]
    #: The signed GET whose one answer holds both the coins and the cash.
    account_path: ClassVar[str]
    account_params: ClassVar[Mapping[str, str] | None] = None

    def __init__(
        self,
        credentials: Credentials,
        *,
        base_url: str,
        session: requests.Session,
        clock: Clock = utc_now,
        timeout: float = 10.0,
        retry_policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        limiter: RateLimiter = NO_LIMIT,
        order_rules: Callable[[str], MarketRule | None] | None = None,
    ) -> None:
        """Build the adapter.

        ``order_rules`` (``symbol → MarketRule | None``), when given, is where orders find their
        market's rules instead of the exchange's market list: the gateway passes its stored
        list, so no order downloads the exchange's list (a quotation call with its own budget).
        """
        self._clock = clock
        self._order_rules = order_rules
        self.client = self.client_class(
            credentials,
            base_url=base_url,
            session=session,
            clock=clock,
            timeout=timeout,
            retry_policy=retry_policy,
            sleep=sleep,
            limiter=limiter,
        )
        self._markets = MarketCache(self._fetch_markets, ttl=MARKET_CACHE_TTL, monotonic=monotonic)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.client.base_url!r})"

    def _fetch_markets(self) -> list[MarketRule]:
        raise NotImplementedError

    def list_markets(self) -> list[MarketRule]:
        """Return the exchange's markets with their tick, lot and notional rules (cached).

        Raises:
            BrokerUnavailable: the exchange did not answer (after read retries).
            BrokerError: the exchange refused the request.
        """
        return self._markets.markets()

    def _tick_rule(self, rule: MarketRule) -> Callable[[Decimal], Decimal | None] | None:
        """Return a price-dependent tick for ``rule``'s market, if the exchange has one."""
        return None

    def _check(self, request: OrderRequest) -> MarketRule:
        """Check ``request`` against its market's rules before anything is sent.

        Raises:
            InvalidOrder: unknown market, or a broken tick, lot, notional or shape rule.
            BrokerUnavailable: the market list could not be fetched.
        """
        if self._order_rules is not None:
            rule = self._order_rules(request.symbol)
        else:
            rule = self._markets.get(request.symbol)
            if rule is None:
                # A market listed after the cache was filled would otherwise be refused for a
                # minute.
                self._markets.invalidate()
                rule = self._markets.get(request.symbol)
        if rule is None:
            message = f"{request.symbol} is not a market of {self.exchange}"
            raise InvalidOrder(
                message, broker=self.exchange, broker_code="RULE_SYMBOL", broker_message=message
            )
        self.check_order(request, rule)
        return rule

    def check_order(self, request: OrderRequest, rule: MarketRule) -> None:
        """Check ``request`` against ``rule`` (tick, lot, notional, shape), sending nothing.

        Raises:
            InvalidOrder: a rule is broken; ``broker_code`` names it (``RULE_TICK``…).
        """
        check_order(request, rule, broker=self.exchange, tick_rule=self._tick_rule(rule))

    # -- account -----------------------------------------------------------------------------

    def _parse_positions(self, account: Any) -> list[Position]:
        """Map the account answer to asset positions."""
        raise NotImplementedError

    def _parse_balances(self, account: Any) -> list[Balance]:
        """Map the account answer to cash balances."""
        raise NotImplementedError

    def _read_account(self) -> Any:
        return self.client.request("GET", self.account_path, params=self.account_params)

    def get_holdings(self) -> list[Position]:
        """Return the non-cash assets the account holds (``Position(asset="BTC", …)``).

        Raises:
            BrokerAuthFailed: the keys were refused.
            BrokerUnavailable: the exchange did not answer (after read retries).
        """
        return self._parse_positions(self._read_account())

    def get_balance(self) -> list[Balance]:
        """Return the cash the account holds, by currency (total, available, locked in orders).

        Cash is KRW on Upbit and Bithumb; on Binance the stablecoins and fiat its spot markets
        quote in (USDT, USDC, EUR…).

        Raises:
            BrokerAuthFailed: the keys were refused.
            BrokerUnavailable: the exchange did not answer (after read retries).
        """
        return self._parse_balances(self._read_account())
