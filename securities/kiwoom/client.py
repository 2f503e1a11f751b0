"""Signed HTTP calls to the Kiwoom REST API, returning raw dicts or raising mapped errors.

Every TR is a ``POST`` with a JSON body and the headers ``api-id``, ``authorization: Bearer`` and,
when continuing, ``cont-yn: Y`` / ``next-key`` (``shared/brokers/kis_kiwoom.md`` §2.3). The body
carries ``return_code`` (0 = success) and ``return_msg``; errors go through
:data:`securities.kiwoom.errors.KIWOOM_ERRORS`.

Since every call is a POST, whether a call may be repeated is declared per TR in
:data:`READ_TRS` (inquiries) and :data:`WRITE_TRS` (orders). Retry and re-issue policy, in
:meth:`securities._http.TokenClient._with_token`:

* **Token refused** (8005 or 8003, whether in ``return_code`` or embedded in ``return_msg``, or
  HTTP 401): ask the TokenProvider for a fresh token *once* and resend, reads and orders alike.
  For an order this is safe because Kiwoom authenticates the request before the order system
  sees it: an order refused for its token was never placed.
* **Read TRs**: one more attempt after a short jittered backoff on a transient failure (no
  answer, an unexplained 5xx, the per-second limit 1700).
* **Order TRs**: never resent for any other reason; sent with no answer is
  ``OrderStateUnknown`` (reconcile with ``find_order``); not sent at all is ``BrokerTimeout``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from brokers.errors import BrokerAuthFailed, BrokerError, BrokerRateLimited
from securities._http import TokenClient, decode_json, retry_after_header, with_retry_after
from securities.kiwoom.errors import BROKER, KIWOOM_ERRORS, extract_code

__all__ = ["READ_TRS", "WRITE_TRS", "KiwoomClient", "KiwoomResponse"]

log = logging.getLogger(__name__)

#: Inquiry TRs: no effect at the broker, safe to send again.
READ_TRS = frozenset({"ka00001", "kt00001", "kt00007", "kt00018", "ka10075", "ka10076"})
#: Order TRs: sent at most once (bar a refused token).
WRITE_TRS = frozenset({"kt10000", "kt10001", "kt10002", "kt10003"})
#: Pages fetched at most for one query: a guard against a cursor that never ends.
MAX_PAGES = 50


@dataclass(frozen=True)
class KiwoomResponse:
    """One successful answer: its body and the continuation headers."""

    body: Mapping[str, Any]
    cont_yn: str
    next_key: str

    @property
    def has_more(self) -> bool:
        """Tell whether Kiwoom has a next page."""
        return self.cont_yn == "Y" and bool(self.next_key)


class KiwoomClient(TokenClient):
    """Kiwoom HTTP client for one account.

    Args:
        credentials: app key (``api_key``) and secret key (``api_secret``).
        base_url: ``https://api.kiwoom.com``, ``https://mockapi.kiwoom.com`` or a simulator.
        session: the injected pooled session.
        token_provider: gives the access token; required for every TR.
        timeout: seconds for connect and for each read.
        sleep: how to wait between read attempts (tests pin it).
    """

    label = "Kiwoom"
    broker = BROKER
    json_headers = {"Content-Type": "application/json;charset=UTF-8"}
    # Per app key; no published number (kis_kiwoom.md §2.8: 5/s in the terms community code cites).
    rate_limits = {
        "REAL": ("KIWOOM_REAL_PER_SECOND", 5.0),
        "PAPER": ("KIWOOM_PAPER_PER_SECOND", 5.0),
    }

    def _rate_refused(self, response: requests.Response) -> bool:
        """1700 (API 요청 개수 초과), as a code or inside ``return_msg``; or HTTP 429."""
        if response.status_code == 429:
            return True
        data = decode_json(response)
        if not isinstance(data, Mapping):
            return False
        return str(data.get("return_code")) == "1700" or "[1700:" in str(data.get("return_msg"))

    # -- OAuth (the calls are TokenClient's) ---------------------------------------------------

    token_path = "/oauth2/token"  # noqa: S105 - a URL path (au10001)
    revoke_path = "/oauth2/revoke"  # au10002
    secret_field = "secretkey"  # noqa: S105 - a field name
    token_field = "token"  # noqa: S105 - a field name

    def _oauth_accepted(self, data: Mapping[str, Any]) -> bool:
        return _return_code(data) == 0

    # -- TRs ---------------------------------------------------------------------------------

    def request(
        self,
        path: str,
        api_id: str,
        body: Mapping[str, Any],
        *,
        cont_yn: str = "",
        next_key: str = "",
    ) -> KiwoomResponse:
        """POST one TR (one page).

        Raises:
            ValueError: ``api_id`` is declared neither a read nor a write.
            OrderStateUnknown: an order TR was sent and no answer came.
            BrokerError: mapped from ``return_code``/``return_msg`` or the transport.
        """
        if api_id in WRITE_TRS:
            is_write = True
        elif api_id in READ_TRS:
            is_write = False
        else:
            raise ValueError(f"declare {api_id} in READ_TRS or WRITE_TRS first")
        return self._call(path, api_id, body, cont_yn=cont_yn, next_key=next_key, is_write=is_write)

    def pages(self, path: str, api_id: str, body: Mapping[str, Any]) -> Iterator[KiwoomResponse]:
        """POST a read TR and follow ``cont-yn``/``next-key`` to the last page.

        Raises:
            BrokerError: mapped from the answer or the transport.
        """
        cont_yn, next_key = "", ""
        for _ in range(MAX_PAGES):
            page = self.request(path, api_id, body, cont_yn=cont_yn, next_key=next_key)
            yield page
            if not page.has_more:
                return
            cont_yn, next_key = "Y", page.next_key
        log.warning("Kiwoom %s: stopped after %d pages", api_id, MAX_PAGES)

    def _call(
        self,
        path: str,
        api_id: str,
        body: Mapping[str, Any],
        *,
        cont_yn: str,
        next_key: str,
        is_write: bool,
    ) -> KiwoomResponse:
        return self._with_token(
            api_id,
            lambda token: self._send_once(
                path, api_id, body, token, cont_yn=cont_yn, next_key=next_key, is_write=is_write
            ),
            is_write=is_write,
        )

    def _send_once(
        self,
        path: str,
        api_id: str,
        body: Mapping[str, Any],
        token: str,
        *,
        cont_yn: str,
        next_key: str,
        is_write: bool,
    ) -> KiwoomResponse:
        headers = {
            **self.json_headers,
            "api-id": api_id,
            "authorization": f"Bearer {token}",
        }
        if cont_yn:
            headers["cont-yn"] = cont_yn
            headers["next-key"] = next_key
        response = self._send(
            "POST", path, is_write=is_write, headers=headers, json_body=dict(body)
        )
        data = decode_json(response)
        if response.status_code == 200 and isinstance(data, Mapping) and _return_code(data) == 0:
            return KiwoomResponse(
                body=data,
                cont_yn=str(response.headers.get("cont-yn") or "").strip().upper(),
                next_key=str(response.headers.get("next-key") or "").strip(),
            )
        raise self._error(response, data, is_write=is_write)

    def _error(self, response: requests.Response, data: Any, *, is_write: bool) -> BrokerError:
        code: str | None = None
        message: str | None = None
        if isinstance(data, Mapping):
            message = str(data.get("return_msg") or "") or None
            code = extract_code(data.get("return_code"), message)
        if code is None and response.status_code == 401:
            # The official client treats a bare 401 as a refused token too.
            error: BrokerError = BrokerAuthFailed(
                "Kiwoom refused the token (HTTP 401)",
                broker=BROKER,
                broker_code="401",
                broker_message=message,
            )
        elif code is None and response.status_code == 429:
            error = BrokerRateLimited(
                "Kiwoom rate limit (HTTP 429)", broker=BROKER, broker_message=message
            )
        elif code is None and response.status_code == 403:
            error = BrokerAuthFailed(
                "Kiwoom refused the request (HTTP 403)", broker=BROKER, broker_message=message
            )
        else:
            error = KIWOOM_ERRORS.error(
                code, message, is_write=is_write, http_status=response.status_code
            )
        return with_retry_after(error, retry_after_header(response))

    def _token_refused(self, exc: BrokerAuthFailed) -> bool:
        if exc.broker_code == "401":
            return True
        return KIWOOM_ERRORS.rule(exc.broker_code, exc.broker_message).token_rejected


def _return_code(data: Mapping[str, Any]) -> int | None:
    value = data.get("return_code")
    if value is None:
        return 0  # some answers omit it; HTTP 200 without a code is a success
    try:
        return int(str(value).strip())
    except ValueError:
        return None
