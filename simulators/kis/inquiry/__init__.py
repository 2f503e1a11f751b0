"""KIS account and quote inquiries (kis_kiwoom.md §1.5.3–1.5.7), on one blueprint.

``inquire-balance`` and ``inquire-daily-ccld`` page with ``ctx_area_fk100``/``ctx_area_nk100`` in
the body and the ``tr_cont`` response header: ``D`` single page, ``F`` first page with more, ``M``
middle page, ``E`` last page of a continued query (the real letters per position are
[UNVERIFIED]; only "F/M = more, D/E = last" is documented). The cursor ``ctx_area_nk100`` holds
the offset of the next row; ``ctx_area_fk100`` holds the query's filters, so a continued query
uses the filters of its first page (the official daily-ccld sample shuffles them on page 2).

The routes by concern: :mod:`~simulators.kis.inquiry.balance` (inquire-balance,
inquire-psbl-order, inquire-psbl-sell), :mod:`~simulators.kis.inquiry.history` (inquire-daily-ccld,
inquire-psbl-rvsecncl), :mod:`~simulators.kis.inquiry.profit` (inquire-period-trade-profit, the
broker's charges per day and stock) and :mod:`~simulators.kis.inquiry.quotes` (inquire-price);
what they share (paging, messages) is in :mod:`~simulators.kis.inquiry.conventions`.
"""

from flask import Blueprint

from simulators.kis.inquiry.balance import register_balance_routes
from simulators.kis.inquiry.history import register_history_routes
from simulators.kis.inquiry.profit import register_profit_routes
from simulators.kis.inquiry.quotes import register_quote_routes
from simulators.kis.protocol import KisContext

__all__ = ["create_inquiry_blueprint"]


def create_inquiry_blueprint(ctx: KisContext) -> Blueprint:
    """Return the inquiry routes bound to ``ctx``."""
    bp = Blueprint("kis_inquiry", __name__)
    register_balance_routes(bp, ctx)
    register_history_routes(bp, ctx)
    register_profit_routes(bp, ctx)
    register_quote_routes(bp, ctx)
    return bp
