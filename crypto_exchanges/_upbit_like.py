"""What Upbit and Bithumb API 2.0 share: JWT signing, error bodies, accounts and order objects.

Bithumb's API 2.0 copied Upbit's: the same ``Authorization: Bearer <JWT>`` with a ``query_hash``
(Bithumb adds a ``timestamp`` claim), the same ``{"error": {"name", "message"}}`` bodies, the same
``/v1/accounts`` rows and order objects (``uuid``, ``state`` wait/watch/done/cancel, ``paid_fee``,
``trades``), the same ``/v1/market/all`` and ``/v1/order`` look-up. The exchange packages keep
what differs: endpoints, codes, and the names and rules in their :class:`UpbitDialect` (the
client id's name, the order type's name, the published market rules).
Functions here are pure except :class:`UpbitLikeClient` and :class:`UpbitLikeAdapter`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from brokers import (
    Balance,
    BrokerOrder,
    Fill,
    MarketRule,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Side,
)
from brokers.errors import BrokerAuthFailed, BrokerMaintenance, BrokerRateLimited, InvalidOrder
from crypto_exchanges._adapter import CryptoAdapterBase
from crypto_exchanges._http import ExchangeClient, PreparedCall, SubstringRule, encode_query
from crypto_exchanges._jwt import encode_hs_jwt, query_hash
from crypto_exchanges._rules import format_decimal

__all__ = [
    "KRW_TICKS",
    "UPBIT_LIKE_SUBSTRINGS",
    "USDT_TICKS",
    "UpbitDialect",
    "UpbitLikeAdapter",
    "UpbitLikeClient",
    "band_tick",
    "build_order_body",
    "encode_query",
    "parse_accounts_balances",
    "parse_accounts_positions",
    "parse_market_all",
    "parse_order",
    "parse_time",
    "to_decimal",
    "with_cancel_pending",
]

# ------------------------------------------------------------------------------------------------
# Signing
# ------------------------------------------------------------------------------------------------


def jwt_payload(
    access_key: str,
    *,
    nonce: str,
    query_string: str | None,
    timestamp_ms: int | None = None,
) -> dict[str, Any]:
    """Return the JWT claims: ``access_key``, ``nonce``, [``timestamp``], [``query_hash``…].

    ``query_hash`` (hex SHA-512) and ``query_hash_alg`` appear only when the request has
    parameters; Bithumb 2.0 requires ``timestamp`` (ms), Upbit has no such claim.
    """
    payload: dict[str, Any] = {"access_key": access_key, "nonce": nonce}
    if timestamp_ms is not None:
        payload["timestamp"] = timestamp_ms
    if query_string:
        payload["query_hash"] = query_hash(query_string)
        payload["query_hash_alg"] = "SHA512"
    return payload


class UpbitLikeClient(ExchangeClient):
    """Signed HTTP for Upbit and Bithumb 2.0.

    GET and DELETE carry their parameters in the query string; POST sends a compact JSON body and
    hashes the same parameters as ``k=v&…`` in body order. Answers must carry ``Remaining-Req``
    on Upbit; it is kept in :attr:`rate_limit`.
    """

    #: Bithumb 2.0 requires a ``timestamp`` claim; Upbit has none.
    timestamp_claim: ClassVar[bool] = False
    nonce_factory: Callable[[], str] = staticmethod(lambda: str(uuid.uuid4()))

    def _prepare(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        body: Mapping[str, str] | None,
        signed: bool,
    ) -> PreparedCall:
        url = self.base_url + path
        headers = {"Accept": "application/json"}
        query = encode_query(params) if params else ""
        if query:
            url = f"{url}?{query}"
        text: str | None = None
        hashed = query
        if body is not None:
            text = self._json_body(body)
            headers["Content-Type"] = "application/json; charset=utf-8"
            hashed = encode_query(body)
        if signed:
            claims = jwt_payload(
                self._credentials.api_key,
                nonce=self.nonce_factory(),
                query_string=hashed or None,
                timestamp_ms=self._now_ms() if self.timestamp_claim else None,
            )
            token = encode_hs_jwt(claims, self._credentials.api_secret)
            headers["Authorization"] = f"Bearer {token}"
        return PreparedCall(method=method, url=url, headers=headers, body=text)

    def _error_fields(self, payload: Any) -> tuple[str | None, str | None]:
        # {"error": {"name": "insufficient_funds_bid",
        #  "message": "주문가능한 금액(KRW)이 부족합니다."}}
        # {"error": {"name": 400, "message": "Missing request parameter error. ..."}}
        if isinstance(payload, Mapping):
            error = payload.get("error")
            if isinstance(error, Mapping):
                name = error.get("name")
                message = error.get("message")
                return (None if name is None else str(name)), (
                    None if message is None else str(message)
                )
            if isinstance(error, str):  # a proxy's or a generic 5xx body
                return None, error
            return None, str(payload)[:200]
        text = str(payload).strip()
        return None, text[:200] or None

    def _observe(self, headers: Mapping[str, str]) -> None:
        # Remaining-Req: group=default; min=1800; sec=29
        value = headers.get("Remaining-Req")
        if value:
            self.rate_limit = {"Remaining-Req": value}
            match = re.search(r"sec=(\d+)", value)
            if match:
                self.rate_limit["sec"] = match.group(1)


#: The substring rules both error tables end with: words any Upbit-style message may carry, tried
#: after each exchange's own rules.
UPBIT_LIKE_SUBSTRINGS: tuple[SubstringRule, ...] = (
    SubstringRule("jwt", BrokerAuthFailed),
    SubstringRule("too many", BrokerRateLimited),
    SubstringRule("maintenance", BrokerMaintenance),
    SubstringRule("점검", BrokerMaintenance),
)


# ------------------------------------------------------------------------------------------------
# Market rules: published price-unit tables
# ------------------------------------------------------------------------------------------------

#: (upper bound exclusive, tick) of the KRW market price-unit table (Upbit, in force since
#: 2025-07-31: docs.upbit.com/kr/docs/krw-market-info). The simulators use the same table for
#: Bithumb's KRW markets.
KRW_TICKS: tuple[tuple[Decimal, Decimal], ...] = (
    (Decimal("0.0001"), Decimal("0.00000001")),
    (Decimal("0.001"), Decimal("0.0000001")),
    (Decimal("0.01"), Decimal("0.000001")),
    (Decimal("0.1"), Decimal("0.00001")),
    (Decimal("1"), Decimal("0.0001")),
    (Decimal("10"), Decimal("0.001")),
    (Decimal("100"), Decimal("0.01")),
    (Decimal("5000"), Decimal("1")),
    (Decimal("10000"), Decimal("5")),
    (Decimal("50000"), Decimal("10")),
    (Decimal("100000"), Decimal("50")),
    (Decimal("500000"), Decimal("100")),
    (Decimal("1000000"), Decimal("500")),
    (Decimal("Infinity"), Decimal("1000")),
)

#: Upbit's USDT market table (docs.upbit.com/docs/usdt-market-info).
USDT_TICKS: tuple[tuple[Decimal, Decimal], ...] = (
    (Decimal("0.0001"), Decimal("0.00000001")),
    (Decimal("0.001"), Decimal("0.0000001")),
    (Decimal("0.01"), Decimal("0.000001")),
    (Decimal("0.1"), Decimal("0.00001")),
    (Decimal("1"), Decimal("0.0001")),
    (Decimal("10"), Decimal("0.001")),
    (Decimal("Infinity"), Decimal("0.01")),
)


def band_tick(table: Sequence[tuple[Decimal, Decimal]], price: Decimal) -> Decimal:
    """Return the tick of ``price`` in a (upper bound, tick) table."""
    for upper, tick in table:
        if price < upper:
            return tick
    return table[-1][1]


# ------------------------------------------------------------------------------------------------
# Mapping (pure)
# ------------------------------------------------------------------------------------------------


def to_decimal(value: Any) -> Decimal | None:
    """Return a JSON number or numeric string as a Decimal (None for null or garbage)."""
    if value is None or value == "":
        return None
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return result if result.is_finite() else None


def parse_time(value: Any) -> dt.datetime | None:
    """Parse ``2026-03-02T09:30:00+09:00`` (or epoch ms) into an aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value / 1000, dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        # Both exchanges stamp KST; a naive stamp is read as KST rather than guessed as UTC.
        parsed = parsed.replace(tzinfo=dt.timezone(dt.timedelta(hours=9)))
    return parsed.astimezone(dt.UTC)


