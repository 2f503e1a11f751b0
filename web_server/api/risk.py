"""Kill switches and risk policies over the API (see :mod:`web_server.services.risk`).

Who may do what follows the key model: an ``admin`` key acts on the accounts it may use, so the
switch and the policy of an account take an admin key allowed that account; what concerns the
whole gateway — the global switch, another API key's switch or policy — takes an ``admin`` key
that is not limited to some accounts. A key may read its own switch and policy.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from web_server.api.auth import current_key, scoped
from web_server.api.docs import Blueprint
from web_server.api.input import DecimalString, FullMatch, Integer, Text
from web_server.errors import Forbidden
from web_server.services import api_keys, kill_switches, risk_policies
from web_server.services.api_keys import ApiKey

blp = Blueprint("risk_api", __name__, url_prefix="/api/v1", description="Risk controls")

_ACCOUNT = "/accounts/<int(min=1, max=2147483647):account_id>"
_KEY = "/api-keys/<int(min=1, max=2147483647):key_id>"
_COUNT = validate.Range(min=1, max=2**31 - 1)
_SYMBOL = FullMatch(r"^[A-Za-z0-9-]{1,32}$", error="a symbol such as 005930, KRW-BTC, BTCUSDT")


class KillSwitchRequestSchema(Schema):
    """Why the switch is engaged (shown with the switch and in every refusal)."""

    reason = Text(
        required=True,
        validate=validate.Length(min=1, max=500),
        metadata={"example": "strategy 7 is looping"},
    )


class KillSwitchSchema(Schema):
    """A kill switch: engaged or not, who set it, when and why."""

    scope = fields.String(metadata={"enum": list(kill_switches.SCOPES)})
    target_id = fields.Integer(allow_none=True, metadata={"description": "null for GLOBAL"})
    engaged = fields.Boolean()
    reason = fields.String(allow_none=True)
    set_by = fields.String(allow_none=True)
    set_at = fields.DateTime(allow_none=True)


class RiskLimitsSchema(Schema):
    """The limits of a policy; a field left out or null is no limit."""

    max_order_notional = DecimalString(allow_none=True, metadata={"example": "10000000"})
    max_order_quantity = DecimalString(allow_none=True, metadata={"example": "1000"})
    max_daily_notional = DecimalString(allow_none=True, metadata={"example": "100000000"})
    max_daily_orders = Integer(allow_none=True, validate=_COUNT, metadata={"example": 500})
    max_open_orders = Integer(allow_none=True, validate=_COUNT, metadata={"example": 20})
    allowed_symbols = fields.List(
        fields.String(validate=_SYMBOL),
        allow_none=True,
        validate=validate.Length(max=1000),
        metadata={"example": ["005930", "KRW-BTC"]},
    )
    allowed_sides = fields.List(
        fields.String(validate=validate.OneOf(["BUY", "SELL"])),
        allow_none=True,
        validate=validate.Length(max=2),
    )
    refused_designations = fields.List(
        fields.String(validate=validate.OneOf([*risk_policies.DESIGNATION_CODES, "*"])),
        allow_none=True,
        validate=validate.Length(max=len(risk_policies.DESIGNATION_CODES) + 1),
        metadata={"example": ["ADMINISTRATIVE", "LIQUIDATION_TRADING"]},
    )


class RiskPolicySchema(Schema):
    """The policy of an account or an API key (no policy: every limit null)."""

    scope = fields.String(metadata={"enum": ["API_KEY", "ACCOUNT"]})
    target_id = fields.Integer()
    limits = fields.Nested(RiskLimitsSchema)
    updated_by = fields.String(allow_none=True)
    updated_at = fields.DateTime(allow_none=True)


_POLICY_EXAMPLE = {"max_order_notional": "10000000", "max_open_orders": 20}


def _actor() -> str:
    key = current_key()
    return f"api-key:{key.id} ({key.label})"


def _may_manage_key(key_id: int, *, read: bool = False) -> None:
    """Another key's switch or policy takes an unrestricted admin key; a key reads its own."""
    key = current_key()
    if read and key.id == key_id:
        return
    if "admin" not in key.scopes:
        raise Forbidden("This API key lacks the 'admin' scope.")
    api_keys.require_unrestricted(key)


