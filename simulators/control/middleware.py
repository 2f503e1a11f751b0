"""The WSGI middleware that applies pending faults to a simulator's requests.

Faults never apply to ``/_sim/`` itself. ``reset`` and ``drop`` need the server from
:mod:`simulators.server`, which gives the middleware a hook to abort the connection (under another
WSGI server they fall back to shutting the socket down, which the client sees as a closed
connection).
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from simulators.control.faults import TRANSPORT_KINDS, Fault, FaultKind
from simulators.control.routes import CONTROL_PREFIX
from simulators.control.state import SimState
from simulators.engine import LedgerKind
from simulators.server import ABORT_CONNECTION_KEY

__all__ = ["FaultMiddleware", "WSGIApp"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _ConnectionAborted(ConnectionAbortedError):
    """Raised past the WSGI server so it treats the connection as gone and writes nothing."""


def _abort_connection(environ: dict[str, Any], mode: str) -> None:
    hook = environ.get(ABORT_CONNECTION_KEY)
    if hook is not None:
        hook(mode)
    else:
        # Not our server: do the best the socket allows (the client sees a closed connection).
        sock = environ.get("werkzeug.socket")
        if sock is not None:
            try:
                if mode == "reset":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    raise _ConnectionAborted(mode)


def _drain_body(environ: dict[str, Any], limit: int = 10 * 1024 * 1024) -> None:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return
    stream = environ.get("wsgi.input")
    if stream is not None and 0 < length <= limit:
        with contextlib.suppress(OSError):
            stream.read(length)


class FaultMiddleware:
    """WSGI middleware that applies pending faults to non-``/_sim`` requests."""

    def __init__(self, app: WSGIApp, state: SimState) -> None:
        self.app = app
        self.state = state

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Handle one request, applying at most one latency and one other fault to it."""
        path = environ.get("PATH_INFO", "") or "/"
        if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
            return self.app(environ, start_response)
        faults = self.state.faults
        latency = faults.take(FaultKind.LATENCY, path)
        if latency is not None:
            self._applied(latency, path)
            time.sleep(latency.seconds or 0)
        fault = faults.take(TRANSPORT_KINDS, path)
        if fault is None:
            return self.app(environ, start_response)
        self._applied(fault, path)
        if fault.kind is FaultKind.RESET:
            # Read the body first (not handling it): a client still sending when the RST lands
            # may swallow the error on send and then see a plain EOF instead of a reset.
            _drain_body(environ)
            _abort_connection(environ, "reset")
        if fault.kind is FaultKind.HTTP_STATUS:
            return self._status_response(fault, start_response)
        # DROP: the broker does the work; the client never hears back.
        result = self.app(environ, lambda *args, **kwargs: lambda data: None)
        try:
            for _chunk in result:
                pass
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        _abort_connection(environ, "drop")
        return []  # unreachable: _abort_connection raises

    def _applied(self, fault: Fault, path: str) -> None:
        self.state.ledger.record(
            LedgerKind.FAULT_APPLIED, fault_id=fault.fault_id, fault=fault.kind, path=path
        )

    @staticmethod
    def _status_response(fault: Fault, start_response: Callable[..., Any]) -> Iterable[bytes]:
        status = fault.status or 500
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Error"
        if isinstance(fault.body, str):
            payload, content_type = fault.body.encode(), "text/plain; charset=utf-8"
        else:
            body = fault.body if fault.body is not None else {"error": reason}
            payload, content_type = (
                json.dumps(body, ensure_ascii=False).encode(),
                "application/json",
            )
        headers = [("Content-Type", content_type), ("Content-Length", str(len(payload)))]
        headers += list(fault.headers.items())
        start_response(f"{status} {reason}", headers)
        return [payload]
