"""Requests a simulator refuses for rate, auth or session, recorded in the ledger.

A facade marks the refusal where it decides it (:func:`mark_refused`: the reason and the broker's
own code); :func:`install_refusal_ledger` records each marked response as a ``request_refused``
entry once the answer is made, with its HTTP status, method and path. So a test can count from
outside (``GET /_sim/ledger?kind=request_refused``) that the gateway never drew a refusal.
"""

from __future__ import annotations

from typing import Literal

from flask import Flask, Response, g, request

from simulators.control.state import SimState

__all__ = ["REQUEST_REFUSED", "RefusalReason", "install_refusal_ledger", "mark_refused"]

#: The ledger kind of a refused request.
REQUEST_REFUSED = "request_refused"

#: ``rate``: over a request limit or banned; ``auth``: keys, signature; ``session``: the token.
RefusalReason = Literal["rate", "auth", "session"]


def mark_refused(
    reason: RefusalReason,
    code: str | int,
    *,
    app_key: str | None = None,
    account_id: str | None = None,
) -> None:
    """Mark the current request as refused; the ledger entry is written with the answer."""
    g.sim_refusal = (reason, str(code), app_key, account_id)


def install_refusal_ledger(app: Flask, state: SimState) -> None:
    """Record every marked refusal of ``app`` in ``state``'s ledger."""

    @app.after_request
    def record_refusal(response: Response) -> Response:
        refusal = g.pop("sim_refusal", None)
        if refusal is not None:
            reason, code, app_key, account_id = refusal
            state.ledger.record(
                REQUEST_REFUSED,
                app_key=app_key,
                account_id=account_id,
                reason=reason,
                code=code,
                status=response.status_code,
                method=request.method,
                path=request.path,
            )
        return response
