"""ORM models, one module per concern; importing this package registers them all."""

from web_server.models.accounts import (
    Account,
    AccountType,
    Environment,
    Exchange,
    SecuritiesToken,
)
from web_server.models.api_keys import ApiKey
from web_server.models.audit import AuditEntry
from web_server.models.events import (
    OrderEvent,
    OrderEventCounter,
    WebhookCursor,
    WebhookDelivery,
    WebhookSubscription,
)
from web_server.models.market import CryptoMarket, Stock
from web_server.models.risk import (
    KillSwitch,
    PanicAction,
    RiskEvent,
    RiskPolicy,
    StockBasePrice,
    StocksSyncRun,
)
from web_server.models.system import ProcessLock, TokenIssuanceWindow
from web_server.models.trade import Fill, Holding, Order, OrderIntent, OrderStatus
from web_server.models.users import LoginThrottle, User

__all__ = [
    "Account",
    "ApiKey",
    "AuditEntry",
    "AccountType",
    "CryptoMarket",
    "Environment",
    "Exchange",
    "Fill",
    "Holding",
    "KillSwitch",
    "LoginThrottle",
    "Order",
    "OrderEvent",
    "OrderEventCounter",
    "OrderIntent",
    "OrderStatus",
    "PanicAction",
    "ProcessLock",
    "RiskEvent",
    "RiskPolicy",
    "SecuritiesToken",
    "Stock",
    "StockBasePrice",
    "StocksSyncRun",
    "TokenIssuanceWindow",
    "User",
    "WebhookCursor",
    "WebhookDelivery",
    "WebhookSubscription",
]
