"""The exchange core every broker simulator builds on.

One :class:`Engine` holds accounts (cash and holdings with available/locked amounts), instruments
(tick, lot and notional rules), a deterministic seeded price path per symbol, orders with partial
fills, fees and the KRX sell tax. Protocol facades (``simulators/kis`` …) translate their broker's
wire format into calls on this package and map its exceptions to the broker's error codes
(the tree is in :mod:`simulators.engine.errors`).

Time comes only from a :class:`SimClock`, so tests can jump hours ahead. What a broker "saw"
(orders, cancels, amendments, expiries, fills, token issuances) is appended to a :class:`Ledger`,
the ground truth for "nothing lost, nothing doubled".

The engine knows no calendar: a facade whose venue has sessions (KIS, Kiwoom, through
:mod:`simulators.krx_calendar`) gives each order the window it may trade in, and the engine
matches it only inside that window and lapses it at the window's end, lazily, whenever the clock
has passed it. Everything else a trading day changes (order numbers, settlement) is derived by
the facade from the clock and the engine's records.

The modules, one concern each; the design choices are documented next to their code:

* :mod:`~simulators.engine.money` — ``Decimal`` conversion and per-currency rounding (money).
* :mod:`~simulators.engine.clock` — :class:`SimClock`.
* :mod:`~simulators.engine.ledger` — :class:`Ledger` and its entries.
* :mod:`~simulators.engine.instruments` — tick tables and :class:`Instrument`.
* :mod:`~simulators.engine.prices` — the seeded :class:`PricePath` (price path).
* :mod:`~simulators.engine.model` — sides, types, statuses, :class:`Order`, :class:`Fill`,
  :class:`Balance`, order number formats.
* :mod:`~simulators.engine.errors` — the :class:`SimulatorError` tree.
* :mod:`~simulators.engine.fees` — :class:`FeeSchedule`, commissions and the KRX sell tax.
* :mod:`~simulators.engine.settings` — what the parts of one engine share.
* :mod:`~simulators.engine.market` — listings, price pins, liquidity overrides.
* :mod:`~simulators.engine.accounts` — accounts, holdings and order locks.
* :mod:`~simulators.engine.orders` — order records and the order book.
* :mod:`~simulators.engine.validation` — the order rules.
* :mod:`~simulators.engine.matching` — matching and fills (fill price, liquidity).
* :mod:`~simulators.engine.order_entry` — placing, cancelling and amending orders.
* :mod:`~simulators.engine.expiry` — lapsing orders whose trading window closed (day orders).
* :mod:`~simulators.engine.facade` — :class:`Engine`, the thread-safe facade over the parts.
"""

from simulators.engine.clock import SimClock
from simulators.engine.errors import (
    DuplicateAccount,
    DuplicateClientOrderId,
    InsufficientFunds,
    InsufficientPosition,
    InvalidOrder,
    OrderNotFound,
    OrderNotOpen,
    RuleViolated,
    SimulatorError,
    UnknownAccount,
    UnknownInstrument,
)
from simulators.engine.facade import Engine
from simulators.engine.fees import KRX_SELL_TAX_RATE_2026, FeeSchedule
from simulators.engine.instruments import (
    AssetClass,
    Instrument,
    TickRule,
    binance_tick,
    fixed_tick,
    is_on_tick,
    krx_tick_size,
    snap_to_tick,
    upbit_krw_tick_size,
)
from simulators.engine.ledger import Ledger, LedgerEntry, LedgerKind
from simulators.engine.model import AccountView as AccountView  # public, though not in __all__
from simulators.engine.model import (
    AmendMode,
    Balance,
    ClientIdScope,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    Side,
    int_order_numbers,
    sequential_order_numbers,
    uuid_order_numbers,
)
from simulators.engine.money import Number as Number  # public, though not in __all__
from simulators.engine.money import to_decimal
from simulators.engine.prices import PATH_EPOCH, PricePath

__all__ = [
    "KRX_SELL_TAX_RATE_2026",
    "PATH_EPOCH",
    "AmendMode",
    "AssetClass",
    "Balance",
    "ClientIdScope",
    "DuplicateAccount",
    "DuplicateClientOrderId",
    "Engine",
    "FeeSchedule",
    "Fill",
    "InsufficientFunds",
    "InsufficientPosition",
    "Instrument",
    "InvalidOrder",
    "Ledger",
    "LedgerEntry",
    "LedgerKind",
    "Order",
    "OrderNotFound",
    "OrderNotOpen",
    "OrderStatus",
    "OrderType",
    "PricePath",
    "RuleViolated",
    "Side",
    "SimClock",
    "SimulatorError",
    "TickRule",
    "UnknownAccount",
    "UnknownInstrument",
    "binance_tick",
    "fixed_tick",
    "int_order_numbers",
    "is_on_tick",
    "krx_tick_size",
    "sequential_order_numbers",
    "snap_to_tick",
    "to_decimal",
    "upbit_krw_tick_size",
    "uuid_order_numbers",
]