# Sample (GET /v1/market/all?is_details=true):
# [{"market": "KRW-BTC", "korean_name": "비트코인", "english_name": "Bitcoin",
#   "market_warning": "NONE"}]
def parse_market_all(
    rows: Sequence[Mapping[str, Any]],
    rules_for_quote: Callable[[str], tuple[Decimal | None, Decimal | None, Decimal | None] | None],
) -> list[MarketRule]:
    """Map a ``/v1/market/all`` list to rules; ``rules_for_quote`` gives (tick, lot, min total).

    Markets whose quote currency has no published rules are left out: no order could be checked.
    Upbit's price-dependent tick is not a single number, so ``tick_size`` is None for table quotes
    and the adapter checks the table.
    """
    markets: list[MarketRule] = []
    for row in rows:
        symbol = str(row.get("market", ""))
        quote_asset, _, base_asset = symbol.partition("-")
        if not base_asset:
            continue
        rules = rules_for_quote(quote_asset)
        if rules is None:
            continue
        tick, lot, minimum = rules
        warning = row.get("market_warning")
        state = row.get("market_state") or row.get("state")
        markets.append(
            MarketRule(
                symbol=symbol,
                base_asset=base_asset,
                quote_asset=quote_asset,
                tick_size=tick,
                lot_size=lot,
                min_notional=minimum,
                # CAUTION is a warning, not a halt; only an explicit non-active state stops trading.
                is_tradable=state in (None, "active", "ACTIVE") and warning != "DELISTED",
                raw=dict(row),
            )
        )
    return markets


