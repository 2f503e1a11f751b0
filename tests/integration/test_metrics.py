"""``GET /metrics``: Prometheus' format, read by its own parser, agreeing with the orders placed."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_orders_api import upbit  # noqa: F401 - a fixture used below
from web_server import metrics as hooks


def _scrape(client, headers) -> dict[str, list]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    families = text_string_to_metric_families(response.get_data(as_text=True))
    return {family.name: family.samples for family in families}


def _order(account_id: int, price: Decimal, quantity: str) -> dict:
    return {
        "account_id": account_id,
        "symbol": "KRW-BTC",
        "side": "BUY",
        "type": "LIMIT",
        "quantity": quantity,
        "limit_price": str(price),
    }


def test_order_counts_match_the_orders_placed(client, api_headers, upbit):  # noqa: F811
    resting = (upbit.price("KRW-BTC") / 2 / 1000).quantize(Decimal(1)) * 1000
    statuses: Counter[str] = Counter()
    for number in range(3):
        placed = client.post(
            "/api/v1/orders",
            json=_order(upbit.account_id, resting, "0.001"),
            headers={**api_headers, "Idempotency-Key": f"m-{number}"},
        )
        assert placed.status_code == 201, placed.get_json()
        statuses[placed.get_json()["status"]] += 1
    cancelled = client.post(
        f"/api/v1/orders/{placed.get_json()['id']}/cancel",
        headers={**api_headers, "Idempotency-Key": "m-cancel"},
    )
    assert cancelled.status_code == 200, cancelled.get_json()
    # What the API says now, by status, is what /metrics must count.
    listed = client.get("/api/v1/orders", headers=api_headers).get_json()["orders"]
    expected = Counter(order["status"] for order in listed)
    assert sum(expected.values()) == 3

    samples = _scrape(client, api_headers)
    assert samples["gateway_metrics_database_up"][0].value == 1
    counted = {
        s.labels["status"]: s.value
        for s in samples["gateway_orders"]
        if s.labels["exchange"] == "UPBIT"
    }
    assert counted == {status: float(n) for status, n in expected.items()}
    assert not samples.get("gateway_orders_in_doubt")  # nothing UNKNOWN or flagged


def test_broker_call_hooks_appear_as_histograms(client, api_headers):
    hooks.observe_broker_call("UPBIT", "place_order", 0.042, "ok")
    hooks.observe_broker_call("UPBIT", "place_order", 7.0, "broker_timeout")
    hooks.observe_rate_limit_wait("UPBIT:orders", 0.3, refused=True)
    samples = _scrape(client, api_headers)
    calls = {
        (s.labels["outcome"], s.labels.get("le")): s.value
        for s in samples["gateway_broker_call_seconds"]
        if s.name == "gateway_broker_call_seconds_bucket" and s.labels["operation"] == "place_order"
    }
    assert calls[("ok", "0.05")] >= 1 and calls[("broker_timeout", "5.0")] == 0
    assert calls[("broker_timeout", "10.0")] >= 1
    refused = [s for s in samples["gateway_rate_limit_refused"] if s.name.endswith("_total")]
    assert refused and refused[0].labels["unit"] == "UPBIT:orders" and refused[0].value >= 1


@pytest.mark.parametrize("who", ["nobody", "reader", "wrong-token"])
def test_metrics_need_an_admin_key_or_the_metrics_token(app, client, make_api_key, who):
    headers = {
        "nobody": {},
        "reader": make_api_key("orders:read"),
        "wrong-token": {"Authorization": "Bearer not-the-token"},
    }[who]
    assert client.get("/metrics", headers=headers).status_code in (401, 403)
    app.config["METRICS_TOKEN"] = "s3cr3t-metrics-token-for-the-scraper"
    try:
        ok = client.get(
            "/metrics", headers={"Authorization": "Bearer s3cr3t-metrics-token-for-the-scraper"}
        )
        assert ok.status_code == 200
        assert client.get("/metrics", headers=headers).status_code in (401, 403)
    finally:
        app.config["METRICS_TOKEN"] = None
