"""The Kiwoom adapter: the gateway's broker interface over Kiwoom's REST API (2025).

No HTTP details here (:mod:`securities.kiwoom.client`) and no wire shapes (:mod:`.mapping`).

Kiwoom has no client order id, so an order whose answer was lost (``OrderStateUnknown``) is
settled with :meth:`KiwoomAdapter.find_order`, which matches the day's order history (``kt00007``)
on symbol, side, quantity, type, price and time (DESIGN §4, STYLE H8). ``get_order``,
``list_orders`` and ``find_order`` are :class:`~securities.common.SecuritiesAdapterBase`'s; this
module says how Kiwoom's history is read (``kt00007``, one KST day per query).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, ClassVar

from brokers import Balance, BrokerOrder, IssuedToken, OrderRequest, Position, Side, kst_date
from securities.common import (
    LOOKBACK_DAYS,
    SecuritiesAdapterBase,
    amended_order,
    cancel_pending,
    cancellable,
)
from securities.kiwoom import mapping
from securities.kiwoom.client import KiwoomClient
from securities.kiwoom.errors import BROKER

__all__ = ["KiwoomAdapter"]

_ORDER_PATH = "/api/dostk/ordr"
_ACCOUNT_PATH = "/api/dostk/acnt"

_TR_BUY = "kt10000"
_TR_SELL = "kt10001"
_TR_AMEND = "kt10002"
_TR_CANCEL = "kt10003"
_TR_HOLDINGS = "kt00018"
_TR_CASH = "kt00001"
_TR_HISTORY = "kt00007"
_TR_FILLS = "ka10076"
#: How many times a day's ``kt00007`` and ``ka10076`` are read together until they agree on every
#: order's filled quantity (a fill between the two reads); after that the orders that still
#: disagree carry no charges and the gateway estimates them (a later read trues them up).
_CHARGE_READS = 3


class KiwoomAdapter(SecuritiesAdapterBase):
    """Kiwoom domestic stock trading for one account.

    Args:
        credentials: app key (``api_key``), secret key (``api_secret``), ``environment`` (REAL
            or PAPER; the host decides, Kiwoom's TR ids are the same on both).
        base_url: ``DEFAULT_BASE_URLS[environment]`` or a simulator.
        session: a pooled ``requests.Session`` (``make_http_session()``).
        token_provider: gives access tokens (the token service); needed for every call except
            :meth:`issue_token` and :meth:`revoke_token`.
        clock: aware UTC now.
        timeout: seconds for connect and for each read.
        sleep: how to wait between read attempts (tests pin it).
    """

    exchange: ClassVar[str] = BROKER

    client_class = KiwoomClient
    _client: KiwoomClient

    # -- tokens ------------------------------------------------------------------------------

    def issue_token(self) -> IssuedToken:
        """Ask Kiwoom for an access token (au10001).

        Raises:
            BrokerAuthFailed: the app key or secret key is wrong.
            BrokerError: any other failure.
        """
        return mapping.parse_token(self._client.issue_token(), now=self._clock())

    # -- orders ------------------------------------------------------------------------------

    def place_order(self, request: OrderRequest) -> BrokerOrder:
        """Send a cash order: ``kt10000`` buy / ``kt10001`` sell, limit ``0`` or market ``3``.

        Raises:
            InvalidOrder: the request cannot be sent as is, or Kiwoom refused it.
            InsufficientFunds: not enough cash or shares.
            MarketClosed: outside trading hours.
            OrderStateUnknown: sent and no answer came; reconcile with :meth:`find_order`.
            BrokerError: any other failure.
        """
        body = mapping.order_body(request)
        api_id = _TR_BUY if request.side is Side.BUY else _TR_SELL
        response = self._client.request(_ORDER_PATH, api_id, body)
        return mapping.parse_order_ack(response.body, request, now=self._clock())

    def cancel_order(
        self,
        broker_order_id: str,
        *,
        symbol: str | None = None,
        order_date: dt.date | None = None,
    ) -> BrokerOrder:
        """Cancel all of an order's open remainder (``kt10003``, ``cncl_qty 0``).

        The original is looked up first, by its KST ``order_date`` and number when the date is
        given (numbers restart daily): the cancel needs its symbol and exchange.

        Returns:
            The original as the history shows it when nothing is left to cancel (FILLED,
            CANCELLED, EXPIRED: nothing is sent). Otherwise the original order as
            CANCEL_PENDING; ``raw["cancel"]`` holds Kiwoom's answer (the cancellation gets an
            order number of its own).

        Raises:
            OrderNotFound: no such order in the last days.
            InvalidOrder: nothing left to cancel.
            OrderStateUnknown: sent and no answer came.
            BrokerError: any other failure.
        """
        original = self.get_order(broker_order_id, symbol=symbol, order_date=order_date)
        if not cancellable(original):
            return original  # filled, cancelled or lapsed already: nothing is sent
        response = self._client.request(_ORDER_PATH, _TR_CANCEL, mapping.cancel_body(original))
        return cancel_pending(original, response.body, now=self._clock())

    def amend_order(
        self,
        broker_order_id: str,
        *,
        quantity: Decimal | None = None,
        limit_price: Decimal | None = None,
        symbol: str | None = None,
        order_date: dt.date | None = None,
    ) -> BrokerOrder:
        """Change the price and/or quantity of an open order (``kt10002``).

        Kiwoom answers with a **new** order number, which the returned order carries as
        ``broker_order_id`` (the original's is in ``raw["base_orig_ord_no"]``).

        Args:
            broker_order_id: the order to amend.
            quantity: the new quantity; None amends the whole remainder.
            limit_price: the new price; None keeps the original price.
            symbol: the order's symbol, when known (narrows the lookup).
            order_date: the order's KST date: only that day's history is searched.

        Raises:
            OrderNotFound: no such order in the last days.
            InvalidOrder: bad quantity or price, or nothing left to amend.
            OrderStateUnknown: sent and no answer came.
            BrokerError: any other failure.
        """
        original = self.get_order(broker_order_id, symbol=symbol, order_date=order_date)
        body = mapping.amend_body(original, quantity=quantity, limit_price=limit_price)
        response = self._client.request(_ORDER_PATH, _TR_AMEND, body)
        return amended_order(
            original,
            broker_order_id=str(response.body.get("ord_no") or ""),
            quantity=quantity,
            limit_price=Decimal(body["mdfy_uv"]),
            now=self._clock(),
            raw={
                **dict(response.body),
                "base_orig_ord_no": response.body.get("base_orig_ord_no")
                or original.broker_order_id,
                "dmst_stex_tp": body["dmst_stex_tp"],
            },
        )

    # -- account -----------------------------------------------------------------------------

    def get_holdings(self) -> list[Position]:
        """Return the account's stock positions (``kt00018``, all pages).

        Raises:
            BrokerError: any failure.
        """
        positions: list[Position] = []
        for page in self._client.pages(
            _ACCOUNT_PATH, _TR_HOLDINGS, {"qry_tp": "1", "dmst_stex_tp": "KRX"}
        ):
            for row in page.body.get("acnt_evlt_remn_indv_tot") or []:
                position = mapping.parse_holding(row)
                if position is not None:
                    positions.append(position)
        return positions

    def get_balance(self) -> list[Balance]:
        """Return the KRW cash (``kt00001``, estimated view ``qry_tp 3``).

        Raises:
            BrokerError: any failure.
        """
        response = self._client.request(_ACCOUNT_PATH, _TR_CASH, {"qry_tp": "3"})
        return [mapping.parse_balance(response.body)]

    # -- internals ---------------------------------------------------------------------------

    def _lookup_windows(
        self, broker_order_id: str, today: dt.date, *, symbol: str | None
    ) -> Iterator[list[BrokerOrder]]:
        """Yield one KST day at a time, today first, back to :data:`LOOKBACK_DAYS` days.

        Order numbers restart daily (unique within a day), so the newest day wins; ``symbol``
        narrows each day's query (``stk_cd``).
        """
        for back in range(LOOKBACK_DAYS + 1):
            yield self._day(today - dt.timedelta(days=back), symbol=symbol)

    def _history(
        self, first: dt.date, last: dt.date, *, symbol: str | None = None
    ) -> Iterator[BrokerOrder]:
        """Yield the orders of each KST day from ``first`` to ``last``, reading a day when needed.

        One ``kt00007`` query per KST day (``symbol`` narrows it). Lazy, so that ``find_order``
        stops reading history at its first match.
        """
        day = first
        while day <= last:
            yield from self._day(day, symbol=symbol)
            day += dt.timedelta(days=1)

    def _day(self, day: dt.date, *, symbol: str | None = None) -> list[BrokerOrder]:
        """Read one KST day of ``kt00007`` (all pages) and, for today, the charges of ``ka10076``.

        ``kt00007`` has no charges; ``ka10076`` (today's filled orders, no date parameter) gives
        each order's ``tdy_trde_cmsn`` and ``tdy_trde_tax``, Kiwoom's own figures. They are
        taken only where both reads show the same filled quantity (a fill may land between the
        two reads; then both are read again, :data:`_CHARGE_READS` times in all). An earlier
        day's orders, or one the reads never agree on, carry no charges (``fee`` None).
        """
        orders = self._history_day(day, symbol)
        if day != kst_date(self._clock()) or not any(o.filled_quantity > 0 for o in orders):
            return orders
        for attempt in range(_CHARGE_READS):
            charges = self._today_charges(symbol)
            orders, agreed = mapping.with_reported_charges(orders, charges)
            if agreed or attempt == _CHARGE_READS - 1:
                return orders
            orders = self._history_day(day, symbol)
        return orders

    def _history_day(self, day: dt.date, symbol: str | None) -> list[BrokerOrder]:
        body = {
            "ord_dt": day.strftime("%Y%m%d"),
            "qry_tp": "1",  # 주문순
            "stk_bond_tp": "1",  # stocks
            "sell_tp": "0",
            "stk_cd": symbol or "",
            "fr_ord_no": "",
            "dmst_stex_tp": "%",
        }
        rows: list[dict[str, Any]] = []
        for page in self._client.pages(_ACCOUNT_PATH, _TR_HISTORY, body):
            rows.extend(
                dict(r)
                for r in page.body.get("acnt_ord_cntr_prps_dtl") or []
                if isinstance(r, dict)
            )
        return mapping.parse_history_rows(rows, day)

    def _today_charges(self, symbol: str | None) -> dict[str, mapping.Charges]:
        """Read today's fills (``ka10076``, all pages): each order's cumulative charges."""
        body = {
            "stk_cd": symbol or "",
            "qry_tp": "1" if symbol else "0",  # 1 종목 / 0 전체
            "sell_tp": "0",
            "ord_no": "",
            "stex_tp": "0",
        }
        rows: list[dict[str, Any]] = []
        for page in self._client.pages(_ACCOUNT_PATH, _TR_FILLS, body):
            rows.extend(dict(r) for r in page.body.get("cntr") or [] if isinstance(r, dict))
        return mapping.parse_fill_charges(rows)
