"""Broker accounts: list with token badges, add, show, edit, refresh, delete.

The account page shows the stored holdings snapshot with its age and positions and P&L
(``services.positions``); its script then refreshes the snapshot through ``refresh_holdings``.
No GET here asks a broker, so every page answers at once whatever the broker does.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import login_required

from brokers import utc_now
from web_server.errors import GatewayError, ValidationFailed, http_status
from web_server.extensions import db
from web_server.services import accounts as accounts_service
from web_server.services import audit, positions, tokens
from web_server.services import holdings as holdings_service
from web_server.services.accounts import Account
from web_server.services.brokers import adapter_for
from web_server.services.orders.queries import order_view, recent_orders
from web_server.ui.blueprint import ActionForm, apply_errors, bp, transaction
from web_server.ui.forms import AccountCreateForm, AccountEditForm
from web_server.ui.trade import actor

log = logging.getLogger(__name__)

RECENT_ORDERS = 50
# The account's securities configuration keys whose messages belong next to a form field.
_CONFIG_FIELDS = ("account_number", "product_code", "cert_password")


def _is_securities(account: Account) -> bool:
    return account.account_type == "SECURITIES_STOCK"


def _token(account: Account) -> dict[str, Any] | None:
    return tokens.token_status(account) if _is_securities(account) else None


def masked_account_number(account: Account) -> str | None:
    """Return the account number as the API shows it: first two and last two digits."""
    number = accounts_service.securities_config(account).get("account_number")
    return f"{number[:2]}****{number[-2:]}" if number else None


@bp.get("/accounts")
@bp.get("/")
@login_required
def index() -> Any:
    """List the accounts, with the token status of KIS and Kiwoom ones."""
    accounts = accounts_service.list_accounts(with_tokens=True)
    rows = [{"account": a, "token": _token(a)} for a in accounts]
    return render_template("accounts/list.html", rows=rows)


@bp.route("/accounts/new", methods=["GET", "POST"])
@login_required
def new_account() -> Any:
    """Add an account: the keys are stored encrypted and never shown again."""
    form = AccountCreateForm()
    problems: list[str] = []
    status = 200
    if form.is_submitted():
        if form.validate():
            try:
                with transaction():
                    account = accounts_service.create_account(
                        name=(form.name.data or "").strip(),
                        exchange=form.exchange.data or "",
                        environment=form.environment.data or "",
                        api_key=form.api_key.data or "",
                        api_secret=form.api_secret.data or "",
                        securities_config=form.securities_config(),
                        base_url=(form.base_url.data or "").strip() or None,
                    )
                    audit.record(
                        actor(),
                        "account.create",
                        f"account:{account.id}",
                        None,
                        {
                            "name": account.name,
                            "exchange": account.exchange,
                            "environment": account.environment,
                            "base_url": account.base_url,
                            "account_number": masked_account_number(account),
                        },
                    )
            except ValidationFailed as exc:
                problems = apply_errors(form, _config_errors_by_field(exc.errors))
                flash(exc.detail, "error")
                status = http_status(exc)
            except GatewayError as exc:
                flash(exc.detail, "error")
                status = http_status(exc)
            else:
                flash(f"Account {account.name!r} added.", "ok")
                return redirect(url_for("ui.index"))
        else:
            status = 422
    return (
        render_template(
            "accounts/new.html",
            form=form,
            problems=problems,
        ),
        status,
    )


def _config_errors_by_field(errors: dict[str, Any] | None) -> dict[str, Any]:
    # The service names the securities configuration as a whole ("securities_config": ["account_
    # number must be 8 digits"]); the form has a field per key, so each message goes to its field.
    out: dict[str, list[str]] = {}
    for name, messages in (errors or {}).items():
        for message in messages if isinstance(messages, list) else [messages]:
            target = name
            if name == "securities_config":
                target = next((k for k in _CONFIG_FIELDS if str(message).startswith(k)), name)
            out.setdefault(target, []).append(str(message))
    return out


@bp.get("/accounts/<int(max=2147483647):account_id>")
@login_required
def account_page(account_id: int) -> Any:
    """Show an account: details, token, live holdings and balances, recent orders, edit."""
    account = accounts_service.get_account(account_id)
    # Named fields only: ``obj=account`` would load the decrypted keys into the form.
    form = AccountEditForm(
        prefix="edit",
        data={"name": account.name, "is_active": account.is_active, "base_url": account.base_url},
    )
    return _render_account(account, form)


def _render_account(
    account: Account, form: AccountEditForm, status: int = 200, problems: list[str] | None = None
) -> Any:
    # The stored snapshot only: the page never waits on a broker. account.js then asks
    # ``refresh_holdings`` for a fresh one (and the cash, which is not stored).
    orders = recent_orders(account.id, RECENT_ORDERS)
    return (
        render_template(
            "accounts/detail.html",
            account=account,
            account_number=masked_account_number(account),
            token=_token(account),
            positions=positions.account_positions(account),
            balances=None,
            broker_error=None,
            orders=[order_view(o) for o in orders],
            form=form,
            problems=problems or [],
            refresh_form=ActionForm(prefix="refresh"),
            test_form=ActionForm(prefix="test"),
            holdings_form=ActionForm(prefix="holdings"),
        ),
        status,
    )


@bp.post("/accounts/<int(max=2147483647):account_id>/holdings/refresh")
@login_required
def refresh_holdings(account_id: int) -> Any:
    """Read the broker's holdings and cash now, store the holdings, show them.

    Asked by the account page's script (``X-Requested-With: fetch``), it answers the holdings
    fragment, broker error included, and the script puts it in place; a plain form post (no
    script) redirects back to the page. This request waits on the broker, within the adapter's
    timeout (``BROKER_TIMEOUT_SECONDS``); the page that asked does not.
    """
    account = accounts_service.get_account(account_id)
    balances: list[Any] | None = None
    broker_error = None
    try:
        # Built while the account is loaded: the refresh ends the request's reads before it asks
        # the broker, and the cash is read after it the same way, in no transaction.
        adapter = adapter_for(account)
        with transaction():
            holdings_service.refresh_holdings(account)
        balances = list(adapter.get_balance())
    except GatewayError as exc:
        db.session.rollback()
        broker_error = exc.detail
    except Exception:  # noqa: BLE001 - the page still shows the snapshot; the log has the cause
        db.session.rollback()
        log.exception("account %s: reading holdings failed", account.id)
        broker_error = "The broker's answer could not be read; the log has the details."
    # Reading from the broker may have issued a token in its own transaction: read it afresh.
    accounts_service.forget_loaded_token(account)
    if request.headers.get("X-Requested-With") != "fetch":
        if broker_error:
            flash(f"The broker could not be read: {broker_error}", "error")
        else:
            flash("Holdings read from the broker.", "ok")
        return redirect(url_for("ui.account_page", account_id=account_id))
    return render_template(
        "accounts/_holdings.html",
        positions=positions.account_positions(account),
        balances=balances,
        broker_error=broker_error,
        refreshed_at=utc_now(),
    )


@bp.post("/accounts/<int(max=2147483647):account_id>/edit")
@login_required
def edit_account(account_id: int) -> Any:
    """Rename, (de)activate, repoint the account or replace its keys (revoking the old token)."""
    account = accounts_service.get_account(account_id)
    form = AccountEditForm(prefix="edit")
    if not form.validate():
        return _render_account(account, form, 422)
    before = {"name": account.name, "is_active": account.is_active, "base_url": account.base_url}
    try:
        with transaction():
            # One call: moving the account (base URL) needs the keys in the same change.
            accounts_service.update_account(
                account,
                name=(form.name.data or "").strip(),
                is_active=form.is_active.data,
                base_url=(form.base_url.data or "").strip() or None,
                api_key=form.api_key.data or None,
                api_secret=form.api_secret.data or None,
            )
            after = {
                "name": account.name,
                "is_active": account.is_active,
                "base_url": account.base_url,
                "keys_replaced": bool(form.api_key.data),
            }
            audit.record(actor(), "account.update", f"account:{account_id}", before, after)
    except ValidationFailed as exc:
        problems = apply_errors(form, exc.errors)
        flash(exc.detail, "error")
        return _render_account(account, form, http_status(exc), problems)
    except GatewayError as exc:
        flash(exc.detail, "error")
        return _render_account(account, form, http_status(exc))
    flash("Account saved.", "ok")
    return redirect(url_for("ui.account_page", account_id=account_id))


@bp.post("/accounts/<int(max=2147483647):account_id>/token/refresh")
@login_required
def refresh_token(account_id: int) -> Any:
    """Issue a new token now, within the broker's issuance limit."""
    accounts_service.get_account(account_id)
    try:
        with transaction():
            result = tokens.refresh_token(account_id, force=True)
            audit.record(
                actor(),
                "account.token_refresh",
                f"account:{account_id}",
                None,
                {"outcome": result.outcome},
            )
    except GatewayError as exc:
        flash(exc.detail, "error")
    else:
        if result.outcome in ("issued", "fresh"):
            flash("Token refreshed: it is valid.", "ok")
        elif result.error is not None:
            flash(f"Token refresh {result.outcome}: {result.error.detail}", "error")
        else:
            flash(f"Token refresh {result.outcome}: another process is refreshing it.", "error")
    return redirect(url_for("ui.account_page", account_id=account_id))


