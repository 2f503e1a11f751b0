"""Signatures against crypto.md's test vector and an independent JWT implementation (joserfc)."""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

import pytest
from joserfc import jwt  # authlib's own JOSE backend: an independent verifier
from joserfc.jwk import OctKey

from brokers import Credentials
from crypto_exchanges._jwt import encode_hs_jwt, query_hash
from crypto_exchanges.binance.client import BinanceClient, sign
from crypto_exchanges.bithumb.client import BithumbClient
from crypto_exchanges.upbit.client import UpbitClient
from tests.adapters.crypto._fakes import API_KEY, FIXED_NOW, SECRET, FakeSession, fixed_clock

CREDS = Credentials(api_key=API_KEY, api_secret=SECRET)


def test_binance_signature_matches_the_documented_vector() -> None:
    query = (
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
        "&recvWindow=5000&timestamp=1499827319559"
    )
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    assert sign(secret, query) == "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def _binance() -> BinanceClient:
    return BinanceClient(CREDS, base_url="http://sim", session=FakeSession(), clock=fixed_clock)


def test_binance_post_signs_the_form_body_with_timestamp_and_recv_window() -> None:
    client = _binance()
    call = client._prepare(
        "POST", "/api/v3/order", None, {"symbol": "BTCUSDT", "side": "BUY"}, True
    )
    assert call.url == "http://sim/api/v3/order"
    assert call.headers["X-MBX-APIKEY"] == API_KEY
    assert call.headers["Content-Type"] == "application/x-www-form-urlencoded"
    payload, _, signature = call.body.rpartition("&signature=")
    ms = int(FIXED_NOW.timestamp() * 1000)
    assert payload == f"symbol=BTCUSDT&side=BUY&recvWindow=5000&timestamp={ms}"
    assert signature == sign(SECRET, payload)


def test_binance_get_signs_the_query_and_unsigned_calls_carry_no_key() -> None:
    client = _binance()
    call = client._prepare(
        "GET", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": "7"}, None, True
    )
    query = urlsplit(call.url).query
    payload, _, signature = query.rpartition("&signature=")
    assert signature == sign(SECRET, payload) and call.body is None
    public = client._prepare("GET", "/api/v3/exchangeInfo", None, None, False)
    assert "X-MBX-APIKEY" not in public.headers and "?" not in public.url


def _claims(token: str) -> dict:
    decoded = jwt.decode(token, OctKey.import_key(SECRET), algorithms=["HS256", "HS512"])
    return dict(decoded.claims)


def test_upbit_get_jwt_hashes_the_exact_query_string_sent() -> None:
    client = UpbitClient(CREDS, base_url="http://sim", session=FakeSession(), clock=fixed_clock)
    call = client._prepare("GET", "/v1/order", {"identifier": "gw-1:a b"}, None, True)
    query = urlsplit(call.url).query
    assert query == "identifier=gw-1%3Aa%20b"
    token = call.headers["Authorization"].removeprefix("Bearer ")
    claims = _claims(token)
    assert claims["access_key"] == API_KEY
    assert claims["query_hash"] == hashlib.sha512(query.encode()).hexdigest()
    assert claims["query_hash_alg"] == "SHA512"
    assert "timestamp" not in claims
    assert len(claims["nonce"]) == 36  # a UUID


def test_upbit_post_sends_json_and_hashes_its_pairs_in_body_order() -> None:
    client = UpbitClient(CREDS, base_url="http://sim", session=FakeSession(), clock=fixed_clock)
    body = {
        "market": "KRW-BTC",
        "side": "bid",
        "volume": "0.01",
        "price": "100",
        "ord_type": "limit",
        "identifier": "gw-1",
    }
    call = client._prepare("POST", "/v1/orders", None, body, True)
    assert call.body == (
        '{"market":"KRW-BTC","side":"bid","volume":"0.01","price":"100","ord_type":"limit",'
        '"identifier":"gw-1"}'
    )
    expected = query_hash(
        "market=KRW-BTC&side=bid&volume=0.01&price=100&ord_type=limit&identifier=gw-1"
    )
    claims = _claims(call.headers["Authorization"].removeprefix("Bearer "))
    assert claims["query_hash"] == expected


def test_upbit_without_parameters_has_no_query_hash_and_fresh_nonces() -> None:
    client = UpbitClient(CREDS, base_url="http://sim", session=FakeSession(), clock=fixed_clock)
    first = _claims(
        client._prepare("GET", "/v1/accounts", None, None, True).headers["Authorization"][7:]
    )
    second = _claims(
        client._prepare("GET", "/v1/accounts", None, None, True).headers["Authorization"][7:]
    )
    assert "query_hash" not in first and first["nonce"] != second["nonce"]


def test_bithumb_jwt_carries_a_millisecond_timestamp() -> None:
    client = BithumbClient(CREDS, base_url="http://sim", session=FakeSession(), clock=fixed_clock)
    call = client._prepare("DELETE", "/v2/order", {"order_id": "C01"}, None, True)
    claims = _claims(call.headers["Authorization"][7:])
    assert claims["timestamp"] == int(FIXED_NOW.timestamp() * 1000)
    assert claims["query_hash"] == query_hash("order_id=C01")


@pytest.mark.parametrize("algorithm", ["HS256", "HS512"])
def test_jwt_signer_matches_authlib(algorithm: str) -> None:
    token = encode_hs_jwt({"access_key": "a", "nonce": "n"}, SECRET, algorithm=algorithm)
    key = OctKey.import_key(SECRET)
    assert jwt.decode(token, key, algorithms=[algorithm]).header["alg"] == algorithm
    with pytest.raises(ValueError):
        encode_hs_jwt({}, SECRET, algorithm="none")
