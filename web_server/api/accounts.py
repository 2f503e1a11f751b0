"""``/api/v1/accounts``: broker accounts, their tokens, balances and holdings (DESIGN §5).

Secrets go in (``api_key``, ``api_secret``, ``securities_config``) and never come out: the
schemas below mark them load-only, and the account number is shown masked.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from web_server.api.auth import current_key, scoped
from web_server.api.docs import Blueprint
from web_server.api.input import Boolean, BrokerKey, DecimalString, FullMatch, QueryBoolean, Text
from web_server.errors import Conflict
from web_server.extensions import db
from web_server.services import accounts as accounts_service
from web_server.services import api_keys
from web_server.services import holdings as holdings_service
from web_server.services.accounts import ENVIRONMENTS, EXCHANGES, Account
from web_server.services.brokers import adapter_for
from web_server.services.tokens import refresh_token, token_status

blp = Blueprint(
    "accounts_api", __name__, url_prefix="/api/v1/accounts", description="Broker accounts"
)

#: The statuses of a call that reaches the broker, beyond the API's own.
BROKER_STATUSES = (400, 409, 422, 424, 429, 502, 503, 504)

_URL = (
    FullMatch(r"^https?://[^\s]+$", error="must be an http(s) URL"),
    validate.Length(max=2048),
)
_HOST = (
    "The broker's official host for the environment, one configured for it, one of "
    "GATEWAY_BROKER_URL_ALLOWLIST, or (outside production) loopback; null: the broker's host."
)


class SecuritiesConfigSchema(Schema):
    """Broker configuration of a KIS or Kiwoom account (stored encrypted)."""

    account_number = fields.String(
        required=True, validate=FullMatch(r"^[0-9]{8}$"), metadata={"example": "50123456"}
    )
    product_code = fields.String(
        required=True, validate=FullMatch(r"^[0-9]{2}$"), metadata={"example": "01"}
    )
    market_type = Text(validate=validate.Length(max=40))
    cert_password = Text(load_only=True, validate=validate.Length(max=1024))
    additional_params = fields.Dict(keys=Text(validate=validate.Length(max=100)))


class AccountCreateSchema(Schema):
    """A new account; the keys are never returned."""

    name = Text(
        required=True, validate=validate.Length(min=1, max=100), metadata={"example": "kis-main"}
    )
    exchange = fields.String(required=True, validate=validate.OneOf(list(EXCHANGES)))
    environment = fields.String(load_default="REAL", validate=validate.OneOf(list(ENVIRONMENTS)))
    api_key = BrokerKey(required=True)
    api_secret = BrokerKey(required=True)
    securities_config = fields.Nested(SecuritiesConfigSchema, load_only=True)
    base_url = Text(validate=_URL, metadata={"description": _HOST})


class AccountPatchSchema(Schema):
    """Changes to an account.

    New keys come as a pair and revoke the old token; a new ``base_url`` or ``environment``
    needs the keys in the same request.
    """

    name = Text(validate=validate.Length(min=1, max=100))
    is_active = Boolean()
    environment = fields.String(validate=validate.OneOf(list(ENVIRONMENTS)))
    base_url = Text(allow_none=True, validate=_URL, metadata={"description": _HOST})
    api_key = BrokerKey()
    api_secret = BrokerKey()

    @validates_schema
    def keys_come_in_pairs(self, data: dict[str, Any], **_: Any) -> None:
        """Refuse a new key without its secret, or the other way round."""
        if ("api_key" in data) != ("api_secret" in data):
            raise ValidationError("api_key and api_secret are replaced together", "api_key")


class TokenStatusSchema(Schema):
    """An OAuth token's state, never the token."""

    state = fields.String(metadata={"enum": ["missing", "valid", "due", "expired"]})
    expires_at = fields.DateTime()
    last_refreshed_at = fields.DateTime()
    refresh_attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    last_error_at = fields.DateTime(allow_none=True)
    next_attempt_at = fields.DateTime(allow_none=True)


