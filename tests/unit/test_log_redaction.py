"""The log filter masks the brokers' secret fields, bearer tokens and JWTs."""

from __future__ import annotations

import json
import logging

import pytest

from web_server.log import configure_logging, install_redaction, redact, redact_record

JWT = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJ0b2tlbiJ9.c2lnbmF0dXJlLXZhbHVl"


@pytest.mark.parametrize(
    "line, secret",
    [
        ('{"appkey": "PSabcdefghijkl", "tr_id": "TTTC0012U"}', "PSabcdefghijkl"),
        ("{'appsecret': 'very-secret-value'}", "very-secret-value"),
        ('{"secretkey": "kiwoom-secret"}', "kiwoom-secret"),
        ("api_secret=binance-secret&symbol=BTCUSDT", "binance-secret"),
        ('"access_token":"tok-123456"', "tok-123456"),
        ('{"token": "kiwoom-token-value"}', "kiwoom-token-value"),
        ("Authorization: Bearer abcdefghijklmnop", "abcdefghijklmnop"),
        ("{'Authorization': 'Bearer qrstuvwxyz123456'}", "qrstuvwxyz123456"),
        ('cert_password="p@ss"', "p@ss"),
        ("password=hunter2", "hunter2"),
        (f"got {JWT} back", JWT),
    ],
)
def test_redact_masks_known_secret_shapes(line, secret):
    masked = redact(line)
    assert secret not in masked
    assert "***" in masked


def test_redact_keeps_ordinary_text():
    line = "order 0000123456 for 005930 qty=10 price=70000 tr_id=TTTC0012U"
    assert redact(line) == line


def test_filter_masks_arguments_and_tracebacks():
    record = logging.LogRecord(
        "t", logging.ERROR, __file__, 1, "headers %s", ({"appkey": "AK"},), None
    )
    try:
        raise ValueError('{"appsecret": "in-the-exception"}')
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    redact_record(record)
    assert "AK'" not in record.getMessage()
    assert "in-the-exception" not in record.exc_text
    assert record.request_id == "-"


def test_json_format_switch(capsys):
    configure_logging("INFO", "json")
    try:
        logging.getLogger("gateway.test").info('sent {"appsecret": "s3"}')
        line = capsys.readouterr().err.strip().splitlines()[-1]
        payload = json.loads(line)
        assert payload["level"] == "INFO" and payload["logger"] == "gateway.test"
        assert "s3" not in payload["message"]
    finally:
        configure_logging("INFO", "text")


def test_text_format(capsys):
    configure_logging("INFO", "text")
    logging.getLogger("gateway.test").warning("password=abc")
    assert "password=***" in capsys.readouterr().err


def test_every_logger_and_handler_sees_redacted_records():
    import io

    install_redaction()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)  # a handler with no filter of its own
    quiet = logging.getLogger("some.library")
    quiet.propagate = False
    quiet.addHandler(handler)
    try:
        quiet.error('response {"access_token": "tok-abc-123"} for appsecret=s3cr3t')
    finally:
        quiet.removeHandler(handler)
        quiet.propagate = True
    assert "tok-abc-123" not in stream.getvalue() and "s3cr3t" not in stream.getvalue()
