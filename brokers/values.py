"""The value objects that cross the adapter boundary, in domain terms (Decimal money, aware UTC).

Adapters map their broker's wire shapes to these and nothing broker-specific leaves a package.
``raw`` keeps what the broker sent, for debugging; it never takes part in equality.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from brokers.statuses import OrderStatus, OrderType, Side

__all__ = [
    "Balance",
    "BrokerOrder",
    "Capabilities",
    "Credentials",
    "Fill",
    "IssuedToken",
    "MarketRule",
    "OrderRequest",
    "Position",
]


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
    #: Cumulative commission and tax of the order so far, in ``fee_asset`` (None: not reported).
    #: KIS and Kiwoom histories give no per-order charges: their adapters estimate them by the
    #: KRX rules (commission rate, sell tax) from the filled amount.
    fee: Decimal | None = None
    tax: Decimal | None = None
    fee_asset: str | None = None
    #: The executions the broker listed with this answer; None when the answer does not list
    #: them (only cumulative figures: KIS, Kiwoom, an open-orders page), () when it has none.
    fills: tuple[Fill, ...] | None = field(default=None, compare=False)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Fill:
    """One execution of an order as the broker reports it.

    ``fee`` and ``tax`` are in ``fee_asset`` (the quote currency unless the exchange says
    otherwise: a Binance buy may pay its commission in the base asset). ``broker_fill_id`` is the
    broker's own id of the execution where it has one (crypto trade ids); KIS and Kiwoom report
    cumulative quantities per order, from which the gateway derives the increments.
    """

    broker_order_id: str
    quantity: Decimal
    price: Decimal
    filled_at: dt.datetime
    broker_fill_id: str | None = None
    fee: Decimal | None = None
    tax: Decimal | None = None
    fee_asset: str | None = None
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
    """Cash in one currency: total, available for orders, and locked in open orders.

    ``settled_today`` and ``settled_d2`` are the broker's settlement figures: the cash the
    account holds today (D+0) and the cash it will hold once everything traded so far has
    settled (D+2: KRX equities settle two trading days after the trade). KIS reports them as
    ``dnca_tot_amt`` / ``prvs_rcdl_excc_amt``, Kiwoom as ``entr`` / ``d2_entra``. Crypto
    exchanges settle on the trade, so both equal ``total``. None: the broker did not say.
    """

    currency: str
    total: Decimal
    available: Decimal
    locked: Decimal = Decimal(0)
    settled_today: Decimal | None = None
    settled_d2: Decimal | None = None
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
