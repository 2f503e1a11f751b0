"""The declarative base every model shares.

The naming convention makes constraint names predictable, so migrations written by hand and the
models agree on them (``flask db check`` compares the two). Money and quantities map to
``NUMERIC``; every timestamp is ``timestamptz``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, MetaData, Numeric
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, registry

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "chk_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base class of every ORM model."""

    # The type map lives on the registry (not the class) so Flask-SQLAlchemy's subclassing of
    # the base keeps it on SQLAlchemy 2.1.
    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={
            dt.datetime: DateTime(timezone=True),
            Decimal: Numeric(),
            dict[str, Any]: JSONB(),
        },
    )