def _switch(scope: str, target_id: int | None) -> dict[str, Any]:
    for switch in kill_switches.list_switches():
        if switch.scope == scope and (scope == "GLOBAL" or switch.target_id == target_id):
            return {**kill_switches.switch_view(switch), "engaged": True}
    return {
        "scope": scope,
        "target_id": target_id,
        "engaged": False,
        "reason": None,
        "set_by": None,
        "set_at": None,
    }


def _engage(scope: str, target_id: int | None, reason: str) -> dict[str, Any]:
    kill_switches.engage(scope, target_id, reason, _actor())
    return _switch(scope, target_id)


def _visible(key: ApiKey, scope: str, target_id: int) -> bool:
    if scope == "GLOBAL" or key.account_ids is None:
        return True
    if scope == "ACCOUNT":
        return key.allows_account(target_id)
    return target_id == key.id


_SWITCH_PROBLEMS = (403, 404)
_WRITE_PROBLEMS = (400, 403, 404, 415, 422)


@blp.route("/kill-switches")
class KillSwitchList(MethodView):
    """Every engaged kill switch."""

    @scoped("admin")
    @blp.response(200, KillSwitchSchema(many=True))
    @blp.problems(403)
    def get(self) -> list[dict[str, Any]]:
        """List the engaged switches (the global one first), with who set them, when and why.

        A key limited to some accounts sees the global switch, its accounts' and its own.
        """
        key = current_key()
        return [
            {**kill_switches.switch_view(s), "engaged": True}
            for s in kill_switches.list_switches()
            if _visible(key, s.scope, s.target_id)
        ]


@blp.route("/kill-switches/global")
class GlobalKillSwitch(MethodView):
    """The switch that stops every new order of the gateway."""

    @scoped("admin")
    @blp.response(200, KillSwitchSchema)
    @blp.problems(403)
    def get(self) -> dict[str, Any]:
        """Tell whether the global switch is engaged, and by whom, when and why."""
        return _switch("GLOBAL", None)

    @scoped("admin", unrestricted=True)
    @blp.arguments(KillSwitchRequestSchema, example={"reason": "exchange incident"})
    @blp.response(200, KillSwitchSchema)
    @blp.problems(*_WRITE_PROBLEMS)
    def put(self, body: dict[str, Any]) -> dict[str, Any]:
        """Engage it (or restate its reason): every process refuses new orders at once.

        New orders answer 422 `kill_switch_engaged`; cancels and panic actions still work.
        Needs an `admin` key not limited to some accounts.
        """
        return _engage("GLOBAL", None, body["reason"])

    @scoped("admin", unrestricted=True)
    @blp.response(204)
    @blp.problems(403, 404)
    def delete(self) -> None:
        """Release it (404 when it is not engaged)."""
        kill_switches.release("GLOBAL", None, _actor())


@blp.route(f"{_ACCOUNT}/kill-switch")
class AccountKillSwitch(MethodView):
    """The switch that stops new orders of one account."""

    @scoped("admin")
    @blp.response(200, KillSwitchSchema)
    @blp.problems(*_SWITCH_PROBLEMS)
    def get(self, account_id: int) -> dict[str, Any]:
        """Tell whether the account's switch is engaged, and by whom, when and why."""
        api_keys.require(current_key(), "admin", account_id)
        _exists("ACCOUNT", account_id)
        return _switch("ACCOUNT", account_id)

    @scoped("admin")
    @blp.arguments(KillSwitchRequestSchema, example={"reason": "margin call"})
    @blp.response(200, KillSwitchSchema)
    @blp.problems(*_WRITE_PROBLEMS)
    def put(self, body: dict[str, Any], account_id: int) -> dict[str, Any]:
        """Engage it (or restate its reason): new orders of the account are refused at once."""
        api_keys.require(current_key(), "admin", account_id)
        return _engage("ACCOUNT", account_id, body["reason"])

    @scoped("admin")
    @blp.response(204)
    @blp.problems(403, 404)
    def delete(self, account_id: int) -> None:
        """Release it (404 when it is not engaged)."""
        api_keys.require(current_key(), "admin", account_id)
        kill_switches.release("ACCOUNT", account_id, _actor())