# Sample (GET /v1/accounts):
# [{"currency": "KRW", "balance": "1000000.0", "locked": "0.0", "avg_buy_price": "0",
#   "avg_buy_price_modified": false, "unit_currency": "KRW"},
#  {"currency": "BTC", "balance": "0.5", "locked": "0.1", "avg_buy_price": "95000000",
#   "avg_buy_price_modified": false, "unit_currency": "KRW"}]
def parse_accounts_balances(
    rows: Sequence[Mapping[str, Any]], cash: frozenset[str]
) -> list[Balance]:
    """Return the cash rows (``cash`` currencies) of ``/v1/accounts`` as balances.

    A trade settles on the spot, so today's and the D+2 cash are both the total.
    """
    balances = []
    for row in rows:
        currency = str(row.get("currency", ""))
        if currency not in cash:
            continue
        free = to_decimal(row.get("balance")) or Decimal(0)
        locked = to_decimal(row.get("locked")) or Decimal(0)
        balances.append(
            Balance(
                currency=currency,
                total=free + locked,
                available=free,
                locked=locked,
                settled_today=free + locked,
                settled_d2=free + locked,
                raw=dict(row),
            )
        )
    return balances


def parse_accounts_positions(
    rows: Sequence[Mapping[str, Any]], cash: frozenset[str]
) -> list[Position]:
    """Return the non-cash rows of ``/v1/accounts`` as asset positions (zero rows left out)."""
    positions = []
    for row in rows:
        currency = str(row.get("currency", ""))
        if not currency or currency in cash:
            continue
        free = to_decimal(row.get("balance")) or Decimal(0)
        locked = to_decimal(row.get("locked")) or Decimal(0)
        if free + locked == 0:
            continue
        unit = row.get("unit_currency") or "KRW"
        avg = to_decimal(row.get("avg_buy_price"))
        positions.append(
            Position(
                quantity=free + locked,
                asset=currency,
                symbol=f"{unit}-{currency}",
                available_quantity=free,
                avg_price=avg if avg else None,
                raw=dict(row),
            )
        )
    return positions


