"""Requests held by a ``late`` fault, and the time a request reached the broker.

A held request keeps its handler thread (and its connection) until it is due: after a number of
real seconds, or once the simulator clock has passed a time. ``POST /_sim/clock`` calls
:meth:`HeldRequests.settle` so that a test which moves the clock sees the late request's effects
as soon as the clock call answers, without polling.

A broker checks a request's signature and timestamp when it arrives and may act on it much later;
:func:`request_time` gives the facades the arrival time to check against, so a late request is not
refused for a timestamp that was fresh when it was sent.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import has_request_context, request

from simulators.control.faults import MAX_HOLD_SECONDS
from simulators.engine import SimClock

__all__ = ["RECEIVED_AT_KEY", "HeldRequest", "HeldRequests", "request_time"]

#: WSGI environ key: the simulated time a held request arrived at.
RECEIVED_AT_KEY = "simulators.received_at"
#: How often a hold on the simulator clock looks at the clock (a real-time clock moves alone).
_POLL_SECONDS = 0.05


def request_time(clock: SimClock) -> datetime:
    """The simulated time the current request reached the broker (now, unless it was held).

    Facades use it for signature timestamps and windows (Upbit/Bithumb JWT age, Binance
    ``recvWindow``): the broker's gateway checked those on arrival.
    """
    if has_request_context():
        received = request.environ.get(RECEIVED_AT_KEY)
        if isinstance(received, datetime):
            return received
    return clock.now()


@dataclass
class HeldRequest:
    """One request a ``late`` fault holds.

    Attributes:
        hold_id: sequence number.
        fault_id: the fault that holds it.
        method, path: what was requested.
        received_at: simulated arrival time.
        due_at: simulated time it is released at (``sim_seconds`` holds).
        due_monotonic: real (monotonic) time it is released at (``seconds`` holds).
        deadline: real time after which a hold on the simulator clock gives up.
    """

    hold_id: int
    fault_id: int
    method: str
    path: str
    received_at: datetime
    due_at: datetime | None
    due_monotonic: float | None
    deadline: float
    done: threading.Event = field(default_factory=threading.Event)

    def to_json(self) -> dict[str, Any]:
        """Return the hold as JSON (``GET /_sim/faults``)."""
        return {
            "id": self.hold_id,
            "fault_id": self.fault_id,
            "method": self.method,
            "path": self.path,
            "received_at": self.received_at.isoformat(),
            "due_at": self.due_at.isoformat() if self.due_at else None,
            "due_in_seconds": (
                round(max(0.0, self.due_monotonic - time.monotonic()), 3)
                if self.due_monotonic is not None
                else None
            ),
        }


class HeldRequests:
    """The requests ``late`` faults hold; thread-safe.

    Args:
        clock: the simulator clock (``sim_seconds`` holds wait for it).
        monotonic: real seconds (tests may pass their own).
    """

    def __init__(self, clock: SimClock, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._monotonic = monotonic
        self._held: list[HeldRequest] = []
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._abandoned: set[int] = set()

    def hold(
        self,
        fault_id: int,
        method: str,
        path: str,
        *,
        seconds: float | None = None,
        sim_seconds: float | None = None,
    ) -> HeldRequest:
        """Register a held request, due after ``seconds`` real or ``sim_seconds`` simulated."""
        now, real = self._clock.now(), self._monotonic()
        held = HeldRequest(
            hold_id=next(self._ids),
            fault_id=fault_id,
            method=method,
            path=path,
            received_at=now,
            due_at=now + timedelta(seconds=sim_seconds) if sim_seconds is not None else None,
            due_monotonic=real + seconds if seconds is not None else None,
            deadline=real + MAX_HOLD_SECONDS,
        )
        with self._cond:
            self._held.append(held)
        return held

    def _due(self, held: HeldRequest) -> bool:
        if held.due_monotonic is not None:
            return self._monotonic() >= held.due_monotonic
        return held.due_at is not None and self._clock.now() >= held.due_at

    def wait(self, held: HeldRequest) -> bool:
        """Block until ``held`` is due; False if it was abandoned or waited past the limit."""
        with self._cond:
            while True:
                if held.hold_id in self._abandoned:
                    return False
                if self._due(held):
                    return True
                real = self._monotonic()
                if real >= held.deadline:
                    return False
                timeout = (
                    held.due_monotonic - real if held.due_monotonic is not None else _POLL_SECONDS
                )
                self._cond.wait(min(max(timeout, 0.001), held.deadline - real))

    def finish(self, held: HeldRequest) -> None:
        """Mark ``held`` handled (or given up) and forget it."""
        held.done.set()
        with self._cond:
            self._held = [h for h in self._held if h.hold_id != held.hold_id]
            self._abandoned.discard(held.hold_id)
            self._cond.notify_all()

    def settle(self, timeout: float = 5.0) -> None:
        """Wake the holds and wait for those now due on the simulator clock to be handled."""
        with self._cond:
            self._cond.notify_all()
            due = [h for h in self._held if h.due_at is not None and self._due(h)]
        for held in due:
            held.done.wait(timeout)

    def abandon_all(self) -> int:
        """Give up every hold (never handled); return how many there were."""
        with self._cond:
            count = len(self._held)
            self._abandoned.update(h.hold_id for h in self._held)
            self._cond.notify_all()
        return count

    def pending(self) -> list[HeldRequest]:
        """Return the holds not yet handled, oldest first."""
        with self._cond:
            return list(self._held)
