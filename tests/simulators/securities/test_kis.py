"""The KIS simulator over real HTTP: one test per protocol rule of kis_kiwoom.md Part 1."""

from __future__ import annotations

import base64
import json
from collections import namedtuple
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests

from simulators.krx import KST

from .conftest import KIS_ACCOUNT, KIS_KEY, KIS_SECRET, START, TIMEOUT, Sim

ORDER_CASH = "/uapi/domestic-stock/v1/trading/order-cash"
RVSECNCL = "/uapi/domestic-stock/v1/trading/order-rvsecncl"
BALANCE = "/uapi/domestic-stock/v1/trading/inquire-balance"
CCLD = "/uapi/domestic-stock/v1/trading/inquire-daily-ccld"
PSBL = "/uapi/domestic-stock/v1/trading/inquire-psbl-order"
PRICE = "/uapi/domestic-stock/v1/quotations/inquire-price"


def open_account(sim: Sim, cash: str = "10000000", **extra: Any) -> None:
    body = {
        "app_key": KIS_KEY,
        "app_secret": KIS_SECRET,
        "account_number": KIS_ACCOUNT,
        "product_code": "01",
        "cash": cash,
        **extra,
    }
    r = sim.http.post(f"{sim.url}/_sim/accounts", json=body, timeout=TIMEOUT)
    assert r.status_code == 201, r.text


def token_request(sim: Sim, key: str = KIS_KEY, secret: str = KIS_SECRET) -> requests.Response:
    # As the official kis_auth.py sends it: a JSON string with these headers.
    payload = {"grant_type": "client_credentials", "appkey": key, "appsecret": secret}
    headers = {"Content-Type": "application/json", "Accept": "text/plain", "charset": "UTF-8"}
    return sim.http.post(
        f"{sim.url}/oauth2/tokenP", data=json.dumps(payload), headers=headers, timeout=TIMEOUT
    )


def headers(token: str, tr_id: str, **extra: str) -> dict[str, str]:
    return {
        "authorization": f"Bearer {token}",
        "appkey": KIS_KEY,
        "appsecret": KIS_SECRET,
        "tr_id": tr_id,
        "custtype": "P",
        **extra,
    }


@pytest.fixture
def kis_sim(start_sim: Any) -> Sim:
    sim = start_sim("kis")
    open_account(sim, positions={"005930": 10})
    return sim


@pytest.fixture
def token(kis_sim: Sim) -> str:
    r = token_request(kis_sim)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def order(sim: Sim, token: str, tr_id: str = "TTTC0012U", **body: str) -> requests.Response:
    payload = {
        "CANO": KIS_ACCOUNT,
        "ACNT_PRDT_CD": "01",
        "PDNO": "005930",
        "ORD_DVSN": "00",
        "ORD_QTY": "1",
        "ORD_UNPR": "200000",
        **body,
    }
    return sim.http.post(
        f"{sim.url}{ORDER_CASH}", json=payload, headers=headers(token, tr_id), timeout=TIMEOUT
    )


def account_params(**extra: str) -> dict[str, str]:
    return {"CANO": KIS_ACCOUNT, "ACNT_PRDT_CD": "01", **extra}


# ---- OAuth --------------------------------------------------------------------------------


