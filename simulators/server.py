"""Serve a simulator app: in a background thread (tests, ``gateway demo``) or blocking.

Both use werkzeug's threaded server with :class:`SimRequestHandler`, which gives the fault
middleware (:mod:`simulators.control`) a hook in the WSGI environ to end a connection without a
proper response: ``reset`` closes the socket with SO_LINGER 0 so the kernel sends a TCP RST,
``drop`` closes it normally (FIN) writing nothing, ``truncated`` writes the given bytes (a response
that stops short of its declared length) and closes, and ``garbage`` writes the given bytes
*beneath* TLS when the connection is TLS (the client's TLS layer then fails on a broken record:
the real "TLS error after the send") or as they are on plain HTTP (the client cannot parse a
status line).

TLS is optional: pass ``tls`` (see :func:`self_signed_tls`) and clients connect with ``https://``,
trusting the certificate file. Plain HTTP stays the default because the brokers' clients are
pointed at the simulators by base URL and most tests need nothing more; TLS is for the faults
only a TLS connection can show.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import os
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

__all__ = [
    "ABORT_CONNECTION_KEY",
    "ABORT_MODES",
    "ServerHandle",
    "SimRequestHandler",
    "TlsFiles",
    "run",
    "self_signed_tls",
    "serve_in_thread",
]

#: WSGI environ key of the ``abort(mode, data=b"")`` hook, ``mode`` in :data:`ABORT_MODES`.
ABORT_CONNECTION_KEY = "simulators.abort_connection"
ABORT_MODES = frozenset({"reset", "drop", "truncated", "garbage"})


class SimRequestHandler(WSGIRequestHandler):
    """werkzeug's handler plus a connection-abort hook and optional quiet logging."""

    _abort_mode: str | None = None

    def make_environ(self) -> dict[str, Any]:
        """Build the WSGI environ and add the abort hook."""
        environ = super().make_environ()
        # werkzeug drops request headers whose names contain "_" (so X_Foo cannot spoof X-Foo);
        # real brokers accept them, and KIS clients send exactly such names (tr_id, tr_cont).
        for key, value in self.headers.items():
            if "_" in key:
                environ.setdefault(f"HTTP_{key.upper().replace('-', '_')}", value)
        self._abort_mode = None
        environ[ABORT_CONNECTION_KEY] = self._abort
        return environ

    def _abort(self, mode: str, data: bytes = b"") -> None:
        if mode not in ABORT_MODES:
            raise ValueError(f"unknown abort mode {mode!r}")
        self._abort_mode = mode
        self.close_connection = True  # no keep-alive loop waiting for a next request
        if mode == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        try:
            if mode == "garbage" and isinstance(self.connection, ssl.SSLSocket):
                # Beneath TLS: the bytes reach the client as a record its TLS layer rejects.
                os.write(self.connection.fileno(), data)
            elif data:
                self.wfile.write(data)
                self.wfile.flush()
        except OSError:
            pass  # the client is gone already; nothing more to break

    def finish(self) -> None:
        """Close the streams; on reset, close the socket now so the RST precedes any FIN."""
        super().finish()
        if self._abort_mode == "reset":
            # The streams are closed, so this really closes the descriptor; with SO_LINGER 0 the
            # kernel answers with RST. socketserver's own shutdown/close then find it closed.
            self.connection.close()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log like werkzeug unless the server was started quiet."""
        if not getattr(self.server, "sim_quiet", False):
            super().log_request(code, size)


@dataclass(frozen=True)
class TlsFiles:
    """A certificate (PEM) and its private key (PEM) for serving TLS on loopback.

    Attributes:
        certificate: the certificate file; clients trust it (``requests.get(..., verify=…)``).
        key: the unencrypted private key file.
    """

    certificate: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        """An SSL context for the server side."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certificate, self.key)
        return context


def self_signed_tls(directory: Path, host: str = "127.0.0.1") -> TlsFiles:
    """Write a one-day self-signed certificate for ``host`` (an IP or a name) into ``directory``."""
    # Imported here: only TLS serving needs cryptography.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "sim-cert.pem", directory / "sim-key.pem")
    files.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


@dataclass
class ServerHandle:
    """A running background server."""

    server: BaseWSGIServer
    thread: threading.Thread
    host: str
    port: int
    tls: TlsFiles | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (``https://`` when serving TLS)."""
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and wait for the thread."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout)


def _make(
    app: Callable[..., Any], host: str, port: int, quiet: bool, tls: TlsFiles | None
) -> BaseWSGIServer:
    server = make_server(
        host,
        port,
        app,
        threaded=True,
        request_handler=SimRequestHandler,
        ssl_context=tls.server_context() if tls is not None else None,
    )
    server.sim_quiet = quiet  # type: ignore[attr-defined]
    return server


def serve_in_thread(
    app: Callable[..., Any],
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    quiet: bool = True,
    tls: TlsFiles | None = None,
) -> ServerHandle:
    """Start ``app`` on ``host:port`` (0: a free port) in a daemon thread and return its handle.

    With ``tls`` the server speaks HTTPS with that certificate.
    """
    server = _make(app, host, port, quiet, tls)
    # A short poll interval makes stop() quick (serve_forever checks for shutdown that often).
    thread = threading.Thread(
        target=functools.partial(server.serve_forever, poll_interval=0.05),
        name=f"sim-server-{server.port}",
        daemon=True,
    )
    thread.start()
    return ServerHandle(server=server, thread=thread, host=host, port=server.port, tls=tls)


def run(
    app: Callable[..., Any],
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    quiet: bool = False,
    tls: TlsFiles | None = None,
) -> None:
    """Serve ``app`` in the foreground until interrupted (``gateway simulate``)."""
    server = _make(app, host, port, quiet, tls)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
