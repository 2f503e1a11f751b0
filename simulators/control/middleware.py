"""The WSGI middleware that applies pending faults to a simulator's requests.

Faults never apply to ``/_sim/`` itself. At most one ``latency`` and one transport fault apply to
a request (see :mod:`simulators.control.faults` for what each kind does). The kinds that end a
connection without a proper answer (``reset``, ``drop``, ``protocol_error``) need the server from
:mod:`simulators.server`, which gives the middleware a hook to abort the connection (under another
WSGI server they fall back to shutting the socket down, which the client sees as a closed
connection).

"Acted" faults run the app first with a start_response that only records, so the broker's state
and ledger change exactly as for a normal request, and then throw the answer away or break it.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from simulators.control.faults import TRANSPORT_KINDS, Fault, FaultKind
from simulators.control.held import RECEIVED_AT_KEY
from simulators.control.routes import CONTROL_PREFIX
from simulators.control.state import SimState
from simulators.control.targets import RequestInfo
from simulators.engine import LedgerKind
from simulators.server import ABORT_CONNECTION_KEY

__all__ = ["GARBAGE", "FaultMiddleware", "WSGIApp"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: What ``protocol_error`` ``garbage`` writes: a TLS fatal alert record (bad_record_mac), the
#: bytes a TLS peer sends when it gives up on a connection. No HTTP client can read it as a
#: status line; beneath a TLS session the client's TLS layer rejects it.
GARBAGE = b"\x15\x03\x03\x00\x02\x02\x14"


class _ConnectionAborted(ConnectionAbortedError):
    """Raised past the WSGI server so it treats the connection as gone and writes nothing."""


@dataclass
class _Answer:
    """What the app answered, recorded instead of sent."""

    status: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def code(self) -> int:
        return int(self.status.split(" ", 1)[0])


def _abort_connection(environ: dict[str, Any], mode: str, data: bytes = b"") -> None:
    hook = environ.get(ABORT_CONNECTION_KEY)
    if hook is not None:
        hook(mode, data)
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


def _truncated(answer: _Answer) -> bytes:
    """The answer's status line and headers, then half of a body that promises at least 2 bytes."""
    declared = max(len(answer.body), 2)
    head = [f"HTTP/1.1 {answer.status}"]
    head += [
        f"{k}: {v}"
        for k, v in answer.headers
        if k.lower() not in {"content-length", "transfer-encoding", "connection"}
    ]
    head += [f"Content-Length: {declared}", "Connection: close"]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + answer.body[: declared // 2]


class FaultMiddleware:
    """WSGI middleware that applies pending faults to non-``/_sim`` requests."""

    def __init__(self, app: WSGIApp, state: SimState) -> None:
        self.app = app
        self.state = state

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Handle one request, applying at most one latency and one other fault to it."""
        info = RequestInfo(environ)
        path = info.path
        if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
            return self.app(environ, start_response)
        faults = self.state.faults
        latency = faults.take(FaultKind.LATENCY, path, info)
        if latency is not None:
            self._applied(latency, info)
            time.sleep(latency.seconds or 0)
        fault = faults.take(TRANSPORT_KINDS, path, info)
        if fault is None:
            return self.app(environ, start_response)
        if fault.kind is FaultKind.LATE:
            return self._late(fault, info, start_response)
        self._applied(fault, info)
        if not fault.acted:
            return self._before_acting(fault, info, start_response)
        answer = self._act(environ)
        if fault.kind is FaultKind.HTTP_STATUS:
            return self._status_response(fault, start_response)
        if fault.kind is FaultKind.PROTOCOL_ERROR:
            if fault.mode == "truncated":
                _abort_connection(environ, "truncated", _truncated(answer))
            _abort_connection(environ, "garbage", GARBAGE)
        # RESET or DROP after the broker did the work: the answer is lost.
        _abort_connection(environ, "reset" if fault.kind is FaultKind.RESET else "drop")
        return []  # unreachable: _abort_connection raises

    # ---- the kinds ----------------------------------------------------------------------------

    def _before_acting(
        self, fault: Fault, info: RequestInfo, start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """A fault that hits before the broker sees the request: it is never handled."""
        if fault.kind is FaultKind.HTTP_STATUS:
            return self._status_response(fault, start_response)
        # Read the body first (not handling it): a client still sending when the connection ends
        # may swallow the error on send and then see a plain EOF instead.
        info.body()
        if fault.kind is FaultKind.RESET:
            _abort_connection(info.environ, "reset")
        if fault.kind is FaultKind.PROTOCOL_ERROR:
            if fault.mode == "truncated":
                lost = _Answer("502 Bad Gateway", [("Content-Type", "application/json")], b"{}" * 8)
                _abort_connection(info.environ, "truncated", _truncated(lost))
            _abort_connection(info.environ, "garbage", GARBAGE)
        _abort_connection(info.environ, "drop")
        return []  # unreachable: _abort_connection raises

    def _late(
        self, fault: Fault, info: RequestInfo, start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Hold the request (the client hears nothing), then handle it and answer late."""
        info.body()  # keep the body: the client may be long gone when the request is handled
        held = self.state.held.hold(
            fault.fault_id,
            info.method,
            info.path,
            seconds=fault.seconds,
            sim_seconds=fault.sim_seconds,
        )
        info.environ[RECEIVED_AT_KEY] = held.received_at
        self._applied(
            fault,
            info,
            stage="held",
            due_at=held.due_at,
            due_in_seconds=fault.seconds,
        )
        try:
            if not self.state.held.wait(held):
                self._applied(fault, info, stage="abandoned")
                _abort_connection(info.environ, "drop")
            answer = self._act(info.environ)
            self._applied(fault, info, stage="acted", status=answer.code)
        finally:
            self.state.held.finish(held)
        start_response(answer.status, answer.headers)
        return [answer.body]

    # ---- helpers ------------------------------------------------------------------------------

    def _act(self, environ: dict[str, Any]) -> _Answer:
        """Run the app to completion and record its answer instead of sending it."""
        recorded: dict[str, Any] = {}
        chunks: list[bytes] = []

        def record(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            recorded["status"], recorded["headers"] = status, list(headers)
            return chunks.append

        result = self.app(environ, record)
        try:
            chunks.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return _Answer(
            recorded.get("status", "500 Internal Server Error"),
            recorded.get("headers", []),
            b"".join(chunks),
        )

    def _applied(self, fault: Fault, info: RequestInfo, **extra: Any) -> None:
        data = {"fault_id": fault.fault_id, "fault": fault.kind, "path": info.path}
        if fault.acted is not None:
            data["acted"] = fault.acted
        if fault.method is not None or fault.target is not None:
            data["method"] = info.method
        if fault.target is not None:
            data["target"] = fault.target
        data.update({k: v for k, v in extra.items() if v is not None})
        self.state.ledger.record(LedgerKind.FAULT_APPLIED, **data)

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
