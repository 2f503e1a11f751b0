"""Faults a test queues with ``POST /_sim/faults``, consumed by the requests they match.

Fault kinds:

* ``latency`` — sleep ``seconds`` (real time), then handle the request normally (a slow network
  before the broker: the request is checked and handled when it finally arrives).
* ``http_status`` — answer ``status`` with ``body`` (JSON) instead of the broker's answer. By
  default the broker never saw the request; with ``acted: true`` it handled it first (a 5xx from a
  gateway in front of a broker that did the work: "execution status unknown").
* ``reset`` — close the connection with a TCP RST; by default before the request is handled,
  with ``acted: true`` after.
* ``drop`` — close the connection without an answer; by default after the request was handled
  (orders execute, the ledger records them), with ``acted: false`` before.
* ``protocol_error`` — a failure after the request was sent that the client sees as a protocol
  error, not a clean close: by default the broker handles the request (``acted: false``: it does
  not), then ``mode`` decides what the client reads. ``garbage`` (default): bytes that are no
  HTTP — on a TLS server (:func:`simulators.server.serve_in_thread` with ``tls``) they are written
  beneath TLS, so the client's TLS layer fails on a broken record, the real thing; on plain HTTP
  the client fails to parse the status line. ``truncated``: the real status line and headers, then
  half the body, then the connection closes (the declared length is never reached).
* ``late`` — the broker accepts the request now and acts on it later: the request is held (the
  client hears nothing and times out), then handled ``seconds`` real seconds later, or once the
  simulator clock has moved ``sim_seconds`` past its arrival (``POST /_sim/clock`` settles it before
  answering). Signatures and timestamps are checked against the arrival time, as the broker's
  gateway checked them then; the ledger records ``fault_applied`` at arrival (``stage: held``) and
  again when it acts (``stage: acted``, with the answer's ``status``), the order at the later time.
  A client still waiting gets the late answer.
* ``token_refusal`` — the facade's token route asks :meth:`SimState.take_token_refusal
  <simulators.control.SimState.take_token_refusal>` and, when it gets a fault, answers its
  broker's refusal (``status``/``body`` in the fault may override).
* ``revoke_all_tokens`` — applied at once: every issued token is revoked (a maintenance window).

Every queued fault may be narrowed to requests under ``path_prefix``, with ``method``, and of a
``target`` (``order``, ``cancel``, ``amend``: see :mod:`simulators.control.targets`). Lost cancels
are ``target: "cancel"`` with ``reset``/``http_status`` (lost before the broker acted) or
``drop``/``acted: true`` (acted, answer lost). The transport kinds are applied by
:class:`~simulators.control.middleware.FaultMiddleware`.
"""

from __future__ import annotations

import enum
import itertools
import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from simulators.control.targets import RequestInfo, RequestPattern, resolve_target

__all__ = ["PROTOCOL_ERROR_MODES", "TRANSPORT_KINDS", "Fault", "FaultBook", "FaultKind"]


class FaultKind(enum.StrEnum):
    """The faults ``POST /_sim/faults`` accepts."""

    LATENCY = "latency"
    HTTP_STATUS = "http_status"
    RESET = "reset"
    DROP = "drop"
    PROTOCOL_ERROR = "protocol_error"
    LATE = "late"
    TOKEN_REFUSAL = "token_refusal"  # noqa: S105 - a fault kind, not a secret
    REVOKE_ALL_TOKENS = "revoke_all_tokens"


#: Faults the middleware applies to any matching request; token_refusal is taken by the facade.
TRANSPORT_KINDS = (
    FaultKind.RESET,
    FaultKind.HTTP_STATUS,
    FaultKind.DROP,
    FaultKind.PROTOCOL_ERROR,
    FaultKind.LATE,
)
#: What ``acted`` defaults to per kind (None: the kind does not take it).
_ACTED_DEFAULT = {
    FaultKind.RESET: False,
    FaultKind.HTTP_STATUS: False,
    FaultKind.DROP: True,
    FaultKind.PROTOCOL_ERROR: True,
}
PROTOCOL_ERROR_MODES = ("garbage", "truncated")
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
#: The longest hold: a late request's real wait, in seconds (like latency's bound).
MAX_HOLD_SECONDS = 300.0


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class Fault:
    """A pending fault: applies to the next ``remaining`` requests it matches."""

    fault_id: int
    kind: FaultKind
    remaining: int
    path_prefix: str | None = None
    seconds: float | None = None
    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    method: str | None = None
    target: str | None = None
    patterns: tuple[RequestPattern, ...] = ()
    acted: bool | None = None
    mode: str | None = None
    sim_seconds: float | None = None

    def matches(self, path: str, request: RequestInfo | None = None) -> bool:
        """Return whether the fault applies to a request for ``path``.

        A fault narrowed by ``method`` or ``target`` needs ``request`` to match at all.
        """
        if self.remaining <= 0:
            return False
        if self.path_prefix is not None and not path.startswith(self.path_prefix):
            return False
        if self.method is None and self.target is None:
            return True
        if request is None:
            return False
        if self.method is not None and request.method != self.method:
            return False
        return self.target is None or any(p.matches(request) for p in self.patterns)

    def to_json(self) -> dict[str, Any]:
        """Return the fault as JSON."""
        out: dict[str, Any] = {
            "id": self.fault_id,
            "kind": self.kind.value,
            "count": self.remaining,
            "path_prefix": self.path_prefix,
            "method": self.method,
            "target": self.target,
            "seconds": self.seconds,
            "status": self.status,
            "body": self.body,
            "headers": self.headers,
        }
        if self.acted is not None:
            out["acted"] = self.acted
        if self.mode is not None:
            out["mode"] = self.mode
        if self.sim_seconds is not None:
            out["sim_seconds"] = self.sim_seconds
        if self.target is not None:
            out["requests"] = [p.to_json() for p in self.patterns]
        return out


