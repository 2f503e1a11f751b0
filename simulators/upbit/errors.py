"""The venue's error answers for order requests, as a mixin of the Upbit facade.

Bithumb speaks Upbit's protocol with other error names and overrides these methods; keeping them
apart keeps :mod:`simulators.upbit.routes` about the request plumbing and the order logic.
"""

from __future__ import annotations

from decimal import Decimal

from simulators.crypto_markets import SpotMarket, decimal_string
from simulators.engine import RuleViolated, Side
from simulators.upbit.auth import ApiError, RequestParams
from simulators.upbit.params import invalid, missing, parse_decimal

__all__ = ["UpbitErrors"]


class UpbitErrors:
    """Upbit's error for each way an order request can be wrong (Bithumb overrides them)."""

    def missing(self, field: str) -> ApiError:
        """A required parameter is absent."""
        return missing(field)

    def invalid(self, field: str) -> ApiError:
        """A parameter has a bad value."""
        return invalid(field)

    def decimal(self, params: RequestParams, field: str) -> Decimal | None:
        """An optional positive decimal parameter (the venue's error if malformed)."""
        try:
            return parse_decimal(params, field)
        except ApiError:
            raise self.invalid(field) from None

    def create_error(self, side: Side) -> tuple[int, str, str]:
        """Order parameters that do not fit the order type."""
        name = "create_bid_error" if side is Side.BUY else "create_ask_error"
        return 400, name, "주문 요청 정보가 올바르지 않습니다. 파라미터 값이 올바른지 확인해주세요."

    def duplicate_error(self) -> tuple[int, str, str]:
        """A client id used before (Upbit: ever, even by a failed order)."""
        return 400, "duplicate_identifier", "identifier 값이 중복되었습니다."

    def insufficient_error(self, side: Side, asset: str) -> tuple[int, str, str]:
        """Not enough free balance."""
        name = "insufficient_funds_bid" if side is Side.BUY else "insufficient_funds_ask"
        return 400, name, f"주문가능한 금액({asset})이 부족합니다."

    def rule_error(
        self, side: Side, rule: RuleViolated, market: SpotMarket
    ) -> tuple[int, str, str]:
        """A broken trading rule (tick, minimum order value, volume precision)."""
        suffix = "bid" if side is Side.BUY else "ask"
        if rule in {RuleViolated.PRICE_TICK, RuleViolated.PRICE}:
            return (
                400,
                f"invalid_price_{suffix}",
                "주문가격 단위를 잘못 입력하셨습니다. 확인 후 시도해주세요.",
            )
        if rule is RuleViolated.MIN_NOTIONAL:
            return self.min_total_error(side, market)
        if rule is RuleViolated.ORDER_SHAPE:
            return self.create_error(side)
        return self.volume_error()

    def min_total_error(self, side: Side, market: SpotMarket) -> tuple[int, str, str]:
        """An order worth less than the market's minimum order value."""
        suffix = "bid" if side is Side.BUY else "ask"
        return (
            400,
            f"under_min_total_{suffix}",
            "최소주문금액 이상으로 주문해주세요. "
            f"({decimal_string(market.min_notional)} {market.quote})",
        )

    def volume_error(self) -> tuple[int, str, str]:
        """Any other broken rule (the volume's precision or size)."""
        return 400, "validation_error", "volume does not have a valid value"
