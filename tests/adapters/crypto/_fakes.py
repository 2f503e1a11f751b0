"""Test doubles for the crypto adapter unit tests: a session that records and scripts answers."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import requests

FIXED_NOW = dt.datetime(2026, 3, 2, 0, 30, tzinfo=dt.UTC)
API_KEY = "test-access-key"
SECRET = "test-secret-key-0123456789abcdef"


def fixed_clock() -> dt.datetime:
    """Return a fixed aware UTC time."""
    return FIXED_NOW


def response(status: int, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
    """Build a ``requests.Response`` with a JSON (or text) body."""
    resp = requests.Response()
    resp.status_code = status
    resp._content = (body if isinstance(body, str) else json.dumps(body)).encode()
    resp.headers.update(headers or {})
    resp.encoding = "utf-8"
    return resp


class FakeSession(requests.Session):
    """Records every request; answers with scripted responses or raises scripted exceptions."""

    def __init__(self, *answers: requests.Response | BaseException | Callable[..., Any]) -> None:
        super().__init__()
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.calls.append({"method": method, "url": url, **kwargs})
        if not self.answers:
            raise AssertionError(f"unexpected request {method} {url}")
        answer = self.answers.pop(0)
        if callable(answer) and not isinstance(answer, requests.Response):
            answer = answer(method, url, **kwargs)
        if isinstance(answer, BaseException):
            raise answer
        return answer
