"""``GET /metrics``: Prometheus' text format, for a scraper holding a token.

Who may read it: a request with ``Authorization: Bearer <token>`` where the token is either
``GATEWAY_METRICS_TOKEN`` (a long random string given to Prometheus' ``authorization`` setting) or
an unrestricted API key with the ``admin`` scope. The figures name accounts and show the
instance's activity, so nothing is answered without one; a scraper needs no key that can trade.

What it holds (docs/operations.md "What to watch"): the database's facts read at scrape time
(``web_server.services.metrics``), and the broker call and rate-limit hooks of this process, or
of every gunicorn worker in multiprocess mode (``web_server.metrics``).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app, request

from web_server import metrics as hooks
from web_server.errors import Unauthorized
from web_server.services import api_keys
from web_server.services.metrics import database_families

bp = Blueprint("monitoring", __name__)


class _DatabaseCollector:
    """Reads the database when the registry is collected (a scrape)."""

    def collect(self) -> Iterator[Any]:
        yield from database_families()


class _LocalHooks:
    """This process's hook metrics (single-process mode)."""

    def collect(self) -> Iterator[Any]:
        yield from hooks.local_registry().collect()


def _authorize() -> None:
    header = request.headers.get("Authorization") or ""
    token = current_app.config.get("METRICS_TOKEN")
    scheme, _, value = header.partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), str(token)):
        return
    if not header:
        raise Unauthorized(
            "Send 'Authorization: Bearer' with GATEWAY_METRICS_TOKEN or an admin key."
        )
    key = api_keys.authenticate(header)
    api_keys.require(key, "admin")
    api_keys.require_unrestricted(key)


@bp.get("/metrics")
def metrics() -> Response:
    """Answer the Prometheus text exposition format."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    _authorize()
    registry = CollectorRegistry(auto_describe=False)
    directory = hooks.multiprocess_dir()
    if directory:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry, path=directory)
    else:
        registry.register(_LocalHooks())  # type: ignore[arg-type]
    registry.register(_DatabaseCollector())  # type: ignore[arg-type]
    response = Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response
