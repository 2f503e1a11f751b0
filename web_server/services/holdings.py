"""Holdings: the broker's truth, stored in ``trade.holdings`` with the time of the snapshot.

The API serves the stored snapshot and reads the broker again when asked or when the snapshot is
older than ``HOLDINGS_MAX_AGE_SECONDS`` (DESIGN §4); the operator's account page shows the
stored snapshot with its age and has the browser refresh it in a request of its own, so the page
never waits on a broker. A refresh reads the broker first, outside any lock, then writes under
the account's transaction-scoped advisory lock: it upserts one row per position (``INSERT … ON
CONFLICT`` on the account and the position's code, ``uq_holdings_account_instrument``) and
deletes the positions the broker no longer reports. Concurrent refreshes of one account
therefore queue for a few milliseconds instead of colliding on the unique key, and the newest
read wins: a refresh that finds a newer snapshot already stored leaves it alone.

A security the stocks master does not know is stored all the same, with ``symbol`` NULL (the
foreign key to ``market.stocks`` stays) and its code in ``broker_symbol``; every read reports it,
flagged ``in_master: false`` and named in ``unlisted_symbols`` so the operator knows the master
needs a sync. Crypto assets have no master: ``in_master`` is None for them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert

from brokers import Position, utc_now
from web_server.database import autocommit_session
from web_server.extensions import db
from web_server.locks import lock_key
from web_server.models import Account, Holding, Stock
from web_server.services.brokers import adapter_for

log = logging.getLogger(__name__)

#: The advisory-lock namespace of an account's holdings snapshot (see ``web_server.locks``).
LOCK_NAMESPACE = "holdings"
#: What names a position in its account: the key of ``uq_holdings_account_instrument``.
INSTRUMENT = "coalesce(symbol, broker_symbol, asset)"


@dataclass(frozen=True)
class HeldPosition(Position):
    """One position as the API and the account page show it: the broker's, plus ``in_master``.

    ``symbol`` is the security's code as the broker reports it (None for crypto, whose position is
    ``asset``); ``in_master`` tells whether the stocks master knows the security (None for crypto).
    """

    in_master: bool | None = None


@dataclass
class HoldingsSnapshot:
    """An account's holdings as last read from its broker."""

    as_of: dt.datetime | None
    holdings: list[HeldPosition]
    unlisted_symbols: list[str] = field(default_factory=list)


def refresh_holdings(account: Account) -> HoldingsSnapshot:
    """Read the broker now and store what it holds; flush, the caller commits.

    The session's reads so far are committed before the broker is asked: no transaction stays
    open while the broker answers (one did, and a TRUNCATE or a migration's ALTER queued behind
    its snapshot, and every statement after them, for as long as the broker took). The account's
    lock is held from the write to the caller's commit.

    Raises:
        BrokerError: the broker could not be read (the stored snapshot stays as it was).
    """
    account_id = account.id
    securities = account.account_type == "SECURITIES_STOCK"
    adapter = adapter_for(account)
    db.session.commit()  # the reads end: nothing waits on the broker's answer
    # The broker is read before the lock is taken: no lock waits on a broker's answer.
    positions = _merged([p for p in adapter.get_holdings() if p.quantity], securities=securities)
    now = utc_now()
    known: set[str] = set()
    if securities:
        known = set(
            db.session.scalars(select(Stock.symbol).where(Stock.symbol.in_(list(positions))))
        )
    rows = [_row(account_id, code, p, now, securities, known) for code, p in positions.items()]
    held = [_held_from_row(row, securities) for row in rows]
    unlisted = sorted(h.symbol for h in held if h.in_master is False and h.symbol)
    if unlisted:
        log.warning(
            "account %s holds symbols the stocks master lacks: %s", account_id, ", ".join(unlisted)
        )

    # Released at the caller's commit or rollback, so nobody can write between our upsert and
    # our delete, and a request that dies releases it with its transaction.
    db.session.execute(
        text("SELECT pg_advisory_xact_lock(:key)"),
        {"key": lock_key(LOCK_NAMESPACE, str(account_id))},
    )
    stored_as_of = _stored_as_of(account_id)
    if stored_as_of is not None and stored_as_of > now:
        # Another refresh read the broker after us and has already stored it: ours is older.
        return HoldingsSnapshot(as_of=now, holdings=held, unlisted_symbols=unlisted)
    if rows:
        statement = insert(Holding).values(rows)
        statement = statement.on_conflict_do_update(
            index_elements=[Holding.account_id, text(INSTRUMENT)],
            # A security the master has learnt since moves from broker_symbol to symbol here.
            set_={
                column: statement.excluded[column] for column in rows[0] if column != "account_id"
            },
        )
        db.session.execute(statement)
    instrument = func.coalesce(Holding.symbol, Holding.broker_symbol, Holding.asset)
    db.session.execute(
        delete(Holding).where(Holding.account_id == account_id, instrument.not_in(list(positions)))
    )
    db.session.execute(update(Account).where(Account.id == account_id).values(holdings_as_of=now))
    db.session.flush()
    return HoldingsSnapshot(as_of=now, holdings=held, unlisted_symbols=unlisted)


