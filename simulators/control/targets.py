"""Which requests a fault applies to: a lazy view of a WSGI request, and each broker's targets.

A fault's ``path_prefix`` cannot tell a cancel from an order look-up: Upbit's ``GET`` and
``DELETE /v1/order`` share a path, Binance places, reads and cancels at ``/api/v3/order``, Kiwoom
sends every order kind to ``/api/dostk/ordr`` (the ``api-id`` header says which), and KIS amends
and cancels at one path (``RVSE_CNCL_DVSN_CD`` in the body says which). So a fault may also name
a ``method`` or a ``target`` — ``"order"``, ``"cancel"`` or ``"amend"`` — which :data:`TARGETS`
resolves per broker into request patterns.

The table lives here, next to the faults, rather than in each facade: it is the one place that
says what "a cancel" is at every broker, and the facades (two of them owned elsewhere) stay
unaware of faults.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl

__all__ = ["TARGETS", "TARGET_NAMES", "RequestInfo", "RequestPattern", "resolve_target"]

#: Bodies larger than this are not read for matching (no broker request comes near it).
_BODY_LIMIT = 1024 * 1024


class RequestInfo:
    """The parts of a WSGI request a fault can match on; the body is read only when asked for.

    Reading the body replaces ``wsgi.input`` with an in-memory copy, so the app reads it again
    untouched.

    Args:
        environ: the WSGI environ of the request.
    """

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self.method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        self.path = str(environ.get("PATH_INFO", "") or "/")
        self._params: dict[str, str] | None = None

    def header(self, name: str) -> str | None:
        """Return a request header (any case, ``-`` or ``_``), or None."""
        return self.environ.get("HTTP_" + name.upper().replace("-", "_"))  # type: ignore[no-any-return]

    def body(self) -> bytes:
        """Return the request body (empty when absent, chunked, or too large to buffer)."""
        cached = self.environ.get("simulators.body")
        if isinstance(cached, bytes):
            return cached
        try:
            length = int(self.environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        stream = self.environ.get("wsgi.input")
        data = b""
        if stream is not None and 0 < length <= _BODY_LIMIT:
            try:
                data = stream.read(length)
            except OSError:
                data = b""
            self.environ["wsgi.input"] = io.BytesIO(data)
            self.environ["CONTENT_LENGTH"] = str(len(data))
        self.environ["simulators.body"] = data
        return data

    def param(self, name: str) -> str | None:
        """Return a parameter from the query, a form body or a JSON object body, or None."""
        if self._params is None:
            params: dict[str, str] = {}
            text = self.body().decode("utf-8", errors="replace")
            if text.lstrip().startswith("{"):
                try:
                    parsed = json.loads(text)
                except ValueError:
                    parsed = None
                if isinstance(parsed, dict):
                    params.update({str(k): str(v) for k, v in parsed.items()})
            elif text:
                params.update(parse_qsl(text, keep_blank_values=True))
            params.update(parse_qsl(str(self.environ.get("QUERY_STRING", "")), True))
            self._params = params
        value = self._params.get(name)
        if value is None:  # KIS wants UPPERCASE keys; a client may still send lowercase
            value = self._params.get(name.lower())
        return value


@dataclass(frozen=True)
class RequestPattern:
    """One kind of request: method, exact path, and optionally one header or parameter value.

    Attributes:
        method: the HTTP method.
        path: the exact path.
        header: a header that must carry one of ``values``.
        param: a query/body parameter that must carry one of ``values``.
        values: the accepted values (compared after stripping blanks).
    """

    method: str
    path: str
    header: str | None = None
    param: str | None = None
    values: frozenset[str] = frozenset()

    def matches(self, request: RequestInfo) -> bool:
        """Return whether ``request`` is of this kind."""
        if request.method != self.method or request.path != self.path:
            return False
        if self.header is not None:
            return (request.header(self.header) or "").strip() in self.values
        if self.param is not None:
            return (request.param(self.param) or "").strip() in self.values
        return True

    def to_json(self) -> dict[str, Any]:
        """Return the pattern as JSON (for ``GET /_sim/faults``)."""
        out: dict[str, Any] = {"method": self.method, "path": self.path}
        if self.header is not None:
            out["header"] = {self.header: sorted(self.values)}
        if self.param is not None:
            out["param"] = {self.param: sorted(self.values)}
        return out


def _p(method: str, path: str, **kwargs: Any) -> RequestPattern:
    values = kwargs.pop("values", ())
    return RequestPattern(method, path, values=frozenset(values), **kwargs)


_KIS_ORDER = "/uapi/domestic-stock/v1/trading/order-cash"
_KIS_RVSECNCL = "/uapi/domestic-stock/v1/trading/order-rvsecncl"
_KIWOOM_ORDER = "/api/dostk/ordr"

#: Target names a fault may use.
TARGET_NAMES: Final = ("order", "cancel", "amend")

#: broker → target → the requests that are such a request at that broker. Upbit's
#: ``cancel_and_new`` cancels *and* places, so it is in all three of Upbit's targets.
TARGETS: Final[Mapping[str, Mapping[str, tuple[RequestPattern, ...]]]] = {
    "kis": {
        "order": (_p("POST", _KIS_ORDER),),
        "cancel": (_p("POST", _KIS_RVSECNCL, param="RVSE_CNCL_DVSN_CD", values=["02"]),),
        "amend": (_p("POST", _KIS_RVSECNCL, param="RVSE_CNCL_DVSN_CD", values=["01"]),),
    },
    "kiwoom": {
        "order": (_p("POST", _KIWOOM_ORDER, header="api-id", values=["kt10000", "kt10001"]),),
        "cancel": (_p("POST", _KIWOOM_ORDER, header="api-id", values=["kt10003"]),),
        "amend": (_p("POST", _KIWOOM_ORDER, header="api-id", values=["kt10002"]),),
    },
    "upbit": {
        "order": (_p("POST", "/v1/orders"), _p("POST", "/v1/orders/cancel_and_new")),
        "cancel": (
            _p("DELETE", "/v1/order"),
            _p("DELETE", "/v1/orders/open"),
            _p("DELETE", "/v1/orders/uuids"),
            _p("POST", "/v1/orders/cancel_and_new"),
        ),
        "amend": (_p("POST", "/v1/orders/cancel_and_new"),),
    },
    "bithumb": {
        "order": (_p("POST", "/v2/orders"), _p("POST", "/v1/orders")),
        "cancel": (
            _p("DELETE", "/v2/order"),
            _p("POST", "/v2/orders/cancel"),
            _p("DELETE", "/v1/order"),
        ),
        "amend": (),  # Bithumb has no amend or cancel-replace endpoint (trading-days.md §4)
    },
    "binance": {
        "order": (_p("POST", "/api/v3/order"), _p("POST", "/api/v3/order/cancelReplace")),
        "cancel": (
            _p("DELETE", "/api/v3/order"),
            _p("DELETE", "/api/v3/openOrders"),
            _p("POST", "/api/v3/order/cancelReplace"),
        ),
        "amend": (
            _p("POST", "/api/v3/order/cancelReplace"),
            _p("PUT", "/api/v3/order/amend/keepPriority"),
        ),
    },
}


def resolve_target(broker: str | None, target: str) -> tuple[RequestPattern, ...]:
    """Return the request patterns ``target`` means at ``broker``.

    Raises:
        ValueError: for an unknown target, a broker without a table (a test's own facade), or a
            target the broker does not have (Bithumb cannot amend).
    """
    if target not in TARGET_NAMES:
        raise ValueError(f"target must be one of {list(TARGET_NAMES)}")
    table = TARGETS.get(broker or "")
    if table is None:
        raise ValueError(f"no {target!r} requests are known for broker {broker!r}")
    if not table[target]:
        raise ValueError(f"{broker} has no {target!r} requests")
    return table[target]
