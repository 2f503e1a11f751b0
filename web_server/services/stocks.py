"""Reading the stocks master (``market.stocks``)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import or_, select

from web_server.errors import NotFound, ValidationFailed
from web_server.extensions import db
from web_server.models import Stock
from web_server.models.market import SYMBOL_PATTERN
from web_server.services.grammar import text_problem

__all__ = ["SYMBOL_PATTERN", "Stock", "get_stock", "search_stocks"]


def get_stock(symbol: str) -> Stock:
    """Return the stock with this short code.

    Raises:
        NotFound: no such symbol in the master.
    """
    stock = db.session.get(Stock, symbol)
    if stock is None:
        raise NotFound(f"Symbol {symbol!r} is not in the stocks master.")
    return stock


def search_stocks(
    query: str | None = None,
    *,
    market: str | None = None,
    tradable: bool | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Sequence[Stock]:
    """Find stocks by code prefix or by part of the Korean name, filtered by market and status.

    Raises:
        ValidationFailed: the query holds a NUL, a control character or a lone surrogate.
    """
    if query and (problem := text_problem(query)):
        raise ValidationFailed("The search text is not acceptable.", errors={"q": [problem]})
    statement = select(Stock).order_by(Stock.symbol).limit(limit).offset(offset)
    if query:
        escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        statement = statement.where(
            or_(
                Stock.symbol.startswith(query.upper(), autoescape=True),
                Stock.name.ilike(f"%{escaped}%", escape="\\"),
            )
        )
    if market:
        statement = statement.where(Stock.market == market)
    if tradable is not None:
        statement = statement.where(Stock.is_tradable.is_(tradable))
    return db.session.scalars(statement).all()
