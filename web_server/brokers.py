"""The one broker interface every adapter implements, its value objects, and the registry.

Broker packages (``securities.kis``, ``securities.kiwoom``, ``crypto_exchanges.upbit``, …) map their
wire shapes to these types and their error codes to ``web_server.errors``; nothing broker-specific
leaves a package. An adapter gets everything injected: credentials, the base URL (a real host or a
simulator on loopback: the only difference between the two), a ``requests.Session``, a clock, and
for the OAuth brokers a ``TokenProvider``. Adapters never read the environment or the database.

Retry policy (DESIGN §6): reads may be retried on a transient error; a POST that places, amends or
cancels an order is never retried blindly. When such a request was sent but no answer came, the
adapter raises ``OrderStateUnknown`` and the caller reconciles by client order id or order history.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, Protocol, runtime_checkable

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

__all__ = [
    "Balance",
    "BrokerAdapter",
    "BrokerOrder",
    "Capabilities",
    "Credentials",
    "CryptoAdapter",
    "IssuedToken",
    "MarketRule",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "Position",
    "SecuritiesAdapter",
    "Side",
    "TokenProvider",
    "adapter_class",
    "make_http_session",
]

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """Return the current time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


class Side(enum.StrEnum):
    """Buy or sell."""

    BUY = "BUY"
    SELL = "SELL"


class OrderType(enum.StrEnum):
    """Limit or market."""

    LIMIT = "LIMIT"
    MARKET = "MARKET"


class OrderStatus(enum.StrEnum):
    """The broker-independent state of an order (DESIGN §5)."""

    PENDING_SUBMIT = "PENDING_SUBMIT"
    SUBMITTED = "SUBMITTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCEL_PENDING = "CANCEL_PENDING"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class Credentials:
    """What an adapter needs to authenticate; the secret never appears in ``repr``."""

    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    environment: str = "REAL"  # REAL or PAPER
    account_number: str | None = None  # securities: 8-digit account number (KIS CANO)
    product_code: str | None = None  # securities: KIS ACNT_PRDT_CD, e.g. "01"
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_paper(self) -> bool:
        """Tell whether this is the broker's paper-trading environment."""
        return self.environment == "PAPER"


@dataclass(frozen=True)
class OrderRequest:
    """An order as the gateway asks for it; ``client_order_id`` is ours, sent where supported."""

    symbol: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    client_order_id: str
    limit_price: Decimal | None = None
    route: str | None = None  # securities: KRX, NXT or SOR
    quote_amount: Decimal | None = None  # crypto market buy by amount (Upbit ord_type=price)


@dataclass(frozen=True)
class BrokerOrder:
    """An order as the broker reports it, mapped to domain terms."""

    broker_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    status: OrderStatus
    quantity: Decimal
    filled_quantity: Decimal = Decimal(0)
    limit_price: Decimal | None = None
    average_fill_price: Decimal | None = None
    client_order_id: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    fee: Decimal | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Position:
    """What an account holds of one security (``symbol``) or crypto asset (``asset``)."""

    quantity: Decimal
    symbol: str | None = None
    asset: str | None = None
    available_quantity: Decimal | None = None
    avg_price: Decimal | None = None
    current_price: Decimal | None = None
    pnl: Decimal | None = None
    pnl_pct: Decimal | None = None
    name: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Balance:
    """Cash in one currency: total, available for orders, and locked in open orders."""

    currency: str
    total: Decimal
    available: Decimal
    locked: Decimal = Decimal(0)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class IssuedToken:
    """An OAuth access token as a broker issued it; ``expires_at`` is aware UTC."""

    access_token: str = field(repr=False)
    token_type: str
    expires_in: int
    expires_at: dt.datetime


@dataclass(frozen=True)
class MarketRule:
    """A crypto market and the rules an order must meet before it is sent."""

    symbol: str
    base_asset: str
    quote_asset: str
    tick_size: Decimal | None = None
    lot_size: Decimal | None = None
    min_notional: Decimal | None = None
    is_tradable: bool = True
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Capabilities:
    """What an adapter supports; services check these before calling."""

    client_order_id: bool  # the broker stores our id and can find an order by it
    market_orders: bool = True
    amend_order: bool = False
    oauth_tokens: bool = False


