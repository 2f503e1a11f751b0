"""The one HTTP session factory every adapter uses, and its safe retry policy.

urllib3 retries a request inside ``session.request`` before an adapter sees anything, so its
policy decides what may be sent twice. The rule (DESIGN §6): only a request that cannot have
reached the broker, or one that has no effect there, is repeated.

* **Connect errors** (refused, DNS, connect timeout) are retried for every method: nothing left.
* **Read errors** (the request left, the answer did not come) are not retried here: the adapters
  retry their reads themselves, with back-off, and decide what a lost write means.
* **502, 503 and 504 answers** are retried for GET and HEAD only.
* **Other errors** (a TLS error, a protocol error that urllib3 does not class as a read) are
  never retried: urllib3 counts them without looking at the method, and a TLS failure *after* the
  send would otherwise re-send an order POST (seen: one ``place_order`` reached the broker three
  times). The adapter decides what such a failure means: ``OrderStateUnknown`` on a write.
"""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies
from urllib3.util.retry import Retry

__all__ = ["BrokerSession", "make_http_session", "safe_retry_policy"]


def safe_retry_policy(read_retries: int = 2) -> Retry:
    """Return the retry policy of :func:`make_http_session` (see the module docstring)."""
    return Retry(
        total=read_retries,
        connect=read_retries,
        read=0,
        status=read_retries,
        other=0,
        backoff_factor=0.2,
        status_forcelist=(502, 503, 504),
        allowed_methods=frozenset({"GET", "HEAD"}),
        # A long Retry-After must reach the caller, not stall a worker inside urllib3.
        respect_retry_after_header=False,
        raise_on_status=False,
    )


def make_http_session(*, read_retries: int = 2, pool_size: int = 10) -> requests.Session:
    """Return a pooled session that re-sends only what cannot have taken effect at the broker.

    POSTs are never retried here: an order POST whose answer is lost must be reconciled, not sent
    again, and an adapter retries a read-only POST (Kiwoom's inquiry TRs) itself.
    """
    session = BrokerSession()
    adapter = HTTPAdapter(
        max_retries=safe_retry_policy(read_retries),
        pool_connections=pool_size,
        pool_maxsize=pool_size,
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class BrokerSession(requests.Session):
    """A session that reads the environment's proxy and CA settings once per host, never netrc.

    ``requests`` with ``trust_env`` reads every proxy variable of ``os.environ`` (and
    ``~/.netrc``) on every request: measured, 5-7 % of the gateway's CPU per order (issue 12).
    The proxies and CA bundle the environment names are the same for the process's life, so they
    are looked up once per scheme and host and applied as ``requests`` would apply them. netrc is
    not consulted: its credentials would replace a broker call's own ``Authorization`` header.
    """

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False
        self._environment: dict[tuple[str, str], tuple[dict[str, str], str | None]] = {}
        self._environment_lock = threading.Lock()

    def merge_environment_settings(
        self, url: str, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        """Apply the environment's proxies and CA bundle for ``url``'s host, read once."""
        host = urlsplit(url)[:2]
        known = self._environment.get(host)
        if known is None:
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            known = (get_environ_proxies(url), bundle)
            with self._environment_lock:
                self._environment[host] = known
        environ_proxies, bundle = known
        proxies = {**environ_proxies, **(proxies or {})}
        if bundle and (verify is True or verify is None):
            verify = bundle
        return super().merge_environment_settings(url, proxies, stream, verify, cert)
