"""Trading from the console: the order ticket, amend, cancel, cancel-all and flatten.

Every action goes through the services the API uses, as the operator's console key
(``services.console.operator_key``): the same idempotency, the same risk gate and kill switches.
Each form render carries a fresh ``Idempotency-Key`` in a hidden field, so a double submit
replays the first order instead of placing a second. Destructive actions need a ticked
confirmation (no script: the CSP allows none inline). Every action, done or refused, is on the
audit log.

The ticket suggests symbols as the operator types and shows the price tick of the symbol at the
price typed (``static/ticket.js``, over the small JSON endpoint :func:`symbols`); without the
script, "Check the tick" asks the server the same. A securities
account's ticket shows its token's state, kept live by ``static/live.js``.
"""

from __future__ import annotations

import secrets
import uuid
from decimal import Decimal
from typing import Any

from flask import flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError

from web_server.errors import GatewayError, OrderInFlight, ValidationFailed, http_status
from web_server.extensions import db
from web_server.services import accounts as accounts_service
from web_server.services import audit, console, panic, tokens
from web_server.services import orders as orders_service
from web_server.services.accounts import Account
from web_server.services.grammar import parse_decimal
from web_server.ui.blueprint import apply_errors, bp, transaction

AMOUNT_BUYERS = ("UPBIT", "BITHUMB")
SYMBOL = Regexp(r"^[A-Za-z0-9-]{1,32}$", message="a symbol such as 005930, KRW-BTC, BTCUSDT")


def new_idempotency_key() -> str:
    """A fresh key per form render: a second submit of the same render replays the first."""
    return f"console-{secrets.token_urlsafe(18)}"


def actor() -> str:
    """The operator as the audit log and the risk trail name them."""
    return f"user:{current_user.username}"


def _decimal(form: FlaskForm, field: Any) -> None:
    if field.data:
        number, problem = parse_decimal(field.data)
        if problem:
            raise ValidationError(problem)
        if number is not None and number <= 0:
            raise ValidationError("must be more than 0")


def _confirmed(form: FlaskForm, field: Any) -> None:
    # Not DataRequired: its "required" attribute would let the browser refuse silently.
    if not field.data:
        raise ValidationError("tick the box to confirm")


class OrderTicketForm(FlaskForm):
    """A new order on one account."""

    idempotency_key = HiddenField(validators=[DataRequired(), Length(max=200)])
    symbol = StringField("Symbol", validators=[DataRequired(), SYMBOL])
    side = SelectField("Side", choices=[SelectChoice("BUY"), SelectChoice("SELL")])
    order_type = SelectField("Type", choices=[SelectChoice("LIMIT"), SelectChoice("MARKET")])
    quantity = StringField("Quantity", validators=[Optional(), _decimal])
    quote_amount = StringField(
        "Amount to spend (market buy by amount)", validators=[Optional(), _decimal]
    )
    limit_price = StringField("Limit price", validators=[Optional(), _decimal])
    route = SelectField(
        "Route",
        choices=[
            SelectChoice("", "Default (KRX)"),
            SelectChoice("KRX"),
            SelectChoice("NXT"),
            SelectChoice("SOR"),
        ],
        default="",
    )


class AmendForm(FlaskForm):
    """A new quantity and/or limit price for an open LIMIT order."""

    idempotency_key = HiddenField(validators=[DataRequired(), Length(max=200)])
    quantity = StringField("New quantity (empty: the remainder)", validators=[Optional(), _decimal])
    limit_price = StringField("New limit price", validators=[Optional(), _decimal])
    confirm = BooleanField("I confirm the amend (the order is replaced)", validators=[_confirmed])


class ConfirmForm(FlaskForm):
    """A destructive action: a ticked box and, for panic actions, an idempotency key."""

    idempotency_key = HiddenField(validators=[Optional(), Length(max=200)])
    confirm = BooleanField("Yes, I am sure", validators=[_confirmed])


def _ticket_form(account: Account, formdata: Any = None) -> OrderTicketForm:
    form = OrderTicketForm(formdata=formdata) if formdata is not None else OrderTicketForm()
    if account.account_type != "SECURITIES_STOCK":
        del form.route
    if account.exchange not in AMOUNT_BUYERS:
        del form.quote_amount
    return form


def _tick_hint(account: Account, form: OrderTicketForm) -> str | None:
    if account.account_type != "SECURITIES_STOCK" or not form.limit_price.data:
        return None
    price, problem = parse_decimal(form.limit_price.data)
    if problem or price is None or price <= 0:
        return None
    tick = console.krx_tick(price)
    on_tick = "on the tick" if price % tick == 0 else "NOT on the tick"
    return f"KRX tick at {price:,f} won: {tick:,f} won ({on_tick})"