def _merged(positions: list[Position], *, securities: bool) -> dict[str, Position]:
    """Key the positions by the broker's name of each, in order; add up a name reported twice.

    One snapshot row per position is the upsert's premise. The brokers are asked for one line per
    security (KIS ``INQR_DVSN 02``, Kiwoom ``qry_tp 1``) or per asset, so a repeat should not
    happen; if one does (a cash and a credit line of one stock), the quantities are summed rather
    than one line silently replacing the other, and the average price is weighted.
    """
    merged: dict[str, Position] = {}
    for position in positions:
        code = ((position.symbol if securities else position.asset) or "").strip()
        if not code:
            log.warning("a position without a symbol or asset was left out: %r", position)
            continue
        if code in merged:
            log.warning("the broker reported %s twice; the lines are added up", code)
            position = _add(merged[code], position)
        merged[code] = position
    return dict(sorted(merged.items()))


def _add(first: Position, second: Position) -> Position:
    quantity = first.quantity + second.quantity
    cost = [p.avg_price * p.quantity for p in (first, second) if p.avg_price is not None]
    return replace(
        first,
        quantity=quantity,
        available_quantity=_sum(first.available_quantity, second.available_quantity),
        avg_price=sum(cost, Decimal(0)) / quantity if len(cost) == 2 else None,
        pnl=_sum(first.pnl, second.pnl),
        pnl_pct=None,
        raw={"lines": [dict(first.raw), dict(second.raw)]},
    )


def _sum(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    return None if a is None or b is None else a + b


def _row(
    account_id: int,
    code: str,
    position: Position,
    now: dt.datetime,
    securities: bool,
    known: set[str],
) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "symbol": code if securities and code in known else None,
        "broker_symbol": code if securities and code not in known else None,
        "asset": None if securities else code,
        "name": position.name,
        "quantity": position.quantity,
        "available_quantity": position.available_quantity,
        "avg_price": position.avg_price,
        "current_price": position.current_price,
        "pnl": position.pnl,
        "pnl_pct": position.pnl_pct,
        "raw": json.loads(json.dumps(dict(position.raw), default=str)) if position.raw else None,
        "updated_ts": now,
    }


def _held_from_row(row: Any, securities: bool, *, master_name: str | None = None) -> HeldPosition:
    """Map a stored row (a ``Holding`` or the dict about to be stored) to what is shown."""
    get = row.get if isinstance(row, dict) else lambda key: getattr(row, key)
    return HeldPosition(
        quantity=get("quantity"),
        symbol=(get("symbol") or get("broker_symbol")) if securities else None,
        asset=get("asset"),
        available_quantity=get("available_quantity"),
        avg_price=get("avg_price"),
        current_price=get("current_price"),
        pnl=get("pnl"),
        pnl_pct=get("pnl_pct"),
        name=master_name or get("name"),
        in_master=(get("symbol") is not None) if securities else None,
    )


