"""The REST API under ``/api/v1``, documented as OpenAPI 3.1 by flask-smorest.

Input is read strictly (:mod:`web_server.api.input`), errors are documented as problem+json
(:mod:`web_server.api.docs`), and the browsable documentation at ``/api/v1/docs`` loads its
script from the gateway itself (``ui/static/vendor/redoc``), never from a CDN.
"""

from __future__ import annotations

from flask import Flask

from web_server.api.docs import Api, ProblemSchema

__all__ = ["ProblemSchema", "init_api"]


def init_api(app: Flask) -> None:
    """Create the API and register its blueprints on ``app``."""
    from web_server.api import accounts, orders, panic, risk, stocks
    from web_server.api import events as events_api
    from web_server.api import webhooks as webhooks_api
    from web_server.extensions import csrf

    api = Api(app, spec_kwargs={"info": {"description": _DESCRIPTION}})
    api.spec.components.security_scheme(
        "bearer", {"type": "http", "scheme": "bearer", "description": "An API key (gw_…)"}
    )
    api.spec.options["security"] = [{"bearer": []}]
    for blueprint in (
        accounts.blp,
        orders.blp,
        stocks.blp,
        risk.blp,
        panic.blp,
        events_api.blp,
        webhooks_api.blp,
    ):
        # The API authenticates with a bearer key, never a cookie, so cross-site request forgery
        # cannot ride on it: CSRF tokens are for the browser UI's forms.
        csrf.exempt(blueprint)
        api.register_blueprint(blueprint)
    app.extensions["gateway.api"] = api


_DESCRIPTION = """\
One door through which trading programs reach their brokers.

**Input.** Bodies are `application/json` of at most `GATEWAY_MAX_CONTENT_LENGTH` bytes (65536 by
default; larger: 413), nested at most 32 levels, without duplicate keys (400 `invalid_json`).
Decimals (quantities, prices, balances) are JSON strings of ASCII digits with an optional
fraction, `^[0-9]+(\\.[0-9]+)?$`, at most 15 digits before the point and 12 after: JSON numbers,
exponents, blanks, separators and other scripts' digits are refused. Booleans are JSON `true` or
`false` (`true`/`false` in a query). No string may hold a NUL or a lone surrogate. Unknown
fields and query parameters are refused.

**Errors.** Every error is RFC 9457 `application/problem+json` with a stable `code`; field
problems are in `errors`, by location (`json`, `query`, `path`) and field. A refused request
changes nothing.

**Keys.** `Authorization: Bearer gw_…`; scopes `orders:write`, `orders:read`, `holdings:read`,
`accounts:read`, `admin`. A key limited to some accounts sees and touches only those, and cannot
create accounts (that needs an unrestricted `admin` key).
"""
