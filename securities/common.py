"""The error-table machinery both securities adapters share (STYLE H6).

Each broker's ``errors.py`` is data: exact codes, then substring rules on the message, then a
fallback. :class:`ErrorTable` turns a broker answer into one error of ``web_server.errors``,
always keeping the broker's own code and message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from web_server.errors import BrokerError, BrokerRejected, BrokerUnavailable, OrderStateUnknown

__all__ = ["ErrorRule", "ErrorTable"]


@dataclass(frozen=True)
class ErrorRule:
    """What one broker code or message means.

    Attributes:
        error: the class to raise.
        retry_after: seconds to suggest to the caller (rate limits).
        outcome_unknown_on_write: the broker may have acted before failing (a gateway timeout
            behind the API front end); on an order write this becomes ``OrderStateUnknown``.
        token_rejected: the access token was refused; the client may re-issue once and resend.
    """

    error: type[BrokerError]
    retry_after: float | None = None
    outcome_unknown_on_write: bool = False
    token_rejected: bool = False


@dataclass(frozen=True)
class ErrorTable:
    """Exact code → rule, then (substring, rule) in order, then the fallback.

    Attributes:
        broker: ``"KIS"`` or ``"KIWOOM"``.
        exact: rules by the broker's exact code.
        substrings: rules by a substring of the broker's message, first match wins.
        fallback: the rule for anything else (``BrokerRejected``: permanent until understood).
    """

    broker: str
    exact: Mapping[str, ErrorRule]
    substrings: Sequence[tuple[str, ErrorRule]]
    fallback: ErrorRule = ErrorRule(BrokerRejected)

    def rule(self, code: str | None, message: str | None) -> ErrorRule:
        """Return the rule for a code and message (pure)."""
        if code and code in self.exact:
            return self.exact[code]
        text = message or ""
        for needle, rule in self.substrings:
            if needle in text:
                return rule
        return self.fallback

    def error(
        self,
        code: str | None,
        message: str | None,
        *,
        is_write: bool = False,
        http_status: int | None = None,
    ) -> BrokerError:
        """Build (not raise) the error for a broker answer.

        An unknown code that came with a 5xx on a write is ``OrderStateUnknown``: a server error
        we do not understand does not prove that the order was refused. On a read it is
        ``BrokerUnavailable``.
        """
        rule = self.rule(code, message)
        cls = rule.error
        unknown = rule is self.fallback
        if is_write and (rule.outcome_unknown_on_write or (unknown and (http_status or 0) >= 500)):
            cls = OrderStateUnknown
        elif unknown and (http_status or 0) >= 500:
            cls = BrokerUnavailable
        clean = (message or "").strip()
        detail = (
            f"{self.broker} {code or 'unknown'}: {clean}"
            if clean
            else (f"{self.broker} {code or 'unknown'}")
        )
        return cls(
            detail,
            broker=self.broker,
            broker_code=code,
            broker_message=clean or None,
            retry_after=rule.retry_after,
        )
