"""The audit log, searchable: who did what, when, before and after (secrets never recorded)."""

from __future__ import annotations

from typing import Any

from flask import render_template, request, url_for
from flask_login import login_required
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import Length, Optional

from web_server.services import audit as audit_service
from web_server.ui.blueprint import bp
from web_server.ui.forms import plain_text

PER_PAGE = 50


class AuditFilterForm(FlaskForm):
    """Filters of the audit page (a GET: no CSRF token)."""

    class Meta:
        """Read-only search: no CSRF."""

        csrf = False

    actor = StringField("Actor", validators=[Optional(), Length(max=100), plain_text])
    action = StringField(
        "Action (from the start)", validators=[Optional(), Length(max=100), plain_text]
    )
    q = StringField("Text", validators=[Optional(), Length(max=200), plain_text])


@bp.get("/audit")
@login_required
def audit_log() -> Any:
    """Search the audit log, newest first, 50 a page."""
    form = AuditFilterForm(request.args)
    page = request.args.get("page", "1")
    page_number = int(page) if page.isascii() and page.isdigit() and 0 < len(page) < 7 else 1
    entries: list[Any] = []
    has_next, status = False, 200
    if form.validate():
        found, has_next = audit_service.search(
            actor=(form.actor.data or "").strip() or None,
            action=(form.action.data or "").strip() or None,
            text=(form.q.data or "").strip() or None,
            page=page_number,
            per_page=PER_PAGE,
        )
        entries = list(found)
    else:
        status = 422
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return (
        render_template(
            "audit/list.html",
            form=form,
            entries=entries,
            page=page_number,
            next_url=url_for("ui.audit_log", **args, page=page_number + 1) if has_next else None,
            prev_url=url_for("ui.audit_log", **args, page=page_number - 1)
            if page_number > 1
            else None,
        ),
        status,
    )
