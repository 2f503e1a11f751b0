"""KIS wire shapes ↔ value objects, on recorded sample payloads (no network)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from brokers import Credentials, OrderRequest, OrderStatus, OrderType, Side
from securities.kis import mapping
from web_server.errors import InvalidOrder

CREDS = Credentials(
    api_key="PSkey", api_secret="secret", account_number="50012345", product_code="01"
)
NOW = dt.datetime(2025, 2, 4, 6, 10, 59, tzinfo=dt.UTC)  # 15:10:59 KST


def _limit(**kw: object) -> OrderRequest:
    base = dict(
        symbol="005930",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=Decimal(10),
        client_order_id="c1",
        limit_price=Decimal(70000),
    )
    base.update(kw)
    return OrderRequest(**base)  # type: ignore[arg-type]


def test_token_expiry_kst_becomes_aware_utc() -> None:
    # Captured sample: KST 2025-02-05 13:39:00 equals the JWT exp 1738730340.
    token = mapping.parse_token(
        {
            "access_token": "eyJ.x.y",
            "access_token_token_expired": "2025-02-05 13:39:00",
            "token_type": "Bearer",
            "expires_in": 86400,
        }
    )
    assert token.expires_at == dt.datetime(2025, 2, 5, 4, 39, tzinfo=dt.UTC)
    assert token.expires_at.timestamp() == 1738730340
    assert token.expires_in == 86400
    assert token.token_type == "Bearer"
    assert "eyJ" not in repr(token)


def test_paper_tr_ids_get_the_v_prefix() -> None:
    assert mapping.tr_id("TTTC0012U", paper=True) == "VTTC0012U"
    assert mapping.tr_id("CTSC9215R", paper=True) == "VTSC9215R"
    assert mapping.tr_id("FHKST01010100", paper=True) == "FHKST01010100"
    assert mapping.tr_id("TTTC0012U", paper=False) == "TTTC0012U"


def test_order_cash_body_limit_and_market() -> None:
    body = mapping.order_cash_body(_limit(route="NXT"), CREDS)
    assert body == {
        "CANO": "50012345",
        "ACNT_PRDT_CD": "01",
        "PDNO": "005930",
        "ORD_DVSN": "00",
        "ORD_QTY": "10",
        "ORD_UNPR": "70000",
        "EXCG_ID_DVSN_CD": "NXT",
        "SLL_TYPE": "",
        "CNDT_PRIC": "",
    }
    market = mapping.order_cash_body(
        _limit(order_type=OrderType.MARKET, limit_price=None, side=Side.SELL), CREDS
    )
    assert (market["ORD_DVSN"], market["ORD_UNPR"], market["SLL_TYPE"]) == ("01", "0", "01")
    assert market["EXCG_ID_DVSN_CD"] == "KRX"


@pytest.mark.parametrize(
    "changes",
    [
        {"quantity": Decimal("1.5")},
        {"quantity": Decimal(0)},
        {"limit_price": None},
        {"limit_price": Decimal("70000.5")},
        {"route": "NYSE"},
    ],
)
def test_order_cash_body_refuses_what_kis_cannot_take(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidOrder) as info:
        mapping.order_cash_body(_limit(**changes), CREDS)
    assert info.value.broker == "KIS"


def test_order_ack_keeps_the_branch_for_amend_and_cancel() -> None:
    output = {"KRX_FWDG_ORD_ORGNO": "06590", "ODNO": "0000006555", "ORD_TMD": "151059"}
    request = _limit()
    order = mapping.parse_order_ack(output, request, now=NOW)
    assert order.broker_order_id == "0000006555"
    assert order.status is OrderStatus.SUBMITTED
    assert order.created_at == dt.datetime(2025, 2, 4, 6, 10, 59, tzinfo=dt.UTC)
    assert order.raw["ord_gno_brno"] == "06590"
    assert order.limit_price == Decimal(70000)
    assert output == {"KRX_FWDG_ORD_ORGNO": "06590", "ODNO": "0000006555", "ORD_TMD": "151059"}


_ROW = {
    "ord_dt": "20250204",
    "ord_gno_brno": "06590",
    "odno": "0000006555",
    "orgn_odno": "",
    "ord_dvsn_name": "지정가",
    "sll_buy_dvsn_cd": "02",
    "sll_buy_dvsn_cd_name": "현금매수",
    "pdno": "005930",
    "prdt_name": "삼성전자",
    "ord_qty": "10",
    "ord_unpr": "70000",
    "ord_tmd": "151059",
    "tot_ccld_qty": "4",
    "avg_prvs": "70000",
    "cncl_yn": "N",
    "tot_ccld_amt": "280000",
    "ord_dvsn_cd": "00",
    "cnc_cfrm_qty": "0",
    "rmn_qty": "6",
    "rjct_qty": "0",
    "excg_dvsn_cd": "01",
    "excg_id_dvsn_cd": "KRX",
}


def test_ccld_row_partially_filled() -> None:
    (order,) = mapping.parse_ccld_rows([_ROW])
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert (order.quantity, order.filled_quantity) == (Decimal(10), Decimal(4))
    assert order.average_fill_price == Decimal(70000)
    assert order.side is Side.BUY and order.order_type is OrderType.LIMIT
    assert order.created_at == dt.datetime(2025, 2, 4, 6, 10, 59, tzinfo=dt.UTC)


def test_ccld_cancel_row_is_folded_into_its_original() -> None:
    original = {**_ROW, "tot_ccld_qty": "0", "rmn_qty": "0", "cnc_cfrm_qty": "10", "avg_prvs": "0"}
    cancel = {
        **_ROW,
        "odno": "0000006556",
        "orgn_odno": "0000006555",
        "cncl_yn": "Y",
        "sll_buy_dvsn_cd_name": "현금매수취소",
        "tot_ccld_qty": "0",
        "rmn_qty": "0",
        "cnc_cfrm_qty": "10",
        "ord_tmd": "151100",
    }
    orders = mapping.parse_ccld_rows([cancel, original])
    assert [o.broker_order_id for o in orders] == ["0000006555"]
    assert orders[0].status is OrderStatus.CANCELLED
    assert orders[0].raw["cancel_rows"][0]["odno"] == "0000006556"


def test_ccld_open_order_with_an_unconfirmed_cancel_is_cancel_pending() -> None:
    cancel = {
        **_ROW,
        "odno": "0000006556",
        "orgn_odno": "6555",
        "cncl_yn": "Y",
        "cnc_cfrm_qty": "0",
        "tot_ccld_qty": "0",
        "rmn_qty": "0",
    }
    (order,) = mapping.parse_ccld_rows([_ROW, cancel])
    assert order.status is OrderStatus.CANCEL_PENDING


def test_ccld_amendment_is_an_order_of_its_own_and_statuses() -> None:
    replaced = {**_ROW, "tot_ccld_qty": "0", "rmn_qty": "0", "avg_prvs": "0"}
    amended = {
        **_ROW,
        "odno": "0000006557",
        "orgn_odno": "0000006555",
        "ord_unpr": "69000",
        "sll_buy_dvsn_cd_name": "현금매수정정",
        "tot_ccld_qty": "10",
        "rmn_qty": "0",
        "ord_tmd": "151200",
    }
    rejected = {
        **_ROW,
        "odno": "0000006558",
        "tot_ccld_qty": "0",
        "rmn_qty": "0",
        "rjct_qty": "10",
        "ord_tmd": "151300",
    }
    market = {
        **_ROW,
        "odno": "0000006559",
        "ord_dvsn_cd": "01",
        "ord_unpr": "0",
        "sll_buy_dvsn_cd": "01",
        "tot_ccld_qty": "0",
        "rmn_qty": "10",
        "ord_tmd": "151400",
    }
    orders = mapping.parse_ccld_rows([market, rejected, amended, replaced])
    by_id = {o.broker_order_id: o for o in orders}
    assert [o.broker_order_id for o in orders][0] == "0000006555"  # oldest first
    assert by_id["0000006555"].status is OrderStatus.CANCELLED
    assert by_id["0000006557"].status is OrderStatus.FILLED
    assert by_id["0000006557"].limit_price == Decimal(69000)
    assert by_id["0000006558"].status is OrderStatus.REJECTED
    assert by_id["0000006559"].order_type is OrderType.MARKET
    assert by_id["0000006559"].limit_price is None
    assert by_id["0000006559"].side is Side.SELL
    assert by_id["0000006559"].status is OrderStatus.SUBMITTED


def test_same_order_number_ignores_paper_padding() -> None:
    assert mapping.same_order_number("47589", "0000047589")
    assert not mapping.same_order_number("47589", "0000047588")


def test_holding_and_sold_out_holding() -> None:
    row = {
        "pdno": "005930",
        "prdt_name": "삼성전자",
        "trad_dvsn_name": "현금",
        "hldg_qty": "10",
        "ord_psbl_qty": "8",
        "pchs_avg_pric": "70000.0000",
        "pchs_amt": "700000",
        "prpr": "75000",
        "evlu_amt": "750000",
        "evlu_pfls_amt": "50000",
        "evlu_pfls_rt": "7.14",
    }
    position = mapping.parse_holding(row)
    assert position is not None
    assert position.symbol == "005930" and position.name == "삼성전자"
    assert (position.quantity, position.available_quantity) == (Decimal(10), Decimal(8))
    assert position.avg_price == Decimal("70000.0000")
    assert position.current_price == Decimal(75000)
    assert (position.pnl, position.pnl_pct) == (Decimal(50000), Decimal("7.14"))
    assert mapping.parse_holding({**row, "hldg_qty": "0"}) is None


def test_balance_prefers_orderable_cash() -> None:
    summary = {"dnca_tot_amt": "1000000", "prvs_rcdl_excc_amt": "1000000"}
    balance = mapping.parse_balance(summary, {"ord_psbl_cash": "300000"})
    assert (balance.currency, balance.total, balance.available, balance.locked) == (
        "KRW",
        Decimal(1000000),
        Decimal(300000),
        Decimal(700000),
    )
    fallback = mapping.parse_balance(summary, None)
    assert fallback.available == Decimal(1000000) and fallback.locked == 0


def test_period_trade_profit_rows_give_charges_per_day_and_stock() -> None:
    rows = [
        {"trad_dt": "20261222", "pdno": "005930", "fee": "157", "tl_tax": "710"},
        {"trad_dt": "20261222", "pdno": "005930", "fee": "3", "tl_tax": "0"},  # added up
        {"trad_dt": "20261222", "pdno": "000660", "fee": "12", "tl_tax": "0"},
        {"trad_dt": "", "pdno": "005930", "fee": "99", "tl_tax": "99"},  # no date: skipped
    ]
    assert mapping.parse_day_charges(rows) == {
        (dt.date(2026, 12, 22), "005930"): (Decimal(160), Decimal(710)),
        (dt.date(2026, 12, 22), "000660"): (Decimal(12), Decimal(0)),
    }


def test_history_rows_report_no_charges() -> None:
    (order,) = mapping.parse_ccld_rows([_ROW])
    assert order.fee is None and order.tax is None
