"""Serve a simulator app: in a background thread (tests, ``gateway demo``) or blocking.

Both use werkzeug's threaded server with :class:`SimRequestHandler`, which gives the fault
middleware (:mod:`simulators.control`) a hook in the WSGI environ to end a connection without a
response: ``reset`` closes the socket with SO_LINGER 0 so the kernel sends a TCP RST, ``drop``
closes it normally (FIN) after the request was handled. In both cases nothing is written.
"""

from __future__ import annotations

import functools
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

__all__ = ["ABORT_CONNECTION_KEY", "ServerHandle", "SimRequestHandler", "run", "serve_in_thread"]

#: WSGI environ key of the ``abort(mode)`` hook, ``mode`` in {"reset", "drop"}.
ABORT_CONNECTION_KEY = "simulators.abort_connection"


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

    def _abort(self, mode: str) -> None:
        if mode not in {"reset", "drop"}:
            raise ValueError(f"unknown abort mode {mode!r}")
        self._abort_mode = mode
        self.close_connection = True  # no keep-alive loop waiting for a next request
        if mode == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

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


@dataclass
class ServerHandle:
    """A running background server."""

    server: BaseWSGIServer
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and wait for the thread."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout)


def _make(app: Callable[..., Any], host: str, port: int, quiet: bool) -> BaseWSGIServer:
    server = make_server(host, port, app, threaded=True, request_handler=SimRequestHandler)
    server.sim_quiet = quiet  # type: ignore[attr-defined]
    return server


def serve_in_thread(
    app: Callable[..., Any], host: str = "127.0.0.1", port: int = 0, *, quiet: bool = True
) -> ServerHandle:
    """Start ``app`` on ``host:port`` (0: a free port) in a daemon thread and return its handle."""
    server = _make(app, host, port, quiet)
    # A short poll interval makes stop() quick (serve_forever checks for shutdown that often).
    thread = threading.Thread(
        target=functools.partial(server.serve_forever, poll_interval=0.05),
        name=f"sim-server-{server.port}",
        daemon=True,
    )
    thread.start()
    return ServerHandle(server=server, thread=thread, host=host, port=server.port)


def run(
    app: Callable[..., Any], host: str = "127.0.0.1", port: int = 0, *, quiet: bool = False
) -> None:
    """Serve ``app`` in the foreground until interrupted (``gateway simulate``)."""
    server = _make(app, host, port, quiet)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