class FaultBook:
    """Pending faults, consumed one use at a time, oldest first; thread-safe.

    Args:
        broker: the facade's name, which resolves a fault's ``target`` (None: targets refused).
    """

    def __init__(self, broker: str | None = None) -> None:
        self.broker = broker
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def add(  # noqa: C901 - one check per parameter, in the order the error names them
        self,
        kind: FaultKind | str,
        *,
        count: int = 1,
        path_prefix: str | None = None,
        seconds: float | None = None,
        status: int | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        method: str | None = None,
        target: str | None = None,
        acted: bool | None = None,
        mode: str | None = None,
        sim_seconds: float | None = None,
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
        if kind is FaultKind.LATENCY and (not _is_number(seconds) or not 0 < seconds <= 300):  # type: ignore[operator]
            raise ValueError("latency needs 0 < seconds <= 300")
        if kind is FaultKind.LATE:
            self._check_late(seconds, sim_seconds)
        elif sim_seconds is not None:
            raise ValueError("sim_seconds is for late faults")
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
        if acted is not None and (kind not in _ACTED_DEFAULT or not isinstance(acted, bool)):
            raise ValueError(f"acted (true/false) is for {[k.value for k in _ACTED_DEFAULT]}")
        if kind is FaultKind.PROTOCOL_ERROR:
            mode = mode or "garbage"
            if mode not in PROTOCOL_ERROR_MODES:
                raise ValueError(f"mode must be one of {list(PROTOCOL_ERROR_MODES)}")
        elif mode is not None:
            raise ValueError("mode is for protocol_error faults")
        if method is not None:
            if not isinstance(method, str) or method.upper() not in _METHODS:
                raise ValueError(f"method must be one of {sorted(_METHODS)}")
            method = method.upper()
        patterns: tuple[RequestPattern, ...] = ()
        if target is not None:
            if not isinstance(target, str):
                raise ValueError("target must be a string")
            patterns = resolve_target(self.broker, target)
        if (method or target) and kind is FaultKind.TOKEN_REFUSAL:
            raise ValueError("token_refusal is matched by path_prefix only")
        fault = Fault(
            fault_id=next(self._ids),
            kind=kind,
            remaining=count,
            path_prefix=path_prefix,
            seconds=float(seconds) if seconds is not None else None,
            status=status,
            body=body,
            headers=dict(headers or {}),
            method=method,
            target=target,
            patterns=patterns,
            acted=_ACTED_DEFAULT[kind] if acted is None and kind in _ACTED_DEFAULT else acted,
            mode=mode,
            sim_seconds=float(sim_seconds) if sim_seconds is not None else None,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    @staticmethod
    def _check_late(seconds: Any, sim_seconds: Any) -> None:
        if (seconds is None) == (sim_seconds is None):
            raise ValueError("late needs seconds (real) or sim_seconds (simulator clock)")
        if seconds is not None and (not _is_number(seconds) or not 0 < seconds <= MAX_HOLD_SECONDS):
            raise ValueError(f"late needs 0 < seconds <= {MAX_HOLD_SECONDS:g}")
        if sim_seconds is not None and (not _is_number(sim_seconds) or sim_seconds <= 0):
            raise ValueError("late needs sim_seconds > 0")

    def take(
        self,
        kinds: FaultKind | Iterable[FaultKind],
        path: str,
        request: RequestInfo | None = None,
    ) -> Fault | None:
        """Consume one use of the oldest pending fault of ``kinds`` matching the request.

        Returns a copy describing the fault, or None when nothing matches.
        """
        wanted = {kinds} if isinstance(kinds, FaultKind) else set(kinds)
        with self._lock:
            for fault in self._faults:
                if fault.kind in wanted and fault.matches(path, request):
                    fault.remaining -= 1
                    taken = replace(fault)
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
