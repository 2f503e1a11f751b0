"""KRX checks before a stock order leaves: the day's price band, the session, NXT eligibility.

Sources: ``../shared/brokers/trading-days.md`` §1.1 (KRX sessions), §1.2 (NXT), §1.3 (order types
per venue), §1.5 (the ±30 % band). All times are Asia/Seoul.

- **Price band.** A LIMIT price must lie inside today's band around the stock's base price
  (:func:`brokers.krx.price_band`), read from ``market.stock_base_prices`` (filled by the stocks
  sync from the master's ``stck_sdpr``, or set by the operator). A stock with no base price for
  today is **let through** unchecked: the broker applies the band itself, and refusing every order
  on a day the master lacks a price would stop trading for a missing reference, not a risk. The
  refusal is ``krx_price_band`` (422).
- **Session.** With ``GATEWAY_KRX_MARKET_HOURS`` on, an order is taken only on a KRX trading day
  (exchange-calendars XKRX) inside a session of its route that takes the gateway's order types
  (LIMIT → 지정가 ``00``, MARKET → 시장가 ``01``): :data:`SESSIONS`. NXT takes no market order
  (§1.3), so a MARKET order routed to NXT is refused outside KRX's own sessions as well. SOR takes
  an order while KRX or NXT does. The refusal is ``krx_session_closed`` (422). The setting is off
  by default outside production (``GATEWAY_ENV`` test or development) because the simulators may
  run with ``market_hours="always"``; ``GATEWAY_KRX_SESSIONS`` may replace the table (a mapping of
  route to a list of ``["HH:MM", "HH:MM"]`` windows) when KRX changes its hours.
- **NXT.** An order routed to NXT names a stock Nextrade trades (``market.stocks.nxt_eligible``),
  else ``nxt_not_eligible`` (422).
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from brokers.krx import price_band
from web_server.errors import ValidationFailed
from web_server.models import StockBasePrice

SEOUL = zoneinfo.ZoneInfo("Asia/Seoul")

#: Per route and order type, the windows (Seoul, [start, end)) in which it is taken.
SESSIONS: dict[str, dict[str, list[tuple[str, str]]]] = {
    # 08:30–09:00 pre-open call, 09:00–15:20 continuous, 15:20–15:30 closing call (§1.1).
    "KRX": {"LIMIT": [("08:30", "15:30")], "MARKET": [("08:30", "15:30")]},
    # Pre-market 08:00–08:50, main 09:00:30–15:20, after-market 15:30–20:00; no market orders
    # on NXT at all (§1.2, §1.3).
    "NXT": {"LIMIT": [("08:00", "08:50"), ("09:00", "15:20"), ("15:30", "20:00")], "MARKET": []},
}


class PriceOutsideBand(ValidationFailed):
    """The limit price is outside the day's ±30 % band around the base price."""

    code = "krx_price_band"
    title = "Price outside the daily limit"


class SessionClosed(ValidationFailed):
    """No session of the order's route takes the order now."""

    code = "krx_session_closed"
    title = "Market session closed"


class NotNxtEligible(ValidationFailed):
    """The order is routed to NXT but Nextrade does not trade the stock."""

    code = "nxt_not_eligible"
    title = "Not traded on NXT"


def hours_enforced(config: Mapping[str, Any]) -> bool:
    """Tell whether session hours are checked (``GATEWAY_KRX_MARKET_HOURS``; see the module)."""
    setting = config.get("KRX_MARKET_HOURS")
    if setting is None:
        return config.get("ENV") == "production"
    if isinstance(setting, str):
        return setting.strip().lower() in ("1", "true", "on", "yes")
    return bool(setting)


def trading_date(now: dt.datetime) -> dt.date:
    """Return the Seoul calendar date of ``now`` (the KRX day an order falls on)."""
    return now.astimezone(SEOUL).date()


@functools.lru_cache(maxsize=64)
def is_trading_day(day: dt.date) -> bool:
    """Tell whether KRX holds a session on ``day`` (XKRX, holidays included)."""
    import exchange_calendars  # pandas-heavy: imported on first use only

    calendar = exchange_calendars.get_calendar("XKRX")
    first, last = calendar.first_session.date(), calendar.last_session.date()
    if not first <= day <= last:
        return day.weekday() < 5  # beyond the calendar's range: weekdays
    return bool(calendar.is_session(day.isoformat()))


def _windows(
    table: Mapping[str, Mapping[str, Sequence[Sequence[str]]]], route: str, order_type: str
) -> list[tuple[dt.time, dt.time]]:
    routes = ("KRX", "NXT") if route == "SOR" else (route,)
    return [
        (dt.time.fromisoformat(start), dt.time.fromisoformat(end))
        for venue in routes
        for start, end in table.get(venue, {}).get(order_type, [])
    ]


def check_session(
    route: str | None,
    order_type: str,
    now: dt.datetime,
    *,
    table: Mapping[str, Mapping[str, Sequence[Sequence[str]]]] | None = None,
) -> None:
    """Refuse an order no session of its route takes at ``now``.

    Raises:
        SessionClosed: not a trading day, or outside every window of the route.
    """
    route = route or "KRX"
    local = now.astimezone(SEOUL)
    if not is_trading_day(local.date()):
        raise SessionClosed(f"{local.date()} is not a KRX trading day.", errors={"route": [route]})
    windows = _windows(table or SESSIONS, route, order_type)
    clock = local.time().replace(tzinfo=None)
    if not any(start <= clock < end for start, end in windows):
        shown = ", ".join(f"{s:%H:%M}–{e:%H:%M}" for s, e in windows) or "none"
        raise SessionClosed(
            f"No {route} session takes a {order_type} order at {clock:%H:%M} Seoul time "
            f"(sessions: {shown}).",
            errors={"route": [route]},
        )


def base_price(session: Session, symbol: str, day: dt.date) -> Decimal | None:
    """Return the stock's base price for ``day``, or None if none is stored."""
    return session.scalar(
        select(StockBasePrice.base_price).where(
            StockBasePrice.symbol == symbol, StockBasePrice.trading_date == day
        )
    )


def check_price_band(session: Session, symbol: str, limit_price: Decimal, now: dt.datetime) -> None:
    """Refuse a limit price outside today's band; let a stock without a base price through.

    Raises:
        PriceOutsideBand: the price is below the lower or above the upper limit.
    """
    base = base_price(session, symbol, trading_date(now))
    if base is None:
        return
    lower, upper = price_band(base)
    if not lower <= limit_price <= upper:
        raise PriceOutsideBand(
            f"{limit_price} is outside today's price limits for {symbol}: {lower} to {upper} "
            f"(base price {base}, ±30 %).",
            errors={"limit_price": [f"must be from {lower} to {upper}"]},
            extra={"lower_limit": str(lower), "upper_limit": str(upper), "base_price": str(base)},
        )


def check_nxt(route: str | None, symbol: str, nxt_eligible: bool) -> None:
    """Refuse an NXT-routed order for a stock Nextrade does not trade.

    Raises:
        NotNxtEligible: the route is NXT and the stock is not eligible.
    """
    if route == "NXT" and not nxt_eligible:
        raise NotNxtEligible(
            f"{symbol} is not traded on NXT (Nextrade); route it to KRX or SOR.",
            errors={"route": ["NXT"]},
        )
