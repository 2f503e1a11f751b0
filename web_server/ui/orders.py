"""Orders: a filtered, paginated list, and an order's page with its events, fills and charges.

Both pages follow the event stream (``static/live.js``): the list updates its rows' status,
filled quantity and average price, and, on its first page, adds a new order at the top after
asking :func:`order_row` whether it matches the list's filters (the server decides, with the
same query as the list, so the script repeats no filter logic).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from flask import render_template, request, url_for
from flask_login import login_required
from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from wtforms import BooleanField, DateField, SelectChoice, SelectField, StringField
from wtforms.validators import Length, Optional, Regexp

from brokers.statuses import OrderStatus
from web_server.services import accounts as accounts_service
from web_server.services import clock, console
from web_server.ui.blueprint import bp
from web_server.ui.trade import AmendForm, ConfirmForm, new_idempotency_key

PER_PAGE = 50
#: Stands for the order id in the row address handed to the page's script.
ROW_PLACEHOLDER = uuid.UUID(int=0)


class OrderFilterForm(FlaskForm):
    """The list's filters (a GET: no CSRF token, which would end up in URLs and logs)."""

    class Meta:
        """Read-only search: no CSRF."""

        csrf = False

    open = BooleanField("Open only")
    status = SelectField(
        "Status",
        choices=[SelectChoice("", "Any status"), *(SelectChoice(s.value) for s in OrderStatus)],
        default="",
        validators=[Optional()],
    )
    symbol = StringField(
        "Symbol",
        validators=[Optional(), Length(max=32), Regexp(r"^[A-Za-z0-9-]*$", message="a symbol")],
    )
    account_id = SelectField("Account", coerce=str, default="", validators=[Optional()])
    day = DateField("Day (KST)", validators=[Optional()])


def _filter_form(args: MultiDict[str, str]) -> OrderFilterForm:
    form = OrderFilterForm(args)
    form.account_id.choices = [SelectChoice("", "All accounts")] + [
        SelectChoice(str(a.id), f"{a.name} ({a.exchange})")
        for a in accounts_service.list_accounts()
    ]
    return form


def _filters(form: OrderFilterForm) -> dict[str, Any]:
    account = form.account_id.data
    return {
        "open_only": bool(form.open.data),
        "status": form.status.data or None,
        "symbol": (form.symbol.data or "").strip() or None,
        "account_id": int(account) if account and account.isdigit() else None,
        "day": form.day.data,
    }


@bp.get("/orders")
@login_required
def orders() -> Any:
    """List orders, newest first, with filters; 50 a page."""
    form = _filter_form(request.args)
    page = request.args.get("page", "1")
    page_number = int(page) if page.isascii() and page.isdigit() and 0 < len(page) < 7 else 1
    rows: list[dict[str, Any]] = []
    has_next = False
    status = 200
    latest = console.latest_event()  # before the rows: nothing committed after them is missed
    since = clock.now() - dt.timedelta(seconds=5)  # allowing for the hosts' clocks
    if form.validate():
        rows, has_next = console.search_orders(
            **_filters(form), page=page_number, per_page=PER_PAGE
        )
    else:
        status = 422
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return (
        render_template(
            "orders/list.html",
            form=form,
            orders=rows,
            page=page_number,
            latest_event=latest,
            since=since.isoformat(),
            row_url=url_for("ui.order_row", order_id=ROW_PLACEHOLDER, **args),
            next_url=url_for("ui.orders", **args, page=page_number + 1) if has_next else None,
            prev_url=url_for("ui.orders", **args, page=page_number - 1)
            if page_number > 1
            else None,
        ),
        status,
    )


@bp.get("/orders/<uuid:order_id>/row")
@login_required
def order_row(order_id: uuid.UUID) -> Any:
    """One order as a row of the list filtered by this query; 204 when it does not match."""
    form = _filter_form(request.args)
    if not form.validate():
        return "", 204
    rows, _ = console.search_orders(**_filters(form), order_id=order_id, per_page=1)
    if not rows:
        return "", 204
    return render_template("orders/row.html", order=rows[0])


@bp.get("/orders/<uuid:order_id>")
@login_required
def order_page(order_id: uuid.UUID) -> Any:
    """An order: its terms, status, fees and taxes, fills, event timeline; amend and cancel."""
    order = console.order_page(order_id)
    amend_form = AmendForm(prefix="amend", formdata=None)
    amend_form.idempotency_key.data = new_idempotency_key()
    return render_template(
        "orders/detail.html",
        order=order,
        latest_event=order["latest_event"],
        amendable=order["status"] in ("SUBMITTED", "PARTIALLY_FILLED") and order["type"] == "LIMIT",
        cancellable=order["status"] in ("SUBMITTED", "PARTIALLY_FILLED", "CANCEL_PENDING"),
        amend_form=amend_form,
        cancel_form=ConfirmForm(prefix="cancel", formdata=None),
    )
