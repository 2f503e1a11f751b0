"""The gateway client: typed calls, safe retries, and an event stream that resumes by id.

Retries, and only where they cannot make anything happen twice:

* a 429 or 503 answer with ``Retry-After``: the gateway did nothing, so any request may be sent
  again after the pause it asks for (bounded by ``max_wait``);
* a connection error or timeout: only for reads (GET) and for orders, which carry an
  Idempotency-Key — the gateway answers a repeat with the first order (``Idempotent-Replayed``),
  never a second one. A cancel is sent again only when the connection failed before anything was
  sent; once it may have arrived the error is raised (cancelling twice is harmless at the
  gateway, but the caller should see that the outcome is unknown).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import httpx

from gateway_client.errors import ApiError, TransportError
from gateway_client.models import (
    Account,
    Balance,
    Event,
    Holding,
    HoldingsSnapshot,
    Order,
    OrderPage,
    Stock,
)

_RETRY_STATUSES = (429, 503)


def _money(value: Decimal | int | str) -> str:
    """Return a decimal as the gateway reads it: plain digits, never a float or an exponent."""
    if isinstance(value, float):
        raise TypeError("pass money as Decimal or str, never float")
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if not number.is_finite() or number < 0:
        raise ValueError(f"not a non-negative decimal: {value!r}")
    return (
        format(number.normalize(), "f") if number == number.to_integral() else format(number, "f")
    )


class GatewayClient:
    """A client of one gateway with one API key."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        retries: int = 4,
        max_wait: float = 30.0,
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.max_wait = max_wait
        self._sleep = sleep
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        self._http = http or httpx.Client(timeout=timeout)

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- accounts, holdings, balances, stocks

    def accounts(self) -> list[Account]:
        """Return the accounts the key may use."""
        return [Account.from_json(a) for a in self._get("/api/v1/accounts")]

    def account(self, account_id: int) -> Account:
        """Return one account."""
        return Account.from_json(self._get(f"/api/v1/accounts/{int(account_id)}"))

    def holdings(self, account_id: int, *, refresh: bool = False) -> HoldingsSnapshot:
        """Return an account's positions (``refresh``: read the broker now)."""
        data = self._get(
            f"/api/v1/accounts/{int(account_id)}/holdings",
            params={"refresh": "true"} if refresh else None,
        )
        return HoldingsSnapshot(
            as_of=None if data.get("as_of") is None else _parse_time(data["as_of"]),
            holdings=[Holding.from_json(h) for h in data.get("holdings", [])],
        )

    def balances(self, account_id: int) -> list[Balance]:
        """Return an account's balances."""
        return [
            Balance.from_json(b) for b in self._get(f"/api/v1/accounts/{int(account_id)}/balances")
        ]

    def stocks(self, query: str | None = None, *, limit: int = 20) -> list[Stock]:
        """Search the stocks master by code or name."""
        params: dict[str, Any] = {"limit": limit}
        if query:
            params["q"] = query
        return [Stock.from_json(s) for s in self._get("/api/v1/stocks", params=params)]

    def stock(self, symbol: str) -> Stock:
        """Return one security of the stocks master."""
        return Stock.from_json(self._get(f"/api/v1/stocks/{symbol}"))

    # -- orders

    def place_order(
        self,
        account_id: int,
        symbol: str,
        side: str,
        quantity: Decimal | str,
        *,
        limit_price: Decimal | str | None = None,
        order_type: str | None = None,
        route: str | None = None,
        idempotency_key: str | None = None,
    ) -> Order:
        """Place an order once, whatever the network does.

        One Idempotency-Key is made for the order (or given) and sent on every retry of it, so a
        retry after a lost answer returns the order the first attempt made.
        """
        body: dict[str, Any] = {
            "account_id": int(account_id),
            "symbol": symbol,
            "side": side.upper(),
            "type": (order_type or ("LIMIT" if limit_price is not None else "MARKET")).upper(),
            "quantity": _money(quantity),
        }
        if limit_price is not None:
            body["limit_price"] = _money(limit_price)
        if route is not None:
            body["route"] = route
        key = idempotency_key or f"gwc-{uuid.uuid4()}"
        data = self._request(
            "POST",
            "/api/v1/orders",
            json_body=body,
            headers={"Idempotency-Key": key},
            idempotent=True,
            retry_conflict=True,
        )
        return Order.from_json(data)

    def get_order(self, order_id: uuid.UUID | str) -> Order:
        """Return one order."""
        return Order.from_json(self._get(f"/api/v1/orders/{uuid.UUID(str(order_id))}"))

    def list_orders(
        self,
        *,
        account_id: int | None = None,
        status: str | None = None,
        symbol: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> OrderPage:
        """Return a page of orders, newest first."""
        params = {
            k: v
            for k, v in {
                "account_id": account_id,
                "status": status,
                "symbol": symbol,
                "cursor": cursor,
                "limit": limit,
            }.items()
            if v is not None
        }
        data = self._get("/api/v1/orders", params=params)
        return OrderPage([Order.from_json(o) for o in data["orders"]], data.get("next_cursor"))

    def cancel_order(self, order_id: uuid.UUID | str) -> Order:
        """Ask the broker to cancel an order's open remainder."""
        return Order.from_json(
            self._request("POST", f"/api/v1/orders/{uuid.UUID(str(order_id))}/cancel")
        )

    # -- events

    def events_page(self, after: int = 0, *, limit: int = 100) -> tuple[list[Event], int]:
        """Return a page of events after ``after`` and where the next page starts."""
        data = self._get("/api/v1/events", params={"after": after, "limit": limit})
        return [Event.from_json(e) for e in data["events"]], int(data["next_after"])

    def latest_event_id(self) -> int:
        """Return the id of the latest event of the log (start a stream there to miss nothing)."""
        data = self._get("/api/v1/events", params={"after": 0, "limit": 1})
        return int(data["latest_id"])

    def events(
        self,
        *,
        after: int | None = None,
        read_timeout: float = 45.0,
        stop: Callable[[], bool] | None = None,
    ) -> Iterator[Event]:
        """Follow the event stream, resuming after the last event received when it breaks.

        ``after=None`` starts with what happens from now on. Each event comes exactly once and
        in order, across any number of reconnections (``Last-Event-ID``). The stream's heartbeats
        (every 15 s) keep ``read_timeout`` from firing on a quiet stream; ``stop`` is asked
        between events and heartbeats.
        """
        last = after
        pause = 0.1
        while stop is None or not stop():
            headers = {**self._headers, "Accept": "text/event-stream"}
            if last is not None:
                headers["Last-Event-ID"] = str(last)
            try:
                with self._http.stream(
                    "GET",
                    f"{self.base_url}/api/v1/events",
                    headers=headers,
                    timeout=httpx.Timeout(10.0, read=read_timeout),
                ) as response:
                    if response.status_code != 200:
                        response.read()
                        error = _api_error(response)
                        if response.status_code not in _RETRY_STATUSES:
                            raise error
                        self._sleep(self._wait(response, 1))
                        continue
                    pause = 0.1
                    for kind, fields in _sse(response.iter_lines()):
                        if kind == "comment":
                            if stop is not None and stop():
                                return
                            continue
                        event = Event.from_json(json.loads(fields["data"]))
                        last = event.id
                        yield event
                        if stop is not None and stop():
                            return
            except httpx.TransportError:
                pass  # reconnect below, after the last event received
            self._sleep(pause)
            pause = min(pause * 2, 5.0)

    # -- plumbing

    def _get(self, path: str, *, params: dict[str, Any] | None = None) -> Any:
        return self._request("GET", path, params=params, idempotent=True)

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        idempotent: bool = False,
        retry_conflict: bool = False,
    ) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(
                    method,
                    f"{self.base_url}{path}",
                    params=params,
                    content=None if json_body is None else json.dumps(json_body),
                    headers={
                        **self._headers,
                        **({"Content-Type": "application/json"} if json_body is not None else {}),
                        **(headers or {}),
                    },
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # Nothing reached the gateway: any request may go again.
                if attempt > self.retries:
                    raise TransportError(str(exc)) from exc
                self._sleep(self._backoff(attempt))
                continue
            except httpx.TransportError as exc:
                # It may have arrived: only a request that cannot act twice goes again.
                if not idempotent or attempt > self.retries:
                    raise TransportError(str(exc)) from exc
                self._sleep(self._backoff(attempt))
                continue
            if response.status_code < 400:
                return None if response.status_code == 204 else response.json()
            error = _api_error(response)
            retryable = response.status_code in _RETRY_STATUSES and (
                "Retry-After" in response.headers or error.retry_after is not None
            )
            # The first request with this Idempotency-Key is still at the broker: ask again.
            in_flight = retry_conflict and error.code == "order_in_flight"
            if (retryable or in_flight) and attempt <= self.retries:
                self._sleep(self._wait(response, attempt, error))
                continue
            raise error

    def _wait(self, response: httpx.Response, attempt: int, error: ApiError | None = None) -> float:
        header = response.headers.get("Retry-After")
        seconds = None
        if header is not None and header.strip().isdigit():
            seconds = float(header)
        elif error is not None and error.retry_after is not None:
            seconds = float(error.retry_after)
        return min(seconds if seconds is not None else self._backoff(attempt), self.max_wait)

    @staticmethod
    def _backoff(attempt: int) -> float:
        pause = min(0.2 * 2 ** (attempt - 1), 5.0)
        return random.uniform(pause / 2, pause)  # noqa: S311 - jitter


def _api_error(response: httpx.Response) -> ApiError:
    try:
        problem = response.json()
    except ValueError:
        problem = {"code": "http_error", "detail": response.text[:200]}
    if not isinstance(problem, dict):
        problem = {"code": "http_error", "detail": str(problem)[:200]}
    return ApiError(response.status_code, problem)


def _parse_time(value: str) -> Any:
    import datetime as dt

    return dt.datetime.fromisoformat(value)


def _sse(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, str]]]:
    """Yield ``("event", fields)`` per event and ``("comment", {})`` per heartbeat."""
    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "data" in fields:
                yield "event", fields
            fields = {}
        elif line.startswith(":"):
            yield "comment", {}
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            fields[name] = (
                fields[name] + "\n" + value if name == "data" and name in fields else value
            )
