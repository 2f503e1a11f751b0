"""Live pages: the order event stream for a logged-in operator (``/ui/events``).

``GET /api/v1/events`` authenticates API keys; a browser page holds a session cookie instead.
This endpoint serves the same stream (``services.console.operator_events``) to the operator's
session, every account's events. ``static/live.js`` consumes it on the order pages.
``/ui/events/tokens`` streams the securities accounts' token states the same way, for the pages
that show token badges (``services.console.token_events``). A request
that does not ask for ``text/event-stream`` (a browser opening the address) gets a short page
saying what this is, rather than a response that never ends.
"""

from __future__ import annotations

from typing import Any

from flask import Response, render_template, request
from flask_login import current_user, login_required

from web_server.services import console
from web_server.ui.blueprint import bp

STREAM = "text/event-stream"


@bp.get("/ui/events")
@login_required
def ui_events() -> Any:
    """Stream the order events to the operator's pages (Server-Sent Events)."""
    if STREAM not in request.headers.get("Accept", ""):
        return render_template("live/about.html")
    last = request.headers.get("Last-Event-ID", "") or request.args.get("after", "")
    after = int(last) if last.isascii() and last.isdigit() and len(last) < 19 else None
    body = console.operator_events(current_user.username, after)
    response = Response(body, 200, mimetype=STREAM)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # a proxy in front must not buffer the stream
    return response


@bp.get("/ui/events/tokens")
@login_required
def ui_token_events() -> Any:
    """Stream the token states of the securities accounts (Server-Sent Events)."""
    if STREAM not in request.headers.get("Accept", ""):
        return render_template("live/about.html")
    response = Response(console.token_events(current_user.username), 200, mimetype=STREAM)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response
