"""Screenshots of the console's main pages, at desktop and phone widths (issue 15, item 10).

A realistic console is seeded: KIS, Upbit and Binance accounts at their simulators (the stocks
master from the KIS simulator, so 삼성전자 is there), resting and filled orders on each, a KIS
token. Chromium visits the main pages at 1280x800 and 390x844. At phone width no page may be
wider than the screen (a wide table scrolls inside itself). Each screenshot must be a real
picture (its size, and more than a few colours).

With ``GATEWAY_SCREENSHOTS=1`` the pictures are written to ``docs/screenshots/<page>-<width>.png``
for the README (``make screenshots``); otherwise they go to the test's temporary folder, so
``make test`` leaves the tree as it was. Korean text needs a CJK font (``make chromium``
installs Debian's fonts-noto-cjk).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import pytest

from brokers.krx import krx_stock_tick
from tests.e2e.conftest import PASSWORD, create_operator
from tests.integration.venues_support import close_venue, open_venue, order_body, post, run_job
from web_server.services.orders import poll_open_orders
from web_server.services.tokens import refresh_token

WIDTHS = {"desktop": (1280, 800), "phone": (390, 844)}
STEPS = {"UPBIT": Decimal(1000), "BINANCE": Decimal("0.01")}
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def venues(app, client, api_headers, database_url, live_gateway):
    opened = {}
    try:
        for exchange in ("KIS", "UPBIT", "BINANCE"):
            opened[exchange] = open_venue(app, client, api_headers, database_url, exchange)
        yield opened
    finally:
        for venue in opened.values():
            close_venue(app, venue)


def _on_tick(price: Decimal, fraction: str, exchange: str) -> Decimal:
    target = price * Decimal(fraction)
    unit = krx_stock_tick(target) if exchange == "KIS" else STEPS[exchange]
    return (target / unit).quantize(Decimal(1), rounding=ROUND_DOWN) * unit


def _seed(app, client, api_headers, venues) -> dict[str, str]:
    """Orders resting and filled on each venue, a KIS token; the paths of the pages to show."""
    kis, upbit, binance = venues["KIS"], venues["UPBIT"], venues["BINANCE"]
    names = {kis: "KIS 위탁 (주식)", upbit: "Upbit 원화", binance: "Binance spot"}
    for venue, name in names.items():
        renamed = client.patch(
            f"/api/v1/accounts/{venue.account_id}", headers=api_headers, json={"name": name}
        )
        assert renamed.status_code == 200, renamed.get_json()
    with app.app_context():
        assert refresh_token(kis.account_id, force=True).outcome == "issued"
    filled = None
    for number, venue in enumerate((kis, upbit, binance)):
        price = venue.price()
        quantity = "3" if venue is kis else "0.01"
        for fraction in ("0.9", "0.95"):
            rest = order_body(venue, "BUY", quantity, _on_tick(price, fraction, venue.exchange))
            answer = post(client, api_headers, "/api/v1/orders", rest, f"rest-{number}-{fraction}")
            assert answer.status_code in (200, 201), answer.get_json()
        limit = _on_tick(price, "0.98", venue.exchange)
        buy = order_body(venue, "BUY", quantity, limit)
        answer = post(client, api_headers, "/api/v1/orders", buy, f"fill-{number}")
        assert answer.status_code in (200, 201), answer.get_json()
        if venue is kis:
            filled = answer.get_json()["id"]
        venue.pin(limit)
        venue.advance(60)
    run_job(app, poll_open_orders)
    return {
        "accounts": "/accounts",
        "account": f"/accounts/{kis.account_id}",
        "ticket": f"/accounts/{kis.account_id}/orders/new",
        "orders": "/orders",
        "order": f"/orders/{filled}",
        "risk": "/risk",
        "audit": "/audit",
        "stocks": "/stocks?q=%EC%82%BC%EC%84%B1",  # 삼성
        "attention": "/attention",
    }


def _png_facts(data: bytes) -> tuple[int, int, int]:
    """Width, height and the number of distinct bytes in the picture's pixels (stdlib only)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    pixels, at = b"", 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind = data[at + 4 : at + 8]
        if kind == b"IDAT":
            pixels += data[at + 8 : at + 8 + length]
        at += 12 + length
    return width, height, len(set(zlib.decompress(pixels)))


def _has_cjk_font() -> bool:
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return False
    fonts = subprocess.run([fc_list], capture_output=True, text=True, check=False).stdout
    return "cjk" in fonts.lower()


def test_main_pages_fit_desktop_and_phone_and_are_photographed(
    app, client, api_headers, browser, live_gateway, venues, tmp_path
):
    from playwright.sync_api import expect

    create_operator(app)
    pages = _seed(app, client, api_headers, venues)
    if not any(r.rule == "/attention" for r in app.url_map.iter_rules()):
        del pages["attention"]
    keep = os.environ.get("GATEWAY_SCREENSHOTS") == "1"
    if keep:
        assert _has_cjk_font(), "Korean text needs a CJK font: make chromium (fonts-noto-cjk)"
        DOCS.mkdir(parents=True, exist_ok=True)
    folder = DOCS if keep else tmp_path
    problems: list[str] = []
    for width_name, (width, height) in WIDTHS.items():
        context = browser.new_context(
            base_url=live_gateway,
            viewport={"width": width, "height": height},
            device_scale_factor=1,
            is_mobile=width_name == "phone",
            has_touch=width_name == "phone",
            locale="ko-KR",
            timezone_id="Asia/Seoul",
        )
        context.set_default_timeout(10_000)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.goto("/login")
        page.get_by_label("Username").fill("operator")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("link", name="Accounts").first).to_be_visible()
        for name, path in pages.items():
            response = page.goto(path)
            assert response is not None and response.status == 200, (path, response)
            page.wait_for_load_state("load")
            if name in ("order", "stocks"):
                expect(page.locator("main")).to_contain_text("삼성전자")
            if name == "ticket":  # the ticket's script at work: the stock's name and its tick
                page.get_by_label("Symbol").fill("005930")
                page.get_by_label("Quantity").fill("3")
                page.get_by_label("Limit price").fill("253000")
                expect(page.locator("#symbol-name")).to_contain_text("삼성전자")
                expect(page.locator("#tick-hint")).to_contain_text("on the tick")
            overflow = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            if width_name == "phone":
                # innerWidth too: a phone zooms out (widens the layout) to fit a page too wide.
                assert overflow[0] <= overflow[1] == width, (name, "wider than the phone", overflow)
            target = folder / f"{name}-{width_name}.png"
            page.screenshot(path=str(target), animations="disabled", caret="hide")
            data = target.read_bytes()
            shot_width, shot_height, colours = _png_facts(data)
            assert (shot_width, shot_height) == (width, height), (name, shot_width, shot_height)
            assert len(data) > 8_000 and colours > 16, (name, len(data), colours)
        context.close()
    assert problems == [], problems
