"""Binance spot: ``BinanceAdapter`` and its default hosts (PAPER is the spot testnet)."""

from crypto_exchanges.binance.adapter import BinanceAdapter

__all__ = ["DEFAULT_BASE_URLS", "BinanceAdapter"]

DEFAULT_BASE_URLS = {"REAL": "https://api.binance.com", "PAPER": "https://testnet.binance.vision"}
