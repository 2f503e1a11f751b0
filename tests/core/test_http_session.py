"""The shared session's retry policy never sends an order twice, over a real TLS connection.

The failure it guards against was seen in a fault harness: a TLS error *after* the request was
sent counts as an "other" error in urllib3, which retries it whatever the method, so one
``place_order`` reached the broker three times.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from urllib3.exceptions import ConnectTimeoutError, ProtocolError, SSLError
from urllib3.util.retry import Retry

from brokers.http import make_http_session, safe_retry_policy


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class BreaksTlsAfterRequest:
    """A TLS server that reads each request whole, then writes bytes that are not TLS.

    The client's TLS layer fails on the answer: the request was delivered, the answer is lost.
    """

    def __init__(self, directory: Path) -> None:
        cert, key = _self_signed(directory)
        self.certificate = str(cert)
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert, key)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.requests: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            try:
                tls = self._context.wrap_socket(conn, server_side=True)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += tls.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                while len(body) < length:
                    body += tls.recv(65536)
                self.requests.append(head.split(b"\r\n", 1)[0])
                os.write(tls.fileno(), b"this is not a TLS record\r\n" * 8)
                tls.close()
            except (OSError, ssl.SSLError):
                conn.close()

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[BreaksTlsAfterRequest]:
    server = BreaksTlsAfterRequest(tmp_path)
    yield server
    server.close()


def test_an_order_post_is_sent_once_when_tls_fails_after_the_send(
    tls_server: BreaksTlsAfterRequest,
) -> None:
    session = make_http_session(read_retries=2)
    with pytest.raises(requests.RequestException):
        session.post(
            f"https://127.0.0.1:{tls_server.port}/uapi/domestic-stock/v1/trading/order-cash",
            json={"PDNO": "005930", "ORD_QTY": "1"},
            verify=tls_server.certificate,
            timeout=5,
        )
    assert len(tls_server.requests) == 1, tls_server.requests


def test_the_old_policy_would_have_sent_it_three_times(tls_server: BreaksTlsAfterRequest) -> None:
    """The same server with urllib3's default "other" retries: the bug this module fixes."""
    session = make_http_session(read_retries=2)
    loose = safe_retry_policy(2).new(other=None)
    for prefix in ("http://", "https://"):
        session.get_adapter(prefix).max_retries = loose
    with pytest.raises(requests.RequestException):
        session.post(
            f"https://127.0.0.1:{tls_server.port}/orders",
            json={},
            verify=tls_server.certificate,
            timeout=5,
        )
    assert len(tls_server.requests) == 3


@pytest.mark.parametrize(
    ("method", "error", "retried"),
    [
        ("POST", ConnectTimeoutError("refused"), True),  # never left this host
        ("POST", ProtocolError("reset"), False),  # left, answer lost
        ("POST", SSLError("bad record"), False),
        ("GET", SSLError("bad record"), False),  # the adapters retry reads themselves
        ("GET", ConnectTimeoutError("refused"), True),
    ],
)
def test_policy_retries_only_what_never_reached_the_broker(
    method: str, error: Exception, retried: bool
) -> None:
    policy: Retry = safe_retry_policy(2)
    if retried:
        assert policy.increment(method, "/x", error=error).total == 1
    else:
        with pytest.raises(Exception):  # noqa: B017 - urllib3 re-raises the error or MaxRetryError
            policy.increment(method, "/x", error=error)


def test_status_retries_are_for_reads_only() -> None:
    policy = safe_retry_policy(2)
    assert policy.is_retry("GET", 503)
    assert not policy.is_retry("POST", 503)
