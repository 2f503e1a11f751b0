"""Upbit's request parameters: the parsers, and the errors for a missing or bad one.

Bithumb speaks the same protocol with other error names; its facade overrides
:meth:`UpbitApi.missing <simulators.upbit.routes.UpbitApi.missing>` and
:meth:`~simulators.upbit.routes.UpbitApi.invalid` instead of using these directly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from simulators.crypto_markets import KST
from simulators.upbit.auth import ApiError, RequestParams

__all__ = ["ORDER_NOT_FOUND", "invalid", "missing", "parse_decimal", "parse_time"]

#: The answer for an order that ``uuid`` (or the client id) does not find (Upbit and Bithumb).
ORDER_NOT_FOUND = (404, "order_not_found", "주문을 찾지 못했습니다.")


def missing(field: str) -> ApiError:
    """Upbit's message for a missing parameter."""
    return ApiError(
        400, "validation_error", f"{field} is missing, {field} does not have a valid value"
    )


def invalid(field: str) -> ApiError:
    """Upbit's message for a parameter with a bad value."""
    return ApiError(400, "validation_error", f"{field} does not have a valid value")


def parse_decimal(params: RequestParams, field: str, *, required: bool = False) -> Decimal | None:
    """Read a positive decimal parameter.

    Raises:
        ApiError: ``validation_error`` if it is missing (when required) or not a positive number.
    """
    raw = params.get(field)
    if raw is None or raw == "":
        if required:
            raise missing(field)
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise invalid(field) from None
    if not value.is_finite() or value <= 0:
        raise invalid(field)
    return value


def parse_time(raw: str | None) -> datetime | None:
    """Parse ISO 8601 (with offset; naive is KST) or epoch milliseconds."""
    if not raw:
        return None
    if raw.isdigit():
        return datetime.fromtimestamp(int(raw) / 1000, tz=UTC)
    try:
        value = datetime.fromisoformat(raw.replace(" ", "+"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=KST)
