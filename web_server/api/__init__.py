"""The REST API under ``/api/v1``, documented as OpenAPI 3.1 by flask-smorest."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api as SmorestApi
from marshmallow import Schema, fields

__all__ = ["ProblemSchema", "init_api"]


class ProblemSchema(Schema):
    """RFC 9457 problem details, as every API error is rendered."""

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String()
    code = fields.String(required=True, metadata={"description": "Stable error code"})
    instance = fields.String()
    request_id = fields.String()
    errors = fields.Dict(metadata={"description": "Field problems, by field name"})
    broker = fields.String()
    broker_code = fields.String()
    broker_message = fields.String()


class Api(SmorestApi):
    """flask-smorest's Api, documenting problem+json errors and leaving error handling to us.

    The gateway maps every error to a response once (``web_server.errors``); smorest's own
    handler would render HTTP errors in a second, different shape.
    """

    ERROR_SCHEMA = ProblemSchema

    def _register_error_handlers(self) -> None:
        return None


def init_api(app: Flask) -> None:
    """Create the API and register its blueprints on ``app``."""
    from web_server.api import accounts, orders, stocks
    from web_server.extensions import csrf

    api = Api(app, spec_kwargs={"info": {"description": _DESCRIPTION}})
    api.spec.components.security_scheme(
        "bearer", {"type": "http", "scheme": "bearer", "description": "An API key (gw_…)"}
    )
    api.spec.options["security"] = [{"bearer": []}]
    for blueprint in (accounts.blp, orders.blp, stocks.blp):
        # The API authenticates with a bearer key, never a cookie, so cross-site request forgery
        # cannot ride on it: CSRF tokens are for the browser UI's forms.
        csrf.exempt(blueprint)
        api.register_blueprint(blueprint)
    app.extensions["gateway.api"] = api


_DESCRIPTION = (
    "One door through which trading programs reach their brokers. Errors are RFC 9457 "
    "problem+json with a stable `code`."
)
