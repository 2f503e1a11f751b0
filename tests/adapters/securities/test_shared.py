"""The shared helpers (numbers, KST, backoff, transport errors) and the packages' exports."""

from __future__ import annotations

import datetime as dt
import socket
from decimal import Decimal

import pytest
import requests

import securities
import securities.kis
import securities.kiwoom
from securities._http import from_kst, kst_date, parse_decimal, retry_delay, send
from web_server.errors import BrokerTimeout
from web_server.services.brokers import adapter_class


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("-00000000196888", Decimal(-196888)),
        ("+74100", Decimal(74100)),
        ("000000017598258", Decimal(17598258)),
        ("70000.0000", Decimal("70000.0000")),
        ("1,234", Decimal(1234)),
        ("  ", None),
        (None, None),
        ("n/a", None),
    ],
)
def test_parse_decimal(raw: object, value: Decimal | None) -> None:
    assert parse_decimal(raw) == value


def test_kst_helpers() -> None:
    moment = from_kst("20250204 151059", "%Y%m%d %H%M%S")
    assert moment == dt.datetime(2025, 2, 4, 6, 10, 59, tzinfo=dt.UTC)
    # 16:00 UTC is already the next day in Seoul.
    assert kst_date(dt.datetime(2025, 2, 4, 16, 0, tzinfo=dt.UTC)) == dt.date(2025, 2, 5)


def test_retry_delay_is_bounded_and_honours_a_short_retry_after() -> None:
    for attempt in range(6):
        assert 0 < retry_delay(attempt) <= 2.0
    assert retry_delay(0, 1.0) >= 1.0
    assert retry_delay(0, 60.0) <= 2.0  # a long wait is the caller's, not the adapter's


def test_nothing_listening_is_broker_timeout_even_for_a_write() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with requests.Session() as session, pytest.raises(BrokerTimeout) as info:
        send(
            session,
            "POST",
            f"http://127.0.0.1:{port}/x",
            broker="KIS",
            is_write=True,
            timeout=2,
            headers={"appsecret": "do-not-leak"},
            json_body={},
        )
    assert "do-not-leak" not in str(info.value)
    assert info.value.broker == "KIS"


def test_exports() -> None:
    assert securities.kis.__all__ == ["DEFAULT_BASE_URLS", "KisAdapter"]
    assert securities.kiwoom.__all__ == ["DEFAULT_BASE_URLS", "KiwoomAdapter"]
    assert securities.__all__ == ["kis", "kiwoom"]
    assert adapter_class("KIS") is securities.kis.KisAdapter
    assert adapter_class("KIWOOM") is securities.kiwoom.KiwoomAdapter
    assert securities.kis.DEFAULT_BASE_URLS == {
        "REAL": "https://openapi.koreainvestment.com:9443",
        "PAPER": "https://openapivts.koreainvestment.com:29443",
    }
