"""Risk controls: the kill switches (who set them, when, why), engage and release, the policies.

Every change is a POST with its CSRF token, recorded as ``user:<operator>`` in the audit trail.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, Length

from web_server.errors import GatewayError, http_status
from web_server.services import accounts as accounts_service
from web_server.services import api_keys as api_keys_service
from web_server.services import audit, kill_switches, panic, risk_policies
from web_server.ui.blueprint import ActionForm, bp, transaction
from web_server.ui.forms import plain_text

_SCOPE_LABELS = {"GLOBAL": "Whole gateway", "ACCOUNT": "Account", "API_KEY": "API key"}


class KillSwitchForm(FlaskForm):
    """Engage a switch on the gateway, an account or an API key, with a reason."""

    target = SelectField("Stop new orders of", validators=[DataRequired()])
    reason = StringField("Reason", validators=[DataRequired(), Length(max=500), plain_text])


def _actor() -> str:
    return f"user:{current_user.username}"


def _engage_form() -> KillSwitchForm:
    form = KillSwitchForm()
    choices = [("GLOBAL:0", "The whole gateway")]
    choices += [
        (f"ACCOUNT:{a.id}", f"Account {a.name} ({a.exchange} {a.environment})")
        for a in accounts_service.list_accounts()
    ]
    choices += [
        (f"API_KEY:{k.id}", f"API key {k.label} (gw_{k.prefix}_…)")
        for k in api_keys_service.list_api_keys()
        if k.revoked_at is None
    ]
    form.target.choices = choices
    return form


def _render(form: KillSwitchForm, status: int = 200) -> Any:
    switches = [kill_switches.switch_view(s) for s in kill_switches.list_switches()]
    names = {
        "ACCOUNT": accounts_service.account_names(),
        "API_KEY": {k.id: k.label for k in api_keys_service.list_api_keys()},
    }
    policies = [
        risk_policies.policy_view(policy, scope, target)
        for scope, target, policy in risk_policies.list_policies()
    ]
    return (
        render_template(
            "risk/index.html",
            switches=switches,
            names=names,
            scope_labels=_SCOPE_LABELS,
            policies=policies,
            actions=panic.list_actions(20),
            events=risk_policies.list_events(30),
            form=form,
            release_forms={
                (s["scope"], s["target_id"] or 0): ActionForm(
                    prefix=f"release-{s['scope'].lower()}-{s['target_id'] or 0}"
                )
                for s in switches
            },
        ),
        status,
    )


@bp.get("/risk")
@login_required
def risk() -> Any:
    """Show the kill switches, the policies, recent panic actions and the audit trail."""
    return _render(_engage_form())


@bp.post("/risk/kill-switches")
@login_required
def engage_kill_switch() -> Any:
    """Engage a kill switch: new orders of its target are refused in every process at once."""
    form = _engage_form()
    if not form.validate():
        return _render(form, 422)
    scope, _, target = (form.target.data or "").partition(":")
    try:
        with transaction():
            kill_switches.engage(
                scope, None if scope == "GLOBAL" else int(target), form.reason.data or "", _actor()
            )
            audit.record(
                _actor(),
                "kill_switch.engage",
                f"{scope}:{target}",
                {"engaged": False},
                {"engaged": True, "reason": form.reason.data or ""},
            )
    except GatewayError as exc:
        flash(exc.detail, "error")
        return _render(form, http_status(exc))
    flash(f"Kill switch engaged: {_SCOPE_LABELS[scope]} {target if target != '0' else ''}.", "ok")
    return redirect(url_for("ui.risk"))


_RELEASE = "/risk/kill-switches/<any(GLOBAL, ACCOUNT, API_KEY):scope>/<int(max=2147483647):target>"


@bp.post(f"{_RELEASE}/release")
@login_required
def release_kill_switch(scope: str, target: int) -> Any:
    """Release a kill switch."""
    try:
        with transaction():
            kill_switches.release(scope, None if scope == "GLOBAL" else target, _actor())
            audit.record(
                _actor(),
                "kill_switch.release",
                f"{scope}:{target}",
                {"engaged": True},
                {"engaged": False},
            )
    except GatewayError as exc:
        flash(exc.detail, "error")
    else:
        flash(f"Kill switch released: {_SCOPE_LABELS[scope]}.", "ok")
    return redirect(url_for("ui.risk"))
