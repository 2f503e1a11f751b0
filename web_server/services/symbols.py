"""The order path's symbol check, served from an in-process cache of ``market.stocks``.

Validating an order must not cost a database round trip, so each process keeps the whole master
(about 4,000 rows, a few hundred KB) in memory. A sync ends with ``NOTIFY stocks_master_changed``;
a daemon thread in every process LISTENs on its own connection and drops the cache when it hears
it, so the next lookup reloads. If the listener loses its connection, the cache also expires after
``max_age`` seconds, so a missed notification cannot keep stale data forever.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import psycopg

from web_server.errors import ValidationFailed

log = logging.getLogger(__name__)
CHANNEL = "stocks_master_changed"


class UnknownSymbol(ValidationFailed):
    """The symbol is not in the stocks master."""

    code = "symbol_unknown"
    title = "Unknown symbol"


class SymbolDelisted(ValidationFailed):
    """The symbol was delisted."""

    code = "symbol_delisted"
    title = "Symbol delisted"


class SymbolSuspended(ValidationFailed):
    """KRX has suspended trading in the symbol."""

    code = "symbol_suspended"
    title = "Symbol suspended"


class SymbolHalted(ValidationFailed):
    """The symbol is listed but not tradable (administrative issue, liquidation trading, …)."""

    code = "symbol_halted"
    title = "Symbol not tradable"


@dataclass(frozen=True)
class CachedStock:
    """What the order path needs to know about a symbol."""

    symbol: str
    name: str
    market: str
    status: str
    is_tradable: bool
    trade_halt_reason: str | None
    security_group: str | None = None


class SymbolCache:
    """The stocks master in memory, invalidated by NOTIFY from any process's sync."""

    def __init__(self, dsn: str, *, max_age: float = 600.0, listen: bool = True) -> None:
        self.dsn = dsn
        self.max_age = max_age
        self.listen = listen
        self.loads = 0
        self._stocks: dict[str, CachedStock] | None = None
        self._loaded_at = 0.0
        # Bumped by every invalidation: a load that started before a sync committed must not
        # publish what it read after the sync's notification dropped the cache.
        self._generation = 0
        self._lock = threading.Lock()
        self._listener: threading.Thread | None = None
        self._listening = threading.Event()
        self._stop = threading.Event()

    def invalidate(self) -> None:
        """Drop the cache; the next lookup reloads it."""
        self._generation += 1
        self._stocks = None

    def lookup(self, symbol: str) -> CachedStock | None:
        """Return the cached row of ``symbol`` or None."""
        stocks = self._stocks
        if stocks is None or time.monotonic() - self._loaded_at > self.max_age:
            stocks = self._load()
        return stocks.get(symbol)

    def validate_tradable(self, symbol: str) -> CachedStock:
        """Return the stock if an order may name it.

        Raises:
            UnknownSymbol: not in the master.
            SymbolDelisted: delisted.
            SymbolSuspended: trading suspended by KRX.
            SymbolHalted: listed but not tradable (the reason is in the detail).
        """
        stock = self.lookup(symbol)
        errors = {"symbol": [symbol]}
        if stock is None:
            raise UnknownSymbol(f"{symbol} is not in the stocks master.", errors=errors)
        if stock.status == "DELISTED":
            raise SymbolDelisted(f"{symbol} ({stock.name}) is delisted.", errors=errors)
        if stock.status == "SUSPENDED":
            raise SymbolSuspended(
                f"{symbol} ({stock.name}) is suspended: {stock.trade_halt_reason or 'by KRX'}.",
                errors=errors,
            )
        if not stock.is_tradable:
            raise SymbolHalted(
                f"{symbol} ({stock.name}) is not tradable: {stock.trade_halt_reason}.",
                errors=errors,
            )
        return stock

    def _load(self) -> dict[str, CachedStock]:
        with self._lock:
            if self._stocks is not None and time.monotonic() - self._loaded_at <= self.max_age:
                return self._stocks
            # LISTEN before reading, so no sync can commit unheard between the read and LISTEN.
            self._start_listener()
            generation = self._generation
            with psycopg.connect(self.dsn) as conn:
                rows = conn.execute(
                    "SELECT symbol, name, market, status, is_tradable, trade_halt_reason,"
                    " security_group FROM market.stocks"
                ).fetchall()
            stocks = {row[0]: CachedStock(*row) for row in rows}
            self.loads += 1
            if generation == self._generation:
                self._stocks = stocks
                self._loaded_at = time.monotonic()
            return stocks

    def _start_listener(self) -> None:
        if not self.listen or (self._listener and self._listener.is_alive()):
            return
        self._listener = threading.Thread(
            target=self._listen_forever, name="symbol-cache-listener", daemon=True
        )
        self._listener.start()
        self._listening.wait(timeout=5)

    def _listen_forever(self) -> None:
        reconnecting = False
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    if reconnecting:
                        self.invalidate()  # a sync may have happened while we were away
                    # Set only once the cache is as fresh as the notifications: "listening"
                    # means no invalidation is still owed (tests wait on it).
                    self._listening.set()
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self.invalidate()
            except psycopg.Error as exc:
                self._listening.clear()
                log.warning("symbol cache listener: %s; reconnecting", type(exc).__name__)
                reconnecting = True
                self._stop.wait(2.0)

    def wait_listening(self, timeout: float) -> bool:
        """Return True once the listener is connected and owes no invalidation (for tests)."""
        return self._listening.wait(timeout)

    def close(self) -> None:
        """Stop the listener thread."""
        self._stop.set()
