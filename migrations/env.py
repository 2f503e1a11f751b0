"""Alembic environment: runs revisions against the app's database, every schema included.

``lock_timeout`` and ``statement_timeout`` keep a migration from queueing forever behind a busy
table (and every request from queueing behind the migration).
"""

from __future__ import annotations

import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app

config = context.config
if config.config_file_name is not None and not logging.getLogger().handlers:
    fileConfig(config.config_file_name)

OUR_SCHEMAS = {None, "public", "market", "trade", "system"}


def _include_object(obj, name, type_, reflected, compare_to):  # noqa: ANN001, ANN202
    # Compare only our schemas; alembic's own version table is not a model.
    if type_ == "table":
        return obj.schema in OUR_SCHEMAS and name != "alembic_version"
    return True


def _include_name(name, type_, parent_names):  # noqa: ANN001, ANN202
    if type_ == "schema":
        return name in OUR_SCHEMAS
    return True


def run_migrations_online() -> None:
    """Run the revisions in one transaction on the app's engine."""
    db = current_app.extensions["migrate"].db
    engine = db.engine
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=db.metadata,
            include_schemas=True,
            include_object=_include_object,
            include_name=_include_name,
            transaction_per_migration=False,
            **current_app.extensions["migrate"].configure_args,
        )
        with context.begin_transaction():
            # SET LOCAL: the pooled connection goes back to the app without these timeouts.
            context.execute("SET LOCAL lock_timeout = '10s'")
            context.execute("SET LOCAL statement_timeout = '10min'")
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("Offline (--sql) migrations are not supported: run them against a database.")
run_migrations_online()