def _status(state: str, ord_type: str, executed: Decimal, remaining: Decimal | None) -> OrderStatus:
    if state in ("wait", "watch", "progress"):
        return OrderStatus.PARTIALLY_FILLED if executed > 0 else OrderStatus.SUBMITTED
    if state == "done":
        return OrderStatus.FILLED
    if state == "cancel":
        # A market buy by amount ends in "cancel" when the dust left of the budget is refunded;
        # its fills are complete (crypto.md §1.7, pyupbit#114).
        if ord_type == "price" and executed > 0:
            return OrderStatus.FILLED
        return OrderStatus.CANCELLED
    return OrderStatus.UNKNOWN


# Sample (GET /v1/order?uuid=…; POST /v1/orders answers the same object without "trades"):
# {"uuid": "cdd92199-2897-4e14-9448-f923320408ad", "side": "bid", "ord_type": "limit",
#  "price": "100.0", "state": "wait", "market": "KRW-BTC",
#  "created_at": "2018-04-10T15:42:23+09:00", "volume": "0.01", "remaining_volume": "0.01",
#  "reserved_fee": "0.0015", "remaining_fee": "0.0015",
#  "paid_fee": "0.0", "locked": "1.0015", "executed_volume": "0.0", "trades_count": 0,
#  "identifier": "gw-123", "trades": [{"price": "100.0", "volume": "0.01", "funds": "1.0"}]}
def parse_order(
    raw: Mapping[str, Any], *, client_id_field: str, type_field: str = "ord_type"
) -> BrokerOrder:
    """Map an Upbit-style order object to a ``BrokerOrder``.

    ``ord_type=price`` (market buy by amount) has a budget in ``price`` and no ``volume``: its
    quantity is what was executed, and it has no limit price.
    """
    ord_type = str(raw.get(type_field) or raw.get("ord_type") or raw.get("order_type") or "")
    state = str(raw.get("state") or "")
    executed = to_decimal(raw.get("executed_volume")) or Decimal(0)
    remaining = to_decimal(raw.get("remaining_volume"))
    volume = to_decimal(raw.get("volume"))
    quantity = volume if volume is not None else executed
    funds = to_decimal(raw.get("executed_funds"))
    if funds is None:
        trades = raw.get("trades") or []
        total = [to_decimal(t.get("funds")) for t in trades if isinstance(t, Mapping)]
        funds = sum((f for f in total if f is not None), Decimal(0)) if total else None
    average = funds / executed if funds and executed > 0 else None
    market = str(raw.get("market") or "")
    return BrokerOrder(
        broker_order_id=str(raw.get("uuid") or raw.get("order_id") or ""),
        symbol=str(raw.get("market") or ""),
        side=Side.BUY if raw.get("side") == "bid" else Side.SELL,
        order_type=OrderType.LIMIT if ord_type == "limit" else OrderType.MARKET,
        status=_status(state, ord_type, executed, remaining),
        quantity=quantity,
        filled_quantity=executed,
        limit_price=to_decimal(raw.get("price")) if ord_type == "limit" else None,
        average_fill_price=average,
        client_order_id=raw.get(client_id_field) or None,
        created_at=parse_time(raw.get("created_at")),
        updated_at=parse_time(raw.get("updated_at")) if raw.get("updated_at") else None,
        fee=to_decimal(raw.get("paid_fee")),
        # Both charge the fee in the market's quote currency ("KRW-BTC": KRW), buys and sells.
        fee_asset=market.split("-", 1)[0] if "-" in market else None,
        fills=parse_trades(raw),
        raw=dict(raw),
    )


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def parse_trades(raw: Mapping[str, Any]) -> tuple[Fill, ...] | None:
    """Map an order's ``trades`` (single-order look-ups only) to fills; None without the list.

    Each trade has its own ``uuid`` (the fill's key), ``price``, ``volume`` and ``funds``; no fee
    of its own: the order's ``paid_fee`` is the cumulative fee, which the gateway apportions.
    """
    trades = raw.get("trades")
    if not isinstance(trades, list):
        return None
    order_id = str(raw.get("uuid") or raw.get("order_id") or "")
    fills = []
    for trade in trades:
        if not isinstance(trade, Mapping):
            continue
        volume, price = to_decimal(trade.get("volume")), to_decimal(trade.get("price"))
        if not volume or price is None:
            continue
        fills.append(
            Fill(
                broker_order_id=order_id,
                quantity=volume,
                price=price,
                filled_at=parse_time(trade.get("created_at"))
                or parse_time(raw.get("created_at"))
                or _EPOCH,  # an undated trade: never seen on either exchange
                broker_fill_id=str(trade.get("uuid") or "") or None,
                raw=dict(trade),
            )
        )
    return tuple(fills)


