"""Signed HTTP to Upbit: a JWT per request, returning raw dicts or raising mapped errors.

``Authorization: Bearer <JWT>`` with ``access_key``, ``nonce`` (UUID) and,
when the request has parameters, ``query_hash`` (SHA-512 of the exact query string sent, or of the
JSON body's ``k=v&…``) and ``query_hash_alg``. Returns raw dicts or raises mapped errors.
"""

from __future__ import annotations

from crypto_exchanges._upbit_like import UpbitLikeClient
from crypto_exchanges.upbit.errors import UPBIT_ERRORS

__all__ = ["UpbitClient"]


class UpbitClient(UpbitLikeClient):
    """Upbit's signed HTTP (see :class:`~crypto_exchanges._upbit_like.UpbitLikeClient`)."""

    broker = "UPBIT"
    errors = UPBIT_ERRORS
    timestamp_claim = False
    # Upbit measures limits per second (Remaining-Req ``sec``) and sends no Retry-After.
    default_retry_after = 1.0
