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

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

__all__ = ["make_http_session", "safe_retry_policy"]


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
    session = requests.Session()
    adapter = HTTPAdapter(
        max_retries=safe_retry_policy(read_retries),
        pool_connections=pool_size,
        pool_maxsize=pool_size,
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
