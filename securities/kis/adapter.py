"""The KIS (Korea Investment & Securities) adapter: the gateway's broker interface over KIS REST.

No HTTP details here (:mod:`securities.kis.client`) and no wire shapes (:mod:`.mapping`): this
module chooses TR ids, walks histories and reconciles.

KIS has no client order id, so an order whose answer was lost (``OrderStateUnknown``) is settled
with :meth:`KisAdapter.find_order`, which matches the day's history on symbol, side, quantity,
type, price and time (DESIGN §4, STYLE H8). ``get_order``, ``list_orders`` and ``find_order``
are :class:`~securities.common.SecuritiesAdapterBase`'s; this module says how KIS's history is
read (``inquire-daily-ccld``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, ClassVar

from brokers import Balance, BrokerOrder, IssuedToken, OrderRequest, OrderStatus, Position, Side
from securities.common import (
    LOOKBACK_DAYS,
    SecuritiesAdapterBase,
    amended_order,
    cancel_pending,
    cancellable,
    order_number_key,
)
from securities.kis import mapping
from securities.kis.client import KisClient
from securities.kis.errors import BROKER

__all__ = ["KisAdapter"]

_ORDER_CASH = "/uapi/domestic-stock/v1/trading/order-cash"
_ORDER_RVSECNCL = "/uapi/domestic-stock/v1/trading/order-rvsecncl"
_INQUIRE_BALANCE = "/uapi/domestic-stock/v1/trading/inquire-balance"
_INQUIRE_DAILY_CCLD = "/uapi/domestic-stock/v1/trading/inquire-daily-ccld"
_INQUIRE_PSBL_ORDER = "/uapi/domestic-stock/v1/trading/inquire-psbl-order"
_INQUIRE_PERIOD_PROFIT = "/uapi/domestic-stock/v1/trading/inquire-period-trade-profit"

# Real TR ids (the "new" generation, §1.5); mapping.tr_id makes the paper (V…) variants.
_TR_BUY = "TTTC0012U"
_TR_SELL = "TTTC0011U"
_TR_RVSECNCL = "TTTC0013U"
_TR_BALANCE = "TTTC8434R"
_TR_DAILY_CCLD = "TTTC0081R"  # within the last 3 months
_TR_PSBL_ORDER = "TTTC8908R"
_TR_PERIOD_PROFIT = "TTTC8715R"  # 기간별매매손익현황조회: commission and tax per day and stock

#: The stock ``get_balance`` names in ``inquire-psbl-order`` (Samsung Electronics).
_CASH_PROBE_SYMBOL = "005930"


class KisAdapter(SecuritiesAdapterBase):
    """KIS domestic stock trading for one account.

    Args:
        credentials: app key/secret, ``environment`` (REAL or PAPER), account number (CANO) and
            product code (ACNT_PRDT_CD).
        base_url: ``DEFAULT_BASE_URLS[environment]`` or a simulator.
        session: a pooled ``requests.Session`` (``make_http_session()``).
        token_provider: gives access tokens (the token service); needed for every call except
            :meth:`issue_token` and :meth:`revoke_token`.
        clock: aware UTC now.
        timeout: seconds for connect and for each read.
        sleep: how to wait between read attempts (tests pin it).
    """

    exchange: ClassVar[str] = BROKER

    client_class = KisClient
    _client: KisClient

    @property
    def _paper(self) -> bool:
        # KIS sends paper-trading orders under other TR ids (mapping.tr_id).
        return self._credentials.is_paper

    # -- tokens ------------------------------------------------------------------------------

    def issue_token(self) -> IssuedToken:
        """Ask KIS for an access token (KIS re-serves the same one within 6 h).

        Raises:
            BrokerRateLimited: more than one issuance a minute (EGW00133, ``retry_after`` 60).
            BrokerAuthFailed: the app key or secret is wrong.
            BrokerError: any other failure.
        """
        return mapping.parse_token(self._client.issue_token())

    # -- orders ------------------------------------------------------------------------------

    def place_order(self, request: OrderRequest) -> BrokerOrder:
        """Send a cash order (limit ``ORD_DVSN 00``, market ``01``) to ``request.route``.

        Raises:
            InvalidOrder: the request cannot be sent as is (checked before sending) or KIS
                refused it.
            InsufficientFunds: not enough cash or shares.
            MarketClosed: outside trading hours.
            OrderStateUnknown: sent and no answer came; reconcile with :meth:`find_order`.
            BrokerError: any other failure.
        """
        body = mapping.order_cash_body(request, self._credentials)
        tr = mapping.tr_id(_TR_BUY if request.side is Side.BUY else _TR_SELL, paper=self._paper)
        response = self._client.post_order(_ORDER_CASH, tr, body)
        output = response.body.get("output") or {}
        return mapping.parse_order_ack(output, request, now=self._clock())

    def cancel_order(
        self,
        broker_order_id: str,
        *,
        symbol: str | None = None,
        order_date: dt.date | None = None,
    ) -> BrokerOrder:
        """Cancel all of an order's open remainder.

        KIS needs the branch number of the original (``KRX_FWDG_ORD_ORGNO``) and its exchange,
        so the original is looked up in the history first.

        Args:
            broker_order_id: the order to cancel.
            symbol: the order's stock code; a row of another stock is never taken for it.
            order_date: the order's KST date: numbers restart daily, so the order is looked up
                in that day's history only (None: the newest with that number, legacy).

        Returns:
            The original as the history shows it when nothing is left to cancel (FILLED,
            CANCELLED, EXPIRED: nothing is sent). Otherwise the original order as
            CANCEL_PENDING; ``raw["cancel"]`` holds KIS's answer (the
            cancellation has an order number of its own). The status poller settles it.

        Raises:
            OrderNotFound: no such order in the last days.
            InvalidOrder: nothing is left to cancel.
            OrderStateUnknown: sent and no answer came.
            BrokerError: any other failure.
        """
        original = self.get_order(broker_order_id, symbol=symbol, order_date=order_date)
        if not cancellable(original):
            return original  # filled, cancelled or lapsed already: nothing is sent
        body = mapping.cancel_body(self._credentials, original)
        response = self._client.post_order(
            _ORDER_RVSECNCL, mapping.tr_id(_TR_RVSECNCL, paper=self._paper), body
        )
        return cancel_pending(original, response.body.get("output") or {}, now=self._clock())

    def amend_order(
        self,
        broker_order_id: str,
        *,
        quantity: Decimal | None = None,
        limit_price: Decimal | None = None,
        symbol: str | None = None,
        order_date: dt.date | None = None,
    ) -> BrokerOrder:
        """Change the price and/or quantity of an open order (as a limit order).

        KIS replaces the order: the answer carries a **new** order number, which the returned
        order has as ``broker_order_id`` (the original's is in ``raw["orgn_odno"]``).

        Args:
            broker_order_id: the order to amend.
            quantity: the new quantity; None amends the whole remainder.
            limit_price: the new price; None keeps the original price.
            symbol: the order's stock code, when known.
            order_date: the order's KST date (see :meth:`cancel_order`).

        Raises:
            OrderNotFound: no such order in the last days.
            InvalidOrder: bad quantity or price, or nothing left to amend.
            OrderStateUnknown: sent and no answer came.
            BrokerError: any other failure.
        """
        original = self.get_order(broker_order_id, symbol=symbol, order_date=order_date)
        body = mapping.amend_body(
            self._credentials, original, quantity=quantity, limit_price=limit_price
        )
        response = self._client.post_order(
            _ORDER_RVSECNCL, mapping.tr_id(_TR_RVSECNCL, paper=self._paper), body
        )
        output = dict(response.body.get("output") or {})
        return amended_order(
            original,
            broker_order_id=str(output.get("ODNO") or output.get("odno") or ""),
            quantity=quantity,
            limit_price=Decimal(body["ORD_UNPR"]),
            now=self._clock(),
            raw={
                **output,
                "orgn_odno": original.broker_order_id,
                "ord_gno_brno": output.get("KRX_FWDG_ORD_ORGNO", ""),
                "excg_id_dvsn_cd": body["EXCG_ID_DVSN_CD"],
            },
        )

    # -- account -----------------------------------------------------------------------------

    def get_holdings(self) -> list[Position]:
        """Return the account's stock positions (all pages of ``inquire-balance``).

        Raises:
            BrokerError: any failure.
        """
        positions: list[Position] = []
        for page in self._client.get_pages(
            _INQUIRE_BALANCE,
            mapping.tr_id(_TR_BALANCE, paper=self._paper),
            self._balance_params(),
        ):
            for row in page.body.get("output1") or []:
                position = mapping.parse_holding(row)
                if position is not None:
                    positions.append(position)
        return positions

    def get_balance(self) -> list[Balance]:
        """Return the KRW cash: deposit, what orders may use, and the difference.

        Raises:
            BrokerError: any failure.
        """
        page = self._client.get(
            _INQUIRE_BALANCE,
            mapping.tr_id(_TR_BALANCE, paper=self._paper),
            {**self._balance_params(), "CTX_AREA_FK100": "", "CTX_AREA_NK100": ""},
        )
        summary_rows = page.body.get("output2") or [{}]
        summary = summary_rows[0] if isinstance(summary_rows, list) else summary_rows
        orderable = self._client.get(
            _INQUIRE_PSBL_ORDER,
            mapping.tr_id(_TR_PSBL_ORDER, paper=self._paper),
            {
                **self._account_params(),
                # ord_psbl_cash does not depend on the stock, but KIS wants one: name the most
                # liquid KRX share. ORD_DVSN 01 sizes at the upper limit, as KIS reserves cash.
                "PDNO": _CASH_PROBE_SYMBOL,
                "ORD_UNPR": "",
                "ORD_DVSN": "01",
                "CMA_EVLU_AMT_ICLD_YN": "N",
                "OVRS_ICLD_YN": "N",
            },
        ).body.get("output")
        return [mapping.parse_balance(summary, orderable if isinstance(orderable, dict) else None)]

    def day_charges(self, day: dt.date) -> dict[str, tuple[Decimal, Decimal]]:
        """Return KIS's (commission, tax) of the KST day ``day`` per stock, in whole won.

        ``inquire-period-trade-profit`` (``TTTC8715R``, all pages) is the one KIS REST inquiry
        found with the broker's own charges; its grain is a day and a stock (docs/trading-days.md
        §5). The order history has none, so the gateway estimates each fill and trues the day's
        estimates up to these figures once the day is over.

        Raises:
            BrokerError: the inquiry failed (e.g. not offered to this account).
        """
        stamp = mapping.kst_yyyymmdd(day)
        params = {
            **self._account_params(),
            "SORT_DVSN": "01",
            "INQR_STRT_DT": stamp,
            "INQR_END_DT": stamp,
            "CBLC_DVSN": "00",
            "PDNO": "",
        }
        rows: list[dict[str, Any]] = []
        for page in self._client.get_pages(
            _INQUIRE_PERIOD_PROFIT, mapping.tr_id(_TR_PERIOD_PROFIT, paper=self._paper), params
        ):
            rows.extend(dict(r) for r in page.body.get("output1") or [] if isinstance(r, dict))
        return {
            symbol: charges
            for (when, symbol), charges in mapping.parse_day_charges(rows).items()
            if when == day
        }

    # -- internals ---------------------------------------------------------------------------

    def _account_params(self) -> dict[str, str]:
        return {
            "CANO": self._credentials.account_number or "",
            "ACNT_PRDT_CD": self._credentials.product_code or "01",
        }

    def _balance_params(self) -> dict[str, str]:
        return {
            **self._account_params(),
            "AFHR_FLPR_YN": "N",
            "OFL_YN": "",
            "INQR_DVSN": "02",
            "UNPR_DVSN": "01",
            "FUND_STTL_ICLD_YN": "N",
            "FNCG_AMT_AUTO_RDPT_YN": "N",
            "PRCS_DVSN": "00",
        }

    def _day_lookup(
        self, broker_order_id: str, day: dt.date, *, symbol: str | None
    ) -> list[BrokerOrder]:
        """Read one KST day's history narrowed to the number (``ODNO``); ``symbol`` is matched."""
        return [
            order
            for order in self._history(day, day, odno=broker_order_id)
            if symbol is None or order.symbol == symbol
        ]

    def _lookup_windows(
        self, broker_order_id: str, today: dt.date, *, symbol: str | None
    ) -> Iterator[list[BrokerOrder]]:
        """Yield today's history, then the :data:`LOOKBACK_DAYS` days before (``ODNO`` set).

        KIS numbers restart, so a window may hold the number more than once (the newest wins);
        ``symbol`` is matched here, not sent.
        """
        for start in (today, today - dt.timedelta(days=LOOKBACK_DAYS)):
            end = today if start == today else today - dt.timedelta(days=1)
            yield [
                order
                for order in self._history(start, end, odno=broker_order_id)
                if symbol is None or order.symbol == symbol
            ]

    def _history(
        self, first: dt.date, last: dt.date, *, symbol: str | None = None, odno: str = ""
    ) -> list[BrokerOrder]:
        """Read ``inquire-daily-ccld`` between two KST dates (all pages) and map it.

        One query for the whole account (``PDNO`` empty): ``symbol`` is not sent, the callers
        match on it. ``odno`` narrows the query to one order number.
        """
        params = {
            **self._account_params(),
            "INQR_STRT_DT": mapping.kst_yyyymmdd(first),
            "INQR_END_DT": mapping.kst_yyyymmdd(last),
            "SLL_BUY_DVSN_CD": "00",
            "PDNO": "",
            "CCLD_DVSN": "00",
            "INQR_DVSN": "01",  # oldest first
            "INQR_DVSN_3": "00",
            "ORD_GNO_BRNO": "",
            "ODNO": odno,
            "INQR_DVSN_1": "",
            "EXCG_ID_DVSN_CD": "ALL",
        }
        rows: list[dict[str, Any]] = []
        for page in self._client.get_pages(
            _INQUIRE_DAILY_CCLD, mapping.tr_id(_TR_DAILY_CCLD, paper=self._paper), params
        ):
            output = page.body.get("output1") or []
            rows.extend(dict(r) for r in output if isinstance(r, dict))
        orders = mapping.parse_ccld_rows(rows)
        if odno and any(o.status is OrderStatus.EXPIRED for o in orders):
            # Narrowed to one number, the answer leaves out the cancel rows that name it, so a
            # cancelled order would look lapsed: read the days whole to tell the two apart.
            orders = [
                o
                for o in self._history(first, last, symbol=symbol)
                if order_number_key(o.broker_order_id) == order_number_key(odno)
            ]
        return orders
