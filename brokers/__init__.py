"""The broker core: what every adapter implements and everything it may depend on.

No Flask, no SQLAlchemy, no database: adapters (``securities/*``, ``crypto_exchanges/*``) import
this package, the standard library and their HTTP library, and nothing of the web app. The app's
service layer picks an adapter per exchange (``web_server.services.brokers``) and composes it with
credentials, a session and a token provider.

Modules, one concern each:

* :mod:`brokers.interface` — the adapter protocols and the token provider protocol;
* :mod:`brokers.values` — the value objects that cross the boundary;
* :mod:`brokers.statuses` — side, order type, the domain's order statuses;
* :mod:`brokers.errors` — the error tree with stable codes;
* :mod:`brokers.krx` — KRX tick table and daily price band;
* :mod:`brokers.http` — the one HTTP session factory and its safe retry policy;
* :mod:`brokers.clock` — aware UTC time and the Korean trading date.

The names below are re-exported for convenience; importing this package does no work.
"""

from brokers.clock import KST, Clock, kst_date, utc_now
from brokers.http import make_http_session
from brokers.interface import BrokerAdapter, CryptoAdapter, SecuritiesAdapter, TokenProvider
from brokers.statuses import OPEN_STATUSES, TERMINAL_STATUSES, OrderStatus, OrderType, Side
from brokers.values import (
    Balance,
    BrokerOrder,
    Capabilities,
    Credentials,
    Fill,
    IssuedToken,
    MarketRule,
    OrderRequest,
    Position,
)

__all__ = [
    "KST",
    "OPEN_STATUSES",
    "TERMINAL_STATUSES",
    "Balance",
    "BrokerAdapter",
    "BrokerOrder",
    "Capabilities",
    "Clock",
    "Credentials",
    "CryptoAdapter",
    "Fill",
    "IssuedToken",
    "MarketRule",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "Position",
    "SecuritiesAdapter",
    "Side",
    "TokenProvider",
    "kst_date",
    "make_http_session",
    "utc_now",
]
