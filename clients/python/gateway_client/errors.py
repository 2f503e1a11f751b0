"""What the client raises: the gateway's problem+json answers, and transport failures."""

from __future__ import annotations

from typing import Any


class GatewayClientError(Exception):
    """Anything the client raises."""


class TransportError(GatewayClientError):
    """The gateway could not be reached, or the connection broke (after any safe retries)."""


class ApiError(GatewayClientError):
    """An RFC 9457 problem the gateway answered, with its stable ``code``."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.code: str = problem.get("code", "http_error")
        self.detail: str = problem.get("detail", "")
        self.retry_after: float | None = problem.get("retry_after")
        super().__init__(f"{status} {self.code}: {self.detail}")
