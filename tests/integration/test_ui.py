"""The operator's web UI (DESIGN §5) through Flask's test client, against a KIS simulator.

Every page a test sees is kept by ``Browser``; each test ends by checking that none of them holds
a key, a secret or a full account number the test typed in.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
import requests
from sqlalchemy import func, select

from simulators.registry import create_simulator
from simulators.server import serve_in_thread
from tests.conftest import random_key, remember_secret, run_cli
from web_server.extensions import db
from web_server.models import Account, ApiKey, Holding, Stock

PASSWORD = "correct horse battery"
ACCOUNT_NUMBER = "50123456"
_CSRF = re.compile(r'name="(?:[\w-]+-)?csrf_token" type="hidden" value="([^"]+)"')


class Browser:
    """A logged-in test client that keeps every page it was shown."""

    def __init__(self, client) -> None:
        self.client = client
        self.pages: list[str] = []

    def get(self, path: str, **kwargs):
        response = self.client.get(path, **kwargs)
        self.pages.append(response.get_data(as_text=True))
        return response

    def post(self, path: str, data: dict | None = None, *, csrf: bool = True, **kwargs):
        data = dict(data or {})
        if csrf:
            data["csrf_token"] = self.csrf_token()
        response = self.client.post(path, data=data, **kwargs)
        self.pages.append(response.get_data(as_text=True))
        return response

    def csrf_token(self) -> str:
        page = self.client.get("/login").get_data(as_text=True)
        match = _CSRF.search(page) or _CSRF.search(self.client.get("/").get_data(as_text=True))
        return match.group(1)

    def assert_never_shown(self, *values: str) -> None:
        assert self.pages
        for value in values:
            assert not any(value in page for page in self.pages), f"{value[:6]}… was shown"


@pytest.fixture
def browser(app, client):
    """A client logged in as a freshly created operator."""
    result = run_cli(
        app, "users", "create", "--username", "alice", "--password-stdin", input=PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output
    page = Browser(client)
    response = page.post("/login", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    return page


@pytest.fixture
def kis():
    """A KIS simulator holding 3 Samsung shares; yields (url, app_key, app_secret)."""
    handle = serve_in_thread(create_simulator("kis", rate_limit_per_second=0))
    app_key, secret = remember_secret(random_key(36)), remember_secret(random_key(180))
    requests.post(
        f"{handle.url}/_sim/accounts",
        json={
            "app_key": app_key,
            "app_secret": secret,
            "account_number": ACCOUNT_NUMBER,
            "product_code": "01",
            "cash": "5000000",
            "positions": {"005930": 3},
        },
        timeout=5,
    ).raise_for_status()
    yield handle.url, app_key, secret
    handle.stop()


def _account_form(url: str, app_key: str, secret: str, **changes: str) -> dict[str, str]:
    form = {
        "name": "kis-main",
        "exchange": "KIS",
        "environment": "REAL",
        "api_key": app_key,
        "api_secret": secret,
        "account_number": ACCOUNT_NUMBER,
        "product_code": "01",
        "cert_password": "",
        "base_url": url,
    }
    form.update(changes)
    return form


def _count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def _field_error(html: str, field: str) -> str:
    match = re.search(rf'id="{field}-error" class="field-error">([^<]*)<', html)
    return match.group(1) if match else ""


def _refresh_holdings(browser: Browser, account_id: int) -> str:
    """Ask for the holdings as the account page's script does; return the fragment."""
    answer = browser.post(
        f"/accounts/{account_id}/holdings/refresh", headers={"X-Requested-With": "fetch"}
    )
    assert answer.status_code == 200
    return answer.get_data(as_text=True)


def _account_id(app, name: str = "kis-main") -> int:
    with app.app_context():
        return db.session.scalar(select(Account.id).where(Account.name == name))


