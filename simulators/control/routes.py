"""The ``/_sim`` blueprint: accounts, faults, clock, ledger and prices of one simulator.

The routes (DESIGN §7, binding)::

    POST   /_sim/accounts   body per broker (validated by the facade's callback) → 201
    GET    /_sim/accounts/<account_id>                                → balances and holdings
    POST   /_sim/faults     {"kind", "count"=1, "path_prefix", "method", "target", "seconds",
                             "sim_seconds", "status", "body", "headers", "acted", "mode"}
                                                                       → 201 {"fault": …}
    GET    /_sim/faults                                  → {"faults": […], "held": […]}
    DELETE /_sim/faults                                  → {"cleared": n, "abandoned": n held}
    POST   /_sim/clock      {"advance_seconds": N}                     → {"now", "offset_seconds"}
    GET    /_sim/clock
    GET    /_sim/ledger     ?kind=a,b&since=ISO&account_id=            → {"entries": […], "count"}
    GET    /_sim/prices     ?symbol=                                   → {"prices": {symbol: price}}
    POST   /_sim/prices     {"symbol", "price" (null: unpin), "liquidity" (optional, null: ∞)}
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from simulators.control.accounts import AccountsCallback, AccountSpecError
from simulators.control.faults import FaultKind
from simulators.control.state import SimState
from simulators.engine import DuplicateAccount, SimulatorError, UnknownAccount, UnknownInstrument

__all__ = ["CONTROL_PREFIX", "create_control_blueprint"]

#: The control surface's path prefix; faults never apply below it.
CONTROL_PREFIX = "/_sim"


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
    bp = Blueprint("sim_control", __name__, url_prefix=CONTROL_PREFIX)

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
                method=body.get("method"),
                target=body.get("target"),
                acted=body.get("acted"),
                mode=body.get("mode"),
                sim_seconds=body.get("sim_seconds"),
            )
        except ValueError as exc:
            return _error(str(exc))
        return jsonify({"fault": fault.to_json()}), 201

    @bp.get("/faults")
    def get_faults() -> ResponseReturnValue:
        return jsonify(
            {
                "faults": [f.to_json() for f in state.faults.pending()],
                "held": [h.to_json() for h in state.held.pending()],
            }
        )

    @bp.delete("/faults")
    def delete_faults() -> ResponseReturnValue:
        # Held requests are given up too (never handled): a test's faults end with the test.
        return jsonify({"cleared": state.faults.clear(), "abandoned": state.held.abandon_all()})

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
        state.held.settle()  # late requests now due are handled before the clock call answers
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
