"""The console's trading, orders and audit pages through Flask's test client (issue 15: 1, 2, 6).

Orders go to an Upbit simulator over HTTP (``venues_support``: a frozen clock, markets synced);
the audit log is read back from PostgreSQL.
"""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from tests.integration.venues_support import CSRF_FIELD, close_venue, log_in_operator, open_venue
from web_server.extensions import db
from web_server.models import ApiKey, AuditEntry, Order

_IDEMPOTENCY = re.compile(r'name="((?:[\w-]+-)?idempotency_key)" type="hidden" value="([^"]+)"')


def _hidden(page: str) -> dict[str, str]:
    fields = dict(CSRF_FIELD.findall(page))
    fields.update(_IDEMPOTENCY.findall(page))
    return fields


@pytest.fixture
def operator(app, client):
    """The test client, logged in as an operator."""
    return log_in_operator(app, client)


@pytest.fixture
def upbit(app, client, api_headers, database_url):
    venue = open_venue(app, client, api_headers, database_url, "UPBIT")
    yield venue
    close_venue(app, venue)


def _audit(app, **where) -> list[AuditEntry]:
    with app.app_context():
        statement = select(AuditEntry).order_by(AuditEntry.id)
        for name, value in where.items():
            statement = statement.where(getattr(AuditEntry, name) == value)
        rows = db.session.scalars(statement).all()
        db.session.expunge_all()
        return list(rows)


def test_audit_redacts_secrets_and_gateway_keys(app_ctx):
    from web_server.services import audit

    key = "gw_abcdefghijkm_" + "A" * 43
    audit.record(
        "user:alice",
        "account.update",
        "account:1",
        {"name": "old", "api_secret": "s3cret-value", "config": {"cert_password": "pw"}},
        {
            "name": "new",
            "api_key_id": 7,
            "key_prefix": "abcdefghijkm",
            "note": f"rotated to {key}",
            "tokens": [{"access_token": "tok"}],
            "idempotency_key": "console-1",
        },
    )
    db.session.commit()
    (entry,) = db.session.scalars(select(AuditEntry)).all()
    assert entry.before == {
        "name": "old",
        "api_secret": "[redacted]",
        "config": {"cert_password": "[redacted]"},
    }
    assert entry.after["tokens"] == "[redacted]"
    assert entry.after["note"] == "rotated to [redacted]"
    assert entry.after["api_key_id"] == 7 and entry.after["key_prefix"] == "abcdefghijkm"
    assert entry.after["idempotency_key"] == "console-1"
    found, more = audit.search(text="rotated")
    assert [e.id for e in found] == [entry.id] and not more
    assert audit.search(actor="bob")[0] == [] and audit.search(action="account.")[0] == [entry]
    assert audit.search(text="s3cret")[0] == []


def test_console_forms_without_a_csrf_token_are_refused(app, operator, upbit):
    order_id = uuid.uuid4()
    for path, data in (
        (f"/accounts/{upbit.account_id}/orders/new", {"symbol": "KRW-BTC", "quantity": "1"}),
        (f"/orders/{order_id}/amend", {"amend-limit_price": "1000", "amend-confirm": "y"}),
        (f"/orders/{order_id}/cancel", {"cancel-confirm": "y"}),
        (f"/accounts/{upbit.account_id}/cancel-all", {"panic-confirm": "y"}),
        (f"/accounts/{upbit.account_id}/flatten", {"panic-confirm": "y"}),
    ):
        assert operator.post(path, data=data).status_code == 400, path
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Order)) == 0
        labels = db.session.scalars(select(ApiKey.label)).all()
        assert not any(label.startswith("console:") for label in labels)
    assert _audit(app, actor="user:alice") == []


def test_empty_pages_render(operator):
    for path in ("/orders", "/orders?open=y&day=2026-12-02&status=FILLED&symbol=KRW-BTC", "/audit"):
        answer = operator.get(path)
        assert answer.status_code == 200, path
    assert "No orders match." in operator.get("/orders").get_data(as_text=True)
    assert operator.get("/orders?day=not-a-day").status_code == 422
    assert operator.get(f"/orders/{uuid.uuid4()}").status_code == 404