def test_pages_require_login(client):
    for path in ("/", "/accounts", "/accounts/new", "/accounts/1", "/api-keys", "/stocks"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login"), path
    token = _CSRF.search(client.get("/login").get_data(as_text=True)).group(1)
    for path in ("/accounts/new", "/accounts/1/token/refresh", "/api-keys", "/api-keys/1/revoke"):
        response = client.post(path, data={"csrf_token": token})
        assert response.status_code == 302 and "/login" in response.headers["Location"], path


def test_add_a_kis_account_refresh_its_token_and_read_holdings(app, browser, kis):
    url, app_key, secret = kis
    cert_password = remember_secret("cert-pw-" + random_key(8))

    # A bad account number: the error sits next to its field, the keys are not sent back.
    bad = browser.post("/accounts/new", _account_form(url, app_key, secret, account_number="1234"))
    assert bad.status_code == 422
    assert "must be 8 digits" in _field_error(bad.get_data(as_text=True), "account_number")
    # A missing one is the service's refusal, shown next to the same field.
    missing = browser.post("/accounts/new", _account_form(url, app_key, secret, account_number=""))
    assert missing.status_code == 422
    html = missing.get_data(as_text=True)
    assert "account_number is required" in _field_error(html, "account_number")
    assert "The account cannot be created." in html
    insecure = browser.post("/accounts/new", _account_form("http://example.com", app_key, secret))
    assert insecure.status_code == 422
    assert "must be https" in _field_error(insecure.get_data(as_text=True), "base_url")
    assert _count(app, Account) == 0

    created = browser.post(
        "/accounts/new", _account_form(url, app_key, secret, cert_password=cert_password)
    )
    assert created.status_code == 302 and created.headers["Location"] == "/"
    listing = browser.get("/").get_data(as_text=True)
    assert "Account &#39;kis-main&#39; added." in listing
    assert "kis-main" in listing and "SECURITIES_STOCK" in listing
    assert 'class="badge badge-missing"' in listing and ">missing</span>" in listing
    duplicate = browser.post("/accounts/new", _account_form(url, app_key, secret))
    assert duplicate.status_code == 409 and "already exists" in duplicate.get_data(as_text=True)
    assert _count(app, Account) == 1
    # The add form echoes the account number the operator typed; no page after it shows it.
    after_creation = len(browser.pages)

    account_id = _account_id(app)
    refreshed = browser.post(f"/accounts/{account_id}/token/refresh", follow_redirects=True)
    assert "Token refreshed: it is valid." in refreshed.get_data(as_text=True)
    listing = browser.get("/accounts").get_data(as_text=True)
    assert ">valid</span>" in listing and ">missing</span>" not in listing

    page = browser.get(f"/accounts/{account_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "50****56" in html
    # The page shows the stored snapshot (none yet); its script asks for the broker's.
    assert "The broker has not been read for this account yet." in html
    fresh = _refresh_holdings(browser, account_id)
    holdings, balances = fresh.split('id="balances-heading"', 1)
    row = re.search(r"<th scope=\"row\">005930<.*?</tr>", holdings, re.S).group(0)
    assert '<td class="num">3</td>' in row
    assert '<th scope="row">KRW</th>' in balances and ">5,000,000 KRW</td>" in balances
    assert "E+" not in holdings + balances
    stored = browser.get(f"/accounts/{account_id}").get_data(as_text=True)
    assert re.search(r"<th scope=\"row\">005930<", stored)

    tested = browser.post(f"/accounts/{account_id}/test", follow_redirects=True)
    assert "Connection OK: KRW." in tested.get_data(as_text=True)

    browser.assert_never_shown(secret, app_key, cert_password)
    assert not any(ACCOUNT_NUMBER in page for page in browser.pages[after_creation:])


def test_edit_and_delete_an_account(app, browser, kis):
    url, app_key, secret = kis
    browser.post("/accounts/new", _account_form(url, app_key, secret))
    account_id = _account_id(app)
    browser.pages.clear()  # the add form echoed the account number; nothing after it may

    one_half = browser.post(
        f"/accounts/{account_id}/edit",
        {"edit-name": "kis-main", "edit-is_active": "y", "edit-base_url": url, "edit-api_key": "x"},
    )
    assert one_half.status_code == 422
    assert "together" in _field_error(one_half.get_data(as_text=True), "edit-api_secret")

    new_key, new_secret = remember_secret(random_key(36)), remember_secret(random_key(180))
    saved = browser.post(
        f"/accounts/{account_id}/edit",
        {
            "edit-name": "kis-renamed",
            "edit-base_url": url,
            "edit-api_key": new_key,
            "edit-api_secret": new_secret,
        },
        follow_redirects=True,
    )
    assert "Account saved." in saved.get_data(as_text=True)
    with app.app_context():
        account = db.session.get(Account, account_id)
        assert account.name == "kis-renamed" and account.is_active is False
        assert account.api_key == new_key and account.api_secret == new_secret

    # The keys the simulator knows are gone: the page shows the broker's refusal, not a 500.
    page = browser.get(f"/accounts/{account_id}")
    assert page.status_code == 200
    assert "The broker could not be read:" in _refresh_holdings(browser, account_id)
    failed = browser.post(f"/accounts/{account_id}/token/refresh", follow_redirects=True)
    assert "Token refresh" in failed.get_data(as_text=True)
    assert "Token refreshed" not in failed.get_data(as_text=True)

    with app.app_context():
        db.session.add(Holding(account_id=account_id, asset="KRW", quantity=Decimal(1)))
        db.session.commit()
    confirm = browser.get(f"/accounts/{account_id}/delete")
    assert confirm.status_code == 200 and "Delete account" in confirm.get_data(as_text=True)
    refused = browser.post(f"/accounts/{account_id}/delete")
    assert refused.status_code == 409
    assert "orders or holdings on record" in refused.get_data(as_text=True)
    assert _count(app, Account) == 1

    with app.app_context():
        db.session.execute(Holding.__table__.delete())
        db.session.commit()
    deleted = browser.post(f"/accounts/{account_id}/delete", follow_redirects=True)
    assert "Account &#39;kis-renamed&#39; deleted." in deleted.get_data(as_text=True)
    assert _count(app, Account) == 0
    browser.assert_never_shown(secret, app_key, new_key, new_secret, ACCOUNT_NUMBER)


def test_an_api_key_is_shown_once_and_can_be_revoked(app, browser, kis):
    url, app_key, secret = kis
    browser.post("/accounts/new", _account_form(url, app_key, secret))
    account_id = _account_id(app)

    no_scope = browser.post("/api-keys", {"label": "strategy-1"})
    assert no_scope.status_code == 422
    assert "choose at least one scope" in no_scope.get_data(as_text=True)
    assert _count(app, ApiKey) == 0

    created = browser.post(
        "/api-keys",
        {
            "label": "strategy-1",
            "scopes": ["orders:read", "accounts:read"],
            "account_ids": [str(account_id)],
        },
    )
    assert created.status_code == 201
    assert created.headers["Cache-Control"] == "no-store"
    html = created.get_data(as_text=True)
    key = remember_secret(re.search(r'value="(gw_[A-Za-z0-9]{12}_[A-Za-z0-9_-]{43})"', html)[1])
    assert "Copy it now" in html
    prefix = key.split("_")[1]

    listing = browser.get("/api-keys").get_data(as_text=True)
    assert f"gw_{prefix}_…" in listing
    assert "accounts:read, orders:read" in listing and "kis-main" in listing
    headers = {"Authorization": f"Bearer {key}"}
    assert browser.client.get("/api/v1/accounts", headers=headers).status_code == 200

    with app.app_context():
        key_id = db.session.scalar(select(ApiKey.id))
    revoked = browser.post(f"/api-keys/{key_id}/revoke", follow_redirects=True)
    html = revoked.get_data(as_text=True)
    assert f"API key &#39;strategy-1&#39; (gw_{prefix}_…) revoked." in html
    assert ">revoked</span>" in html
    assert browser.client.get("/api/v1/accounts", headers=headers).status_code == 401

    assert sum(key in page for page in browser.pages) == 1  # the creation page only
    browser.assert_never_shown(secret, app_key)


def test_every_post_without_a_csrf_token_is_refused(app, browser, kis):
    url, app_key, secret = kis
    browser.post("/accounts/new", _account_form(url, app_key, secret))
    account_id = _account_id(app)
    with app.app_context():
        from web_server.services.api_keys import create_api_key

        row, _ = create_api_key("k", ["admin"])
        key_id = row.id
        db.session.commit()
    for path, data in (
        ("/accounts/new", _account_form(url, app_key, secret, name="other")),
        (f"/accounts/{account_id}/edit", {"edit-name": "changed"}),
        (f"/accounts/{account_id}/token/refresh", {}),
        (f"/accounts/{account_id}/test", {}),
        (f"/accounts/{account_id}/delete", {}),
        ("/api-keys", {"label": "x", "scopes": "admin"}),
        (f"/api-keys/{key_id}/revoke", {}),
        ("/logout", {}),
    ):
        response = browser.post(path, data, csrf=False)
        assert response.status_code == 400, path
    with app.app_context():
        assert db.session.scalars(select(Account.name)).all() == ["kis-main"]
        assert db.session.get(Account, account_id).token is None
        assert db.session.scalar(select(ApiKey.revoked_at)) is None
        assert db.session.scalar(select(func.count()).select_from(ApiKey)) == 1
    assert browser.get("/").status_code == 200  # still logged in
    browser.assert_never_shown(secret, app_key)


def test_stocks_search_shows_korean_names(app, browser):
    with app.app_context():
        db.session.add_all(
            [
                Stock(symbol="005930", name="삼성전자", market="KOSPI"),
                Stock(symbol="005935", name="삼성전자우", market="KOSPI"),
                Stock(symbol="247540", name="에코프로비엠", market="KOSDAQ"),
            ]
        )
        db.session.commit()
    page = browser.get("/stocks", query_string={"q": "삼성"})
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    html = page.get_data(as_text=True)
    assert "삼성전자" in html and "삼성전자우" in html and "에코프로비엠" not in html
    kosdaq = browser.get("/stocks", query_string={"market": "KOSDAQ"}).get_data(as_text=True)
    assert "에코프로비엠" in kosdaq and "삼성전자" not in kosdaq
    by_code = browser.get("/stocks?q=2475").get_data(as_text=True)
    assert '<th scope="row">247540</th>' in by_code
    assert "No stocks found." in browser.get("/stocks?q=없는회사").get_data(as_text=True)


def test_navigation_and_labels(app, browser, kis):
    url, app_key, secret = kis
    browser.post("/accounts/new", _account_form(url, app_key, secret))
    account_id = _account_id(app)
    html = browser.get("/accounts/new").get_data(as_text=True)
    nav = re.search(r'<nav aria-label="Main">.*?</nav>', html, re.S).group(0)
    assert '<a href="/" aria-current="page">Accounts</a>' in nav
    assert '<a href="/api-keys">API keys</a>' in nav and '<a href="/stocks">Stocks</a>' in nav
    assert "Signed in as <strong>alice</strong>" in html
    for path in ("/accounts/new", f"/accounts/{account_id}", "/api-keys", "/stocks"):
        html = browser.get(path).get_data(as_text=True)
        inputs = re.findall(r'<(?:input|select)\b[^>]*\bid="([^"]+)"', html)
        visible = [i for i in inputs if not i.endswith("csrf_token")]
        assert visible, path
        for input_id in visible:
            assert f'<label for="{input_id}">' in html, (path, input_id)
        assert "<button" in html and re.search(r"<button[^>]*>\s*<", html) is None, path
        assert len(set(re.findall(r'\bid="([^"]+)"', html))) == len(
            re.findall(r'\bid="([^"]+)"', html)
        ), path  # ids are unique, so labels point at one input
    logged_out = browser.post("/logout")
    assert logged_out.status_code == 302
    assert browser.client.get("/").status_code == 302
    browser.assert_never_shown(secret, app_key)


def test_account_page_lists_recent_orders(app, browser, kis, api_headers):
    url, app_key, secret = kis
    with app.app_context():
        db.session.add(Stock(symbol="005930", name="삼성전자", market="KOSPI"))
        db.session.commit()
    app.extensions["gateway.symbols"].invalidate()
    browser.post("/accounts/new", _account_form(url, app_key, secret))
    account_id = _account_id(app)
    placed = browser.client.post(
        "/api/v1/orders",
        json={
            "account_id": account_id,
            "symbol": "005930",
            "side": "BUY",
            "type": "MARKET",
            "quantity": "1",
        },
        headers={**api_headers, "Idempotency-Key": "ui-order-1"},
    )
    assert placed.status_code == 201, placed.get_json()
    html = browser.get(f"/accounts/{account_id}").get_data(as_text=True)
    orders = re.search(r'id="orders-heading".*?</section>', html, re.S).group(0)
    row = re.search(r'<th scope="row">005930</th>.*?</tr>', orders, re.S).group(0)
    assert "<td>BUY</td>" in row and "<td>MARKET</td>" in row
    assert placed.get_json()["status"] in row
    refused = browser.post(f"/accounts/{account_id}/delete")
    assert refused.status_code == 409 and _count(app, Account) == 1
    browser.pages.clear()  # the add form echoed the account number
    browser.get(f"/accounts/{account_id}")
    browser.assert_never_shown(secret, app_key, ACCOUNT_NUMBER)
