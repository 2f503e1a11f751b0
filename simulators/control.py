"""The ``/_sim/`` control surface every simulator shares, and the fault machinery behind it.

A facade builds a :class:`SimState` and calls :func:`install_control` with its accounts callback;
that registers the blueprint and wraps the app's WSGI callable in :class:`FaultMiddleware`.
The routes (DESIGN §7, binding)::

    POST   /_sim/accounts   body per broker (validated by the facade's callback) → 201
    GET    /_sim/accounts/<account_id>                                → balances and holdings
    POST   /_sim/faults     {"kind", "count"=1, "path_prefix", "seconds", "status", "body",
                             "headers"}                                → 201 {"fault": …}
    GET    /_sim/faults                                               → {"faults": […]}
    DELETE /_sim/faults                                               → {"cleared": n}
    POST   /_sim/clock      {"advance_seconds": N}                     → {"now", "offset_seconds"}
    GET    /_sim/clock
    GET    /_sim/ledger     ?kind=a,b&since=ISO&account_id=            → {"entries": […], "count"}
    GET    /_sim/prices     ?symbol=                                   → {"prices": {symbol: price}}
    POST   /_sim/prices     {"symbol", "price" (null: unpin), "liquidity" (optional, null: ∞)}

Fault kinds:

* ``latency`` — sleep ``seconds`` (real time), then handle the request normally.
* ``http_status`` — answer ``status`` with ``body`` (JSON) without handling the request.
* ``reset`` — close the connection with a TCP RST before the request is handled.
* ``drop`` — handle the request (orders execute, the ledger records them), then close the
  connection without sending the response.
* ``token_refusal`` — the facade's token route asks :meth:`SimState.take_token_refusal` and, when
  it gets a fault, answers its broker's refusal (``status``/``body`` in the fault may override).
* ``revoke_all_tokens`` — applied at once: every issued token is revoked (a maintenance window).

Faults never apply to ``/_sim/`` itself. ``reset`` and ``drop`` need the server from
:mod:`simulators.server`, which gives the middleware a hook to abort the connection (under another
WSGI server they fall back to shutting the socket down, which the client sees as a closed
connection).
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import itertools
import json
import math
import re
import secrets
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http import HTTPStatus
from typing import Any

from flask import Blueprint, Flask, jsonify, request
from flask.typing import ResponseReturnValue

from simulators.engine import (
    DuplicateAccount,
    Engine,
    Instrument,
    Ledger,
    LedgerKind,
    SimClock,
    SimulatorError,
    UnknownAccount,
    UnknownInstrument,
    to_decimal,
)
from simulators.server import ABORT_CONNECTION_KEY

__all__ = [
    "STATE_EXTENSION_KEY",
    "AccountSpecError",
    "AccountsCallback",
    "Fault",
    "FaultBook",
    "FaultKind",
    "FaultMiddleware",
    "IssuedToken",
    "RateLimiter",
    "SimState",
    "TokenRegistry",
    "TokenStatus",
    "create_control_blueprint",
    "get_state",
    "install_control",
    "parse_amounts",
    "require_string",
]

STATE_EXTENSION_KEY = "simulators.state"
_CONTROL_PREFIX = "/_sim"


# --------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------


class FaultKind(enum.StrEnum):
    """The faults ``POST /_sim/faults`` accepts."""

    LATENCY = "latency"
    HTTP_STATUS = "http_status"
    RESET = "reset"
    DROP = "drop"
    TOKEN_REFUSAL = "token_refusal"  # noqa: S105 - a fault kind, not a secret
    REVOKE_ALL_TOKENS = "revoke_all_tokens"


# Faults the middleware applies to any matching request; token_refusal is taken by the facade.
_TRANSPORT_KINDS = (FaultKind.RESET, FaultKind.HTTP_STATUS, FaultKind.DROP)


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


# --------------------------------------------------------------------------------------------
# Tokens and rate limits
# --------------------------------------------------------------------------------------------


class TokenStatus(enum.StrEnum):
    """What :meth:`TokenRegistry.status` says about a presented token."""

    VALID = "valid"
    EXPIRED = "expired"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class IssuedToken:
    """A token the simulator issued."""

    token: str
    app_key: str
    issued_at: datetime
    expires_at: datetime
    account_id: str | None = None
    revoked_at: datetime | None = None

    @property
    def fingerprint(self) -> str:
        """A short hash that identifies the token in the ledger without revealing it."""
        return hashlib.sha256(self.token.encode()).hexdigest()[:16]

    def expires_in(self, now: datetime) -> int:
        """Whole seconds left until expiry (0 when expired)."""
        return max(0, int((self.expires_at - now).total_seconds()))


class TokenRegistry:
    """Issued OAuth tokens (KIS, Kiwoom), with expiry on the SimClock; thread-safe.

    Generic on purpose: the facade implements its broker's rules (KIS re-serves the same token
    within 6 h and refuses a second issuance within a minute) with :meth:`latest` and
    :meth:`seconds_until_next_issue`. Issuances, re-serves, refusals and revocations go to the
    ledger with the app key and the token's fingerprint, never the token or a secret.

    Args:
        clock: the simulator's clock.
        ledger: the simulator's ledger.
        token_factory: ``app_key -> token`` when :meth:`issue` gets no token (random by default).
    """

    def __init__(
        self,
        clock: SimClock,
        ledger: Ledger,
        token_factory: Callable[[str], str] | None = None,
    ) -> None:
        self._clock = clock
        self._ledger = ledger
        self._factory = token_factory or (lambda _key: secrets.token_urlsafe(48))
        self._tokens: dict[str, IssuedToken] = {}
        self._last_issue: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def issue(
        self,
        app_key: str,
        lifetime: timedelta,
        *,
        token: str | None = None,
        account_id: str | None = None,
        **details: Any,
    ) -> IssuedToken:
        """Issue a token valid for ``lifetime`` and record it (``details`` go to the ledger)."""
        now = self._clock.now()
        issued = IssuedToken(
            token=token if token is not None else self._factory(app_key),
            app_key=app_key,
            issued_at=now,
            expires_at=now + lifetime,
            account_id=account_id,
        )
        with self._lock:
            self._tokens[issued.token] = issued
            self._last_issue[app_key] = now
        self._ledger.record(
            LedgerKind.TOKEN_ISSUED,
            account_id=account_id,
            app_key=app_key,
            token_fingerprint=issued.fingerprint,
            expires_at=issued.expires_at,
            **details,
        )
        return issued

    def record_reuse(self, issued: IssuedToken, **details: Any) -> None:
        """Record that an existing token was served again (KIS within 6 hours)."""
        self._ledger.record(
            LedgerKind.TOKEN_REUSED,
            account_id=issued.account_id,
            app_key=issued.app_key,
            token_fingerprint=issued.fingerprint,
            expires_at=issued.expires_at,
            **details,
        )

    def record_refusal(self, app_key: str | None, reason: str, **details: Any) -> None:
        """Record that the token endpoint refused ``app_key`` (rate rule, fault, bad secret)."""
        self._ledger.record(LedgerKind.TOKEN_REFUSED, app_key=app_key, reason=reason, **details)

    def status(self, token: str) -> TokenStatus:
        """Classify a presented token."""
        with self._lock:
            issued = self._tokens.get(token)
        if issued is None:
            return TokenStatus.UNKNOWN
        if issued.revoked_at is not None:
            return TokenStatus.REVOKED
        if issued.expires_at <= self._clock.now():
            return TokenStatus.EXPIRED
        return TokenStatus.VALID

    def lookup(self, token: str) -> IssuedToken | None:
        """Return the token if it is valid now, else None."""
        if self.status(token) is not TokenStatus.VALID:
            return None
        with self._lock:
            return self._tokens.get(token)

    def latest(self, app_key: str) -> IssuedToken | None:
        """Return the newest valid token of ``app_key``, or None."""
        now = self._clock.now()
        with self._lock:
            candidates = [
                t
                for t in self._tokens.values()
                if t.app_key == app_key and t.revoked_at is None and t.expires_at > now
            ]
        return max(candidates, key=lambda t: t.issued_at, default=None)

    def seconds_until_next_issue(self, app_key: str, window: timedelta) -> float:
        """Seconds (simulated) until ``app_key`` may be issued again under a one-per-window rule."""
        with self._lock:
            last = self._last_issue.get(app_key)
        if last is None:
            return 0.0
        return max(0.0, (last + window - self._clock.now()).total_seconds())

    def revoke(self, token: str, *, reason: str = "revoked") -> bool:
        """Revoke one token; return whether it was valid."""
        now = self._clock.now()
        with self._lock:
            issued = self._tokens.get(token)
            if issued is None or issued.revoked_at is not None:
                return False
            self._tokens[token] = _revoked(issued, now)
        self._ledger.record(
            LedgerKind.TOKEN_REVOKED,
            account_id=issued.account_id,
            app_key=issued.app_key,
            token_fingerprint=issued.fingerprint,
            reason=reason,
        )
        return issued.expires_at > now

    def revoke_all(self, *, reason: str = "maintenance") -> int:
        """Revoke every unrevoked, unexpired token at once; return how many."""
        now = self._clock.now()
        with self._lock:
            live = [t for t in self._tokens.values() if t.revoked_at is None and t.expires_at > now]
            for issued in live:
                self._tokens[issued.token] = _revoked(issued, now)
        self._ledger.record(LedgerKind.TOKENS_REVOKED_ALL, reason=reason, revoked=len(live))
        return len(live)


def _revoked(issued: IssuedToken, now: datetime) -> IssuedToken:
    return IssuedToken(
        issued.token, issued.app_key, issued.issued_at, issued.expires_at, issued.account_id, now
    )


class RateLimiter:
    """Token buckets per key, on real monotonic time.

    Brokers count requests per real second, and tests that move the SimClock hours ahead must not
    refill every bucket, so this deliberately ignores the SimClock.

    Args:
        rate: requests allowed per ``per_seconds``.
        per_seconds: the window.
        burst: bucket size (default ``rate``).
        time_source: seconds, monotonic (injectable for tests).
    """

    def __init__(
        self,
        rate: float,
        per_seconds: float = 1.0,
        *,
        burst: float | None = None,
        time_source: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or per_seconds <= 0:
            raise ValueError("rate and per_seconds must be positive")
        self._refill = rate / per_seconds
        self._burst = burst if burst is not None else rate
        self._now = time_source
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        level, at = self._buckets.get(key, (self._burst, now))
        return min(self._burst, level + (now - at) * self._refill)

    def try_acquire(self, key: str, cost: float = 1.0) -> bool:
        """Take ``cost`` from ``key``'s bucket if it holds that much; return whether it did."""
        with self._lock:
            now = self._now()
            level = self._level(key, now)
            if level < cost:
                self._buckets[key] = (level, now)
                return False
            self._buckets[key] = (level - cost, now)
            return True

    def retry_after(self, key: str, cost: float = 1.0) -> float:
        """Seconds until ``cost`` would be available to ``key``."""
        with self._lock:
            level = self._level(key, self._now())
        return max(0.0, (cost - level) / self._refill)


