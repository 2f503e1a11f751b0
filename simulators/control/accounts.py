"""Helpers for the facades' ``POST /_sim/accounts`` callbacks: body checks and amounts."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from simulators.engine import to_decimal

__all__ = ["AccountSpecError", "AccountsCallback", "parse_amounts", "require_string"]


class AccountSpecError(ValueError):
    """The ``POST /_sim/accounts`` body is invalid; the message goes back in the 400 answer."""


AccountsCallback = Callable[[Mapping[str, Any]], Mapping[str, Any]]
"""``body -> description of what was created`` (no secrets); raises AccountSpecError."""


def require_string(
    body: Mapping[str, Any], key: str, *, pattern: str | None = None, what: str | None = None
) -> str:
    """Return ``body[key]`` as a non-empty string, optionally matching ``pattern`` fully.

    Raises:
        AccountSpecError: if it is missing, not a string, or does not match.
    """
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise AccountSpecError(f"{key} is required and must be a non-empty string")
    if pattern is not None and not re.fullmatch(pattern, value):
        raise AccountSpecError(f"{key} must be {what or 'of the form ' + pattern}")
    return value


def parse_amounts(
    body: Mapping[str, Any], key: str, *, required: bool = False
) -> dict[str, Decimal]:
    """Parse ``{"KRW": "1000000", "005930": 10}`` into Decimals (strings or integers only).

    Raises:
        AccountSpecError: if the value is not an object of non-negative decimal amounts.
    """
    raw = body.get(key)
    if raw is None:
        if required:
            raise AccountSpecError(f"{key} is required")
        return {}
    if not isinstance(raw, Mapping):
        raise AccountSpecError(f"{key} must be an object")
    out: dict[str, Decimal] = {}
    for asset, amount in raw.items():
        try:
            value = to_decimal(amount, f"{key}.{asset}")
        except ValueError as exc:
            raise AccountSpecError(str(exc)) from exc
        if value < 0:
            raise AccountSpecError(f"{key}.{asset} must not be negative")
        out[str(asset)] = value
    return out