def _render_ticket(
    account: Account, form: OrderTicketForm, status: int = 200, problems: list[str] | None = None
) -> Any:
    # A fresh key on every render: what was refused is not replayed by the corrected order.
    form.idempotency_key.data = new_idempotency_key()
    return (
        render_template(
            "trade/ticket.html",
            account=account,
            form=form,
            problems=problems or [],
            tick_hint=_tick_hint(account, form),
            securities=account.account_type == "SECURITIES_STOCK",
            token=tokens.token_status(account)
            if account.account_type == "SECURITIES_STOCK"
            else None,
        ),
        status,
    )


@bp.get("/accounts/<int(max=2147483647):account_id>/symbols")
@login_required
def symbols(account_id: int) -> Any:
    """Suggestions for the ticket's symbol, and the tick at a price (JSON).

    ``?q=`` is what the operator typed: the stocks master (securities) or the exchange's
    markets (crypto) are searched for it. With ``&price=``, ``tick`` is the price step of
    ``q`` taken as a symbol at that price (None when ``q`` is not a symbol the venue knows).
    Nothing asked, nothing found: an empty answer, not an error.

    Raises:
        ValidationFailed: the query is too long or holds a control character, or the price is
            not a positive decimal.
    """
    account = accounts_service.get_account(account_id)
    query = request.args.get("q", "").strip()
    if len(query) > 40:
        raise ValidationFailed("The search text is too long.", errors={"q": ["at most 40"]})
    answer: dict[str, Any] = {"symbols": console.search_symbols(account, query), "tick": None}
    if "price" in request.args:
        price, problem = parse_decimal(request.args["price"])
        if problem or price is None or price <= 0:
            raise ValidationFailed(
                "Not a price.", errors={"price": [problem or "must be more than 0"]}
            )
        symbol = query.upper()
        step = (
            console.price_tick(account, symbol, price) if SYMBOL.regex.fullmatch(symbol) else None
        )
        if step is not None:
            answer["tick"] = {
                "symbol": symbol,
                "price": format(price, "f"),
                "tick": format(step.normalize(), "f"),
                "on_tick": price % step == 0,
            }
    return jsonify(answer)


def _body(account: Account, form: OrderTicketForm) -> dict[str, Any]:
    body: dict[str, Any] = {
        "account_id": account.id,
        "symbol": (form.symbol.data or "").strip(),
        "side": form.side.data,
        "type": form.order_type.data,
    }
    for name in ("quantity", "quote_amount", "limit_price"):
        field = getattr(form, name, None)
        if field is not None and field.data:
            body[name] = Decimal(field.data)
    route = getattr(form, "route", None)
    if route is not None and route.data:
        body["route"] = route.data
    return body


def _refused(action: str, target: str, exc: GatewayError, before: Any = None, **after: Any) -> None:
    """Put a refused action on the audit log, in a transaction of its own."""
    db.session.rollback()
    with transaction():
        audit.record(
            actor(), action, target, before, {**after, "refused": exc.code, "detail": exc.detail}
        )


@bp.route("/accounts/<int(max=2147483647):account_id>/orders/new", methods=["GET", "POST"])
@login_required
def order_ticket(account_id: int) -> Any:
    """The order ticket of an account: place an order as the operator's console key."""
    account = accounts_service.get_account(account_id)
    form = _ticket_form(account)
    if not form.is_submitted():
        return _render_ticket(account, form)
    if not form.validate():
        return _render_ticket(account, form, 422)
    if "check_tick" in request.form:
        return _render_ticket(account, form)  # only the tick shown: nothing is placed
    body = _body(account, form)
    try:
        key = console.operator_key(current_user.username)
        order, replayed = orders_service.place_order(key, body, form.idempotency_key.data or "")
    except OrderInFlight as exc:
        db.session.rollback()
        flash(f"{exc.detail} (the first submit of this ticket is still being placed)", "error")
        return redirect(url_for("ui.orders", account_id=account.id))
    except GatewayError as exc:
        _refused("order.place", f"account:{account.id}", exc, None, **body)
        flash(f"Order refused: {exc.detail}", "error")
        problems = apply_errors(form, getattr(exc, "errors", None))
        return _render_ticket(account, form, http_status(exc), problems)
    order_id = order.id
    if not replayed:
        with transaction():
            audit.record(
                actor(),
                "order.place",
                f"order:{order_id}",
                None,
                {**body, "status": order.status, "order_id": order_id},
            )
        flash(f"Order placed: {order.status}.", "ok" if order.status != "REJECTED" else "error")
    else:
        flash("This ticket was already submitted: showing the order it placed.", "ok")
    return redirect(url_for("ui.order_page", order_id=order_id))