@bp.post("/accounts/<int(max=2147483647):account_id>/test")
@login_required
def test_connection(account_id: int) -> Any:
    """Ask the broker for the account's cash: proves keys, token and URL together."""
    account = accounts_service.get_account(account_id)
    try:
        with transaction():
            balances = adapter_for(account).get_balance()
    except GatewayError as exc:
        flash(f"Connection failed: {exc.detail}", "error")
    else:
        currencies = ", ".join(b.currency for b in balances) or "no balances"
        flash(f"Connection OK: {currencies}.", "ok")
    return redirect(url_for("ui.account_page", account_id=account_id))


@bp.route("/accounts/<int(max=2147483647):account_id>/delete", methods=["GET", "POST"])
@login_required
def delete_account(account_id: int) -> Any:
    """Confirm, then delete an account without history; its token is revoked first."""
    account = accounts_service.get_account(account_id)
    form = ActionForm(prefix="delete")
    if not form.is_submitted():
        return render_template("accounts/delete.html", account=account, form=form)
    if accounts_service.has_history(account):
        # The API's 409 reason, with the UI's way to deactivate.
        flash(
            "The account has orders or holdings on record; deactivate it (uncheck Active and "
            "save) instead, so its history stays.",
            "error",
        )
        return render_template("accounts/delete.html", account=account, form=form), 409
    name = account.name
    try:
        with transaction():
            before = {
                "name": name,
                "exchange": account.exchange,
                "environment": account.environment,
            }
            accounts_service.delete_account(account)
            audit.record(actor(), "account.delete", f"account:{account_id}", before, None)
    except GatewayError as exc:
        flash(exc.detail, "error")
        return render_template("accounts/delete.html", account=account, form=form), (
            http_status(exc)
        )
    flash(f"Account {name!r} deleted.", "ok")
    return redirect(url_for("ui.index"))
