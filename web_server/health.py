"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from web_server.services import health

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    """Answer 200 while the process is up; checks nothing else."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Any:
    """Answer 200 when the database answers and its schema is at the code's head revision."""
    report = health.readiness()
    return jsonify(report), 200 if report["status"] == "ready" else 503
