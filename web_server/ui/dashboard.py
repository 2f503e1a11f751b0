"""The dashboard: what needs the operator's attention, and each account's positions in brief.

Everything on it is read from the database (``services.attention``, ``services.positions``):
no broker is asked, so it answers at once even while a broker is slow or down.
"""

from __future__ import annotations

from typing import Any

from flask import render_template
from flask_login import login_required

from web_server.services import accounts as accounts_service
from web_server.services import attention, positions
from web_server.ui.blueprint import bp


@bp.get("/attention")
@login_required
def dashboard() -> Any:
    """Show tokens, orders in doubt, syncs, the scheduler, rate limits, errors and positions."""
    board = attention.dashboard()
    active = [a for a in accounts_service.list_accounts() if a.is_active]
    return render_template(
        "dashboard/index.html",
        board=board,
        summary=positions.positions_summary(active, now=board["at"]),
    )