# --------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------


@dataclass
class SimState:
    """Everything one simulator instance owns; built once per ``create_app(state=None)``.

    Attributes:
        broker: the facade's name ("kis", "upbit", …).
        seed: the seed the engine's price path uses.
        clock, ledger, engine, faults, tokens: the shared machinery.
        options: facade-specific settings (free-form).
    """

    broker: str
    seed: int | str
    clock: SimClock
    ledger: Ledger
    engine: Engine
    faults: FaultBook
    tokens: TokenRegistry
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        broker: str,
        *,
        seed: int | str = 0,
        clock: SimClock | None = None,
        instruments: Iterable[Instrument] = (),
        token_factory: Callable[[str], str] | None = None,
        options: Mapping[str, Any] | None = None,
        **engine_options: Any,
    ) -> SimState:
        """Build a state with a fresh clock (real time unless given), ledger, engine and faults.

        ``engine_options`` go to :class:`~simulators.engine.Engine` (fees, order_numbers,
        money_places, timezone, amend_mode, client_id_scope, …).
        """
        clock = clock or SimClock()
        ledger = Ledger(clock)
        engine = Engine(
            clock=clock, seed=seed, ledger=ledger, instruments=instruments, **engine_options
        )
        return cls(
            broker=broker,
            seed=seed,
            clock=clock,
            ledger=ledger,
            engine=engine,
            faults=FaultBook(),
            tokens=TokenRegistry(clock, ledger, token_factory),
            options=dict(options or {}),
        )

    def take_token_refusal(self, path: str) -> Fault | None:
        """For the facade's token route: consume a pending ``token_refusal`` fault, if any."""
        return self.faults.take(FaultKind.TOKEN_REFUSAL, path)


