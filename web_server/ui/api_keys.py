"""API keys: list (prefix only), create (the key shown once), revoke."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, url_for
from flask_login import login_required
from wtforms import SelectChoice

from web_server.errors import GatewayError, ValidationFailed, http_status
from web_server.services import accounts as accounts_service
from web_server.services import api_keys as api_keys_service
from web_server.services import audit
from web_server.ui.blueprint import ActionForm, apply_errors, bp, transaction
from web_server.ui.forms import ApiKeyCreateForm
from web_server.ui.trade import actor


def _create_form() -> ApiKeyCreateForm:
    form = ApiKeyCreateForm()
    form.account_ids.choices = [
        SelectChoice(str(a.id), f"{a.name} ({a.exchange} {a.environment})")
        for a in accounts_service.list_accounts()
    ]
    return form


def _render_list(
    form: ApiKeyCreateForm, status: int = 200, problems: list[str] | None = None
) -> Any:
    keys = api_keys_service.list_api_keys()
    names = accounts_service.account_names()
    return (
        render_template(
            "api_keys/list.html",
            keys=keys,
            account_names=names,
            form=form,
            problems=problems or [],
            revoke_forms={k.id: ActionForm(prefix=f"revoke-{k.id}") for k in keys},
        ),
        status,
    )


@bp.get("/api-keys")
@login_required
def api_keys() -> Any:
    """List the API keys (their prefixes, never the keys) and offer a new one."""
    return _render_list(_create_form())


@bp.post("/api-keys")
@login_required
def create_api_key() -> Any:
    """Create a key and show it on this one page; it cannot be shown again."""
    form = _create_form()
    if not form.validate():
        return _render_list(form, 422)
    try:
        with transaction():
            row, key = api_keys_service.create_api_key(
                form.label.data or "", form.scopes.data or [], form.account_ids.data or None
            )
            # The key itself is never recorded: only what names it.
            audit.record(
                actor(),
                "api_key.create",
                f"api_key:{row.id}",
                None,
                {
                    "label": row.label,
                    "key_prefix": row.prefix,
                    "scopes": list(row.scopes),
                    "account_ids": row.account_ids,
                },
            )
    except ValidationFailed as exc:
        flash(exc.detail, "error")
        return _render_list(form, http_status(exc), apply_errors(form, exc.errors))
    except GatewayError as exc:
        flash(exc.detail, "error")
        return _render_list(form, http_status(exc))
    names = accounts_service.account_names()
    html = render_template("api_keys/created.html", row=row, key=key, account_names=names)
    # The only response that ever carries the key: keep it out of every cache.
    return html, 201, {"Cache-Control": "no-store"}


@bp.post("/api-keys/<int(max=2147483647):key_id>/revoke")
@login_required
def revoke_api_key(key_id: int) -> Any:
    """Revoke a key; it stops working at once."""
    try:
        with transaction():
            row = api_keys_service.revoke_api_key(key_id)
            audit.record(
                actor(),
                "api_key.revoke",
                f"api_key:{key_id}",
                {"label": row.label, "key_prefix": row.prefix, "revoked": False},
                {"revoked": True},
            )
    except GatewayError as exc:
        flash(exc.detail, "error")
    else:
        flash(f"API key {row.label!r} (gw_{row.prefix}_…) revoked.", "ok")
    return redirect(url_for("ui.api_keys"))
