"""Signed HTTP to Upbit: a JWT per request, returning raw dicts or raising mapped errors.

``Authorization: Bearer <JWT>`` with ``access_key``, ``nonce`` (UUID) and,
when the request has parameters, ``query_hash`` (SHA-512 of the exact query string sent, or of the
JSON body's ``k=v&…``) and ``query_hash_alg``. Returns raw dicts or raises mapped errors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from brokers.limits import Budget
from crypto_exchanges._upbit_like import UpbitLikeClient
from crypto_exchanges.upbit.errors import UPBIT_ERRORS

__all__ = ["UPBIT_ORDER_PATHS", "UpbitClient", "quotation_group"]

#: The ``order`` group (docs.upbit.com rate-limits): 8/s, 12/s from 2026-08-21 (configurable).
UPBIT_ORDER_PATHS = frozenset({("POST", "/v1/orders"), ("POST", "/v1/orders/cancel_and_new")})


def quotation_group(path: str) -> str:
    """Return the quotation group of a public path (``market``, ``ticker``, ``candles``…)."""
    part = path.removeprefix("/v1/").split("/", 1)[0]
    return {"market": "market", "orderbook": "orderbook", "trades": "trades"}.get(
        part, "candles" if part == "candles" else "ticker" if part.startswith("ticker") else part
    )


class UpbitClient(UpbitLikeClient):
    """Upbit's signed HTTP (see :class:`~crypto_exchanges._upbit_like.UpbitLikeClient`)."""

    broker = "UPBIT"
    errors = UPBIT_ERRORS
    timestamp_claim = False
    # Upbit measures limits per second (Remaining-Req ``sec``) and sends no Retry-After.
    default_retry_after = 1.0

    def _budgets(
        self, method: str, path: str, params: Mapping[str, str] | None, signed: bool
    ) -> list[Budget]:
        # Exchange calls count per account (pocket) and group; quotations per address and group.
        if not signed:
            group = quotation_group(path)
            rate = self._limit("UPBIT_QUOTATION_PER_SECOND", 10)
            return [Budget(f"upbit:quotation:{group}:{self.address_id}", rate)]
        if (method, path) in UPBIT_ORDER_PATHS:
            # Upbit raised the order group from 8 to 12 a second on 2026-08-21 (BROKERS.md).
            rate = self._limit("UPBIT_ORDER_PER_SECOND", 12)
            return [Budget(f"upbit:order:{self.account_id}", rate)]
        if (method, path) == ("DELETE", "/v1/orders/open"):
            rate = self._limit("UPBIT_CANCEL_ALL_PER_2S", 1)
            return [Budget(f"upbit:order-cancel-all:{self.account_id}", rate, 2.0)]
        rate = self._limit("UPBIT_EXCHANGE_PER_SECOND", 30)
        return [Budget(f"upbit:default:{self.account_id}", rate)]

    def _observe_budgets(self, headers: Mapping[str, str], budgets: Sequence[Budget]) -> None:
        # Remaining-Req: group=order; min=1800; sec=7 — what is left of this second at Upbit,
        # whoever spent it (another program with the same keys counts too).
        value = headers.get("Remaining-Req")
        match = re.search(r"sec=(\d+)", value or "")
        if match and len(budgets) == 1:
            budget = budgets[0]
            used = budget.rate - int(match.group(1))
            if used > 0:
                self.limiter.observe(budget, used=used)
