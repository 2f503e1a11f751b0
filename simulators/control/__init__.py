"""The ``/_sim/`` control surface every simulator shares, and the fault machinery behind it.

A facade builds a :class:`SimState` and calls :func:`install_control` with its accounts callback;
that registers the blueprint (:mod:`~simulators.control.routes`, which lists the routes) and
wraps the app's WSGI callable in :class:`FaultMiddleware` (:mod:`~simulators.control.middleware`).

The modules:

* :mod:`~simulators.control.state` — :class:`SimState`, what one simulator instance owns.
* :mod:`~simulators.control.faults` — the fault kinds and the :class:`FaultBook` of pending ones.
* :mod:`~simulators.control.targets` — which requests a fault's ``target`` (order, cancel,
  amend) means at each broker.
* :mod:`~simulators.control.middleware` — :class:`FaultMiddleware`, which applies them.
* :mod:`~simulators.control.held` — the requests a ``late`` fault holds, and
  :func:`request_time`, the time a request reached the broker.
* :mod:`~simulators.control.unknown` — :func:`answer_unknown_paths`: unrouted requests get the
  broker's JSON error.
* :mod:`~simulators.control.routes` — the ``/_sim`` blueprint.
* :mod:`~simulators.control.tokens` — the :class:`TokenRegistry` of issued OAuth tokens.
* :mod:`~simulators.control.rate_limit` — :class:`RateLimiter`, per-key request limits.
* :mod:`~simulators.control.accounts` — helpers for the facades' accounts callbacks.
* :mod:`~simulators.control.refusals` — :func:`mark_refused`: refusals (rate, auth, session)
  recorded as ``request_refused`` ledger entries.
"""

from flask import Flask

from simulators.control.accounts import (
    AccountsCallback,
    AccountSpecError,
    parse_amounts,
    require_string,
)
from simulators.control.faults import Fault, FaultBook, FaultKind
from simulators.control.held import HeldRequests, request_time
from simulators.control.middleware import FaultMiddleware
from simulators.control.rate_limit import RateLimiter
from simulators.control.refusals import REQUEST_REFUSED, install_refusal_ledger, mark_refused
from simulators.control.routes import create_control_blueprint
from simulators.control.state import STATE_EXTENSION_KEY, SimState, get_state
from simulators.control.tokens import IssuedToken, TokenRegistry, TokenStatus
from simulators.control.unknown import UnknownPathAnswer, answer_unknown_paths

__all__ = [
    "REQUEST_REFUSED",
    "STATE_EXTENSION_KEY",
    "AccountSpecError",
    "AccountsCallback",
    "Fault",
    "FaultBook",
    "FaultKind",
    "FaultMiddleware",
    "HeldRequests",
    "IssuedToken",
    "RateLimiter",
    "SimState",
    "TokenRegistry",
    "TokenStatus",
    "UnknownPathAnswer",
    "answer_unknown_paths",
    "create_control_blueprint",
    "get_state",
    "install_control",
    "mark_refused",
    "parse_amounts",
    "request_time",
    "require_string",
]


def install_control(app: Flask, state: SimState, create_account: AccountsCallback) -> None:
    """Register ``/_sim`` on ``app``, wrap it in :class:`FaultMiddleware`, and keep ``state``."""
    app.extensions[STATE_EXTENSION_KEY] = state
    install_refusal_ledger(app, state)
    app.register_blueprint(create_control_blueprint(state, create_account))
    app.wsgi_app = FaultMiddleware(app.wsgi_app, state)  # type: ignore[method-assign]
