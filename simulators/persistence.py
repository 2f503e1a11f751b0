"""Save a simulator's state to a file and load it into a freshly built simulator.

``gateway demo`` keeps the gateway's database across restarts, so the simulators must keep theirs
too: the accounts and keys the gateway stores, the orders it still tracks as open, the positions
and cash behind them, the tokens it was issued, the order number sequences. Otherwise a restart
turns hand-added accounts into "unknown key" and open orders into endless "not found".

How: a simulator is rebuilt by its ``create_app`` exactly as on the first run (same options, same
seed), then its *data* is transplanted. The objects a simulator is made of (the state, the engine
and its parts, the facade's context and API objects, reachable from ``app.extensions`` and the
view functions) are walked attribute by attribute in a fixed order; each attribute that holds data
(numbers, strings, times, Decimals, containers, counters) is saved under its path, e.g.
``ext:simulators.state.engine._accounts._accounts``. Loading walks the fresh app the same way and
assigns the saved values to the same paths. What is code (functions, closures such as the order
number formats), machinery (locks, events, the Flask app) or transient by nature (pending faults,
held requests, rate-limit buckets on the monotonic clock, ban strikes) is rebuilt, not saved.

Everything is pickled in one go so objects shared between containers (an order record indexed by
number and by account) stay shared. Instruments and the clock are not copied but referenced by
name and resolved to the fresh simulator's own objects. The file is written atomically, mode 600,
in the caller's folder (the demo's instance folder, which holds its encryption keys as well): only
its owner can write it, and only files this module wrote are ever loaded.

This module is the simulators' own: it imports nothing of the gateway.
"""

from __future__ import annotations

import enum
import io
import itertools
import os
import pickle  # noqa: S403 - the file is our own, mode 600, in the operator's instance folder
import re
import threading
import types
from collections import deque
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from flask import Flask

from simulators.control.state import STATE_EXTENSION_KEY, SimState
from simulators.engine import Instrument, SimClock

__all__ = ["FORMAT_VERSION", "SnapshotError", "load", "load_file", "save", "save_file"]

#: Bumped when the layout of a snapshot changes; an older file is refused, not misread.
FORMAT_VERSION = 1

# Objects whose state is transient by nature: a restart should not bring back a pending fault, a
# held request, or rate-limit buckets measured on a monotonic clock that restarted too.
_TRANSIENT_CLASSES = frozenset(
    {"FaultBook", "HeldRequests", "RateLimiter", "BanBook", "GroupThrottle", "FaultMiddleware"}
)
_DATA_TYPES = (
    dict,
    list,
    set,
    frozenset,
    tuple,
    deque,
    str,
    bytes,
    int,
    float,
    bool,
    Decimal,
    datetime,
    date,
    timedelta,
    enum.Enum,
    itertools.count,
    type(None),
)
_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))
_COUNT_REPR = re.compile(r"^count\((-?\d+)(?:, (-?\d+))?\)$")


class SnapshotError(Exception):
    """A snapshot cannot be saved or loaded (another format version, another broker)."""


def _is_simulator_object(value: Any) -> bool:
    cls = type(value)
    return (
        cls.__module__.startswith("simulators.")
        and not isinstance(value, enum.Enum)
        and not isinstance(value, type)
        and hasattr(value, "__dict__")
    )


def _roots(app: Flask) -> list[tuple[str, Any]]:
    """The simulator's objects an app reaches, in a fixed order: extensions, then view owners."""
    roots: list[tuple[str, Any]] = []
    for key in sorted(app.extensions):
        if _is_simulator_object(app.extensions[key]):
            roots.append((f"ext:{key}", app.extensions[key]))
    for endpoint in sorted(app.view_functions):
        view = app.view_functions[endpoint]
        owner = getattr(view, "__self__", None)
        if owner is not None and _is_simulator_object(owner):
            roots.append((f"view:{endpoint}", owner))
        for index, cell in enumerate(getattr(view, "__closure__", None) or ()):
            try:
                content = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if _is_simulator_object(content):
                roots.append((f"view:{endpoint}:{index}", content))
    return roots