#: The columns of ``trade.holdings`` a read shows (``_held_from_row``).
_SHOWN = ("symbol", "broker_symbol", "asset", "name", "quantity", "available_quantity",
          "avg_price", "current_price", "pnl", "pnl_pct")  # fmt: skip


def _stored_as_of(account_id: int) -> dt.datetime | None:
    # The account's own mark, not the rows' newest time: an empty snapshot is a snapshot too,
    # and must not send every read to the broker.
    return db.session.scalar(select(Account.holdings_as_of).where(Account.id == account_id))


def get_holdings(account: Account, *, refresh: bool = False) -> HoldingsSnapshot:
    """Return the stored snapshot, reading the broker first when asked or when it is stale.

    Raises:
        BrokerError: a refresh was needed and the broker could not be read.
    """
    # The account row was read by this request's transaction a moment ago: its mark is the one
    # stored (one query less on every cached read, issue 12).
    as_of = account.holdings_as_of
    max_age = dt.timedelta(seconds=current_app.config["HOLDINGS_MAX_AGE_SECONDS"])
    if refresh or as_of is None or utc_now() - as_of > max_age:
        return refresh_holdings(account)
    return _stored(account, as_of)


def stored_holdings(account: Account) -> HoldingsSnapshot:
    """Return the stored snapshot as it is, however old, without asking the broker.

    What the operator's pages show (they never wait on a broker); ``as_of`` None means the
    broker was never read for this account.
    """
    return _stored(account, _stored_as_of(account.id))


def _stored(account: Account, as_of: dt.datetime | None) -> HoldingsSnapshot:
    # Plain rows of the columns shown (not ORM objects, nor the broker's raw lines): a cached
    # read is the API's most frequent, and the ORM's bookkeeping cost more than the query.
    table = Holding.__table__
    rows = db.session.execute(
        select(*(table.c[name] for name in _SHOWN))
        .where(table.c.account_id == account.id)
        .order_by(text(INSTRUMENT))
    ).all()
    return _snapshot(rows, account.account_type == "SECURITIES_STOCK", as_of)


def _snapshot(rows: Any, securities: bool, as_of: dt.datetime | None) -> HoldingsSnapshot:
    symbols = current_app.extensions["gateway.symbols"]
    held = []
    for row in rows:
        stock = symbols.lookup(row.symbol) if row.symbol else None
        held.append(_held_from_row(row, securities, master_name=stock.name if stock else None))
    unlisted = sorted(h.symbol for h in held if h.in_master is False and h.symbol)
    return HoldingsSnapshot(as_of=as_of, holdings=held, unlisted_symbols=unlisted)


#: A cached read in one statement: the account's type and snapshot mark, and the rows shown
#: (none: one row of NULLs from the outer join, told apart by its NOT NULL quantity).
_CACHED = text(
    "SELECT a.account_type, a.holdings_as_of, "  # noqa: S608 - names from _SHOWN, no input
    + ", ".join(f"h.{name}" for name in _SHOWN)
    + " FROM accounts a LEFT JOIN trade.holdings h ON h.account_id = a.id WHERE a.id = :id"
    " ORDER BY coalesce(h.symbol, h.broker_symbol, h.asset)"
)


def cached_snapshot(account_id: int) -> HoldingsSnapshot | None:
    """Return the stored snapshot if it is fresh, in one statement; None to take the long way.

    None when the account does not exist (the long way answers 404) or its snapshot is missing
    or older than ``HOLDINGS_MAX_AGE_SECONDS`` (the long way reads the broker). Issue 12: the
    most frequent read of the API, at one round trip instead of five.
    """
    if db.session().in_transaction():
        db.session.commit()  # the request's own reads end before the next connection
    with autocommit_session(db.engine) as session:
        rows = session.execute(_CACHED, {"id": account_id}).all()
    if not rows:
        return None
    as_of = rows[0].holdings_as_of
    max_age = dt.timedelta(seconds=current_app.config["HOLDINGS_MAX_AGE_SECONDS"])
    if as_of is None or utc_now() - as_of > max_age:
        return None
    held = [row for row in rows if row.quantity is not None]
    return _snapshot(held, rows[0].account_type == "SECURITIES_STOCK", as_of)