class AccountSchema(Schema):
    """An account as the API shows it: no key, no secret, the account number masked."""

    id = fields.Integer()
    name = fields.String()
    exchange = fields.String()
    environment = fields.String()
    account_type = fields.String()
    base_url = fields.String(allow_none=True)
    is_active = fields.Boolean()
    is_simulated = fields.Boolean(
        metadata={"description": "trades with a local simulator (gateway demo), not a broker"}
    )
    account_number = fields.Method("masked_account_number", allow_none=True)
    token = fields.Method("token_state", allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()

    def masked_account_number(self, account: Account) -> str | None:
        """Show the first two and last two digits only."""
        number = accounts_service.securities_config(account).get("account_number")
        return f"{number[:2]}****{number[-2:]}" if number else None

    def token_state(self, account: Account) -> dict[str, Any] | None:
        """Token status for securities accounts."""
        if account.account_type != "SECURITIES_STOCK":
            return None
        return TokenStatusSchema().dump(token_status(account))  # type: ignore[no-any-return]


class BalanceSchema(Schema):
    """Cash in one currency (decimal strings), with the broker's settlement figures."""

    currency = fields.String(metadata={"example": "KRW"})
    total = DecimalString(positive=False, metadata={"example": "5000000"})
    available = DecimalString(positive=False, metadata={"example": "4300000"})
    locked = DecimalString(positive=False, metadata={"example": "700000"})
    settled_today = DecimalString(
        signed=True,
        allow_none=True,
        metadata={
            "example": "5000000",
            "description": "The cash the account holds today (D+0) as the broker reports it: "
            "KIS dnca_tot_amt, Kiwoom entr; the total on crypto exchanges, which settle at "
            "once. null: the broker did not say.",
        },
    )
    settled_d2 = DecimalString(
        signed=True,
        allow_none=True,
        metadata={
            "example": "4291000",
            "description": "The cash once everything traded so far has settled (D+2; KRX "
            "trades settle two trading days later) as the broker reports it: KIS "
            "prvs_rcdl_excc_amt, Kiwoom d2_entra; the total on crypto exchanges. null: the "
            "broker did not say.",
        },
    )


class HoldingSchema(Schema):
    """A position as the broker reports it (decimal strings)."""

    symbol = fields.String(
        allow_none=True,
        metadata={"description": "the security's code as the broker reports it; null for crypto"},
    )
    asset = fields.String(allow_none=True, metadata={"description": "the crypto asset held"})
    name = fields.String(allow_none=True)
    in_master = fields.Boolean(
        allow_none=True,
        metadata={
            "description": "whether the stocks master knows the security (false: kept and shown, "
            "but the master needs a sync); null for crypto, which has no master"
        },
    )
    quantity = DecimalString(positive=False, metadata={"example": "3"})
    available_quantity = DecimalString(
        positive=False,
        allow_none=True,
        metadata={
            "example": "3",
            "description": "what may be sold now (the rest is held by open sell orders or not "
            "yet sellable); null: the broker did not say",
        },
    )
    avg_price = DecimalString(positive=False, allow_none=True, metadata={"example": "71000"})
    current_price = DecimalString(positive=False, allow_none=True)
    pnl = DecimalString(signed=True, allow_none=True, metadata={"example": "-3000"})
    pnl_pct = DecimalString(signed=True, allow_none=True, metadata={"example": "-1.41"})


def _allowed_account(account_id: int) -> Account:
    api_keys.require(current_key(), "accounts:read", account_id)
    return accounts_service.get_account(account_id)


_ACCOUNT = "/<int(min=1, max=2147483647):account_id>"
_KIS_EXAMPLE = {
    "name": "kis-main",
    "exchange": "KIS",
    "environment": "REAL",
    "api_key": "PSabcdefghijklmnopqrstuvwxyz0123456",
    "api_secret": "an-app-secret-of-180-characters",
    "securities_config": {"account_number": "50123456", "product_code": "01"},
}


@blp.route("")
class AccountList(MethodView):
    """All accounts this API key may see, and account creation."""

    @scoped("accounts:read")
    @blp.response(200, AccountSchema(many=True))
    @blp.problems(403)
    def get(self) -> list[Account]:
        """List the accounts (with token status for KIS and Kiwoom).

        A key limited to some accounts sees only those.
        """
        key = current_key()
        return [a for a in accounts_service.list_accounts() if key.allows_account(a.id)]

    @scoped("admin", unrestricted=True)
    @blp.arguments(AccountCreateSchema, example=_KIS_EXAMPLE)
    @blp.response(201, AccountSchema)
    @blp.problems(400, 403, 409, 415, 422)
    def post(self, data: dict[str, Any]) -> Account:
        """Add an account; the keys are stored encrypted and never shown again.

        Needs an `admin` key that is not limited to some accounts. The `base_url` must be a host
        the keys may travel to (see the field); a name already taken is a 409.
        """
        account = accounts_service.create_account(**data)
        db.session.commit()
        return account


@blp.route(_ACCOUNT)
class AccountItem(MethodView):
    """One account."""

    @scoped("accounts:read")
    @blp.response(200, AccountSchema)
    @blp.problems(403, 404)
    def get(self, account_id: int) -> Account:
        """Return one account."""
        return _allowed_account(account_id)

    @scoped("admin")
    @blp.arguments(AccountPatchSchema, example={"name": "kis-renamed", "is_active": False})
    @blp.response(200, AccountSchema)
    @blp.problems(400, 403, 404, 409, 415, 422)
    def patch(self, data: dict[str, Any], account_id: int) -> Account:
        """Rename, (de)activate, move or re-key an account.

        New keys (`api_key` with `api_secret`) revoke the old token at the broker. Moving the
        account (`base_url`, `environment`) needs the keys in the same request, so a leaked API
        key cannot send the broker secret to another host.
        """
        api_keys.require(current_key(), "admin", account_id)
        account = accounts_service.get_account(account_id)
        accounts_service.update_account(account, **data)
        db.session.commit()
        return account

    @scoped("admin")
    @blp.response(204)
    @blp.problems(403, 404, 409)
    def delete(self, account_id: int) -> None:
        """Delete an account without orders; its token is revoked at the broker first.

        An account with orders or holdings on record is a 409: deactivate it instead.
        """
        api_keys.require(current_key(), "admin", account_id)
        account = accounts_service.get_account(account_id)
        if accounts_service.has_history(account):
            raise Conflict(
                "The account has orders or holdings on record; deactivate it "
                "(PATCH is_active=false) instead, so its history stays."
            )
        accounts_service.delete_account(account)
        db.session.commit()


@blp.route(f"{_ACCOUNT}/token/refresh")
class TokenRefresh(MethodView):
    """Refresh a KIS or Kiwoom token now."""

    @scoped("admin")
    @blp.response(200, TokenStatusSchema)
    @blp.problems(403, 404, *BROKER_STATUSES)
    def post(self, account_id: int) -> dict[str, Any]:
        """Issue a new token now (within the broker's issuance limit); return its status.

        A crypto account has no token: 404.
        """
        api_keys.require(current_key(), "admin", account_id)
        result = refresh_token(account_id, force=True)
        if result.error is not None and result.token is None:
            raise result.error
        return token_status(accounts_service.reload_account(account_id))


@blp.route(f"{_ACCOUNT}/balances")
class Balances(MethodView):
    """Cash, read from the broker."""

    @scoped("holdings:read")
    @blp.response(200, BalanceSchema(many=True))
    @blp.problems(403, 404, *BROKER_STATUSES)
    def get(self, account_id: int) -> list[Any]:
        """Read the account's cash from the broker now (decimal strings).

        Besides the total, what orders may use and what open orders lock, each currency gives
        the broker's settlement figures: `settled_today` (D+0) and `settled_d2` (the cash once
        today's and yesterday's trades have settled, T+2 on the KRX calendar). Crypto exchanges
        settle at once: both equal the total.
        """
        api_keys.require(current_key(), "holdings:read", account_id)
        adapter = adapter_for(accounts_service.get_account(account_id))
        db.session.commit()  # the request's reads end: no transaction waits on the broker
        return list(adapter.get_balance())


class HoldingsArgs(Schema):
    """Ask for a fresh read of the broker instead of the stored snapshot."""

    refresh = QueryBoolean(load_default=False)


class HoldingsSnapshotSchema(Schema):
    """The stored snapshot of an account's holdings and when the broker was read."""

    as_of = fields.DateTime(allow_none=True)
    holdings = fields.List(fields.Nested(HoldingSchema))
    unlisted_symbols = fields.List(
        fields.String(),
        metadata={
            "description": "held at the broker but unknown to the stocks master (those "
            "holdings are listed with in_master false)"
        },
    )


@blp.route(f"{_ACCOUNT}/holdings")
class Holdings(MethodView):
    """Positions: the stored snapshot of the broker's truth."""

    @scoped("holdings:read")
    @blp.arguments(HoldingsArgs, location="query")
    @blp.response(200, HoldingsSnapshotSchema)
    @blp.problems(403, 404, *BROKER_STATUSES)
    def get(self, args: dict[str, Any], account_id: int) -> Any:
        """Return the holdings snapshot; read the broker first if asked or if it is stale.

        Every position the broker reports is listed, also a security the stocks master does not
        know (`in_master` false, named in `unlisted_symbols`), with its total and its
        `available_quantity` (what may be sold now). Refreshes of one account at the same time
        queue and all succeed; the newest read of the broker is the one kept.
        """
        api_keys.require(current_key(), "holdings:read", account_id)
        if not args["refresh"]:
            snapshot = holdings_service.cached_snapshot(account_id)
            if snapshot is not None:
                return snapshot
        account = accounts_service.get_account(account_id)
        snapshot = holdings_service.get_holdings(account, refresh=args["refresh"])
        db.session.commit()
        return snapshot
