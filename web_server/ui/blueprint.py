"""The UI's blueprint and what its views share: the transaction boundary, errors, filters."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from flask import Blueprint
from flask_wtf import FlaskForm

from web_server.extensions import db

bp = Blueprint("ui", __name__)


class ActionForm(FlaskForm):
    """A form with no fields: a button that POSTs with its CSRF token.

    The app's ``CSRFProtect`` checks the token of every POST before any view runs, so the views
    behind these buttons need no form object. Give each instance on a page its own ``prefix`` so
    the hidden inputs' ids stay unique (``CSRFProtect`` accepts a prefixed ``…-csrf_token``).
    """


@contextlib.contextmanager
def transaction() -> Iterator[None]:
    """Commit what the block did, or roll it back and re-raise (the UI's boundary, STYLE H3)."""
    try:
        yield
    except BaseException:
        db.session.rollback()
        raise
    db.session.commit()


def apply_errors(form: FlaskForm, errors: Mapping[str, Any] | None) -> list[str]:
    """Show a service's ``ValidationFailed.errors`` next to the form's fields of the same name.

    Messages about a field the form lacks are returned, for the page to show above the form.
    """
    unplaced: list[str] = []
    for name, messages in (errors or {}).items():
        for message in _flatten(messages):
            if name in form:
                field = form[name]
                field.errors = [*field.errors, message]
            else:
                unplaced.append(f"{name}: {message}")
    return unplaced


def _flatten(messages: Any) -> Iterator[str]:
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            yield from (f"{key}: {m}" for m in _flatten(value))
    elif isinstance(messages, Sequence) and not isinstance(messages, str):
        for value in messages:
            yield from _flatten(value)
    else:
        yield str(messages)


@bp.app_template_filter("decimal")
def format_decimal(value: Decimal | int | float | str | None) -> str:
    """Render a number as plain digits: no exponent, no trailing zeros (``5E+6`` → ``5000000``)."""
    if value is None:
        return "—"
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if not number.is_finite():
        return str(number)
    text = f"{number.normalize():f}"
    return "0" if text in ("-0", "0") else text


@bp.app_template_filter("when")
def format_when(value: dt.datetime | None) -> str:
    """Render a time in UTC, to the second (naive times are taken as UTC)."""
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
