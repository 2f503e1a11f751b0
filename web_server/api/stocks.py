"""``/api/v1/stocks``: the stocks master, read-only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from web_server.api.auth import scoped
from web_server.api.docs import Blueprint
from web_server.api.input import FullMatch, Integer, QueryBoolean, Text
from web_server.services import stocks as stocks_service
from web_server.services.stocks import SYMBOL_PATTERN, Stock

blp = Blueprint(
    "stocks_api", __name__, url_prefix="/api/v1/stocks", description="Korean stocks master"
)


class StockSchema(Schema):
    """A row of the stocks master."""

    symbol = fields.String(metadata={"example": "005930"})
    name = fields.String(metadata={"example": "삼성전자"})
    market = fields.String(metadata={"enum": ["KOSPI", "KOSDAQ", "KONEX"]})
    status = fields.String(metadata={"enum": ["ACTIVE", "SUSPENDED", "DELISTED"]})
    is_tradable = fields.Boolean()
    trade_halt_reason = fields.String(allow_none=True)
    listing_date = fields.Date(allow_none=True)
    delisting_date = fields.Date(allow_none=True)
    sector = fields.String(allow_none=True)
    industry = fields.String(allow_none=True)
    market_cap = fields.Integer(allow_none=True)
    standard_code = fields.String(allow_none=True)
    security_group = fields.String(allow_none=True)
    designations = fields.List(
        fields.String(),
        metadata={
            "description": "KRX designations (ADMINISTRATIVE, INVESTMENT_CAUTION, "
            "INVESTMENT_WARNING, INVESTMENT_RISK, LIQUIDATION_TRADING, UNFAITHFUL_DISCLOSURE, "
            "SHORT_TERM_OVERHEAT, INVESTMENT_ATTENTION); they do not stop trading, a key's risk "
            "policy may refuse them",
            "example": [],
        },
    )
    nxt_eligible = fields.Boolean(metadata={"description": "Nextrade (NXT) trades the stock"})
    updated_ts = fields.DateTime()


class StockSearchArgs(Schema):
    """Filters of a stocks search."""

    q = Text(validate=validate.Length(min=1, max=40), metadata={"example": "삼성"})
    market = fields.String(validate=validate.OneOf(["KOSPI", "KOSDAQ", "KONEX"]))
    tradable = QueryBoolean()
    limit = Integer(in_query=True, load_default=50, validate=validate.Range(min=1, max=500))
    offset = Integer(in_query=True, load_default=0, validate=validate.Range(min=0, max=10**9))


class StockPath(Schema):
    """The short code in the path."""

    symbol = fields.String(
        required=True,
        validate=FullMatch(
            SYMBOL_PATTERN, error="a six-character KRX short code such as 005930 or 0001A0"
        ),
        metadata={"example": "005930"},
    )


@blp.route("")
class StockList(MethodView):
    """Search the stocks master."""

    @scoped(None)
    @blp.arguments(StockSearchArgs, location="query")
    @blp.response(200, StockSchema(many=True))
    @blp.problems(422)
    def get(self, args: dict[str, Any]) -> Sequence[Stock]:
        """Search by code prefix or Korean name, by market, by tradability (any API key)."""
        return stocks_service.search_stocks(
            args.get("q"),
            market=args.get("market"),
            tradable=args.get("tradable"),
            limit=args["limit"],
            offset=args["offset"],
        )


@blp.route("/<string:symbol>")
class StockItem(MethodView):
    """One stock."""

    @scoped(None)
    @blp.arguments(StockPath, location="path")
    @blp.response(200, StockSchema)
    @blp.problems(404, 422)
    def get(self, path: dict[str, Any], symbol: str) -> Stock:
        """Return one stock by its six-character short code (any API key)."""
        return stocks_service.get_stock(path["symbol"])
