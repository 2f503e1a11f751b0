"""Signed HTTP to Bithumb API 2.0: a JWT per request, raw dicts or mapped errors.

``Authorization: Bearer <JWT>`` with ``access_key``, ``nonce``
(UUID), ``timestamp`` (ms, required by Bithumb) and, when the request has parameters,
``query_hash`` (SHA-512 of the exact query string sent, or of the JSON body's ``k=v&…``).
Returns raw dicts or raises mapped errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from brokers.limits import Budget
from crypto_exchanges._upbit_like import UpbitLikeClient
from crypto_exchanges.bithumb.errors import BITHUMB_ERRORS

__all__ = ["BithumbClient"]


class BithumbClient(UpbitLikeClient):
    """Bithumb's signed HTTP (see :class:`~crypto_exchanges._upbit_like.UpbitLikeClient`)."""

    broker = "BITHUMB"
    errors = BITHUMB_ERRORS
    timestamp_claim = True
    # Bithumb documents no rate-limit headers and no Retry-After; one second is its window.
    default_retry_after = 1.0

    def _budgets(
        self, method: str, path: str, params: Mapping[str, str] | None, signed: bool
    ) -> list[Budget]:
        # Per address and category (apidocs.bithumb.com "API 요청 수 제한"): public 150/s per
        # category, private 140/s per category (order, cancel, other). Counted per address, so
        # every account of the gateway shares them.
        if not signed:
            category = path.removeprefix("/v1/").split("/", 1)[0] or "other"
            rate = self._limit("BITHUMB_PUBLIC_PER_SECOND", 150)
            return [Budget(f"bithumb:public:{category}:{self.address_id}", rate)]
        if method == "POST" and path.endswith("/orders"):
            category = "order"
        elif method == "DELETE":
            category = "cancel"
        else:
            category = "default"
        rate = self._limit("BITHUMB_PRIVATE_PER_SECOND", 140)
        return [Budget(f"bithumb:{category}:{self.address_id}", rate)]

    def _success_error(self, payload: Any) -> tuple[str, str] | None:
        # Legacy envelope: HTTP 200 with {"status": "5600", "message": "..."}; "0000" is OK.
        if isinstance(payload, Mapping):
            status = payload.get("status")
            if isinstance(status, str) and status.isdigit() and status != "0000":
                return status, str(payload.get("message") or "")
        return None
