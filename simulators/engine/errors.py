"""The engine's exceptions; protocol facades map each leaf to their broker's error code.

Exception tree::

    SimulatorError
    ├── UnknownAccount
    ├── DuplicateAccount
    ├── UnknownInstrument
    ├── InvalidOrder                 .rule says which rule failed (RuleViolated)
    ├── InsufficientFunds            .asset, .required, .available
    ├── InsufficientPosition         .asset, .required, .available
    ├── DuplicateClientOrderId       .client_order_id
    ├── OrderNotFound
    └── OrderNotOpen                 .status
"""

from __future__ import annotations

import enum
from decimal import Decimal

from simulators.engine.model import OrderStatus

__all__ = [
    "DuplicateAccount",
    "DuplicateClientOrderId",
    "InsufficientFunds",
    "InsufficientPosition",
    "InvalidOrder",
    "OrderNotFound",
    "OrderNotOpen",
    "RuleViolated",
    "SimulatorError",
    "UnknownAccount",
    "UnknownInstrument",
]


class SimulatorError(Exception):
    """Root of the engine's exceptions."""


class UnknownAccount(SimulatorError):
    """No account with this id."""


class DuplicateAccount(SimulatorError):
    """An account with this id already exists."""


class UnknownInstrument(SimulatorError):
    """The symbol is not listed."""


class RuleViolated(enum.StrEnum):
    """Which order rule failed (Binance names its filters; KIS/Upbit have their own codes)."""

    PRICE_TICK = "PRICE_TICK"
    PRICE = "PRICE"
    QUANTITY = "QUANTITY"
    LOT_SIZE = "LOT_SIZE"
    MIN_QUANTITY = "MIN_QUANTITY"
    MIN_NOTIONAL = "MIN_NOTIONAL"
    ORDER_SHAPE = "ORDER_SHAPE"


class InvalidOrder(SimulatorError):
    """The order breaks a trading rule."""

    def __init__(self, rule: RuleViolated, message: str) -> None:
        super().__init__(message)
        self.rule = rule


class InsufficientFunds(SimulatorError):
    """Not enough available cash (quote asset) for the order."""

    def __init__(self, asset: str, required: Decimal, available: Decimal) -> None:
        super().__init__(f"insufficient {asset}: required {required}, available {available}")
        self.asset, self.required, self.available = asset, required, available


class InsufficientPosition(SimulatorError):
    """Not enough available holding to sell."""

    def __init__(self, asset: str, required: Decimal, available: Decimal) -> None:
        super().__init__(f"insufficient {asset}: required {required}, available {available}")
        self.asset, self.required, self.available = asset, required, available


class DuplicateClientOrderId(SimulatorError):
    """The client order id was used before (within the engine's :class:`ClientIdScope`)."""

    def __init__(self, client_order_id: str) -> None:
        super().__init__(f"duplicate client order id {client_order_id!r}")
        self.client_order_id = client_order_id


class OrderNotFound(SimulatorError):
    """No such order in this account."""


class OrderNotOpen(SimulatorError):
    """The order can no longer be cancelled or amended."""

    def __init__(self, order_no: str, status: OrderStatus) -> None:
        super().__init__(f"order {order_no} is {status.value}")
        self.order_no, self.status = order_no, status
