"""Bithumb (API 2.0): ``BithumbAdapter`` and its default host."""

from crypto_exchanges.bithumb.adapter import BithumbAdapter

__all__ = ["DEFAULT_BASE_URLS", "BithumbAdapter"]

#: Bithumb has no paper-trading environment.
DEFAULT_BASE_URLS = {"REAL": "https://api.bithumb.com"}
