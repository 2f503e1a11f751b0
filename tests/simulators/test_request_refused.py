"""Every simulator records the requests it refuses for rate, auth or session in its ledger.

``GET /_sim/ledger?kind=request_refused`` is how the gateway's tests count, from outside, that a
broker never refused it: each refusal here must show up there with its reason and the broker's
code, exactly as often as it was answered.
"""

from __future__ import annotations

from typing import Any

from simulators.registry import create_simulator


def _refused(client: Any) -> list[tuple[str, str, int]]:
    entries = client.get("/_sim/ledger?kind=request_refused").get_json()["entries"]
    return [(e["reason"], e["code"], e["status"]) for e in entries]


def test_kis_records_rate_and_auth_refusals():
    client = create_simulator("kis", rate_limit_per_second=5).test_client()
    client.post(
        "/_sim/accounts",
        json={
            "app_key": "K" * 36,
            "app_secret": "S" * 180,
            "account_number": "50123456",
            "product_code": "01",
            "cash": "1000000",
        },
    )
    token = client.post(
        "/oauth2/tokenP",
        json={"grant_type": "client_credentials", "appkey": "K" * 36, "appsecret": "S" * 180},
    ).get_json()["access_token"]
    headers = {
        "authorization": f"Bearer {token}",
        "appkey": "K" * 36,
        "appsecret": "S" * 180,
        "tr_id": "TTTC8434R",
    }
    answers = [
        client.get("/uapi/domestic-stock/v1/trading/inquire-balance", headers=headers)
        for _ in range(12)
    ]
    over = [a for a in answers if a.get_json().get("msg_cd") == "EGW00201"]
    assert over and all(a.status_code == 500 for a in over)
    bad_key = client.get(
        "/uapi/domestic-stock/v1/trading/inquire-balance", headers={**headers, "appkey": "X"}
    )
    again = client.post(
        "/oauth2/tokenP",
        json={"grant_type": "client_credentials", "appkey": "K" * 36, "appsecret": "S" * 180},
    )
    assert bad_key.status_code == 500 and again.status_code == 403
    assert _refused(client) == [("rate", "EGW00201", 500)] * len(over) + [
        ("auth", "EGW00103", 500),
        ("rate", "EGW00133", 403),
    ]


def test_kiwoom_records_a_refused_token():
    client = create_simulator("kiwoom").test_client()
    answer = client.post(
        "/api/dostk/acnt",
        headers={"authorization": "Bearer nope", "api-id": "kt00018"},
        json={"qry_tp": "1", "dmst_stex_tp": "KRX"},
    )
    assert "8005" in str(answer.get_json())
    assert _refused(client) == [("session", "8005", answer.status_code)]


def test_upbit_records_429_and_a_bad_jwt():
    client = create_simulator("upbit", quotation_rate=3).test_client()
    answers = [client.get("/v1/market/all") for _ in range(6)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited and all("Remaining-Req" in a.headers for a in answers)
    unauthorized = client.get("/v1/accounts", headers={"Authorization": "Bearer x.y.z"})
    assert unauthorized.status_code == 401
    refused = _refused(client)
    assert refused[:-1] == [("rate", "too_many_requests", 429)] * len(limited)
    assert refused[-1][0] == "auth" and refused[-1][2] == 401


def test_binance_records_weight_refusals():
    client = create_simulator("binance", weight_limit=50).test_client()
    answers = [client.get("/api/v3/exchangeInfo") for _ in range(4)]  # weight 20 each
    assert [a.status_code for a in answers] == [200, 200, 429, 429]
    assert answers[-1].headers["Retry-After"]
    assert _refused(client) == [("rate", "-1003", 429)] * 2


def test_bithumb_records_429():
    client = create_simulator("bithumb", public_rate=2).test_client()
    answers = [client.get("/v1/ticker?markets=KRW-BTC") for _ in range(5)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited
    assert _refused(client) == [("rate", "too_many_requests", 429)] * len(limited)
