"""Kiwoom wire shapes ↔ value objects, on the official spec's samples (no network)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from brokers import OrderRequest, OrderStatus, OrderType, Side
from securities.kiwoom import mapping
from web_server.errors import InvalidOrder

NOW = dt.datetime(2024, 11, 6, 0, 0, tzinfo=dt.UTC)


def _limit(**kw: object) -> OrderRequest:
    base = dict(
        symbol="005930",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=Decimal(1),
        client_order_id="c1",
        limit_price=Decimal(70000),
    )
    base.update(kw)
    return OrderRequest(**base)  # type: ignore[arg-type]


def test_token_expiry_kst_and_lifetime_from_now() -> None:
    token = mapping.parse_token(
        {
            "expires_dt": "20241107083713",
            "token_type": "bearer",
            "token": "WQJC...",
            "return_code": 0,
            "return_msg": "정상적으로 처리되었습니다",
        },
        now=NOW,
    )
    assert token.expires_at == dt.datetime(2024, 11, 6, 23, 37, 13, tzinfo=dt.UTC)
    assert token.expires_in == 23 * 3600 + 37 * 60 + 13
    assert token.token_type == "bearer"


def test_order_body_limit_and_market() -> None:
    assert mapping.order_body(_limit(route="SOR")) == {
        "dmst_stex_tp": "SOR",
        "stk_cd": "005930",
        "ord_qty": "1",
        "ord_uv": "70000",
        "trde_tp": "0",
        "cond_uv": "",
    }
    market = mapping.order_body(_limit(order_type=OrderType.MARKET, limit_price=None))
    assert (market["trde_tp"], market["ord_uv"], market["dmst_stex_tp"]) == ("3", "", "KRX")


@pytest.mark.parametrize(
    "changes", [{"quantity": Decimal("0.5")}, {"limit_price": None}, {"route": "XXX"}]
)
def test_order_body_refuses(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidOrder):
        mapping.order_body(_limit(**changes))


def test_order_ack() -> None:
    raw = {
        "ord_no": "0000138",
        "dmst_stex_tp": "KRX",
        "return_code": 0,
        "return_msg": "매도주문이 완료되었습니다.",
    }
    order = mapping.parse_order_ack(raw, _limit(side=Side.SELL), now=NOW)
    assert order.broker_order_id == "0000138"
    assert order.status is OrderStatus.SUBMITTED and order.side is Side.SELL
    assert order.created_at == NOW


def test_cancel_and_amend_bodies_use_the_official_names() -> None:
    original = mapping.parse_order_ack(
        {"ord_no": "0000139", "dmst_stex_tp": "NXT"}, _limit(), now=NOW
    )
    assert mapping.cancel_body(original) == {
        "dmst_stex_tp": "NXT",
        "orig_ord_no": "0000139",
        "stk_cd": "005930",
        "cncl_qty": "0",
    }
    assert mapping.amend_body(original, quantity=None, limit_price=Decimal(69500)) == {
        "dmst_stex_tp": "NXT",
        "orig_ord_no": "0000139",
        "stk_cd": "005930",
        "mdfy_qty": "0",
        "mdfy_uv": "69500",
        "mdfy_cond_uv": "",
    }
    assert mapping.amend_body(original, quantity=Decimal(1), limit_price=None)["mdfy_uv"] == (
        "70000"
    )


def test_holding_with_padded_signed_numbers() -> None:
    row = {
        "stk_cd": "A005930",
        "stk_nm": "삼성전자",
        "evltv_prft": "-00000000196888",
        "prft_rt": "-52.71",
        "pur_pric": "000000000124500",
        "pred_close_pric": "000000045400",
        "rmnd_qty": "000000000000003",
        "trde_able_qty": "000000000000003",
        "cur_prc": "000000059000",
    }
    position = mapping.parse_holding(row)
    assert position is not None
    assert position.symbol == "005930"
    assert position.quantity == Decimal(3) and position.available_quantity == Decimal(3)
    assert position.avg_price == Decimal(124500)
    assert position.current_price == Decimal(59000)
    assert position.pnl == Decimal(-196888) and position.pnl_pct == Decimal("-52.71")
    assert mapping.parse_holding({**row, "rmnd_qty": "000000000000000"}) is None


def test_plain_symbol() -> None:
    assert mapping.plain_symbol("A005930") == "005930"
    assert mapping.plain_symbol("005930") == "005930"
    assert mapping.plain_symbol("039490_NX") == "039490"
    assert mapping.plain_symbol("0001A0") == "0001A0"


_ROW = {
    "ord_no": "0000050",
    "stk_cd": "A005930",
    "trde_tp": "보통",
    "crd_tp": "현금",
    "ord_qty": "0000000010",
    "ord_uv": "0000070000",
    "cnfm_qty": "0000000010",
    "acpt_tp": "접수",
    "ord_tm": "13:05:43",
    "ori_ord": "0000000",
    "stk_nm": "삼성전자",
    "io_tp_nm": "현금매수",
    "cntr_qty": "0000000004",
    "cntr_uv": "0000070000",
    "ord_remnq": "0000000006",
    "mdfy_cncl": "",
    "dmst_stex_tp": "KRX",
}


def test_history_rows() -> None:
    day = dt.date(2024, 11, 6)
    cancelled = {
        **_ROW,
        "ord_no": "0000051",
        "cntr_qty": "0",
        "ord_remnq": "0",
        "ord_tm": "13:06:00",
    }
    cancel = {
        **_ROW,
        "ord_no": "0000052",
        "ori_ord": "0000051",
        "io_tp_nm": "현금매수취소",
        "mdfy_cncl": "취소",
        "cntr_qty": "0",
        "ord_remnq": "0",
        "ord_tm": "13:07:00",
    }
    sold = {
        **_ROW,
        "ord_no": "0000053",
        "io_tp_nm": "현금매도",
        "trde_tp": "시장가",
        "ord_uv": "0",
        "cntr_qty": "0000000010",
        "ord_remnq": "0",
        "ord_tm": "130800",
    }
    orders = mapping.parse_history_rows([sold, cancel, cancelled, _ROW], day)
    assert [o.broker_order_id for o in orders] == ["0000050", "0000051", "0000053"]
    first, second, third = orders
    assert first.status is OrderStatus.PARTIALLY_FILLED
    assert first.created_at == dt.datetime(2024, 11, 6, 4, 5, 43, tzinfo=dt.UTC)
    assert first.average_fill_price == Decimal(70000)
    assert second.status is OrderStatus.CANCELLED
    assert second.raw["cancel_rows"][0]["ord_no"] == "0000052"
    assert third.status is OrderStatus.FILLED and third.side is Side.SELL
    assert third.order_type is OrderType.MARKET and third.limit_price is None


def test_balance() -> None:
    balance = mapping.parse_balance(
        {"entr": "000000001000000", "ord_alow_amt": "000000000600000", "return_code": 0}
    )
    assert (balance.total, balance.available, balance.locked) == (
        Decimal(1000000),
        Decimal(600000),
        Decimal(400000),
    )
    assert "return_code" not in balance.raw


def test_an_amended_order_cancelled_later_is_still_an_order() -> None:
    day = dt.date(2024, 11, 6)
    replaced = {**_ROW, "cntr_qty": "0", "ord_remnq": "0", "mdfy_cncl": "정정"}
    amended = {
        **_ROW,
        "ord_no": "0000051",
        "ori_ord": "0000050",
        "io_tp_nm": "현금매수정정",
        "mdfy_cncl": "취소",
        "cntr_qty": "0",
        "ord_remnq": "0",
        "ord_tm": "13:06:00",
    }
    cancel = {
        **_ROW,
        "ord_no": "0000052",
        "ori_ord": "0000051",
        "io_tp_nm": "현금매수취소",
        "mdfy_cncl": "취소",
        "cntr_qty": "0",
        "ord_remnq": "0",
        "ord_tm": "13:07:00",
    }
    orders = mapping.parse_history_rows([replaced, amended, cancel], day)
    assert [(o.broker_order_id, o.status) for o in orders] == [
        ("0000050", OrderStatus.CANCELLED),
        ("0000051", OrderStatus.CANCELLED),
    ]
    assert orders[1].raw["cancel_rows"][0]["ord_no"] == "0000052"


def _history_order(number: str, filled: str) -> object:
    (order,) = mapping.parse_history_rows(
        [
            {
                "ord_no": number,
                "stk_cd": "A005930",
                "trde_tp": "보통",
                "ord_qty": "0000000010",
                "ord_uv": "0000070000",
                "acpt_tp": "접수",
                "ord_tm": "13:05:43",
                "ori_ord": "0000000",
                "io_tp_nm": "현금매도",
                "cntr_qty": filled,
                "cntr_uv": "0000070000",
                "ord_remnq": "0000000006",
            }
        ],
        dt.date(2024, 11, 6),
    )
    return order


def test_kt00007_orders_carry_no_charges_and_ka10076_gives_kiwooms() -> None:
    order = _history_order("0000050", "0000000004")
    assert order.fee is None and order.tax is None  # kt00007 has none: not zero, unknown
    charges = mapping.parse_fill_charges(
        [
            {"ord_no": "0000050", "cntr_qty": "4", "tdy_trde_cmsn": "40", "tdy_trde_tax": "560"},
            {"ord_no": "0000051", "cntr_qty": "0", "tdy_trde_cmsn": "0", "tdy_trde_tax": "0"},
        ]
    )
    assert set(charges) == {"50"}
    (priced,), agreed = mapping.with_reported_charges([order], charges)
    assert agreed
    assert (priced.fee, priced.tax, priced.fee_asset) == (Decimal(40), Decimal(560), "KRW")


def test_charges_of_another_filled_quantity_are_not_taken() -> None:
    # ka10076 read after a further fill: its charges belong to 5 shares, the order shows 4.
    order = _history_order("0000050", "0000000004")
    charges = mapping.parse_fill_charges(
        [{"ord_no": "0000050", "cntr_qty": "5", "tdy_trde_cmsn": "52", "tdy_trde_tax": "700"}]
    )
    (unpriced,), agreed = mapping.with_reported_charges([order], charges)
    assert not agreed and unpriced.fee is None and unpriced.tax is None
    (missing,), agreed = mapping.with_reported_charges([order], {})
    assert not agreed and missing.fee is None
