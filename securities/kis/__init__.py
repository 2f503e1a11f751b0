"""KIS (Korea Investment & Securities) Open API: the broker adapter and the stock master files.

``KisAdapter`` implements ``brokers.SecuritiesAdapter``; ``DEFAULT_BASE_URLS`` are
KIS's hosts by environment (config or a simulator URL may replace them).
"""

from securities.kis.adapter import KisAdapter

__all__ = ["DEFAULT_BASE_URLS", "KisAdapter"]

#: KIS's REST hosts by ``Credentials.environment`` (shared/brokers/kis_kiwoom.md §1.1).
DEFAULT_BASE_URLS = {
    "REAL": "https://openapi.koreainvestment.com:9443",
    "PAPER": "https://openapivts.koreainvestment.com:29443",
}