# --------------------------------------------------------------------------------------------
# Helpers for the facades' accounts callbacks
# --------------------------------------------------------------------------------------------


class AccountSpecError(ValueError):
    """The ``POST /_sim/accounts`` body is invalid; the message goes back in the 400 answer."""


AccountsCallback = Callable[[Mapping[str, Any]], Mapping[str, Any]]
"""``body -> description of what was created`` (no secrets); raises AccountSpecError."""


def require_string(
    body: Mapping[str, Any], key: str, *, pattern: str | None = None, what: str | None = None
) -> str:
    """Return ``body[key]`` as a non-empty string, optionally matching ``pattern`` fully.

    Raises:
        AccountSpecError: if it is missing, not a string, or does not match.
    """
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise AccountSpecError(f"{key} is required and must be a non-empty string")
    if pattern is not None and not re.fullmatch(pattern, value):
        raise AccountSpecError(f"{key} must be {what or 'of the form ' + pattern}")
    return value


def parse_amounts(
    body: Mapping[str, Any], key: str, *, required: bool = False
) -> dict[str, Decimal]:
    """Parse ``{"KRW": "1000000", "005930": 10}`` into Decimals (strings or integers only).

    Raises:
        AccountSpecError: if the value is not an object of non-negative decimal amounts.
    """
    raw = body.get(key)
    if raw is None:
        if required:
            raise AccountSpecError(f"{key} is required")
        return {}
    if not isinstance(raw, Mapping):
        raise AccountSpecError(f"{key} must be an object")
    out: dict[str, Decimal] = {}
    for asset, amount in raw.items():
        try:
            value = to_decimal(amount, f"{key}.{asset}")
        except ValueError as exc:
            raise AccountSpecError(str(exc)) from exc
        if value < 0:
            raise AccountSpecError(f"{key}.{asset} must not be negative")
        out[str(asset)] = value
    return out


