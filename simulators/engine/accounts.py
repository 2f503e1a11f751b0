"""Accounts and what they hold: cash and positions with available and locked amounts.

An open order keeps a lock on its account: the quote (notional plus commission) for a buy, the
base quantity for a sell. Every change to an order re-targets its lock through
:meth:`AccountBook.retarget_lock`, which is where a lack of funds or holdings is detected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_UP, Decimal
from typing import Any

from simulators.engine.errors import (
    DuplicateAccount,
    InsufficientFunds,
    InsufficientPosition,
    UnknownAccount,
)
from simulators.engine.fees import buy_fee_reserve
from simulators.engine.model import AccountView, Balance, OrderType, Side
from simulators.engine.money import Number, to_decimal
from simulators.engine.orders import OrderRecord
from simulators.engine.settings import EngineSettings

__all__ = ["Account", "AccountBook", "Holding"]


@dataclass
class Holding:
    """One asset of an account (mutable; :meth:`to_balance` gives the snapshot)."""

    total: Decimal = Decimal(0)
    locked: Decimal = Decimal(0)
    avg_price: Decimal = Decimal(0)

    def to_balance(self, asset: str) -> Balance:
        """Return the immutable view of this holding."""
        return Balance(asset, self.total, self.locked, self.avg_price)


@dataclass
class Account:
    """An account's holdings and the client order ids it has used."""

    account_id: str
    credential_id: str | None
    meta: dict[str, Any]
    holdings: dict[str, Holding] = field(default_factory=dict)
    used_client_ids: set[str] = field(default_factory=set)

    def holding(self, asset: str) -> Holding:
        """Return the holding of ``asset``, creating an empty one on first use."""
        return self.holdings.setdefault(asset, Holding())


class AccountBook:
    """The accounts of one engine, and the locks open orders keep on their holdings.

    Not locked itself: the engine calls it while holding its lock.

    Args:
        settings: the engine's settings (fees, money places, the market-buy reserve).
    """

    def __init__(self, settings: EngineSettings) -> None:
        self._settings = settings
        self._accounts: dict[str, Account] = {}

    def __contains__(self, account_id: object) -> bool:
        return account_id in self._accounts

    def get(self, account_id: str) -> Account:
        """Return an account.

        Raises:
            UnknownAccount: if there is no such account.
        """
        try:
            return self._accounts[account_id]
        except KeyError:
            raise UnknownAccount(account_id) from None

    def open(
        self,
        account_id: str,
        *,
        balances: Mapping[str, Number] | None,
        positions: Mapping[str, Number] | None,
        credential_id: str | None,
        meta: Mapping[str, Any] | None,
        opening_price: Callable[[str], Decimal | None],
    ) -> Account:
        """Open an account with cash ``balances`` and ``positions`` (asset → quantity).

        ``opening_price(asset)`` gives a position its average price (None: the asset is not
        listed, and the average stays 0).

        Raises:
            DuplicateAccount: if the id is taken.
            ValueError: for a negative or non-decimal amount.
        """
        if account_id in self._accounts:
            raise DuplicateAccount(account_id)
        account = Account(account_id, credential_id, dict(meta or {}))
        for asset, amount in (balances or {}).items():
            value = to_decimal(amount, f"balance of {asset}")
            if value < 0:
                raise ValueError(f"balance of {asset} is negative")
            account.holding(asset).total = value
        for asset, amount in (positions or {}).items():
            value = to_decimal(amount, f"position in {asset}")
            if value < 0:
                raise ValueError(f"position in {asset} is negative")
            holding = account.holding(asset)
            holding.total = value
            price = opening_price(asset) if value else None
            if price is not None:
                holding.avg_price = price
        self._accounts[account_id] = account
        return account

    @staticmethod
    def view(account: Account) -> AccountView:
        """Return the immutable view of an account."""
        return AccountView(
            account_id=account.account_id,
            credential_id=account.credential_id,
            balances={asset: h.to_balance(asset) for asset, h in account.holdings.items()},
            meta=dict(account.meta),
        )

    def balance(self, account_id: str, asset: str) -> Balance:
        """Return one asset of an account (zero if never held).

        Raises:
            UnknownAccount: if there is no such account.
        """
        return self.get(account_id).holdings.get(asset, Holding()).to_balance(asset)

    def deposit(self, account_id: str, asset: str, amount: Number) -> Balance:
        """Add (or with a negative amount, withdraw available) ``amount`` of ``asset``.

        Raises:
            ValueError: if the amount is not a decimal.
            UnknownAccount: if there is no such account.
            InsufficientFunds: if a withdrawal exceeds what is available.
        """
        value = to_decimal(amount, "amount")
        holding = self.get(account_id).holding(asset)
        if value < 0 and holding.total - holding.locked < -value:
            raise InsufficientFunds(asset, -value, holding.total - holding.locked)
        holding.total += value
        return holding.to_balance(asset)

    def required_lock(self, record: OrderRecord) -> Decimal:
        """What an open order must keep locked; zero once it is closed."""
        if not record.is_open:
            return Decimal(0)
        if record.side is Side.SELL:
            return record.remaining or Decimal(0)
        settings = self._settings
        quote = record.instrument.quote
        if record.quote_amount is not None:
            notional = record.quote_remaining or Decimal(0)
        else:
            price = record.reserve_price
            if record.order_type is OrderType.MARKET:
                price = price * settings.market_buy_reserve
            notional = settings.money.quantize(
                (record.remaining or Decimal(0)) * price, quote, ROUND_UP
            )
        return notional + buy_fee_reserve(settings.fees, settings.money, notional, quote)

    def retarget_lock(self, account: Account, record: OrderRecord) -> None:
        """Bring the order's lock to what it requires, taking from or giving back to available.

        Raises:
            InsufficientFunds: (BUY) or InsufficientPosition (SELL) if more is needed than free.
        """
        holding = account.holding(record.lock_asset)
        delta = self.required_lock(record) - record.locked
        if delta > 0 and holding.total - holding.locked < delta:
            error = InsufficientFunds if record.side is Side.BUY else InsufficientPosition
            raise error(record.lock_asset, delta, holding.total - holding.locked)
        holding.locked += delta
        record.locked += delta