def test_place_replay_amend_cancel_from_the_console(app, operator, upbit):
    price = upbit.price()
    resting = (price * Decimal("0.8") / 1000).quantize(Decimal(1)) * 1000
    ticket = f"/accounts/{upbit.account_id}/orders/new"
    page = operator.get(ticket).get_data(as_text=True)
    form = _hidden(page) | {
        "symbol": "KRW-BTC",
        "side": "BUY",
        "order_type": "LIMIT",
        "quantity": "0.01",
        "limit_price": str(resting),
    }
    placed = operator.post(ticket, data=form)
    assert placed.status_code == 302, placed.get_data(as_text=True)
    order_path = placed.headers["Location"]
    # A double submit of the same render replays: still one order.
    again = operator.post(ticket, data=form)
    assert again.status_code == 302 and again.headers["Location"] == order_path
    with app.app_context():
        (order,) = db.session.scalars(select(Order)).all()
        assert order.status == "SUBMITTED" and order.limit_price == resting
        console_key = db.session.scalar(select(ApiKey).where(ApiKey.label == "console:alice"))
        assert console_key.scopes == ["orders:read", "orders:write"]
        assert console_key.account_ids is None
        assert order.intent.action_key.startswith(f"{console_key.id}:console-")
    detail = operator.get(order_path).get_data(as_text=True)
    assert "SUBMITTED" in detail and "accepted" in detail and "submitted" in detail
    assert f"{int(resting):,} KRW" in detail  # KRW without decimals, with separators
    assert re.search(r'<time datetime="[^"]+Z" title="[^"]+ UTC">[^<]+ KST</time>', detail)
    listed = operator.get(f"/orders?open=y&account_id={upbit.account_id}").get_data(as_text=True)
    assert order_path in listed
    assert order_path not in operator.get("/orders?status=FILLED").get_data(as_text=True)

    # Amend: unconfirmed is not sent; confirmed replaces the order.
    amend = _hidden(detail)
    new_price = resting - 1000
    unconfirmed = operator.post(
        f"{order_path}/amend", data={**amend, "amend-limit_price": str(new_price)}
    )
    assert unconfirmed.status_code == 302 and unconfirmed.headers["Location"] == order_path
    amended = operator.post(
        f"{order_path}/amend",
        data={**amend, "amend-limit_price": str(new_price), "amend-confirm": "y"},
    )
    new_path = amended.headers["Location"]
    assert new_path != order_path
    new_page = operator.get(new_path).get_data(as_text=True)
    assert "Replaces" in new_page and f"{int(new_price):,} KRW" in new_page

    cancelled = operator.post(
        f"{new_path}/cancel", data={**_hidden(new_page), "cancel-confirm": "y"}
    )
    assert cancelled.status_code == 302
    with app.app_context():
        new = db.session.get(Order, uuid.UUID(new_path.rsplit("/", 1)[1]))
        assert new.status in ("CANCELLED", "CANCEL_PENDING")
        assert db.session.scalar(select(func.count()).select_from(Order)) == 2

    actions = [(e.action, e.target) for e in _audit(app, actor="user:alice")]
    assert [a for a, _ in actions] == [
        "api_key.create",
        "order.place",
        "order.amend",
        "order.cancel",
    ]
    audit_page = operator.get("/audit?actor=alice&action=order.").get_data(as_text=True)
    assert audit_page.count('class="audit-entry"') == 3


def test_a_refused_console_order_is_audited_and_a_kill_switch_stops_it(app, operator, upbit):
    from web_server.services import console, kill_switches

    with app.app_context():
        key_id = console.operator_key("alice").id
        kill_switches.engage("API_KEY", key_id, "test", "user:test")
        db.session.commit()
    ticket = f"/accounts/{upbit.account_id}/orders/new"
    form = _hidden(operator.get(ticket).get_data(as_text=True)) | {
        "symbol": "KRW-BTC",
        "side": "BUY",
        "order_type": "LIMIT",
        "quantity": "0.01",
        "limit_price": "1000000",
    }
    refused = operator.post(ticket, data=form)
    assert refused.status_code == 422
    assert "kill switch" in refused.get_data(as_text=True).lower()
    (entry,) = _audit(app, action="order.place")
    assert entry.after["refused"] == "kill_switch_engaged" and entry.actor == "user:alice"


def test_admin_api_calls_are_audited_without_bodies(app, client, api_headers):
    answer = client.put(
        "/api/v1/kill-switches/global", headers=api_headers, json={"reason": "drill 42"}
    )
    assert answer.status_code == 200, answer.get_json()
    (entry,) = _audit(app, action="api.PUT")
    assert entry.target == "/api/v1/kill-switches/global" and entry.after["status"] == 200
    assert entry.actor.startswith("api_key:")
    assert "drill 42" not in str(entry.after)  # bodies are never recorded
    # A read is not a change: not recorded.
    client.get("/api/v1/kill-switches", headers=api_headers)
    assert len(_audit(app)) == 1


def test_cancel_all_needs_confirming_and_is_audited(app, operator, upbit, api_headers):
    price = (upbit.price() * Decimal("0.8") / 1000).quantize(Decimal(1)) * 1000
    placed = operator.post(
        "/api/v1/orders",
        headers={**api_headers, "Idempotency-Key": "api-1"},
        json={
            "account_id": upbit.account_id,
            "symbol": "KRW-BTC",
            "side": "BUY",
            "type": "LIMIT",
            "quantity": "0.01",
            "limit_price": str(price),
        },
    )
    assert placed.status_code == 201, placed.get_json()
    path = f"/accounts/{upbit.account_id}/cancel-all"
    confirm_page = operator.get(path).get_data(as_text=True)
    assert "This cannot be undone" in confirm_page
    hidden = _hidden(confirm_page)
    unconfirmed = operator.post(path, data=hidden)
    assert unconfirmed.status_code == 422
    with app.app_context():
        assert db.session.scalar(select(Order.status)) == "SUBMITTED"
    done = operator.post(path, data={**hidden, "panic-confirm": "y"})
    assert done.status_code == 302
    with app.app_context():
        assert db.session.scalar(select(Order.status)) in ("CANCEL_PENDING", "CANCELLED")
    (entry,) = _audit(app, action="panic.cancel-all")
    assert entry.actor == "user:alice" and entry.after["status"] == "DONE"
    assert len(entry.after["result"]["cancelled"]) == 1
