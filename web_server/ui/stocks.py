"""The stocks master, searched by code or Korean name."""

from __future__ import annotations

from typing import Any

from flask import render_template, request
from flask_login import login_required

from web_server.services.grammar import is_ascii_digits
from web_server.services.stocks import search_stocks
from web_server.services.stocks_sync import latest_runs
from web_server.ui.blueprint import bp
from web_server.ui.forms import StockSearchForm

PAGE_SIZE = 50


@bp.get("/stocks")
@login_required
def stocks() -> Any:
    """Search the stocks master (``?q=&market=&page=``), 50 a page."""
    form = StockSearchForm(request.args)
    page = request.args.get("page", "1")
    # ASCII digits only: str.isdigit() takes "²", which int() then refuses (a 500).
    page_number = int(page) if len(page) <= 5 and is_ascii_digits(page) else 1
    page_number = max(page_number, 1)
    results: list[Any] = []
    valid = form.validate()
    if valid:
        found = search_stocks(
            (form.q.data or "").strip() or None,
            market=form.market.data or None,
            limit=PAGE_SIZE + 1,
            offset=(page_number - 1) * PAGE_SIZE,
        )
        results = list(found)
    html = render_template(
        "stocks/search.html",
        form=form,
        stocks=results[:PAGE_SIZE],
        page=page_number,
        has_next=len(results) > PAGE_SIZE,
        last_sync=next(iter(latest_runs(1)), None),
    )
    return html, 200 if valid else 422
