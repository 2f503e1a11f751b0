"""A faithful local Kiwoom REST API (2025 generation): OAuth, orders, account and stock info.

``create_app()`` speaks the protocol ``shared/brokers/kis_kiwoom.md`` Part 2 records, on the
shared engine and the ``/_sim`` control surface. Every TR is a ``POST`` with a JSON body and an
``api-id`` header; answers carry ``return_code`` (int, 0 = OK) and ``return_msg`` plus the
``api-id``/``cont-yn``/``next-key`` headers. Modules:

* :mod:`~simulators.kiwoom.oauth` — au10001 ``/oauth2/token``, au10002 ``/oauth2/revoke``.
* :mod:`~simulators.kiwoom.orders` — kt10000–kt10003 at ``/api/dostk/ordr``.
* :mod:`~simulators.kiwoom.accounts` — ka00001, kt00018, kt00001, ka10075, ka10076, kt00007 at
  ``/api/dostk/acnt``; ka10001 at ``/api/dostk/stkinfo``.

Choices where the facts are unverified (Part 3; each is a switch):

* ``invalid_token_style`` = ``"return_msg"`` (default) | ``"code"``. The default is the form
  observed on the real server by several independent sources: HTTP 200,
  ``{"return_code": 3, "return_msg": "인증에 실패했습니다[8005:Token이 유효하지 않습니다]"}``
  (and likewise ``return_code`` 5 with ``[1700:…]``, 1 with ``[15xx:…]``). ``"code"`` answers the
  documented code itself as ``return_code`` (8005, 1700, …), which the official client's
  auto-reauth looks for.
* ``rate_limit_per_second`` (default 5 — the terms-of-service figure community code cites; 0
  disables): per app key over all TRs; over → 1700 with ``유량=<rate>, API ID=<api-id>``.
* option ``rate_limit_status`` = 200 (default) | 429: 200 was observed on three TRs, 429 on one.
* option ``token_lifetime_seconds`` = 86400 (community: 24 h).
* option ``reuse_token`` = False (default): each au10001 issues a new token and older ones stay
  valid until they expire; True re-serves the newest valid token.
* option ``page_size`` = 20 rows for list TRs; ``next-key`` is the offset of the next row.
* ``paper``: mockapi.kiwoom.com supports KRX only, so NXT/SOR orders are refused.
* business rejections (funds, tick, …): HTTP 200, ``return_code`` 2 and a ``[2000](RCxxxx:…)``
  message (the shape of the observed mock "장종료" message; the RC numbers are unverified).
* ``ord_no`` is 7 digits zero-padded; amendments and cancels get new numbers from the same
  sequence. Responses also list ``api-id,cont-yn,next-key`` in
  ``Access-Control-Expose-Headers``, which at least one PyPI client reads them through.

Trading days (``shared/brokers/trading-days.md``; :mod:`simulators.krx_calendar`,
:mod:`simulators.krx_day`), all driven by the simulator clock and derived lazily:

* options ``market_hours`` = ``"krx"`` (default) | ``"always"`` and ``session_table`` =
  ``"2025"`` (default) | ``"2026"``, as for KIS (``create_simulator`` defaults to ``"always"``).
  The mock host trades the regular session 09:00–15:30 only ([UNVERIFIED] for Kiwoom).
* outside a session (§1.4, as captured, ``return_code`` 20): real ``[2000](505217:휴장시간으로
  취소주문만 가능합니다.)`` to orders and amends, while cancels are still taken; mock
  ``[2000](RC4058:모의투자 장종료)`` ([UNVERIFIED] before the open too) and ``[2000](RC4010:모의투자
  영업일이 아닙니다.)`` on a day without trading, to amends and cancels as well ([UNVERIFIED]). An
  NXT order for an issue NXT does not list gets 1901 ([UNVERIFIED]).
* option ``daily_order_numbers`` = True (default) | False: ``ord_no`` restarts at 1 each trading
  day (§2.1 [UNVERIFIED]: kt00007 is keyed by ``ord_dt`` + ``fr_ord_no``, small numbers each
  morning suggest it).
* option ``expired_in_history`` = ``"cancel_confirmed"`` (default) | ``"remaining"``: a lapsed
  day order keeps its kt00007 row with ``ord_remnq`` 0 and no cancel row, and leaves ka10075
  (§2.3 [UNVERIFIED]; the choice mirrors KIS's), or keeps showing its remainder in kt00007 (also
  under ``qry_tp`` 3).
* settlement T+2: kt00001 ``entr``/``d1_entra``/``d2_entra`` and the ``d1_``/``d2_`` settlement
  amounts; ka10076 lists today's fills only (it has no date), kt00007 any day by ``ord_dt``.

Accounts: ``POST /_sim/accounts`` with ``{"app_key", "secret_key", "account_number" (10 digits,
or 8 to which "11" is appended as Kiwoom's classification), "cash", optional "positions"}`` → 201.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
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
from simulators.kiwoom.accounts import create_accounts_blueprint
from simulators.kiwoom.oauth import create_oauth_blueprint
from simulators.kiwoom.orders import create_orders_blueprint
from simulators.kiwoom.protocol import CONTEXT_KEY, Credential, KiwoomContext, register_protocol
from simulators.krx import KST, LISTINGS, by_symbol, instruments
from simulators.krx_day import DayRules

__all__ = ["KiwoomContext", "create_app"]

#: Kiwoom online commission 0.015 % [UNVERIFIED]; the KRX sell tax of 2026.
KIWOOM_FEES = FeeSchedule(fee_rate=Decimal("0.00015"), sell_tax_rate=KRX_SELL_TAX_RATE_2026)


def create_app(
    state: SimState | None = None,
    *,
    seed: int = 0,
    paper: bool = False,
    rate_limit_per_second: float | None = None,
    invalid_token_style: str = "return_msg",  # noqa: S107 - a style, not a secret
    **options: Any,
) -> Flask:
    """Build a Kiwoom simulator app.

    Args:
        state: a ready state; built for the KRX universe when None.
        seed: price-path seed when ``state`` is None.
        paper: imitate mockapi.kiwoom.com.
        rate_limit_per_second: per-app-key limit (None: 5; 0: unlimited).
        invalid_token_style: "return_msg" or "code" (see the module docstring).
        **options: ``clock`` (a :class:`~simulators.engine.SimClock`, e.g. frozen, when
            ``state`` is None; the wall clock otherwise), ``rate_limit_status``,
            ``token_lifetime_seconds``, ``reuse_token``, ``page_size``, and the trading-day
            switches ``market_hours``, ``session_table``, ``daily_order_numbers``,
            ``expired_in_history`` (see the module docstring).

    Returns:
        The Flask app, with ``/_sim`` installed.

    Raises:
        ValueError: for an unknown ``invalid_token_style``, ``rate_limit_status`` or value of a
            trading-day switch.
    """
    if invalid_token_style not in {"return_msg", "code"}:
        raise ValueError("invalid_token_style must be 'return_msg' or 'code'")
    if state is None:
        clock = options.pop("clock", None) or SimClock()
        rules = DayRules.from_options(options, paper=paper)
        state = SimState.create(
            "kiwoom",
            seed=seed,
            clock=clock,
            instruments=instruments(LISTINGS),
            options=options,
            fees=KIWOOM_FEES,
            order_numbers=lambda _n: f"{rules.numbers.next(clock.now()):07d}",
            timezone=KST,
        )
    else:
        state.options.update(options)
        # Keep cancel numbers clear of the caller's engine, which numbers orders itself.
        rules = DayRules.from_options(state.options, paper=paper, first_number=5_000_001)
    opts = state.options
    rate = 5.0 if rate_limit_per_second is None else float(rate_limit_per_second)
    status = int(opts.get("rate_limit_status", 200))
    if status not in {200, 429}:
        raise ValueError("rate_limit_status must be 200 or 429")
    ctx = KiwoomContext(
        state=state,
        paper=paper,
        listings=by_symbol(LISTINGS),
        limiter=RateLimiter(rate) if rate > 0 else None,
        rate=rate,
        invalid_token_style=invalid_token_style,
        rate_limit_status=status,
        token_lifetime_seconds=int(opts.get("token_lifetime_seconds", 86_400)),
        reuse_token=bool(opts.get("reuse_token", False)),
        page_size=int(opts.get("page_size", 20)),
        rules=rules,
    )
    app = Flask("simulators.kiwoom")
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # Korean as the broker sends it
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[CONTEXT_KEY] = ctx
    install_control(app, state, lambda body: _create_account(ctx, body))
    register_protocol(app, ctx)
    # An unserved path answers Kiwoom's envelope, not an HTML page (body [UNVERIFIED]).
    answer_unknown_paths(
        app,
        {
            "return_code": 1,
            "return_msg": "요청이 올바르지 않습니다"
            "[1504:해당 URI에서는 지원하는 API ID가 아닙니다]",
        },
    )
    app.register_blueprint(create_oauth_blueprint(ctx))
    app.register_blueprint(create_orders_blueprint(ctx))
    app.register_blueprint(create_accounts_blueprint(ctx))
    return app


def _create_account(ctx: KiwoomContext, body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``/_sim/accounts`` callback: credentials plus an engine account."""
    app_key = require_string(body, "app_key")
    secret = require_string(body, "secret_key")
    number = require_string(body, "account_number", pattern=r"\d{8}|\d{10}", what="8 or 10 digits")
    if len(number) == 8:
        number += "11"  # Kiwoom's 10-digit form: the last two digits are the classification
    if app_key in ctx.credentials:
        raise AccountSpecError(f"app_key {app_key[:4]}… is already registered")
    cash = parse_amounts({"cash": {"KRW": body.get("cash", "0")}}, "cash")
    positions = parse_amounts(body, "positions")
    for symbol in positions:
        if symbol not in ctx.listings:
            raise UnknownInstrument(symbol)
    credential = Credential(app_key, secret, number)
    ctx.state.engine.create_account(
        credential.account_id, balances=cash, positions=positions, credential_id=app_key
    )
    with ctx.lock:
        ctx.credentials[app_key] = credential
    return {"account_id": number, "account_number": number, "app_key": app_key}
