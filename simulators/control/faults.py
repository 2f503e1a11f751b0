"""Faults a test queues with ``POST /_sim/faults``, consumed by the requests they match.

Fault kinds:

* ``latency`` — sleep ``seconds`` (real time), then handle the request normally.
* ``http_status`` — answer ``status`` with ``body`` (JSON) without handling the request.
* ``reset`` — close the connection with a TCP RST before the request is handled.
* ``drop`` — handle the request (orders execute, the ledger records them), then close the
  connection without sending the response.
* ``token_refusal`` — the facade's token route asks :meth:`SimState.take_token_refusal
  <simulators.control.SimState.take_token_refusal>` and, when it gets a fault, answers its
  broker's refusal (``status``/``body`` in the fault may override).
* ``revoke_all_tokens`` — applied at once: every issued token is revoked (a maintenance window).

The transport kinds are applied by :class:`~simulators.control.middleware.FaultMiddleware`.
"""

from __future__ import annotations

import enum
import itertools
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TRANSPORT_KINDS", "Fault", "FaultBook", "FaultKind"]


class FaultKind(enum.StrEnum):
    """The faults ``POST /_sim/faults`` accepts."""

    LATENCY = "latency"
    HTTP_STATUS = "http_status"
    RESET = "reset"
    DROP = "drop"
    TOKEN_REFUSAL = "token_refusal"  # noqa: S105 - a fault kind, not a secret
    REVOKE_ALL_TOKENS = "revoke_all_tokens"


#: Faults the middleware applies to any matching request; token_refusal is taken by the facade.
TRANSPORT_KINDS = (FaultKind.RESET, FaultKind.HTTP_STATUS, FaultKind.DROP)


@dataclass
class Fault:
    """A pending fault: applies to the next ``remaining`` requests under ``path_prefix``."""

    fault_id: int
    kind: FaultKind
    remaining: int
    path_prefix: str | None = None
    seconds: float | None = None
    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def matches(self, path: str) -> bool:
        """Return whether the fault applies to a request for ``path``."""
        return self.remaining > 0 and (
            self.path_prefix is None or path.startswith(self.path_prefix)
        )

    def to_json(self) -> dict[str, Any]:
        """Return the fault as JSON."""
        return {
            "id": self.fault_id,
            "kind": self.kind.value,
            "count": self.remaining,
            "path_prefix": self.path_prefix,
            "seconds": self.seconds,
            "status": self.status,
            "body": self.body,
            "headers": self.headers,
        }


class FaultBook:
    """Pending faults, consumed one use at a time, oldest first; thread-safe."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def add(
        self,
        kind: FaultKind | str,
        *,
        count: int = 1,
        path_prefix: str | None = None,
        seconds: float | None = None,
        status: int | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """Queue a fault for the next ``count`` matching requests.

        Raises:
            ValueError: for an unknown kind, a count below 1, or missing/invalid parameters.
        """
        kind = FaultKind(kind)
        if kind is FaultKind.REVOKE_ALL_TOKENS:
            raise ValueError("revoke_all_tokens is applied at once, not queued")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError("count must be a positive integer")
        if path_prefix is not None and (
            not isinstance(path_prefix, str) or not path_prefix.startswith("/")
        ):
            raise ValueError("path_prefix must be a path starting with '/'")
        if kind is FaultKind.LATENCY and (
            not isinstance(seconds, int | float)
            or isinstance(seconds, bool)
            or not 0 < seconds <= 300
        ):
            raise ValueError("latency needs 0 < seconds <= 300")
        if kind is FaultKind.HTTP_STATUS and (
            not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599
        ):
            raise ValueError("http_status needs an integer status between 100 and 599")
        if status is not None and (not isinstance(status, int) or not 100 <= status <= 599):
            raise ValueError("status must be an integer between 100 and 599")
        if headers is not None and not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise ValueError("headers must map strings to strings")
        fault = Fault(
            fault_id=next(self._ids),
            kind=kind,
            remaining=count,
            path_prefix=path_prefix,
            seconds=float(seconds) if seconds is not None else None,
            status=status,
            body=body,
            headers=dict(headers or {}),
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, kinds: FaultKind | Iterable[FaultKind], path: str) -> Fault | None:
        """Consume one use of the oldest pending fault of ``kinds`` matching ``path``.

        Returns a copy describing the fault, or None when nothing matches.
        """
        wanted = {kinds} if isinstance(kinds, FaultKind) else set(kinds)
        with self._lock:
            for fault in self._faults:
                if fault.kind in wanted and fault.matches(path):
                    fault.remaining -= 1
                    taken = Fault(**{**fault.__dict__, "remaining": fault.remaining})
                    self._faults = [f for f in self._faults if f.remaining > 0]
                    return taken
        return None

    def pending(self) -> list[Fault]:
        """Return the pending faults, oldest first."""
        with self._lock:
            return list(self._faults)

    def clear(self) -> int:
        """Drop every pending fault and return how many there were."""
        with self._lock:
            count, self._faults = len(self._faults), []
        return count
