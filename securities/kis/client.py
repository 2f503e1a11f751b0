"""Signed HTTP calls to the KIS Open API, returning raw dicts or raising mapped errors.

Every ``/uapi`` call carries ``authorization: Bearer``, ``appkey``, ``appsecret``, ``tr_id`` and
``custtype: P`` (``shared/brokers/kis_kiwoom.md`` §1.4). The answer is the envelope
``{"rt_cd", "msg_cd", "msg1", …}``: ``rt_cd "0"`` is success, anything else goes through
:data:`securities.kis.errors.KIS_ERRORS`.

Retry and re-issue policy (DESIGN §6, STYLE H8), in
:meth:`securities._http.TokenClient._with_token`:

* **Token refused** (EGW00121/00122/00123): ask the TokenProvider for a fresh token *once*
  (``invalidate``) and resend, reads and order POSTs alike. For an order this is safe because the
  KIS gateway checks the token before it forwards anything to the order system: an order refused
  for its token was never seen by the exchange, so sending it once more cannot double it.
* **Reads** (GET inquiries): one more attempt, after a short jittered backoff, on a transient
  failure: no answer, a 5xx we do not understand, or the per-second limit EGW00201.
* **Order POSTs**: never resent for any other reason. Sent with no answer (read timeout, reset,
  dropped connection) is ``OrderStateUnknown``; the caller reconciles with ``find_order``.
  Connection failures before anything was sent are ``BrokerTimeout`` (the session's urllib3
  retry may already have retried the connect, which is safe for any method).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from brokers.errors import BrokerAuthFailed, BrokerError, BrokerRateLimited
from securities._http import TokenClient, decode_json, retry_after_header, with_retry_after
from securities.kis.errors import BROKER, KIS_ERRORS

__all__ = ["KisClient", "KisResponse"]

log = logging.getLogger(__name__)

HASHKEY_PATH = "/uapi/hashkey"

#: tr_cont values meaning "more data follows" (F first page, M middle); D/E mean last page.
_MORE = frozenset({"F", "M"})
#: Pages fetched at most for one query: a guard against a cursor that never ends.
MAX_PAGES = 50


@dataclass(frozen=True)
class KisResponse:
    """One successful ``/uapi`` answer: its body and the ``tr_cont`` paging header."""

    body: Mapping[str, Any]
    tr_cont: str

    @property
    def has_more(self) -> bool:
        """Tell whether KIS has a next page."""
        if self.tr_cont not in _MORE:
            return False
        cursor = str(self.body.get("ctx_area_nk100") or "").strip()
        return bool(cursor)


class KisClient(TokenClient):
    """KIS HTTP client for one account.

    Args:
        credentials: app key, app secret, account number and product code.
        base_url: the host, e.g. ``https://openapi.koreainvestment.com:9443`` or a simulator.
        session: the injected pooled session.
        token_provider: gives the access token; required for every ``/uapi`` call.
        timeout: seconds for connect and for each read.
        sleep: how to wait between read attempts (tests pin it).
    """

    label = "KIS"
    broker = BROKER
    json_headers = {"content-type": "application/json; charset=utf-8"}
    # 20 requests a second per app key on the real host, about 2 on paper (kis_kiwoom.md §1.7).
    rate_limits = {"REAL": ("KIS_REAL_PER_SECOND", 20.0), "PAPER": ("KIS_PAPER_PER_SECOND", 2.0)}

    def _rate_refused(self, response: requests.Response) -> bool:
        """EGW00201 (초당 거래건수를 초과하였습니다, HTTP 500) or a bare 429."""
        if response.status_code == 429:
            return True
        data = decode_json(response)
        return isinstance(data, Mapping) and str(data.get("msg_cd") or "").strip() == "EGW00201"

    # -- OAuth (no bearer token; the calls are TokenClient's) ---------------------------------

    token_path = "/oauth2/tokenP"  # noqa: S105 - a URL path
    revoke_path = "/oauth2/revokeP"
    secret_field = "appsecret"  # noqa: S105 - a field name
    token_field = "access_token"  # noqa: S105 - a field name

    def _oauth_error(self, path: str, response: requests.Response, data: Any) -> BrokerError:
        """Map a refused ``/oauth2`` answer through :data:`KIS_ERRORS`.

        EGW00133 (one issuance a minute) is ``BrokerRateLimited`` with ``retry_after`` 60; a bad
        app key or secret (EGW00103/EGW00105) is ``BrokerAuthFailed``; a bare HTTP 401/403 or 429
        is mapped by its status.
        """
        code, message = None, None
        if isinstance(data, Mapping):
            # Token errors come OAuth-style ({"error_code", "error_description"}), /uapi-style
            # ones as the rt_cd envelope; accept both.
            code = data.get("error_code") or data.get("msg_cd")
            message = data.get("error_description") or data.get("msg1") or data.get("message")
        error = KIS_ERRORS.error(
            str(code) if code else None,
            str(message) if message else None,
            http_status=response.status_code,
        )
        if code is None and response.status_code in (401, 403):
            error = BrokerAuthFailed(
                f"KIS refused {path} (HTTP {response.status_code})", broker=BROKER
            )
        elif code is None and response.status_code == 429:
            error = BrokerRateLimited(f"KIS rate limit on {path}", broker=BROKER)
        return with_retry_after(error, retry_after_header(response))

    def hashkey(self, body: Mapping[str, Any]) -> str:
        """POST ``/uapi/hashkey`` and return ``HASH`` (optional for orders, so unused).

        Raises:
            BrokerError: the broker refused or did not answer.
        """
        response = self._send(
            "POST",
            HASHKEY_PATH,
            is_write=False,
            headers={
                **self.json_headers,
                "appkey": self._credentials.api_key,
                "appsecret": self._credentials.api_secret,
            },
            json_body=dict(body),
        )
        data = decode_json(response)
        if response.status_code == 200 and isinstance(data, Mapping) and data.get("HASH"):
            return str(data["HASH"])
        raise self._error(response, data, is_write=False)

    # -- /uapi -------------------------------------------------------------------------------

    def get(
        self, path: str, tr_id: str, params: Mapping[str, str], *, tr_cont: str = ""
    ) -> KisResponse:
        """GET one inquiry page.

        Raises:
            BrokerError: mapped from the envelope or the transport.
        """
        return self._call("GET", path, tr_id, params=params, tr_cont=tr_cont)

    def get_pages(self, path: str, tr_id: str, params: Mapping[str, str]) -> Iterator[KisResponse]:
        """GET every page of an inquiry, following ``tr_cont`` and the ``ctx_area`` cursors.

        Raises:
            BrokerError: mapped from the envelope or the transport.
        """
        query = dict(params)
        query.setdefault("CTX_AREA_FK100", "")
        query.setdefault("CTX_AREA_NK100", "")
        tr_cont = ""
        for _ in range(MAX_PAGES):
            page = self.get(path, tr_id, query, tr_cont=tr_cont)
            yield page
            if not page.has_more:
                return
            query["CTX_AREA_FK100"] = str(page.body.get("ctx_area_fk100") or "")
            query["CTX_AREA_NK100"] = str(page.body.get("ctx_area_nk100") or "")
            tr_cont = "N"
        log.warning("KIS %s: stopped after %d pages", tr_id, MAX_PAGES)

    def post_order(self, path: str, tr_id: str, body: Mapping[str, str]) -> KisResponse:
        """POST an order, amendment or cancellation: sent at most once, bar a refused token.

        Raises:
            OrderStateUnknown: sent and no answer came (or a gateway timeout behind KIS).
            BrokerError: mapped from the envelope or the transport.
        """
        return self._call("POST", path, tr_id, body=body, is_write=True)

    def _headers(self, token: str, tr_id: str, tr_cont: str) -> dict[str, str]:
        return {
            **self.json_headers,
            "authorization": f"Bearer {token}",
            "appkey": self._credentials.api_key,
            "appsecret": self._credentials.api_secret,
            "tr_id": tr_id,
            "tr_cont": tr_cont,
            "custtype": "P",
        }

    def _call(
        self,
        method: str,
        path: str,
        tr_id: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, str] | None = None,
        tr_cont: str = "",
        is_write: bool = False,
    ) -> KisResponse:
        return self._with_token(
            tr_id,
            lambda token: self._send_once(
                method,
                path,
                tr_id,
                token,
                params=params,
                body=body,
                tr_cont=tr_cont,
                is_write=is_write,
            ),
            is_write=is_write,
        )

    def _send_once(
        self,
        method: str,
        path: str,
        tr_id: str,
        token: str,
        *,
        params: Mapping[str, str] | None,
        body: Mapping[str, str] | None,
        tr_cont: str,
        is_write: bool,
    ) -> KisResponse:
        response = self._send(
            method,
            path,
            is_write=is_write,
            headers=self._headers(token, tr_id, tr_cont),
            params=params,
            json_body=dict(body) if body is not None else None,
        )
        data = decode_json(response)
        if (
            response.status_code == 200
            and isinstance(data, Mapping)
            and str(data.get("rt_cd", "")).strip() == "0"
        ):
            tr_cont = str(response.headers.get("tr_cont") or "").strip()
            return KisResponse(body=data, tr_cont=tr_cont)
        raise self._error(response, data, is_write=is_write)

    def _error(self, response: requests.Response, data: Any, *, is_write: bool) -> BrokerError:
        """Map a non-success answer (pure apart from reading the response)."""
        code: str | None = None
        message: str | None = None
        if isinstance(data, Mapping):
            raw_code = data.get("msg_cd") or data.get("error_code")
            code = str(raw_code).strip() if raw_code else None
            raw_message = data.get("msg1") or data.get("error_description")
            message = str(raw_message) if raw_message else None
        elif response.text:
            # KIS sometimes answers plain text ("OPSQ2000 : ERROR : INPUT INVALID_CHECK_ACNO").
            text = response.text.strip()[:200]
            first = (text.split(maxsplit=1)[0] if text else "").rstrip(":")
            code = first if first[:4].isalpha() and first[4:].isdigit() else None
            message = text
        if code is None and response.status_code == 429:
            error: BrokerError = BrokerRateLimited("KIS rate limit (HTTP 429)", broker=BROKER)
        elif code is None and response.status_code in (401, 403):
            error = BrokerAuthFailed(
                f"KIS refused the request (HTTP {response.status_code})", broker=BROKER
            )
        else:
            error = KIS_ERRORS.error(
                code, message, is_write=is_write, http_status=response.status_code
            )
        return with_retry_after(error, retry_after_header(response))

    def _token_refused(self, exc: BrokerAuthFailed) -> bool:
        return KIS_ERRORS.rule(exc.broker_code, exc.broker_message).token_rejected