@blp.route(f"{_KEY}/kill-switch")
class KeyKillSwitch(MethodView):
    """The switch that stops new orders of one API key."""

    @scoped(None)
    @blp.response(200, KillSwitchSchema)
    @blp.problems(*_SWITCH_PROBLEMS)
    def get(self, key_id: int) -> dict[str, Any]:
        """Tell whether the key's switch is engaged (any key may ask about itself)."""
        _may_manage_key(key_id, read=True)
        _exists("API_KEY", key_id)
        return _switch("API_KEY", key_id)

    @scoped("admin", unrestricted=True)
    @blp.arguments(KillSwitchRequestSchema, example={"reason": "strategy 7 is looping"})
    @blp.response(200, KillSwitchSchema)
    @blp.problems(*_WRITE_PROBLEMS)
    def put(self, body: dict[str, Any], key_id: int) -> dict[str, Any]:
        """Engage it (or restate its reason): the key's new orders are refused at once."""
        return _engage("API_KEY", key_id, body["reason"])

    @scoped("admin", unrestricted=True)
    @blp.response(204)
    @blp.problems(403, 404)
    def delete(self, key_id: int) -> None:
        """Release it (404 when it is not engaged)."""
        kill_switches.release("API_KEY", key_id, _actor())


def _policy(scope: str, target_id: int) -> dict[str, Any]:
    return risk_policies.policy_view(risk_policies.get_policy(scope, target_id), scope, target_id)


def _set_policy(scope: str, target_id: int, limits: dict[str, Any]) -> dict[str, Any]:
    risk_policies.set_policy(scope, target_id, limits, _actor())
    return _policy(scope, target_id)


@blp.route(f"{_ACCOUNT}/risk-policy")
class AccountRiskPolicy(MethodView):
    """The risk policy of one account."""

    @scoped("admin")
    @blp.response(200, RiskPolicySchema)
    @blp.problems(403, 404)
    def get(self, account_id: int) -> dict[str, Any]:
        """Return the account's limits (every limit null: no policy)."""
        api_keys.require(current_key(), "admin", account_id)
        _exists("ACCOUNT", account_id)
        return _policy("ACCOUNT", account_id)

    @scoped("admin")
    @blp.arguments(RiskLimitsSchema, example=_POLICY_EXAMPLE)
    @blp.response(200, RiskPolicySchema)
    @blp.problems(*_WRITE_PROBLEMS)
    def put(self, body: dict[str, Any], account_id: int) -> dict[str, Any]:
        """Replace the account's policy (a limit left out or null: none); effective at once."""
        api_keys.require(current_key(), "admin", account_id)
        return _set_policy("ACCOUNT", account_id, body)

    @scoped("admin")
    @blp.response(204)
    @blp.problems(403, 404)
    def delete(self, account_id: int) -> None:
        """Remove the account's policy (404 when it has none)."""
        api_keys.require(current_key(), "admin", account_id)
        risk_policies.delete_policy("ACCOUNT", account_id, _actor())


@blp.route(f"{_KEY}/risk-policy")
class KeyRiskPolicy(MethodView):
    """The risk policy of one API key."""

    @scoped(None)
    @blp.response(200, RiskPolicySchema)
    @blp.problems(403, 404)
    def get(self, key_id: int) -> dict[str, Any]:
        """Return the key's limits (any key may read its own)."""
        _may_manage_key(key_id, read=True)
        _exists("API_KEY", key_id)
        return _policy("API_KEY", key_id)

    @scoped("admin", unrestricted=True)
    @blp.arguments(RiskLimitsSchema, example=_POLICY_EXAMPLE)
    @blp.response(200, RiskPolicySchema)
    @blp.problems(*_WRITE_PROBLEMS)
    def put(self, body: dict[str, Any], key_id: int) -> dict[str, Any]:
        """Replace the key's policy (a limit left out or null: none); effective at once."""
        return _set_policy("API_KEY", key_id, body)

    @scoped("admin", unrestricted=True)
    @blp.response(204)
    @blp.problems(403, 404)
    def delete(self, key_id: int) -> None:
        """Remove the key's policy (404 when it has none)."""
        risk_policies.delete_policy("API_KEY", key_id, _actor())


def _exists(scope: str, target_id: int) -> None:
    risk_policies.require_target(scope, target_id)
