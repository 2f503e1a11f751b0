"""Readiness: is the database reachable and is its schema at the head revision?"""

from __future__ import annotations

import logging
from typing import Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app
from sqlalchemy.exc import SQLAlchemyError

from web_server.extensions import db

log = logging.getLogger(__name__)


def head_revisions() -> set[str]:
    """Return the head revision(s) of the migrations shipped with the code."""
    alembic_config = current_app.extensions["migrate"].migrate.get_config()
    return set(ScriptDirectory.from_config(alembic_config).get_heads())


def readiness() -> dict[str, Any]:
    """Report whether the gateway can serve requests, and why not if it cannot."""
    heads = head_revisions()
    try:
        with db.engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    except SQLAlchemyError as exc:
        log.warning("readiness: database unreachable: %s", type(exc).__name__)
        return {"status": "unavailable", "database": "unreachable"}
    if current != heads:
        alembic_config = current_app.extensions["migrate"].migrate.get_config()
        known = {
            script.revision
            for script in ScriptDirectory.from_config(alembic_config).walk_revisions()
        }
        if not current:
            schema, fix = "empty", "run `gateway db upgrade`"
        elif current <= known:
            schema, fix = "behind", "run `gateway db upgrade`"
        else:
            schema, fix = "ahead", "deploy the code that matches the database, or downgrade it"
        return {
            "status": "unavailable",
            "database": "reachable",
            "schema": schema,
            "schema_revision": sorted(current),
            "code_revision": sorted(heads),
            "fix": fix,
        }
    return {"status": "ready", "database": "reachable", "schema_revision": sorted(current)}
