"""Orders: idempotent placement, cancel, look-up, reconciliation and status polling (DESIGN §4).

An order is never lost and never sent twice. Each part of its life has its module:

- ``placement``: validate, commit the intent *before* the broker is called (STYLE H8); replays
  and conflicts of an ``Idempotency-Key`` (no order id is handed out before it is settled).
- ``submission``: own the committed order, call the broker once, record its answer — riding out
  a lost database connection with bounded retries.
- ``cancel``: cancel an open order at its broker.
- ``amend``: replace an open order by a new one (new quantity and/or price), recorded like a
  placement.
- ``fills``: every execution written once to ``trade.fills``, and the order's fee/tax totals.
- ``reconcile``: settle UNKNOWN orders, and PENDING_SUBMIT ones whose request is gone (their
  lease ran out), by asking the broker; never resend.
- ``polling``: move open orders forward (PARTIALLY_FILLED, FILLED, CANCELLED).
- ``queries``: one order, pages of orders, an account's latest, and the API's view of an order.
- ``lifecycle``: what every writer shares: the order's advisory lock (held by the request, the
  reconciler, the poller and a cancel alike), the placing request's lease, and the state moves,
  which only ever go forward.

The public functions are re-exported here, so ``from web_server.services import orders`` keeps
working for the API, the jobs and the tests.
"""

from __future__ import annotations

from brokers.statuses import OPEN_STATUSES
from web_server.services.orders.amend import amend_order
from web_server.services.orders.cancel import cancel_order
from web_server.services.orders.fills import order_fills, record_fill
from web_server.services.orders.lifecycle import SEND_WINDOW, START_LEASE
from web_server.services.orders.placement import (
    IDEMPOTENCY_KEY,
    ROUTES,
    canonical_body,
    new_client_order_id,
    place_order,
    request_hash,
)
from web_server.services.orders.polling import poll_open_orders
from web_server.services.orders.queries import (
    fill_views,
    get_order,
    list_orders,
    order_detail,
    order_view,
    recent_orders,
)
from web_server.services.orders.reconcile import RECONCILE_GRACE, reconcile_orders

__all__ = [
    "IDEMPOTENCY_KEY",
    "OPEN_STATUSES",
    "RECONCILE_GRACE",
    "ROUTES",
    "SEND_WINDOW",
    "START_LEASE",
    "amend_order",
    "cancel_order",
    "canonical_body",
    "fill_views",
    "get_order",
    "list_orders",
    "new_client_order_id",
    "order_detail",
    "order_fills",
    "order_view",
    "place_order",
    "poll_open_orders",
    "recent_orders",
    "reconcile_orders",
    "record_fill",
    "request_hash",
]
