"""``/api/v1/accounts``: broker accounts, their tokens, balances and holdings (DESIGN §5).

Secrets go in (``api_key``, ``api_secret``, ``securities_config``) and never come out: the
schemas below mark them load-only, and the account number is shown masked.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from web_server.api.auth import current_key, scoped
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

_URL = validate.Regexp(r"^https?://", error="must be an http(s) URL")  # https: see the service


class SecuritiesConfigSchema(Schema):
    """Broker configuration of a KIS or Kiwoom account (stored encrypted)."""

    account_number = fields.String(required=True, validate=validate.Regexp(r"^\d{8}$"))
    product_code = fields.String(required=True, validate=validate.Regexp(r"^\d{2}$"))
    market_type = fields.String()
    cert_password = fields.String()
    additional_params = fields.Dict()


class AccountCreateSchema(Schema):
    """A new account; the keys are never returned."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    exchange = fields.String(required=True, validate=validate.OneOf(list(EXCHANGES)))
    environment = fields.String(load_default="REAL", validate=validate.OneOf(list(ENVIRONMENTS)))
    api_key = fields.String(required=True, load_only=True, validate=validate.Length(max=4096))
    api_secret = fields.String(required=True, load_only=True, validate=validate.Length(max=4096))
    securities_config = fields.Nested(SecuritiesConfigSchema, load_only=True)
    base_url = fields.String(validate=_URL, metadata={"description": "e.g. a simulator"})


class AccountPatchSchema(Schema):
    """Changes to an account; new keys come as a pair and revoke the old token."""

    name = fields.String(validate=validate.Length(min=1, max=100))
    is_active = fields.Boolean()
    base_url = fields.String(allow_none=True, validate=_URL)
    api_key = fields.String(load_only=True, validate=validate.Length(min=1, max=4096))
    api_secret = fields.String(load_only=True, validate=validate.Length(min=1, max=4096))

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
    """Cash in one currency (decimal strings)."""

    currency = fields.String()
    total = fields.Decimal(as_string=True)
    available = fields.Decimal(as_string=True)
    locked = fields.Decimal(as_string=True)


class HoldingSchema(Schema):
    """A position as the broker reports it (decimal strings)."""

    symbol = fields.String(allow_none=True)
    asset = fields.String(allow_none=True)
    name = fields.String(allow_none=True)
    quantity = fields.Decimal(as_string=True)
    available_quantity = fields.Decimal(as_string=True, allow_none=True)
    avg_price = fields.Decimal(as_string=True, allow_none=True)
    current_price = fields.Decimal(as_string=True, allow_none=True)
    pnl = fields.Decimal(as_string=True, allow_none=True)
    pnl_pct = fields.Decimal(as_string=True, allow_none=True)


def _allowed_account(account_id: int) -> Account:
    api_keys.require(current_key(), "accounts:read", account_id)
    return accounts_service.get_account(account_id)


@blp.route("")
class AccountList(MethodView):
    """All accounts this API key may see, and account creation."""

    @scoped("accounts:read")
    @blp.response(200, AccountSchema(many=True))
    def get(self) -> list[Account]:
        """List the accounts (with token status for KIS and Kiwoom)."""
        key = current_key()
        return [a for a in accounts_service.list_accounts() if key.allows_account(a.id)]

    @scoped("admin")
    @blp.arguments(AccountCreateSchema)
    @blp.response(201, AccountSchema)
    def post(self, data: dict[str, Any]) -> Account:
        """Add an account; the keys are stored encrypted and never shown again."""
        account = accounts_service.create_account(**data)
        db.session.commit()
        return account


@blp.route("/<int(max=2147483647):account_id>")
class AccountItem(MethodView):
    """One account."""

    @scoped("accounts:read")
    @blp.response(200, AccountSchema)
    def get(self, account_id: int) -> Account:
        """Return one account."""
        return _allowed_account(account_id)

    @scoped("admin")
    @blp.arguments(AccountPatchSchema)
    @blp.response(200, AccountSchema)
    def patch(self, data: dict[str, Any], account_id: int) -> Account:
        """Rename, (de)activate, repoint, or replace the keys (which revokes the old token)."""
        api_keys.require(current_key(), "admin", account_id)
        account = accounts_service.get_account(account_id)
        if "api_key" in data:
            accounts_service.replace_keys(
                account, api_key=data.pop("api_key"), api_secret=data.pop("api_secret")
            )
        accounts_service.update_account(account, **data)
        db.session.commit()
        return account

    @scoped("admin")
    @blp.response(204)
    def delete(self, account_id: int) -> None:
        """Delete an account without orders; its token is revoked at the broker first."""
        api_keys.require(current_key(), "admin", account_id)
        account = accounts_service.get_account(account_id)
        if accounts_service.has_history(account):
            raise Conflict(
                "The account has orders or holdings on record; deactivate it "
                "(PATCH is_active=false) instead, so its history stays."
            )
        accounts_service.delete_account(account)
        db.session.commit()


@blp.route("/<int(max=2147483647):account_id>/token/refresh")
class TokenRefresh(MethodView):
    """Refresh a KIS or Kiwoom token now."""

    @scoped("admin")
    @blp.response(200, TokenStatusSchema)
    def post(self, account_id: int) -> dict[str, Any]:
        """Issue a new token now (within the broker's issuance limit); return its status."""
        api_keys.require(current_key(), "admin", account_id)
        result = refresh_token(account_id, force=True)
        if result.error is not None and result.token is None:
            raise result.error
        return token_status(accounts_service.reload_account(account_id))


@blp.route("/<int(max=2147483647):account_id>/balances")
class Balances(MethodView):
    """Cash, read from the broker."""

    @scoped("holdings:read")
    @blp.response(200, BalanceSchema(many=True))
    def get(self, account_id: int) -> list[Any]:
        """Read the account's cash from the broker now."""
        api_keys.require(current_key(), "holdings:read", account_id)
        return list(adapter_for(accounts_service.get_account(account_id)).get_balance())


class HoldingsArgs(Schema):
    """Ask for a fresh read of the broker instead of the stored snapshot."""

    refresh = fields.Boolean(load_default=False)


class HoldingsSnapshotSchema(Schema):
    """The stored snapshot of an account's holdings and when the broker was read."""

    as_of = fields.DateTime(allow_none=True)
    holdings = fields.List(fields.Nested(HoldingSchema))
    unlisted_symbols = fields.List(
        fields.String(),
        metadata={"description": "held at the broker but unknown to the stocks master"},
    )


@blp.route("/<int(max=2147483647):account_id>/holdings")
class Holdings(MethodView):
    """Positions: the stored snapshot of the broker's truth."""

    @scoped("holdings:read")
    @blp.arguments(HoldingsArgs, location="query")
    @blp.response(200, HoldingsSnapshotSchema)
    def get(self, args: dict[str, Any], account_id: int) -> Any:
        """Return the holdings snapshot; read the broker first if asked or if it is stale."""
        api_keys.require(current_key(), "holdings:read", account_id)
        account = accounts_service.get_account(account_id)
        snapshot = holdings_service.get_holdings(account, refresh=args["refresh"])
        db.session.commit()
        return snapshot
