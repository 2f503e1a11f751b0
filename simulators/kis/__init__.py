"""A faithful local KIS (Korea Investment & Securities) Open API: REST, OAuth and master files.

``create_app()`` returns a Flask app that speaks KIS's protocol as ``shared/brokers/kis_kiwoom.md``
Part 1 records it, on top of the shared engine (:mod:`simulators.engine`) and the ``/_sim``
control surface (:mod:`simulators.control`). Routes, one module per concern:

* :mod:`~simulators.kis.oauth` — ``/oauth2/tokenP``, ``/oauth2/revokeP``, ``/oauth2/Approval``,
  ``/uapi/hashkey``.
* :mod:`~simulators.kis.orders` — ``order-cash``, ``order-rvsecncl``.
* :mod:`~simulators.kis.inquiry` — ``inquire-balance``, ``inquire-daily-ccld``,
  ``inquire-psbl-order``, ``inquire-psbl-rvsecncl``, ``inquire-psbl-sell``,
  ``quotations/inquire-price``.
* :mod:`~simulators.kis.master` — ``/common/master/{kospi,kosdaq,konex}_code.mst.zip``.

Choices where the facts are unverified (BROKERS.md: pick the most-observed, make a switch):

* ``paper`` (default False): the paper host (openapivts). It accepts only ``V…`` trading TRs
  (a ``T…`` one gets HTTP 500 ``EGW2004 모의투자 TR 이 아닙니다``); the real host refuses ``V…``
  TRs with HTTP 500 ``EGW2005`` [UNVERIFIED code]. Paper messages carry the "모의투자" prefix and
  the paper msg_cds (``40600000`` buy, ``40610000`` sell [UNVERIFIED], ``40620000`` amend,
  ``40630000`` cancel, ``20310000`` inquiry); paper pages are 20 rows (balance) and 15 (history)
  instead of 50 and 100.
* ``rate_limit_per_second`` (default 20 real, 2 paper — python-kis's numbers; 0 disables): per
  app key, over → HTTP 500 ``EGW00201``.
* option ``reuse_expires_in`` = ``"remaining"`` (default) | ``"full"``: ``expires_in`` of a token
  re-served within 6 hours. Unverified either way; "remaining" agrees with the re-served
  ``access_token_token_expired``, which keeps the original expiry.
* option ``token_window_counts`` = ``"requests"`` (default) | ``"issuances"``: whether a re-served
  token starts the one-a-minute window too. "requests", because EGW00133 is widely observed and
  could never happen if only new issuances counted (a second request within a minute always
  falls inside the 6-hour reuse window).
* option ``token_window_seconds`` (default 60): the issuance window, counted from when a token
  request reaches the simulator; tests of the gateway's window shorten it. Every refusal (EGW00133
  too) is a ``request_refused`` ledger entry.
* gateway errors (EGW…) are HTTP 500 with ``rt_cd`` "1"; business rejections are HTTP 200 with
  ``rt_cd`` != "0" (``APBK0952`` insufficient funds and ``APBK1359`` as captured; the other
  APBK codes are [UNVERIFIED], see :data:`simulators.kis.protocol.REJECTS`).
* order numbers: ``ODNO`` 10 digits zero-padded on both hosts; amendments and cancels draw new
  numbers from the same sequence. ``ORGN_ODNO`` is accepted with or without the padding and names
  one of today's orders.

Trading days (``shared/brokers/trading-days.md``; :mod:`simulators.krx_calendar`,
:mod:`simulators.krx_day`), all driven by the simulator clock and derived lazily when it passes
a boundary:

* option ``market_hours`` = ``"krx"`` (default) | ``"always"``: the XKRX calendar and the session
  table, or every day a trading day with every session 00:00–24:00 (orders then lapse at
  midnight KST). :func:`simulators.registry.create_simulator` (``gateway demo``/``simulate``, on
  the wall clock) defaults to ``"always"``.
* option ``session_table`` = ``"2025"`` (default) | ``"2026"``: KRX's announced 07:00–08:00
  pre-market and 16:00–20:00 after-market ([UNVERIFIED] live, §1.1). The paper host trades the
  regular session 09:00–15:30 only ([COMMUNITY]).
* outside a session: real ``rt_cd`` "7" ``KIOK0320`` "장운영시간이 아닙니다" (option
  ``closed_code`` = ``"KIOK0320"`` (default) | ``"APBK0918"`` "장운영시간이 아닙니다.(주문불가)",
  both captured, §1.4); paper ``40570000`` "모의투자 장시작전 입니다." before the open, ``40580000``
  "모의투자 장종료 입니다." after it and on days without trading ([UNVERIFIED] for those), for
  amends and cancels too. The real host answers an amend or cancel of a lapsed order with
  APBK0918 "정정/취소할 수량이 없습니다." ([UNVERIFIED]). An NXT order for an issue NXT does
  not list gets OPSQ2001 ``EXCG_ID_DVSN_CD`` ([UNVERIFIED]).
* option ``daily_order_numbers`` = True (default) | False: ``ODNO`` restarts at 1 each trading
  day (§2.1 [UNVERIFIED]; the worst case history keys ``ord_dt`` + ``odno`` allow).
* option ``expired_in_history`` = ``"cancel_confirmed"`` (default) | ``"remaining"``: a day order
  lapsed at its session's close keeps its ``inquire-daily-ccld`` row with ``rmn_qty`` 0,
  ``cnc_cfrm_qty`` = the remainder and ``ccld_yn`` "Y" (§2.3's suggestion, [UNVERIFIED]), or the
  row as it stood at the close.
* settlement T+2 on the KRX calendar: ``inquire-balance`` ``dnca_tot_amt``/``nxdy_excc_amt``/
  ``prvs_rcdl_excc_amt`` are D+0/D+1/D+2 cash, ``bfdy_*`` the previous trading day's fills.
* ``inquire-psbl-sell`` (``TTTC8408R``): the paper twin ``VTTC8408R`` is accepted ([UNVERIFIED];
  the samples list a real TR only); ``buy_qty``/``sll_qty`` are today's fills.

Accounts: ``POST /_sim/accounts`` with ``{"app_key", "app_secret", "account_number" (8 digits),
"product_code" (2 digits), "cash", optional "positions": {"005930": 10}}`` → 201. The engine
account id is ``"<account_number>-<product_code>"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from flask import Flask

from simulators.control import (
    AccountSpecError,
    RateLimiter,
    SimState,
    answer_unknown_paths,
    install_control,
    parse_amounts,
    require_string,
)
from simulators.engine import KRX_SELL_TAX_RATE_2026, FeeSchedule, SimClock, UnknownInstrument
from simulators.kis.inquiry import create_inquiry_blueprint
from simulators.kis.master import create_master_blueprint
from simulators.kis.oauth import create_oauth_blueprint
from simulators.kis.orders import create_orders_blueprint
from simulators.kis.protocol import (
    CONTEXT_KEY,
    Credential,
    KisContext,
    register_protocol,
)
from simulators.krx import KST, LISTINGS, by_symbol, instruments
from simulators.krx_day import DayRules

__all__ = ["create_app", "KisContext"]

#: KIS online commission (0.015 %) [UNVERIFIED for paper]; the KRX sell tax of 2026.
KIS_FEES = FeeSchedule(fee_rate=Decimal("0.00015"), sell_tax_rate=KRX_SELL_TAX_RATE_2026)


def create_app(
    state: SimState | None = None,
    *,
    seed: int = 0,
    paper: bool = False,
    master_dir: Path | None = None,
    rate_limit_per_second: float | None = None,
    **options: Any,
) -> Flask:
    """Build a KIS simulator app.

    Args:
        state: a ready state (tests share one); built for the KRX universe when None.
        seed: price-path seed when ``state`` is None.
        paper: imitate the paper host (see the module docstring).
        master_dir: serve ``*.mst`` files from this folder instead of generating them.
        rate_limit_per_second: per-app-key limit (None: 20 real / 2 paper; 0: unlimited).
        **options: ``clock`` (a :class:`~simulators.engine.SimClock`, e.g. frozen, when
            ``state`` is None; the wall clock otherwise), ``reuse_expires_in``,
            ``token_window_counts``, ``token_window_seconds``, ``balance_page_size``,
            ``ccld_page_size``, and the trading-day switches ``market_hours``,
            ``session_table``, ``daily_order_numbers``, ``expired_in_history``, ``closed_code``
            (see the module docstring).

    Returns:
        The Flask app, with ``/_sim`` installed.

    Raises:
        ValueError: for an unknown value of a switch.
    """
    if state is None:
        clock = options.pop("clock", None) or SimClock()
        rules = DayRules.from_options(options, paper=paper)
        state = SimState.create(
            "kis",
            seed=seed,
            clock=clock,
            instruments=instruments(LISTINGS),
            options=options,
            fees=KIS_FEES,
            order_numbers=lambda _n: f"{rules.numbers.next(clock.now()):010d}",
            timezone=KST,
        )
    else:
        state.options.update(options)
        # The caller's engine numbers orders itself; cancels then draw from a separate range so
        # they can never collide with its numbers.
        rules = DayRules.from_options(state.options, paper=paper, first_number=5_000_000_001)
    opts = state.options
    rate = rate_limit_per_second if rate_limit_per_second is not None else (2 if paper else 20)
    ctx = KisContext(
        state=state,
        paper=paper,
        listings=by_symbol(LISTINGS),
        limiter=RateLimiter(rate) if rate and rate > 0 else None,
        rules=rules,
        closed_code=str(opts.get("closed_code", "KIOK0320")),
        reuse_expires_in=str(opts.get("reuse_expires_in", "remaining")),
        token_window_counts=str(opts.get("token_window_counts", "requests")),
        token_window_seconds=float(opts.get("token_window_seconds", 60)),
        balance_page_size=int(opts.get("balance_page_size", 20 if paper else 50)),
        ccld_page_size=int(opts.get("ccld_page_size", 15 if paper else 100)),
    )
    if ctx.closed_code not in {"KIOK0320", "APBK0918"}:
        raise ValueError("closed_code must be 'KIOK0320' or 'APBK0918'")
    if ctx.reuse_expires_in not in {"remaining", "full"}:
        raise ValueError("reuse_expires_in must be 'remaining' or 'full'")
    if ctx.token_window_counts not in {"requests", "issuances"}:
        raise ValueError("token_window_counts must be 'requests' or 'issuances'")

    app = Flask("simulators.kis")
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # Korean as the broker sends it
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[CONTEXT_KEY] = ctx
    install_control(app, state, lambda body: _create_account(ctx, body))
    register_protocol(app, ctx)
    # An unserved path answers KIS's gateway envelope, not an HTML page (body [UNVERIFIED]).
    answer_unknown_paths(
        app, {"rt_cd": "1", "msg_cd": "EGW00101", "msg1": "유효하지 않은 요청입니다."}
    )
    app.register_blueprint(create_oauth_blueprint(ctx))
    app.register_blueprint(create_orders_blueprint(ctx))
    app.register_blueprint(create_inquiry_blueprint(ctx))
    app.register_blueprint(create_master_blueprint(LISTINGS, master_dir))
    return app


def _create_account(ctx: KisContext, body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``/_sim/accounts`` callback: credentials plus an engine account."""
    app_key = require_string(body, "app_key")
    secret = require_string(body, "app_secret")
    number = require_string(body, "account_number", pattern=r"\d{8}", what="8 digits")
    product = body.get("product_code", "01")
    if not isinstance(product, str) or len(product) != 2 or not product.isdigit():
        raise AccountSpecError("product_code must be 2 digits")
    if app_key in ctx.credentials:
        raise AccountSpecError(f"app_key {app_key[:4]}… is already registered")
    cash = parse_amounts({"cash": {"KRW": body.get("cash", "0")}}, "cash")
    positions = parse_amounts(body, "positions")
    for symbol in positions:
        if symbol not in ctx.listings:
            raise UnknownInstrument(symbol)
    credential = Credential(app_key, secret, number, product)
    ctx.state.engine.create_account(
        credential.account_id,
        balances=cash,
        positions=positions,
        credential_id=app_key,
        meta={"account_number": number, "product_code": product},
    )
    with ctx.lock:
        ctx.credentials[app_key] = credential
    return {
        "account_id": credential.account_id,
        "account_number": number,
        "product_code": product,
        "app_key": app_key,
    }
