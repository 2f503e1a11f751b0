"""Crypto exchange adapters: one package per exchange, each implementing ``CryptoAdapter``.

* :mod:`crypto_exchanges.upbit` — Upbit (JWT with ``query_hash``).
* :mod:`crypto_exchanges.bithumb` — Bithumb API 2.0 (JWT with ``timestamp`` and ``query_hash``).
* :mod:`crypto_exchanges.binance` — Binance spot (HMAC-SHA256 ``signature``).

Shared, package-internal pieces: ``_rules`` (tick, lot and notional checks, decimal formatting, the
market-list cache), ``_http`` (sending, transport-error and HTTP-error translation, the read retry
policy), ``_jwt`` (a small HS256/HS512 signer) and ``_upbit_like`` (the wire shapes Bithumb 2.0
copied from Upbit). Importing this package does no work and imports no exchange package.
"""

__all__: list[str] = []