def _slots(app: Flask) -> Iterator[tuple[str, Any, str]]:
    """Yield ``(path, owner, attribute)`` for every data attribute of the app's objects."""
    seen: set[int] = set()
    stack = list(reversed(_roots(app)))
    while stack:
        path, obj = stack.pop()
        if id(obj) in seen or type(obj).__name__ in _TRANSIENT_CLASSES:
            continue
        seen.add(id(obj))
        children = []
        for name in sorted(vars(obj)):
            value = vars(obj)[name]
            if isinstance(value, (*_LOCK_TYPES, types.FunctionType, types.MethodType, Flask)):
                continue
            if _is_simulator_object(value):
                children.append((f"{path}.{name}", value))
            elif isinstance(obj, SimState) and name == "options":
                # A namespace, not data: facades keep their credential stores there. Walk the
                # objects; the plain entries are settings that create_app sets again.
                children.extend(
                    (f"{path}.{name}[{key!r}]", item)
                    for key, item in sorted(value.items(), key=lambda kv: repr(kv[0]))
                    if _is_simulator_object(item)
                )
            elif isinstance(value, _DATA_TYPES):
                yield f"{path}.{name}", obj, name
        stack.extend(reversed(children))


class _Pickler(pickle.Pickler):
    """Instruments and the clock by reference; counters and locks rebuilt."""

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, Instrument):
            return ("instrument", obj.symbol)
        if isinstance(obj, SimClock):
            return ("clock",)
        return None

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, itertools.count):
            # count's own pickling is deprecated (Python 3.12); its repr gives the next value.
            match = _COUNT_REPR.match(repr(obj))
            if match is None:
                raise SnapshotError(f"cannot save the counter {obj!r}")
            start, step = int(match.group(1)), int(match.group(2) or 1)
            return itertools.count, (start, step)
        if isinstance(obj, _LOCK_TYPES):
            return (threading.RLock if "RLock" in type(obj).__name__ else threading.Lock), ()
        return NotImplemented


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, state: SimState) -> None:
        super().__init__(io.BytesIO(data))
        self._state = state

    def persistent_load(self, pid: Any) -> Any:
        if pid == ("clock",):
            return self._state.clock
        if isinstance(pid, tuple) and len(pid) == 2 and pid[0] == "instrument":
            try:
                return self._state.engine.instrument(pid[1])
            except Exception as exc:  # another broker's snapshot, or a de-listed symbol
                raise SnapshotError(f"the snapshot names {pid[1]!r}, not listed here") from exc
        raise pickle.UnpicklingError(f"unknown reference {pid!r}")


def save(app: Flask) -> bytes:
    """Return a snapshot of a simulator's data (taken under the engine's lock)."""
    state: SimState = app.extensions[STATE_EXTENSION_KEY]
    buffer = io.BytesIO()
    with state.engine._lock:  # a consistent picture: no order moves while it is taken
        slots = {path: getattr(owner, name) for path, owner, name in _slots(app)}
        _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(
            {"version": FORMAT_VERSION, "broker": state.broker, "slots": slots}
        )
    return buffer.getvalue()


def load(app: Flask, data: bytes) -> int:
    """Put a snapshot's data into a freshly built simulator of the same broker.

    Returns:
        The number of attributes restored.

    Raises:
        SnapshotError: another format version or another broker's snapshot.
    """
    state: SimState = app.extensions[STATE_EXTENSION_KEY]
    snapshot = _Unpickler(data, state).load()
    if not isinstance(snapshot, dict) or snapshot.get("version") != FORMAT_VERSION:
        raise SnapshotError("the snapshot is of another format version")
    if snapshot.get("broker") != state.broker:
        raise SnapshotError(f"the snapshot is {snapshot.get('broker')!r}'s, not {state.broker!r}")
    saved: dict[str, Any] = snapshot["slots"]
    restored = 0
    with state.engine._lock:
        for path, owner, name in list(_slots(app)):
            if path in saved:
                # object.__setattr__: frozen dataclasses hold data too (a context's counters).
                object.__setattr__(owner, name, saved[path])
                restored += 1
    return restored


def save_file(app: Flask, path: Path) -> None:
    """Write a snapshot to ``path`` atomically (a temporary file renamed), mode 600."""
    data = save(app)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def load_file(app: Flask, path: Path) -> int:
    """Load the snapshot in ``path`` into ``app``; 0 when there is none yet."""
    if not path.exists():
        return 0
    return load(app, path.read_bytes())