def test_token_has_four_fields_kst_expiry_and_an_hs512_jwt_whose_jti_is_the_app_key(
    kis_sim: Sim,
) -> None:
    r = token_request(kis_sim)
    body = r.json()
    assert r.status_code == 200
    assert set(body) == {"access_token", "access_token_token_expired", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 86400
    header_b64, payload_b64, _ = body["access_token"].split(".")
    decode = lambda part: json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # noqa: E731
    assert decode(header_b64) == {"typ": "JWT", "alg": "HS512"}
    payload = decode(payload_b64)
    assert payload["jti"] == KIS_KEY and payload["iss"] == "unogw" and payload["sub"] == "token"
    assert payload["exp"] - payload["iat"] == 86400
    expiry = datetime.strptime(body["access_token_token_expired"], "%Y-%m-%d %H:%M:%S")
    assert expiry.replace(tzinfo=KST) == START + timedelta(days=1)
    assert int(expiry.replace(tzinfo=KST).timestamp()) == payload["exp"]


def test_same_token_within_six_hours_keeps_its_original_expiry(kis_sim: Sim) -> None:
    first = token_request(kis_sim).json()
    kis_sim.advance(61)
    again = token_request(kis_sim).json()
    assert again["access_token"] == first["access_token"]
    assert again["access_token_token_expired"] == first["access_token_token_expired"]
    assert again["expires_in"] == 86400 - 61  # "remaining" (the default switch)
    reused = kis_sim.ledger("token_reused")
    assert len(reused) == 1 and reused[0]["app_key"] == KIS_KEY


def test_second_request_within_a_minute_is_refused_403_egw00133(kis_sim: Sim) -> None:
    assert token_request(kis_sim).status_code == 200
    kis_sim.advance(59)
    r = token_request(kis_sim)
    assert r.status_code == 403
    assert r.json() == {
        "error_description": "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)",
        "error_code": "EGW00133",
    }
    refused = kis_sim.ledger("token_refused")
    assert [e["reason"] for e in refused] == ["one a minute"]


def test_a_new_token_after_six_hours(kis_sim: Sim) -> None:
    first = token_request(kis_sim).json()
    kis_sim.advance(6 * 3600 + 1)
    second = token_request(kis_sim).json()
    assert second["access_token"] != first["access_token"]
    assert len(kis_sim.ledger("token_issued")) == 2


@pytest.mark.parametrize(
    ("key", "secret", "code", "message"),
    [
        ("PS" + "X" * 34, KIS_SECRET, "EGW00103", "유효하지 않은 AppKey입니다."),
        (KIS_KEY, "W" * 180, "EGW00105", "유효하지 않은 AppSecret입니다."),
    ],
)
def test_bad_app_key_or_secret_is_403(
    kis_sim: Sim, key: str, secret: str, code: str, message: str
) -> None:
    r = token_request(kis_sim, key, secret)
    assert r.status_code == 403
    assert r.json() == {"error_code": code, "error_description": message}


def test_token_refusal_fault_answers_egw00133(kis_sim: Sim) -> None:
    kis_sim.fault(kind="token_refusal", path_prefix="/oauth2/tokenP")
    r = token_request(kis_sim)
    assert r.status_code == 403 and r.json()["error_code"] == "EGW00133"
    assert token_request(kis_sim).status_code == 200  # the fault was for one request


def test_expired_token_is_http_500_egw00123(kis_sim: Sim, token: str) -> None:
    kis_sim.advance(86400 + 1)
    r = kis_sim.http.get(
        f"{kis_sim.url}{BALANCE}", params=account_params(), headers=headers(token, "TTTC8434R")
    )
    assert r.status_code == 500
    assert r.json() == {"rt_cd": "1", "msg_cd": "EGW00123", "msg1": "기간이 만료된 token 입니다."}


def test_revoke_all_fault_makes_the_token_invalid_egw00121(kis_sim: Sim, token: str) -> None:
    kis_sim.fault(kind="revoke_all_tokens")
    r = kis_sim.http.get(
        f"{kis_sim.url}{BALANCE}", params=account_params(), headers=headers(token, "TTTC8434R")
    )
    assert r.status_code == 500 and r.json()["msg_cd"] == "EGW00121"
    assert kis_sim.ledger("tokens_revoked_all")[0]["revoked"] == 1


def test_revoke_p_revokes_and_a_new_token_follows(kis_sim: Sim, token: str) -> None:
    r = kis_sim.http.post(
        f"{kis_sim.url}/oauth2/revokeP",
        json={"appkey": KIS_KEY, "appsecret": KIS_SECRET, "token": token},
    )
    assert r.status_code == 200 and r.json()["code"] == 200
    assert kis_sim.ledger("token_revoked")[0]["app_key"] == KIS_KEY
    kis_sim.advance(61)
    fresh = token_request(kis_sim).json()["access_token"]
    assert fresh != token


def test_approval_takes_secretkey_and_hashkey_answers_hash(kis_sim: Sim) -> None:
    r = kis_sim.http.post(
        f"{kis_sim.url}/oauth2/Approval",
        json={"grant_type": "client_credentials", "appkey": KIS_KEY, "secretkey": KIS_SECRET},
    )
    assert r.status_code == 200 and len(r.json()["approval_key"]) == 36
    r = kis_sim.http.post(
        f"{kis_sim.url}/uapi/hashkey",
        json={"CANO": KIS_ACCOUNT},
        headers={"appkey": KIS_KEY, "appsecret": KIS_SECRET},
    )
    assert r.status_code == 200 and len(r.json()["HASH"]) == 64


# ---- envelope and headers -------------------------------------------------------------------


def test_headers_are_safe_for_the_official_clients_namedtuples(kis_sim: Sim, token: str) -> None:
    r = kis_sim.http.get(
        f"{kis_sim.url}{BALANCE}", params=account_params(), headers=headers(token, "TTTC8434R")
    )
    names = list(r.raw.headers.keys())
    lower = [n for n in names if n.islower()]
    # kis_auth.py builds namedtuple("header", <all-lowercase names>) and ("body", <keys>).
    namedtuple("header", lower)
    namedtuple("body", r.json().keys())
    assert {"tr_id", "tr_cont", "gt_uid"} <= set(lower)
    assert r.headers["tr_id"] == "TTTC8434R" and len(r.headers["gt_uid"]) == 32
    assert {"rt_cd", "msg_cd", "msg1"} <= set(r.json())


def test_rate_limit_is_http_500_egw00201(start_sim: Any) -> None:
    sim = start_sim("kis", paper=True, rate_limit_per_second=2)
    open_account(sim)
    tok = token_request(sim).json()["access_token"]
    answers = [
        sim.http.get(
            f"{sim.url}{BALANCE}", params=account_params(), headers=headers(tok, "VTTC8434R")
        )
        for _ in range(3)
    ]
    assert [a.status_code for a in answers[:2]] == [200, 200]
    assert answers[2].status_code == 500
    assert answers[2].json() == {
        "rt_cd": "1",
        "msg_cd": "EGW00201",
        "msg1": "초당 거래건수를 초과하였습니다.",
    }


# ---- orders ---------------------------------------------------------------------------------


@pytest.mark.parametrize("tr_id", ["TTTC0012U", "TTTC0802U"])
def test_order_cash_accepts_new_and_legacy_tr_ids(kis_sim: Sim, token: str, tr_id: str) -> None:
    r = order(kis_sim, token, tr_id)
    body = r.json()
    assert r.status_code == 200
    assert (body["rt_cd"], body["msg_cd"], body["msg1"]) == (
        "0",
        "APBK0013",
        "주문 전송 완료 되었습니다.",
    )
    assert set(body["output"]) == {"KRX_FWDG_ORD_ORGNO", "ODNO", "ORD_TMD"}
    assert len(body["output"]["ODNO"]) == 10 and body["output"]["ORD_TMD"] == "100000"
    placed = kis_sim.ledger("order_placed")
    assert len(placed) == 1 and placed[0]["order_no"] == body["output"]["ODNO"]


def test_paper_host_takes_v_tr_ids_and_refuses_real_ones(start_sim: Any) -> None:
    sim = start_sim("kis", paper=True)
    open_account(sim)
    tok = token_request(sim).json()["access_token"]
    ok = order(sim, tok, "VTTC0012U")
    assert ok.status_code == 200 and ok.json()["msg_cd"] == "40600000"
    assert ok.json()["msg1"] == "모의투자 매수주문이 완료 되었습니다."
    wrong = order(sim, tok, "TTTC0012U")
    assert wrong.status_code == 500 and wrong.json()["msg_cd"] == "EGW2004"


def test_real_host_refuses_paper_tr_ids(kis_sim: Sim, token: str) -> None:
    r = order(kis_sim, token, "VTTC0012U")
    assert r.status_code == 500 and r.json()["rt_cd"] == "1"


@pytest.mark.parametrize("exchange", ["KRX", "NXT", "SOR"])
def test_order_cash_routes_by_excg_id_dvsn_cd(kis_sim: Sim, token: str, exchange: str) -> None:
    r = order(kis_sim, token, EXCG_ID_DVSN_CD=exchange, SLL_TYPE="", CNDT_PRIC="")
    assert r.json()["rt_cd"] == "0"
    rows = kis_sim.http.get(
        f"{kis_sim.url}{CCLD}", params=account_params(), headers=headers(token, "TTTC0081R")
    ).json()["output1"]
    assert rows[0]["excg_id_dvsn_cd"] == exchange


@pytest.mark.parametrize(
    ("body", "rt_cd", "msg_cd"),
    [
        ({"ORD_QTY": "1000", "ORD_UNPR": "250000"}, "7", "APBK0952"),  # 250,000,000 > cash
        ({"ORD_UNPR": "200010"}, "1", "APBK0506"),  # off the 500-won tick
        ({"ORD_UNPR": "500000"}, "1", "APBK0508"),  # above the +30 % limit
        ({"PDNO": "999999"}, "1", "APBK0656"),
        ({"PDNO": "001470", "ORD_UNPR": "347"}, "1", "APBK0627"),  # 삼부토건, halted
    ],
)
def test_business_rejections_are_http_200_with_rt_cd_not_zero(
    kis_sim: Sim, token: str, body: dict[str, str], rt_cd: str, msg_cd: str
) -> None:
    r = order(kis_sim, token, **body)
    assert r.status_code == 200
    assert (r.json()["rt_cd"], r.json()["msg_cd"]) == (rt_cd, msg_cd)


def test_selling_more_than_held_is_rejected(kis_sim: Sim, token: str) -> None:
    r = order(kis_sim, token, "TTTC0011U", ORD_QTY="11", ORD_UNPR="300000")
    assert r.status_code == 200 and r.json()["msg_cd"] == "APBK0400"


def rvsecncl(sim: Sim, token: str, odno: str, **body: str) -> requests.Response:
    payload = {
        "CANO": KIS_ACCOUNT,
        "ACNT_PRDT_CD": "01",
        "KRX_FWDG_ORD_ORGNO": "",
        "ORGN_ODNO": odno,
        "ORD_DVSN": "00",
        "RVSE_CNCL_DVSN_CD": "02",
        "ORD_QTY": "0",
        "ORD_UNPR": "0",
        "QTY_ALL_ORD_YN": "Y",
        **body,
    }
    return sim.http.post(
        f"{sim.url}{RVSECNCL}", json=payload, headers=headers(token, "TTTC0013U"), timeout=TIMEOUT
    )


def test_amend_and_cancel_get_new_order_numbers(kis_sim: Sim, token: str) -> None:
    kis_sim.pin("005930", 250000)
    placed = order(kis_sim, token, ORD_QTY="3", ORD_UNPR="240000").json()["output"]["ODNO"]
    amended = rvsecncl(
        kis_sim,
        token,
        placed.lstrip("0"),
        RVSE_CNCL_DVSN_CD="01",
        ORD_UNPR="241000",
        QTY_ALL_ORD_YN="N",
        ORD_QTY="2",
    )
    assert amended.json()["rt_cd"] == "0", amended.text
    new_no = amended.json()["output"]["ODNO"]
    assert new_no != placed
    cancel = rvsecncl(kis_sim, token, new_no, KRX_FWDG_ORD_ORGNO="06010")
    assert cancel.json()["rt_cd"] == "0"
    assert cancel.json()["output"]["ODNO"] not in {placed, new_no}
    again = rvsecncl(kis_sim, token, new_no)
    assert again.status_code == 200 and again.json()["msg1"] == "정정/취소할 수량이 없습니다."
    assert [e["order_no"] for e in kis_sim.ledger("order_amended")] == [placed]
    assert [e["order_no"] for e in kis_sim.ledger("order_cancelled")] == [new_no]


# ---- inquiries ------------------------------------------------------------------------------


def test_inquire_balance_pages_with_tr_cont_and_ctx_area(start_sim: Any) -> None:
    sim = start_sim("kis", balance_page_size=2)
    positions = {"005930": 10, "000660": 1, "035720": 5, "069500": 3, "0001A0": 7}
    open_account(sim, positions=positions)
    tok = token_request(sim).json()["access_token"]
    seen: list[str] = []
    letters: list[str] = []
    params, extra = account_params(INQR_DVSN="02", CTX_AREA_FK100="", CTX_AREA_NK100=""), {}
    for _ in range(5):
        r = sim.http.get(
            f"{sim.url}{BALANCE}",
            params=params,
            headers=headers(tok, "TTTC8434R", tr_cont=extra.get("tr_cont", "")),
        )
        body = r.json()
        letters.append(r.headers["tr_cont"])
        seen += [row["pdno"] for row in body["output1"]]
        assert len(body["ctx_area_fk100"]) == 100 and len(body["ctx_area_nk100"]) == 100
        assert isinstance(body["output2"], list) and len(body["output2"]) == 1
        if r.headers["tr_cont"] in {"D", "E"}:
            break
        # python-kis sends the cursors lowercase: the server reads them in either case.
        params = account_params(
            INQR_DVSN="02",
            ctx_area_fk100=body["ctx_area_fk100"],
            ctx_area_nk100=body["ctx_area_nk100"],
        )
        extra = {"tr_cont": "N"}
    assert letters == ["F", "M", "E"]
    assert sorted(seen) == sorted(positions)
    row = sim.http.get(
        f"{sim.url}{BALANCE}", params=account_params(), headers=headers(tok, "TTTC8434R")
    ).json()["output1"][0]
    assert row["pdno"] == "0001A0" and row["hldg_qty"] == "7" and row["prdt_name"] == "덕양에너젠"


def test_single_page_balance_is_d_and_sums_match(kis_sim: Sim, token: str) -> None:
    r = kis_sim.http.get(
        f"{kis_sim.url}{BALANCE}", params=account_params(), headers=headers(token, "TTTC8434R")
    )
    assert r.headers["tr_cont"] == "D"
    body = r.json()
    row, summary = body["output1"][0], body["output2"][0]
    assert Decimal(row["evlu_amt"]) == Decimal(row["prpr"]) * 10
    assert summary["dnca_tot_amt"] == "10000000"
    assert Decimal(summary["tot_evlu_amt"]) == 10_000_000 + Decimal(row["evlu_amt"])


def test_dropped_order_executes_once_and_daily_ccld_reconciles_it(kis_sim: Sim, token: str) -> None:
    kis_sim.fault(kind="drop", path_prefix=ORDER_CASH)
    with pytest.raises(requests.ConnectionError):
        order(kis_sim, token, ORD_QTY="2", ORD_UNPR="200000")
    placed = kis_sim.ledger("order_placed")
    assert len(placed) == 1  # the broker acted exactly once; the client never heard back
    r = kis_sim.http.get(
        f"{kis_sim.url}{CCLD}",
        params=account_params(
            INQR_STRT_DT="20260303",
            INQR_END_DT="20260303",
            PDNO="005930",
            SLL_BUY_DVSN_CD="02",
            CCLD_DVSN="00",
            INQR_DVSN="00",
        ),
        headers=headers(token, "TTTC0081R"),
    )
    rows = r.json()["output1"]
    assert [row["odno"] for row in rows] == [placed[0]["order_no"]]
    assert rows[0]["ord_qty"] == "2" and rows[0]["excg_dvsn_cd"] == "01"
    assert rows[0]["ord_dt"] == "20260303" and rows[0]["ord_tmd"] == "100000"


def test_daily_ccld_pages_and_continued_pages_keep_the_first_filters(start_sim: Any) -> None:
    sim = start_sim("kis", ccld_page_size=2)
    open_account(sim)
    tok = token_request(sim).json()["access_token"]
    numbers = [
        order(sim, tok, ORD_UNPR=str(200000 - i * 500)).json()["output"]["ODNO"] for i in range(3)
    ]
    first = sim.http.get(
        f"{sim.url}{CCLD}", params=account_params(INQR_DVSN="01"), headers=headers(tok, "TTTC0081R")
    )
    assert first.headers["tr_cont"] == "F"
    body = first.json()
    # The official sample's page-2 call shuffles its filters; the cursor's filters win.
    second = sim.http.get(
        f"{sim.url}{CCLD}",
        params=account_params(
            INQR_DVSN="005930",
            CCLD_DVSN="01",
            CTX_AREA_FK100=body["ctx_area_fk100"],
            CTX_AREA_NK100=body["ctx_area_nk100"],
        ),
        headers=headers(tok, "TTTC0081R", tr_cont="N"),
    )
    assert second.headers["tr_cont"] == "E"
    got = [r["odno"] for r in body["output1"]] + [r["odno"] for r in second.json()["output1"]]
    assert got == numbers


def test_inquire_psbl_order_sizes_a_buy(kis_sim: Sim, token: str) -> None:
    r = kis_sim.http.get(
        f"{kis_sim.url}{PSBL}",
        params=account_params(
            PDNO="005930",
            ORD_UNPR="200000",
            ORD_DVSN="00",
            CMA_EVLU_AMT_ICLD_YN="N",
            OVRS_ICLD_YN="N",
        ),
        headers=headers(token, "TTTC8908R"),
    )
    out = r.json()["output"]
    assert out["ord_psbl_cash"] == "10000000" and out["nrcvb_buy_qty"] == "49"


def test_inquire_price_reads_params_in_either_case(kis_sim: Sim, token: str) -> None:
    kis_sim.pin("005930", 260000)
    for params in (
        {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "005930"},
        {"fid_cond_mrkt_div_code": "J", "fid_input_iscd": "005930"},
    ):
        r = kis_sim.http.get(
            f"{kis_sim.url}{PRICE}", params=params, headers=headers(token, "FHKST01010100")
        )
        out = r.json()["output"]
        assert r.json()["msg_cd"] == "MCA00000" and out["stck_prpr"] == "260000"
        base = Decimal(out["stck_sdpr"])
        assert Decimal(out["stck_mxpr"]) <= base * Decimal("1.3") < Decimal(out["stck_mxpr"]) + 1000
        assert out["aspr_unit"] == "500"


def test_sim_accounts_validates_the_kis_body(start_sim: Any) -> None:
    sim = start_sim("kis")
    r = sim.http.post(
        f"{sim.url}/_sim/accounts",
        json={"app_key": KIS_KEY, "app_secret": KIS_SECRET, "account_number": "1234", "cash": "1"},
    )
    assert r.status_code == 400


PROFIT = "/uapi/domestic-stock/v1/trading/inquire-period-trade-profit"


def test_period_trade_profit_gives_the_ledgers_charges_per_day_and_stock(
    kis_sim: Sim, token: str
) -> None:
    kis_sim.pin("005930", 250500)
    assert order(kis_sim, token, ORD_QTY="2", ORD_UNPR="250500").json()["rt_cd"] == "0"
    sell = order(kis_sim, token, "TTTC0011U", ORD_QTY="3", ORD_UNPR="250500")
    assert sell.json()["rt_cd"] == "0"
    fills = kis_sim.ledger("fill")
    assert len(fills) == 2
    day = START.astimezone(KST).strftime("%Y%m%d")
    params = account_params(
        SORT_DVSN="01", INQR_STRT_DT=day, INQR_END_DT=day, CBLC_DVSN="00", PDNO=""
    )
    r = kis_sim.http.get(
        f"{kis_sim.url}{PROFIT}",
        params={**params, "CTX_AREA_FK100": "", "CTX_AREA_NK100": ""},
        headers=headers(token, "TTTC8715R"),
        timeout=TIMEOUT,
    )
    body = r.json()
    assert body["rt_cd"] == "0", body
    (row,) = body["output1"]
    assert (row["trad_dt"], row["pdno"]) == (day, "005930")
    assert (row["buy_qty"], row["sll_qty"]) == ("2", "3")
    assert Decimal(row["fee"]) == sum(Decimal(f["fee"]) for f in fills) > 0
    assert Decimal(row["tl_tax"]) == sum(Decimal(f["tax"]) for f in fills) > 0
    assert body["output2"]["tot_fee"] == row["fee"]
