"""Kiwoom Securities REST API (2025): the broker adapter.

``KiwoomAdapter`` implements ``brokers.SecuritiesAdapter``; ``DEFAULT_BASE_URLS`` are
Kiwoom's hosts by environment (config or a simulator URL may replace them).
"""

from securities.kiwoom.adapter import KiwoomAdapter

__all__ = ["DEFAULT_BASE_URLS", "KiwoomAdapter"]

#: Kiwoom's REST hosts by ``Credentials.environment`` (shared/brokers/kis_kiwoom.md §2.1; the
#: mock host supports KRX only).
DEFAULT_BASE_URLS = {
    "REAL": "https://api.kiwoom.com",
    "PAPER": "https://mockapi.kiwoom.com",
}
