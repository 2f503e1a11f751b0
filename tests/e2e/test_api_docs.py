"""The API documentation page renders in a browser cut off from everything but the gateway.

Issue 12: ``/api/v1/docs`` loaded Redoc from a CDN and showed a blank page offline. Its script is
now served by the gateway; this test lets the browser reach the gateway only, records whatever
else the page asks for, and waits for Redoc to draw the operations.
"""

from __future__ import annotations

import re

from playwright.sync_api import expect


def test_the_api_docs_render_with_nothing_but_the_gateway(page, live_gateway, tmp_path):
    elsewhere: list[str] = []

    def only_the_gateway(route):
        url = route.request.url
        if url.startswith(live_gateway):
            route.continue_()
        else:
            elsewhere.append(url)
            route.abort()

    page.route("**/*", only_the_gateway)
    response = page.goto("/api/v1/docs")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    expect(page.get_by_role("heading", name=re.compile("Trading account gateway"))).to_be_visible()
    expect(page.get_by_text("Place an order, once per Idempotency-Key").first).to_be_attached()
    expect(page.get_by_text("application/problem+json").first).to_be_attached()
    page.screenshot(path=str(tmp_path / "api-docs.png"))
    assert elsewhere == []
