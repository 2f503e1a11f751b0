"""Answer requests that match no route with the broker's own JSON error, not Flask's HTML page.

A client calling an endpoint the simulator lacks must fail the way it fails at the broker: with
the broker's error envelope (``{"error": {...}}``, ``{"code", "msg"}``, ``rt_cd``/``msg_cd``,
``return_code``/``return_msg``), which its error handling parses, rather than with an HTML page it
would report as a garbled answer. Each facade passes its envelope to :func:`answer_unknown_paths`.

Only routing failures are answered so: a route that aborts with 404 itself (KIS's master-file
download for a missing file) keeps its own answer, and unknown ``/_sim`` paths get the control
surface's ``{"error": "..."}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Response, jsonify, make_response, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from simulators.control.routes import CONTROL_PREFIX

__all__ = ["UnknownPathAnswer", "answer_unknown_paths"]

#: ``(status, method, path) -> the broker's answer`` (body and status, as a view returns them);
#: ``status`` is 404 (no such path) or 405 (the path exists, not with this method).
UnknownPathAnswer = Callable[[int, str, str], ResponseReturnValue]


def answer_unknown_paths(app: Flask, answer: UnknownPathAnswer | Mapping[str, Any]) -> None:
    """Register 404/405 handlers on ``app`` that answer unrouted requests with ``answer``.

    Args:
        app: the facade's app.
        answer: a callable building the answer, or a JSON body sent with the 404/405 status.
    """
    if isinstance(answer, Mapping):
        body = dict(answer)

        def build(status: int, _method: str, _path: str) -> ResponseReturnValue:
            return jsonify(body), status

    else:
        build = answer

    def handle(exc: HTTPException) -> ResponseReturnValue:
        if request.url_rule is not None:
            return exc  # the route's own abort(404): keep its answer
        status = exc.code or 404
        if request.path == CONTROL_PREFIX or request.path.startswith(CONTROL_PREFIX + "/"):
            response: Response = make_response(
                jsonify({"error": f"no control route {request.method} {request.path}"}), status
            )
        else:
            response = make_response(build(status, request.method, request.path))
        for name, value in exc.get_headers():
            if name.lower() == "allow":  # 405: which methods the path has
                response.headers[name] = value
        return response

    app.register_error_handler(404, handle)
    app.register_error_handler(405, handle)