def build_order_body(
    request: OrderRequest, *, broker: str, type_key: str, client_id_key: str
) -> dict[str, str]:
    """Build an Upbit-style create-order body; the client id always goes in ``client_id_key``.

    LIMIT → ``limit`` with price and volume; MARKET BUY → ``price`` with the budget
    (``quote_amount``) as ``price``; MARKET SELL → ``market`` with volume. Upbit names the type
    ``ord_type`` and the id ``identifier``; Bithumb 2.0 ``order_type`` and ``client_order_id``.

    Raises:
        InvalidOrder: a MARKET BUY without ``quote_amount`` (both buy at market by amount only).
    """
    side = "bid" if request.side is Side.BUY else "ask"
    body: dict[str, str] = {"market": request.symbol, "side": side}
    if request.order_type is OrderType.LIMIT:
        if request.limit_price is None:
            raise _shape_error(broker, "a LIMIT order needs a limit_price")
        body["volume"] = format_decimal(request.quantity)
        body["price"] = format_decimal(request.limit_price)
        body[type_key] = "limit"
    elif request.side is Side.BUY:
        if request.quote_amount is None:
            raise _shape_error(
                broker, f"a {broker} MARKET BUY needs quote_amount (the quote currency to spend)"
            )
        body["price"] = format_decimal(request.quote_amount)
        body[type_key] = "price"
    else:
        body["volume"] = format_decimal(request.quantity)
        body[type_key] = "market"
    body[client_id_key] = request.client_order_id
    return body


def _shape_error(broker: str, message: str) -> InvalidOrder:
    return InvalidOrder(message, broker=broker, broker_code="RULE_SHAPE", broker_message=message)


def with_cancel_pending(order: BrokerOrder) -> BrokerOrder:
    """Return ``order`` as CANCEL_PENDING if it is still open right after an accepted cancel."""
    if order.status in (OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED):
        return dataclasses.replace(order, status=OrderStatus.CANCEL_PENDING)
    return order


# ------------------------------------------------------------------------------------------------
# One exchange's names and rules (pure)
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class UpbitDialect:
    """What one Upbit-like exchange names or rules differently; its methods are the pure mapping.

    Each exchange's ``mapping`` module holds one (``UPBIT``, ``BITHUMB``) and exports its methods
    under the module's names.

    Attributes:
        broker: ``"UPBIT"`` or ``"BITHUMB"``, for errors.
        client_id_field: our client order id's name in order objects, in the create-order body
            and in the ``GET /v1/order`` look-up (Upbit ``identifier``, Bithumb
            ``client_order_id``).
        type_field: the order type's name in the create-order body (Upbit ``ord_type``, Bithumb
            ``order_type``).
        quote_rules: published rules per quote currency: (fixed tick or None for a price table,
            lot, min total).
        tick_tables: the price-unit tables, by quote currency.
        cash_currencies: currencies the account holds as cash (everything else is a position).
    """

    broker: str
    client_id_field: str
    type_field: str
    quote_rules: Mapping[str, tuple[Decimal | None, Decimal, Decimal]]
    tick_tables: Mapping[str, Sequence[tuple[Decimal, Decimal]]]
    cash_currencies: frozenset[str]

    def tick_for(self, quote_asset: str, price: Decimal) -> Decimal | None:
        """Return the tick at ``price`` in a ``quote_asset`` market (None: no published rule)."""
        table = self.tick_tables.get(quote_asset)
        if table is not None:
            return band_tick(table, price)
        fixed = self.quote_rules.get(quote_asset)
        return fixed[0] if fixed else None

    def parse_markets(self, rows: Sequence[Mapping[str, Any]]) -> list[MarketRule]:
        """Map ``/v1/market/all`` to rules (tick None where it depends on the price)."""
        return parse_market_all(rows, self.quote_rules.get)

    def parse_balances(self, rows: Sequence[Mapping[str, Any]]) -> list[Balance]:
        """Map ``/v1/accounts`` to the cash balances (KRW)."""
        return parse_accounts_balances(rows, self.cash_currencies)

    def parse_positions(self, rows: Sequence[Mapping[str, Any]]) -> list[Position]:
        """Map ``/v1/accounts`` to asset positions (``Position(asset=…)``)."""
        return parse_accounts_positions(rows, self.cash_currencies)

    def parse_order(self, raw: Mapping[str, Any]) -> BrokerOrder:
        """Map an order object (:attr:`client_id_field` is our client order id)."""
        return parse_order(raw, client_id_field=self.client_id_field)

    def order_body(self, request: OrderRequest) -> dict[str, str]:
        """Build the create-order body; :attr:`client_id_field` is always our client order id.

        Raises:
            InvalidOrder: a MARKET BUY without ``quote_amount`` (both buy at market by amount).
        """
        return build_order_body(
            request,
            broker=self.broker,
            type_key=self.type_field,
            client_id_key=self.client_id_field,
        )


