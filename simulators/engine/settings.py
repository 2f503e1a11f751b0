"""What every part of one engine shares: its clock, ledger, price path and policies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from decimal import Decimal

from simulators.engine.clock import SimClock
from simulators.engine.fees import FeeSchedule
from simulators.engine.ledger import Ledger
from simulators.engine.model import AmendMode, ClientIdScope
from simulators.engine.money import MoneyPlaces
from simulators.engine.prices import PricePath

__all__ = ["EngineSettings"]


@dataclass
class EngineSettings:
    """The services and policies of one engine, read by its parts at the moment they act.

    :class:`~simulators.engine.Engine` exposes the public ones as attributes that read and write
    through to this object, so assigning e.g. ``engine.fees`` still applies to every part.

    Attributes:
        clock: the simulator's clock.
        ledger: where placements, cancels, amendments and fills are recorded.
        path: the price path.
        fees: commission and tax rates.
        money: decimal places per currency.
        timezone: the facade's timezone for date-range queries.
        client_id_scope: how long a client order id stays taken.
        burn_client_id_on_reject: a rejected placement still takes its client id.
        amend_mode: default for amendments.
        market_buy_reserve: a market buy by quantity locks ``qty × price × this``.
        order_numbers: ``n -> order number`` for the n-th order (1-based).
    """

    clock: SimClock
    ledger: Ledger
    path: PricePath
    fees: FeeSchedule
    money: MoneyPlaces
    timezone: tzinfo
    client_id_scope: ClientIdScope
    burn_client_id_on_reject: bool
    amend_mode: AmendMode
    market_buy_reserve: Decimal
    order_numbers: Callable[[int], str]