# --------------------------------------------------------------------------------------------
# Blueprint
# --------------------------------------------------------------------------------------------


def _error(message: str, status: int = 400) -> ResponseReturnValue:
    return jsonify({"error": message}), status


def _clock_json(state: SimState) -> dict[str, Any]:
    return {
        "now": state.clock.now().isoformat(),
        "offset_seconds": state.clock.offset.total_seconds(),
    }


def create_control_blueprint(state: SimState, create_account: AccountsCallback) -> Blueprint:
    """Return the ``/_sim`` blueprint bound to ``state``.

    Args:
        state: the simulator's state.
        create_account: the facade's callback: validates the body, creates credentials and the
            engine account, and returns what to answer (account id or number, app key; no secret).
    """
    bp = Blueprint("sim_control", __name__, url_prefix=_CONTROL_PREFIX)

    @bp.post("/accounts")
    def post_account() -> ResponseReturnValue:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _error("the body must be a JSON object")
        try:
            created = create_account(body)
        except AccountSpecError as exc:
            return _error(str(exc))
        except (DuplicateAccount, UnknownInstrument) as exc:
            status = 409 if isinstance(exc, DuplicateAccount) else 400
            return _error(f"{type(exc).__name__}: {exc}", status)
        return jsonify(dict(created)), 201

    @bp.get("/accounts/<account_id>")
    def get_account(account_id: str) -> ResponseReturnValue:
        try:
            view = state.engine.account(account_id)
        except UnknownAccount:
            return _error(f"no account {account_id}", 404)
        return jsonify(
            {
                "account_id": view.account_id,
                "app_key": view.credential_id,
                "balances": {
                    asset: {
                        "total": str(b.total),
                        "locked": str(b.locked),
                        "available": str(b.available),
                        "avg_price": str(b.avg_price),
                    }
                    for asset, b in view.balances.items()
                },
            }
        )

    @bp.post("/faults")
    def post_fault() -> ResponseReturnValue:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _error("the body must be a JSON object")
        kind = body.get("kind")
        if kind not in {k.value for k in FaultKind}:
            return _error(f"kind must be one of {[k.value for k in FaultKind]}")
        if kind == FaultKind.REVOKE_ALL_TOKENS:
            revoked = state.tokens.revoke_all(reason="maintenance")
            return jsonify({"kind": kind, "applied": True, "revoked": revoked}), 201
        try:
            fault = state.faults.add(
                kind,
                count=body.get("count", 1),
                path_prefix=body.get("path_prefix"),
                seconds=body.get("seconds"),
                status=body.get("status"),
                body=body.get("body"),
                headers=body.get("headers"),
            )
        except ValueError as exc:
            return _error(str(exc))
        return jsonify({"fault": fault.to_json()}), 201

    @bp.get("/faults")
    def get_faults() -> ResponseReturnValue:
        return jsonify({"faults": [f.to_json() for f in state.faults.pending()]})

    @bp.delete("/faults")
    def delete_faults() -> ResponseReturnValue:
        return jsonify({"cleared": state.faults.clear()})

    @bp.post("/clock")
    def post_clock() -> ResponseReturnValue:
        body = request.get_json(silent=True)
        seconds = body.get("advance_seconds") if isinstance(body, dict) else None
        if (
            not isinstance(seconds, int | float)
            or isinstance(seconds, bool)
            or not math.isfinite(seconds)
            or seconds < 0
        ):
            return _error("advance_seconds must be a non-negative number")
        state.clock.advance(seconds)
        state.engine.sync()  # fills due in the skipped time happen now
        return jsonify(_clock_json(state))

    @bp.get("/clock")
    def get_clock() -> ResponseReturnValue:
        return jsonify(_clock_json(state))

    @bp.get("/ledger")
    def get_ledger() -> ResponseReturnValue:
        kinds_arg = request.args.get("kind")
        kinds = [k for k in kinds_arg.split(",") if k] if kinds_arg else None
        since = None
        if request.args.get("since"):
            try:
                since = datetime.fromisoformat(request.args["since"])
            except ValueError:
                return _error("since must be an ISO 8601 time")
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
        entries = state.ledger.entries(
            kinds=kinds, since=since, account_id=request.args.get("account_id")
        )
        return jsonify({"entries": [e.to_json() for e in entries], "count": len(entries)})

    @bp.get("/prices")
    def get_prices() -> ResponseReturnValue:
        symbol = request.args.get("symbol")
        try:
            symbols = [symbol] if symbol else [i.symbol for i in state.engine.instruments()]
            prices = {s: str(state.engine.price(s)) for s in symbols}
        except UnknownInstrument:
            return _error(f"unknown symbol {symbol}", 404)
        return jsonify({"time": state.clock.now().isoformat(), "prices": prices})

    @bp.post("/prices")
    def post_prices() -> ResponseReturnValue:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("symbol"), str):
            return _error("the body needs a symbol")
        try:
            if "price" in body:
                state.engine.pin_price(body["symbol"], body["price"])
            if "liquidity" in body:
                state.engine.set_liquidity(body["symbol"], body["liquidity"])
            price = state.engine.price(body["symbol"])
        except UnknownInstrument:
            return _error(f"unknown symbol {body['symbol']}", 404)
        except (ValueError, SimulatorError) as exc:  # InvalidOrder for an off-tick pin
            return _error(f"{type(exc).__name__}: {exc}")
        return jsonify({"symbol": body["symbol"], "price": str(price)})

    return bp


