"""Upbit: ``UpbitAdapter`` and its default host."""

from crypto_exchanges.upbit.adapter import UpbitAdapter

__all__ = ["DEFAULT_BASE_URLS", "UpbitAdapter"]

#: Upbit has no paper-trading environment.
DEFAULT_BASE_URLS = {"REAL": "https://api.upbit.com"}