@bp.post("/orders/<uuid:order_id>/amend")
@login_required
def amend_order(order_id: uuid.UUID) -> Any:
    """Replace an open LIMIT order by one with a new quantity and/or price."""
    form = AmendForm(prefix="amend")
    if not form.validate():
        for name, errors in form.errors.items():
            flash(f"Amend not sent: {name}: {'; '.join(map(str, errors))}", "error")
        return redirect(url_for("ui.order_page", order_id=order_id))
    body: dict[str, Any] = {}
    if form.quantity.data:
        body["quantity"] = Decimal(form.quantity.data)
    if form.limit_price.data:
        body["limit_price"] = Decimal(form.limit_price.data)
    target = f"order:{order_id}"
    try:
        before = console.order_page(order_id)
        key = console.operator_key(current_user.username)
        new, replayed = orders_service.amend_order(
            key, order_id, body, form.idempotency_key.data or ""
        )
    except GatewayError as exc:
        _refused("order.amend", target, exc, None, **body)
        flash(f"Amend refused: {exc.detail}", "error")
        return redirect(url_for("ui.order_page", order_id=order_id))
    new_id = new.id
    if not replayed:
        with transaction():
            audit.record(
                actor(),
                "order.amend",
                target,
                {"quantity": before["quantity"], "limit_price": before["limit_price"]},
                {**body, "new_order_id": new_id, "status": new.status},
            )
        flash(f"Order amended: the replacement is {new.status}.", "ok")
    return redirect(url_for("ui.order_page", order_id=new_id))


@bp.post("/orders/<uuid:order_id>/cancel")
@login_required
def cancel_order(order_id: uuid.UUID) -> Any:
    """Cancel an open order at its broker."""
    form = ConfirmForm(prefix="cancel")
    if not form.validate():
        flash("Cancel not sent: tick the box to confirm.", "error")
        return redirect(url_for("ui.order_page", order_id=order_id))
    target = f"order:{order_id}"
    try:
        key = console.operator_key(current_user.username)
        before = console.order_page(order_id)["status"]
        order = orders_service.cancel_order(key, order_id)
    except GatewayError as exc:
        _refused("order.cancel", target, exc)
        flash(f"Cancel refused: {exc.detail}", "error")
        return redirect(url_for("ui.order_page", order_id=order_id))
    status = order.status
    with transaction():
        audit.record(actor(), "order.cancel", target, {"status": before}, {"status": status})
    flash(f"Cancel sent: the order is {status}.", "ok")
    return redirect(url_for("ui.order_page", order_id=order_id))


_PANIC = {
    "cancel-all": ("CANCEL_ALL", "Cancel every open order"),
    "flatten": ("FLATTEN", "Flatten: cancel every open order and sell every position"),
}


def _panic_page(account: Account, slug: str, form: ConfirmForm, status: int = 200) -> Any:
    form.idempotency_key.data = new_idempotency_key()
    return (
        render_template(
            "trade/panic.html", account=account, slug=slug, title=_PANIC[slug][1], form=form
        ),
        status,
    )


def _panic(account_id: int, slug: str) -> Any:
    account = accounts_service.get_account(account_id)
    form = ConfirmForm(prefix="panic")
    if not form.is_submitted():
        return _panic_page(account, slug, form)
    if not form.validate():
        return _panic_page(account, slug, form, 422)
    kind = _PANIC[slug][0]
    target = f"account:{account_id}"
    try:
        key = console.operator_key(current_user.username)
        action, replayed = panic.run(
            kind,
            "ACCOUNT",
            account_id,
            key=key,
            idempotency_key=form.idempotency_key.data or new_idempotency_key(),
            actor=actor(),
        )
    except GatewayError as exc:
        _refused(f"panic.{slug}", target, exc)
        flash(f"{_PANIC[slug][1]} refused: {exc.detail}", "error")
        return redirect(url_for("ui.account_page", account_id=account_id))
    result = action.result or {}
    if not replayed:
        with transaction():
            audit.record(
                actor(),
                f"panic.{slug}",
                target,
                None,
                {"action_id": action.id, "status": action.status, "result": result},
            )
    flash(
        f"{_PANIC[slug][1]}: {action.status}; {len(result.get('cancelled', []))} cancelled, "
        f"{len(result.get('sold', []))} sold, {len(result.get('failed', []))} failed.",
        "ok" if action.status == "DONE" else "error",
    )
    return redirect(url_for("ui.account_page", account_id=account_id))


@bp.route("/accounts/<int(max=2147483647):account_id>/cancel-all", methods=["GET", "POST"])
@login_required
def cancel_all(account_id: int) -> Any:
    """Confirm, then cancel every open order of the account (the gateway's and the broker's)."""
    return _panic(account_id, "cancel-all")


@bp.route("/accounts/<int(max=2147483647):account_id>/flatten", methods=["GET", "POST"])
@login_required
def flatten(account_id: int) -> Any:
    """Confirm, then cancel every open order of the account and sell every position."""
    return _panic(account_id, "flatten")