# --------------------------------------------------------------------------------------------
# Middleware
# --------------------------------------------------------------------------------------------

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _ConnectionAborted(ConnectionAbortedError):
    """Raised past the WSGI server so it treats the connection as gone and writes nothing."""


def _abort_connection(environ: dict[str, Any], mode: str) -> None:
    hook = environ.get(ABORT_CONNECTION_KEY)
    if hook is not None:
        hook(mode)
    else:
        # Not our server: do the best the socket allows (the client sees a closed connection).
        sock = environ.get("werkzeug.socket")
        if sock is not None:
            try:
                if mode == "reset":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    raise _ConnectionAborted(mode)


def _drain_body(environ: dict[str, Any], limit: int = 10 * 1024 * 1024) -> None:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return
    stream = environ.get("wsgi.input")
    if stream is not None and 0 < length <= limit:
        with contextlib.suppress(OSError):
            stream.read(length)


class FaultMiddleware:
    """WSGI middleware that applies pending faults to non-``/_sim`` requests."""

    def __init__(self, app: WSGIApp, state: SimState) -> None:
        self.app = app
        self.state = state

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Handle one request, applying at most one latency and one other fault to it."""
        path = environ.get("PATH_INFO", "") or "/"
        if path == _CONTROL_PREFIX or path.startswith(_CONTROL_PREFIX + "/"):
            return self.app(environ, start_response)
        faults = self.state.faults
        latency = faults.take(FaultKind.LATENCY, path)
        if latency is not None:
            self._applied(latency, path)
            time.sleep(latency.seconds or 0)
        fault = faults.take(_TRANSPORT_KINDS, path)
        if fault is None:
            return self.app(environ, start_response)
        self._applied(fault, path)
        if fault.kind is FaultKind.RESET:
            # Read the body first (not handling it): a client still sending when the RST lands
            # may swallow the error on send and then see a plain EOF instead of a reset.
            _drain_body(environ)
            _abort_connection(environ, "reset")
        if fault.kind is FaultKind.HTTP_STATUS:
            return self._status_response(fault, start_response)
        # DROP: the broker does the work; the client never hears back.
        result = self.app(environ, lambda *args, **kwargs: lambda data: None)
        try:
            for _chunk in result:
                pass
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        _abort_connection(environ, "drop")
        return []  # unreachable: _abort_connection raises

    def _applied(self, fault: Fault, path: str) -> None:
        self.state.ledger.record(
            LedgerKind.FAULT_APPLIED, fault_id=fault.fault_id, fault=fault.kind, path=path
        )

    @staticmethod
    def _status_response(fault: Fault, start_response: Callable[..., Any]) -> Iterable[bytes]:
        status = fault.status or 500
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Error"
        if isinstance(fault.body, str):
            payload, content_type = fault.body.encode(), "text/plain; charset=utf-8"
        else:
            body = fault.body if fault.body is not None else {"error": reason}
            payload, content_type = (
                json.dumps(body, ensure_ascii=False).encode(),
                "application/json",
            )
        headers = [("Content-Type", content_type), ("Content-Length", str(len(payload)))]
        headers += list(fault.headers.items())
        start_response(f"{status} {reason}", headers)
        return [payload]


def install_control(app: Flask, state: SimState, create_account: AccountsCallback) -> None:
    """Register ``/_sim`` on ``app``, wrap it in :class:`FaultMiddleware`, and keep ``state``."""
    app.extensions[STATE_EXTENSION_KEY] = state
    app.register_blueprint(create_control_blueprint(state, create_account))
    app.wsgi_app = FaultMiddleware(app.wsgi_app, state)  # type: ignore[method-assign]


def get_state(app: Flask) -> SimState:
    """Return the SimState an app was installed with.

    Raises:
        KeyError: if :func:`install_control` was not called on ``app``.
    """
    return app.extensions[STATE_EXTENSION_KEY]  # type: ignore[no-any-return]
