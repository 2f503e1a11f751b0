"""Orders whose trading window closed: their remainder lapses (status EXPIRED).

A facade gives an order an ``expires_at`` (a KRX day order lapses at its session's close). Nothing
runs at that moment: like matching, expiry is caught up lazily on the next engine call after the
clock passed it, so a clock that jumps a week expires everything due in between at once. The
matcher never fills an order at or after its ``expires_at`` step, so catching up late changes
nothing but when the lapse is noticed; the order's ``updated_at`` is its ``expires_at``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from simulators.engine.accounts import AccountBook
from simulators.engine.ledger import LedgerKind
from simulators.engine.model import OrderStatus
from simulators.engine.orders import OrderBook, OrderRecord
from simulators.engine.settings import EngineSettings

__all__ = ["expire_due"]


def expire_due(
    settings: EngineSettings, accounts: AccountBook, book: OrderBook, now: datetime
) -> list[OrderRecord]:
    """Lapse every open order whose ``expires_at`` is at or before ``now``; return them.

    Each one keeps its fills, moves its remainder to ``expired``, releases its lock, leaves the
    open lists and gets an ``order_expired`` ledger entry. Called under the engine's lock, after
    matching has caught up.
    """
    due = [r for r in book.open_records() if r.expires_at is not None and r.expires_at <= now]
    due.sort(key=lambda r: (r.expires_at, r.seq))
    for record in due:
        lapsed = record.remaining
        if lapsed is None:  # a market buy by amount: what is left of the amount lapses
            record.quote_amount = record.filled_notional
            lapsed = Decimal(0)
        else:
            record.expired += lapsed
        record.status = OrderStatus.EXPIRED
        record.updated_at = record.expires_at  # type: ignore[assignment]  # checked above
        account = accounts.get(record.account_id)
        accounts.retarget_lock(account, record)
        book.unregister_if_closed(record)
        settings.ledger.record(
            LedgerKind.ORDER_EXPIRED,
            account_id=record.account_id,
            app_key=account.credential_id,
            order_no=record.order_no,
            symbol=record.instrument.symbol,
            expired_quantity=lapsed,
            expired_at=record.expires_at,
        )
    return due