# ------------------------------------------------------------------------------------------------
# The adapter's shared half
# ------------------------------------------------------------------------------------------------


class UpbitLikeAdapter(CryptoAdapterBase):
    """What the Upbit and Bithumb adapters share: markets, ticks, order look-up and accounts.

    Subclasses set :attr:`dialect` and :attr:`markets_params` and implement placing, cancelling
    and listing orders, whose endpoints and answers differ.
    """

    #: The exchange's names and rules (its ``mapping`` module's ``UPBIT`` or ``BITHUMB``).
    dialect: ClassVar[UpbitDialect]
    #: The query of ``GET /v1/market/all`` that asks for market warnings (Upbit ``is_details``,
    #: Bithumb ``isDetails``).
    markets_params: ClassVar[Mapping[str, str]]
    account_path = "/v1/accounts"

    def _fetch_markets(self) -> list[MarketRule]:
        rows = self.client.request(
            "GET", "/v1/market/all", params=self.markets_params, signed=False
        )
        return self.dialect.parse_markets(rows)

    def _tick_rule(self, rule: MarketRule) -> Callable[[Decimal], Decimal | None] | None:
        quote = rule.quote_asset
        return lambda price: self.dialect.tick_for(quote, price)

    def get_order(
        self,
        broker_order_id: str | None = None,
        *,
        client_order_id: str | None = None,
        symbol: str | None = None,
        order_date: dt.date | None = None,
    ) -> BrokerOrder:
        """Look an order up by the exchange's ``uuid`` or by our client order id.

        The client order id goes in the exchange's own field (Upbit ``identifier``, Bithumb
        ``client_order_id``); ``symbol`` is not needed.

        Raises:
            ValueError: neither id was given.
            OrderNotFound: no such order (after a lost answer: it was never placed).
            BrokerUnavailable: the exchange did not answer (after read retries).
        """
        if broker_order_id:
            params = {"uuid": broker_order_id}
        elif client_order_id:
            params = {self.dialect.client_id_field: client_order_id}
        else:
            raise ValueError("get_order needs broker_order_id or client_order_id")
        return self.dialect.parse_order(self.client.request("GET", "/v1/order", params=params))

    def order_with_fills(
        self,
        broker_order_id: str,
        *,
        symbol: str | None = None,
        order_date: dt.date | None = None,
    ) -> BrokerOrder:
        """Return the order with its ``trades`` (``GET /v1/order`` is the look-up listing them)."""
        return self.get_order(broker_order_id)

    def _parse_positions(self, account: Any) -> list[Position]:
        return self.dialect.parse_positions(account)

    def _parse_balances(self, account: Any) -> list[Balance]:
        return self.dialect.parse_balances(account)
