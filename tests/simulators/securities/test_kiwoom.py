"""The Kiwoom simulator over real HTTP: one test per protocol rule of kis_kiwoom.md Part 2."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests

from simulators.krx import KST

from .conftest import KIWOOM_ACCOUNT, KIWOOM_KEY, KIWOOM_SECRET, START, TIMEOUT, Sim

ORDR = "/api/dostk/ordr"
ACNT = "/api/dostk/acnt"
STKINFO = "/api/dostk/stkinfo"
JSON = {"Content-Type": "application/json;charset=UTF-8"}


def open_account(sim: Sim, cash: str = "10000000", **extra: Any) -> None:
    body = {
        "app_key": KIWOOM_KEY,
        "secret_key": KIWOOM_SECRET,
        "account_number": KIWOOM_ACCOUNT,
        "cash": cash,
        **extra,
    }
    r = sim.http.post(f"{sim.url}/_sim/accounts", json=body, timeout=TIMEOUT)
    assert r.status_code == 201, r.text


def issue(sim: Sim, key: str = KIWOOM_KEY, secret: str = KIWOOM_SECRET) -> requests.Response:
    body = {"grant_type": "client_credentials", "appkey": key, "secretkey": secret}
    return sim.http.post(f"{sim.url}/oauth2/token", json=body, headers=JSON, timeout=TIMEOUT)


def call(
    sim: Sim, token: str, path: str, api_id: str, body: dict[str, Any], **headers: str
) -> requests.Response:
    h = {**JSON, "api-id": api_id, "authorization": f"Bearer {token}", **headers}
    return sim.http.post(f"{sim.url}{path}", json=body, headers=h, timeout=TIMEOUT)


def buy(sim: Sim, token: str, **body: str) -> requests.Response:
    payload = {
        "dmst_stex_tp": "KRX",
        "stk_cd": "005930",
        "ord_qty": "1",
        "ord_uv": "200000",
        "trde_tp": "0",
        "cond_uv": "",
        **body,
    }
    return call(sim, token, ORDR, body.pop("api_id", "kt10000"), payload)


@pytest.fixture
def kw(start_sim: Any) -> Sim:
    sim = start_sim("kiwoom")
    open_account(sim, positions={"005930": 10})
    return sim


@pytest.fixture
def token(kw: Sim) -> str:
    return str(issue(kw).json()["token"])


def test_token_response_and_no_api_id_needed(kw: Sim) -> None:
    r = issue(kw)
    body = r.json()
    assert r.status_code == 200
    assert set(body) == {"expires_dt", "token_type", "token", "return_code", "return_msg"}
    assert body["token_type"] == "bearer" and body["return_code"] == 0
    expires = datetime.strptime(body["expires_dt"], "%Y%m%d%H%M%S").replace(tzinfo=KST)
    assert expires == START + timedelta(days=1)
    assert kw.ledger("token_issued")[0]["app_key"] == KIWOOM_KEY


def test_bad_keys_are_8001_in_the_observed_embedded_style(kw: Sim) -> None:
    r = issue(kw, secret="wrong")
    assert r.status_code == 200
    assert r.json() == {
        "return_code": 3,
        "return_msg": "인증 실패[8001:App Key와 Secret Key 검증에 실패했습니다]",
    }
    assert issue(kw, key="").json()["return_msg"].startswith("인증 실패[8020:")


@pytest.mark.parametrize(
    ("style", "code", "message"),
    [
        ("return_msg", 3, "인증에 실패했습니다[8005:Token이 유효하지 않습니다]"),
        ("code", 8005, "Token이 유효하지 않습니다"),
    ],
)
def test_revoked_token_is_8005_in_both_styles(
    start_sim: Any, style: str, code: int, message: str
) -> None:
    sim = start_sim("kiwoom", invalid_token_style=style)
    open_account(sim)
    tok = issue(sim).json()["token"]
    r = sim.http.post(
        f"{sim.url}/oauth2/revoke",
        json={"appkey": KIWOOM_KEY, "secretkey": KIWOOM_SECRET, "token": tok},
    )
    assert r.json() == {"return_code": 0, "return_msg": "정상적으로 처리되었습니다"}
    r = call(sim, tok, ACNT, "ka00001", {})
    assert r.status_code == 200 and r.json() == {"return_code": code, "return_msg": message}
    assert sim.ledger("token_revoked")[0]["reason"] == "au10002"


def test_expired_token_after_24_hours_is_8005(kw: Sim, token: str) -> None:
    assert call(kw, token, ACNT, "ka00001", {}).json()["acctNo"] == KIWOOM_ACCOUNT
    kw.advance(86400 + 1)
    assert "[8005:" in call(kw, token, ACNT, "ka00001", {}).json()["return_msg"]


def test_revoke_all_fault_invalidates_tokens(kw: Sim, token: str) -> None:
    kw.fault(kind="revoke_all_tokens")
    assert call(kw, token, ACNT, "ka00001", {}).json()["return_code"] == 3
    assert issue(kw).json()["return_code"] == 0  # a new token is available at once


def test_token_refusal_fault(kw: Sim) -> None:
    kw.fault(kind="token_refusal")
    assert "[8009:" in issue(kw).json()["return_msg"]
    assert kw.ledger("token_refused")[0]["reason"] == "fault"


@pytest.mark.parametrize(("status", "style"), [(200, "return_msg"), (429, "code")])
def test_rate_limit_is_1700(start_sim: Any, status: int, style: str) -> None:
    sim = start_sim(
        "kiwoom", rate_limit_per_second=2, rate_limit_status=status, invalid_token_style=style
    )
    open_account(sim)
    tok = issue(sim).json()["token"]
    answers = [call(sim, tok, ACNT, "ka00001", {}) for _ in range(3)]
    assert [a.json()["return_code"] for a in answers[:2]] == [0, 0]
    last = answers[2]
    assert last.status_code == status
    if style == "code":
        assert last.json()["return_code"] == 1700
    else:
        assert last.json() == {
            "return_code": 5,
            "return_msg": "허용된 요청 개수를 초과하였습니다"
            "[1700:허용된 API 요청 개수를 초과하였습니다. 유량=2, API ID=ka00001]",
        }


def test_api_id_missing_or_at_the_wrong_uri(kw: Sim, token: str) -> None:
    r = kw.http.post(f"{kw.url}{ACNT}", json={}, headers={"authorization": f"Bearer {token}"})
    assert "[1501:" in r.json()["return_msg"]
    r = call(kw, token, ACNT, "kt10000", {})
    assert "[1504:" in r.json()["return_msg"] and "URI=/api/dostk/acnt" in r.json()["return_msg"]


def test_buy_amend_cancel_with_new_order_numbers(kw: Sim, token: str) -> None:
    kw.pin("005930", 250000)
    r = buy(kw, token, ord_qty="3", ord_uv="240000")
    placed = r.json()
    assert r.headers["api-id"] == "kt10000" and placed["return_code"] == 0
    assert len(placed["ord_no"]) == 7 and placed["dmst_stex_tp"] == "KRX"
    amend = call(
        kw,
        token,
        ORDR,
        "kt10002",
        {
            "dmst_stex_tp": "KRX",
            "orig_ord_no": placed["ord_no"],
            "stk_cd": "005930",
            "mdfy_qty": "2",
            "mdfy_uv": "241000",
            "mdfy_cond_uv": "",
        },
    ).json()
    assert amend["base_orig_ord_no"] == placed["ord_no"] and amend["mdfy_qty"] == "000000000002"
    assert amend["return_msg"] == "매수정정 주문입력이 완료되었습니다"
    cancel = call(
        kw,
        token,
        ORDR,
        "kt10003",
        {
            "dmst_stex_tp": "KRX",
            "orig_ord_no": amend["ord_no"],
            "stk_cd": "005930",
            "cncl_qty": "0",
        },
    ).json()
    assert cancel["base_orig_ord_no"] == amend["ord_no"] and cancel["cncl_qty"] == "000000000002"
    assert len({placed["ord_no"], amend["ord_no"], cancel["ord_no"]}) == 3
    assert len(kw.ledger("order_amended")) == 1 and len(kw.ledger("order_cancelled")) == 1
    history = call(
        kw,
        token,
        ACNT,
        "kt00007",
        {
            "ord_dt": "20260303",
            "qry_tp": "1",
            "stk_bond_tp": "0",
            "sell_tp": "0",
            "stk_cd": "",
            "fr_ord_no": "",
            "dmst_stex_tp": "%",
        },
    ).json()
    numbers = [row["ord_no"] for row in history["acnt_ord_cntr_prps_dtl"]]
    assert numbers == sorted([placed["ord_no"], amend["ord_no"], cancel["ord_no"]])


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"ord_qty": "1000", "ord_uv": "250000"}, "RC4025"),
        ({"ord_uv": "200010"}, "RC4007"),
        ({"stk_cd": "001840", "ord_uv": "2215"}, "RC4017"),  # 이화공영, halted
        ({"stk_cd": "999999"}, "[1902:"),
        ({"ord_qty": ""}, "[1511:"),
    ],
)
def test_rejections(kw: Sim, token: str, body: dict[str, str], needle: str) -> None:
    r = buy(kw, token, **body)
    assert (
        r.status_code == 200 and r.json()["return_code"] != 0 and needle in r.json()["return_msg"]
    )


def test_mock_host_trades_krx_only(start_sim: Any) -> None:
    sim = start_sim("kiwoom", paper=True)
    open_account(sim)
    tok = issue(sim).json()["token"]
    assert buy(sim, tok, dmst_stex_tp="NXT").json()["return_code"] == 2
    assert buy(sim, tok).json()["return_code"] == 0


def test_kt00018_pages_with_cont_yn_and_next_key(start_sim: Any) -> None:
    sim = start_sim("kiwoom", page_size=2)
    open_account(sim, positions={"005930": 3, "000660": 1, "035720": 5, "069500": 2})
    tok = issue(sim).json()["token"]
    seen, headers, conts = [], {}, []
    for _ in range(4):
        r = call(sim, tok, ACNT, "kt00018", {"qry_tp": "1", "dmst_stex_tp": "KRX"}, **headers)
        body = r.json()
        conts.append(r.headers["cont-yn"])
        seen += [row["stk_cd"] for row in body["acnt_evlt_remn_indv_tot"]]
        if r.headers["cont-yn"] != "Y":
            break
        headers = {"cont-yn": "Y", "next-key": r.headers["next-key"]}
    assert conts == ["Y", "N"]
    assert sorted(seen) == ["A000660", "A005930", "A035720", "A069500"]
    assert len(body["tot_evlt_amt"]) == 15 and body["tot_evlt_amt"].isdigit()
    row = body["acnt_evlt_remn_indv_tot"][0]
    assert len(row["cur_prc"]) == 12 and len(row["rmnd_qty"]) == 15


def test_ka10001_signed_prices(kw: Sim, token: str) -> None:
    r = call(kw, token, STKINFO, "ka10001", {"stk_cd": "005930"})
    body = r.json()
    assert body["stk_nm"] == "삼성전자" and body["upl_pric"].startswith("+")
    assert body["lst_pric"].startswith("-") and body["pre_sig"] in {"2", "3", "5"}
    assert call(kw, token, STKINFO, "ka10001", {"stk_cd": "005930_NX"}).json()["return_code"] == 0


def test_dropped_order_executes_once_and_history_settles_it(kw: Sim, token: str) -> None:
    kw.fault(kind="drop", path_prefix=ORDR)
    with pytest.raises(requests.ConnectionError):
        buy(kw, token, ord_qty="2")
    placed = kw.ledger("order_placed")
    assert len(placed) == 1
    open_orders = call(
        kw,
        token,
        ACNT,
        "ka10075",
        {"all_stk_tp": "0", "trde_tp": "0", "stk_cd": "", "stex_tp": "0"},
    ).json()["oso"]
    assert [o["ord_no"] for o in open_orders] == [placed[0]["order_no"]]
    assert open_orders[0]["io_tp_nm"] == "+매수" and open_orders[0]["oso_qty"] == "2"


def test_fills_appear_in_ka10076(kw: Sim, token: str) -> None:
    kw.pin("005930", 250000)
    buy(kw, token, ord_uv="250000", ord_qty="2")
    fills = call(kw, token, ACNT, "ka10076", {"qry_tp": "0", "sell_tp": "0", "stex_tp": "0"})
    row = fills.json()["cntr"][0]
    assert row["cntr_qty"] == "2" and row["cntr_pric"] == "250000" and row["ord_stt"] == "체결"
    assert kw.ledger("fill")[0]["quantity"] == "2"


def test_ka10076_charges_are_the_ledgers_to_the_won(kw: Sim, token: str) -> None:
    # Two executions of one share each (liquidity 1 a step): their charges add up per order.
    kw.http.post(
        f"{kw.url}/_sim/prices",
        json={"symbol": "005930", "price": "250500", "liquidity": "1"},
        timeout=TIMEOUT,
    ).raise_for_status()
    order_no = buy(kw, token, ord_uv="250500", ord_qty="2").json()["ord_no"]
    for _ in range(10):
        if len(kw.ledger("fill")) == 2:
            break
        kw.advance(30)
    fills = [f for f in kw.ledger("fill") if f["order_no"] == order_no]
    assert len(fills) == 2
    body = {"qry_tp": "0", "sell_tp": "0", "stex_tp": "0"}
    (row,) = call(kw, token, ACNT, "ka10076", body).json()["cntr"]
    assert row["cntr_qty"] == "2"
    assert Decimal(row["tdy_trde_cmsn"]) == sum(Decimal(f["fee"]) for f in fills) == 2 * 37
    assert Decimal(row["tdy_trde_tax"]) == 0  # a buy pays no tax
