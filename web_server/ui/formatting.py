"""Jinja filters for money, quantities and times, as an operator in Korea reads them.

- ``money(value, currency)``: thousands separators, the currency after; KRW without decimals
  (rounded half up: a won has no fraction on any Korean statement), other currencies with the
  decimals the value has (a crypto amount's last digit matters).
- ``number(value)``: a quantity with thousands separators and no trailing zeros.
- ``kst(value)``: a ``<time>`` element showing Asia/Seoul time, with the UTC time in its
  ``title`` (shown on hover) and ISO UTC in ``datetime``.
- ``duration(seconds)`` (``1 h 2 min``) and ``age(value)`` (``42 s ago``): how old a snapshot,
  a heartbeat or a sync is.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from web_server.ui.blueprint import bp

SEOUL = ZoneInfo("Asia/Seoul")
#: Currencies shown without decimals.
WHOLE_CURRENCIES = frozenset({"KRW"})


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _grouped(number: Decimal) -> str:
    text = f"{number.normalize():,f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@bp.app_template_filter("number")
def format_number(value: Any) -> str:
    """Render a quantity: ``1234567.5000`` → ``1,234,567.5``; None → ``—``."""
    number = _decimal(value)
    return "—" if number is None else _grouped(number)


@bp.app_template_filter("money")
def format_money(value: Any, currency: str | None = None) -> str:
    """Render an amount in its currency: ``70000.4, "KRW"`` → ``70,000 KRW``."""
    number = _decimal(value)
    if number is None:
        return "—"
    code = (currency or "").upper()
    if code in WHOLE_CURRENCIES:
        text = f"{number.quantize(Decimal(1), rounding=ROUND_HALF_UP):,f}"
        text = "0" if text == "-0" else text
    else:
        text = _grouped(number)
    return f"{text} {code}" if code else text


def _aware(value: Any) -> dt.datetime | None:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, dt.datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


@bp.app_template_filter("kst")
def format_kst(value: Any) -> Markup:
    """Render a time as ``<time>`` in Asia/Seoul, with UTC on hover; None → ``—``."""
    moment = _aware(value)
    if moment is None:
        return Markup("—")
    utc = moment.astimezone(dt.UTC)
    seoul = moment.astimezone(SEOUL)
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        escape(utc.isoformat().replace("+00:00", "Z")),
        escape(utc.strftime("%Y-%m-%d %H:%M:%S UTC")),
        escape(seoul.strftime("%Y-%m-%d %H:%M:%S KST")),
    )


@bp.app_template_filter("duration")
def format_duration(seconds: Any) -> str:
    """Render a length of time to two units: ``3725`` → ``1 h 2 min``; negative → ``-…``."""
    number = _decimal(seconds)
    if number is None:
        return "—"
    sign, total = ("-" if number < 0 else ""), int(abs(number))
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")]
    shown = [f"{n} {unit}" for n, unit in parts if n][:2]
    return sign + (" ".join(shown) if shown else "0 s")


@bp.app_template_filter("age")
def format_age(value: Any, now: dt.datetime | None = None) -> str:
    """Render how long ago a time was: ``42 s ago``; None → ``never``."""
    moment = _aware(value)
    if moment is None:
        return "never"
    elapsed = ((now or dt.datetime.now(dt.UTC)) - moment).total_seconds()
    if elapsed < 0:
        return f"in {format_duration(-elapsed)}"
    return f"{format_duration(elapsed)} ago"