class TokenProvider(Protocol):
    """Gives an OAuth adapter a valid access token (the token service implements it)."""

    def get(self) -> str:
        """Return a valid access token, issuing one (single-flight) if none is valid."""
        ...

    def invalidate(self, token: str) -> str:
        """Report ``token`` rejected by the broker; return a freshly issued one."""
        ...


@runtime_checkable
class BrokerAdapter(Protocol):
    """The operations every broker supports, in domain types."""

    exchange: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    def place_order(self, request: OrderRequest) -> BrokerOrder:
        """Send an order. Raises ``OrderStateUnknown`` when the answer was lost."""
        ...

    def cancel_order(self, broker_order_id: str, *, symbol: str | None = None) -> BrokerOrder:
        """Cancel the open remainder of an order."""
        ...

    def get_order(
        self,
        broker_order_id: str | None = None,
        *,
        client_order_id: str | None = None,
        symbol: str | None = None,
    ) -> BrokerOrder:
        """Look an order up by the broker's id or, where supported, by our client order id."""
        ...

    def list_orders(self, since: dt.datetime) -> list[BrokerOrder]:
        """Return the orders placed since ``since`` (open and closed)."""
        ...

    def get_holdings(self) -> list[Position]:
        """Return what the account holds."""
        ...

    def get_balance(self) -> list[Balance]:
        """Return the account's cash by currency."""
        ...


@runtime_checkable
class SecuritiesAdapter(BrokerAdapter, Protocol):
    """A Korean securities broker with OAuth client-credentials tokens (KIS, Kiwoom)."""

    def issue_token(self) -> IssuedToken:
        """Ask the broker for an access token."""
        ...

    def revoke_token(self, access_token: str) -> None:
        """Tell the broker to revoke ``access_token``."""
        ...

    def amend_order(
        self,
        broker_order_id: str,
        *,
        quantity: Decimal | None = None,
        limit_price: Decimal | None = None,
        symbol: str | None = None,
    ) -> BrokerOrder:
        """Change the price or quantity of an open order."""
        ...


@runtime_checkable
class CryptoAdapter(BrokerAdapter, Protocol):
    """A crypto exchange with per-request signatures (Upbit, Bithumb, Binance)."""

    def list_markets(self) -> list[MarketRule]:
        """Return the exchange's markets with their tick, lot and notional rules."""
        ...


def make_http_session(*, read_retries: int = 2, pool_size: int = 10) -> requests.Session:
    """Return a pooled session that retries only idempotent reads (GET) on connect errors and 5xx.

    POSTs are never retried here: an order POST whose answer is lost must be reconciled, not sent
    again, and an adapter retries a read-only POST (Kiwoom's inquiry TRs) itself.
    """
    retry = Retry(
        total=read_retries,
        connect=read_retries,
        read=0,
        status=read_retries,
        backoff_factor=0.2,
        status_forcelist=(502, 503, 504),
        allowed_methods=frozenset({"GET", "HEAD"}),
        # A long Retry-After must reach the caller, not stall a worker inside urllib3.
        respect_retry_after_header=False,
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry, pool_connections=pool_size, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def adapter_class(exchange: str) -> type:
    """Return the adapter class of ``exchange`` (``KIS``, ``KIWOOM``, ``UPBIT``, …).

    Raises:
        KeyError: no adapter for that exchange.
    """
    # Imported here so that loading the gateway does not import five broker packages.
    if exchange == "KIS":
        from securities.kis import KisAdapter

        return KisAdapter
    if exchange == "KIWOOM":
        from securities.kiwoom import KiwoomAdapter

        return KiwoomAdapter
    if exchange == "UPBIT":
        from crypto_exchanges.upbit import UpbitAdapter

        return UpbitAdapter
    if exchange == "BITHUMB":
        from crypto_exchanges.bithumb import BithumbAdapter

        return BithumbAdapter
    if exchange == "BINANCE":
        from crypto_exchanges.binance import BinanceAdapter

        return BinanceAdapter
    raise KeyError(exchange)
