"""``gateway risk`` (kill switches, policies) and ``gateway panic`` (cancel-all, flatten).

The operator's hands when the API is the thing that misbehaves: each command runs in the app's
context straight against the database and the brokers, as the shell user (recorded as
``cli:<user>`` in the audit trail), with every account in reach.
"""

from __future__ import annotations

import getpass
import json
from decimal import Decimal
from typing import Any

import click
from flask.cli import AppGroup

from web_server.errors import GatewayError


def _actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container): still say it was the CLI
        user = "unknown"
    return f"cli:{user}"


def _target(global_: bool, account: int | None, api_key: int | None) -> tuple[str, int | None]:
    chosen = [
        name for name, v in (("global", global_), ("account", account), ("key", api_key)) if v
    ]
    if len(chosen) != 1:
        raise click.UsageError("Name one target: --global, --account ID or --api-key ID.")
    if global_:
        return "GLOBAL", None
    return ("ACCOUNT", account) if account is not None else ("API_KEY", api_key)


def _fail(exc: GatewayError) -> click.ClickException:
    from web_server.extensions import db

    db.session.rollback()
    problems = "; ".join(f"{k}: {v}" for k, v in (exc.errors or {}).items())
    return click.ClickException(f"[{exc.code}] {exc.detail} {problems}".strip())


_TARGET_OPTIONS = (
    click.option("--global", "global_", is_flag=True, help="The whole gateway."),
    click.option("--account", type=int, help="An account id."),
    click.option("--api-key", type=int, help="An API key id."),
)


def _with_target(command: Any) -> Any:
    for option in reversed(_TARGET_OPTIONS):
        command = option(command)
    return command


@click.group(cls=AppGroup)
def risk() -> None:
    """Kill switches and risk policies."""


@risk.command("kill")
@_with_target
@click.option("--reason", required=True, help="Why; shown with the switch and every refusal.")
def risk_kill(global_: bool, account: int | None, api_key: int | None, reason: str) -> None:
    """Engage a kill switch: new orders of the target are refused in every process at once."""
    from web_server.services import kill_switches

    scope, target = _target(global_, account, api_key)
    try:
        kill_switches.engage(scope, target, reason, _actor())
    except GatewayError as exc:
        raise _fail(exc) from None
    click.echo(f"Kill switch {scope}{'' if target is None else f' {target}'} engaged: {reason}")


@risk.command("release")
@_with_target
def risk_release(global_: bool, account: int | None, api_key: int | None) -> None:
    """Release a kill switch."""
    from web_server.services import kill_switches

    scope, target = _target(global_, account, api_key)
    try:
        kill_switches.release(scope, target, _actor())
    except GatewayError as exc:
        raise _fail(exc) from None
    click.echo(f"Kill switch {scope}{'' if target is None else f' {target}'} released.")


@risk.command("list")
def risk_list() -> None:
    """List the engaged kill switches and the policies."""
    from web_server.services import kill_switches, risk_policies

    click.echo("scope\ttarget\tset_by\tset_at\treason")
    for switch in kill_switches.list_switches():
        view = kill_switches.switch_view(switch)
        click.echo(
            "\t".join(
                str(v)
                for v in (
                    view["scope"],
                    view["target_id"] if view["target_id"] is not None else "-",
                    view["set_by"],
                    view["set_at"].isoformat(),
                    view["reason"],
                )
            )
        )
    policies = risk_policies.list_policies()
    if policies:
        click.echo("")
        click.echo("policy\ttarget\tupdated_by\tlimits")
        for scope, target, policy in policies:
            view = risk_policies.policy_view(policy, scope, target)
            limits = {k: v for k, v in view["limits"].items() if v is not None}
            click.echo(f"{scope}\t{target}\t{view['updated_by']}\t{json.dumps(limits)}")


@risk.group("policy")
def risk_policy() -> None:
    """Show, set or delete the risk policy of an account or an API key."""


def _policy_target(account: int | None, api_key: int | None) -> tuple[str, int]:
    scope, target = _target(False, account, api_key)
    assert target is not None
    return scope, target


@risk_policy.command("show")
@click.option("--account", type=int)
@click.option("--api-key", type=int)
def policy_show(account: int | None, api_key: int | None) -> None:
    """Print the policy as JSON (every limit null: none)."""
    from web_server.services import risk_policies

    scope, target = _policy_target(account, api_key)
    try:
        risk_policies.require_target(scope, target)
    except GatewayError as exc:
        raise _fail(exc) from None
    view = risk_policies.policy_view(risk_policies.get_policy(scope, target), scope, target)
    click.echo(json.dumps(view, default=str, indent=2))


@risk_policy.command("set")
@click.option("--account", type=int)
@click.option("--api-key", type=int)
@click.option("--max-order-notional", type=Decimal)
@click.option("--max-order-quantity", type=Decimal)
@click.option("--max-daily-notional", type=Decimal)
@click.option("--max-daily-orders", type=int)
@click.option("--max-open-orders", type=int)
@click.option("--allowed-symbol", "allowed_symbols", multiple=True)
@click.option("--allowed-side", "allowed_sides", multiple=True, type=click.Choice(["BUY", "SELL"]))
@click.option("--refused-designation", "refused_designations", multiple=True)
def policy_set(account: int | None, api_key: int | None, **limits: Any) -> None:
    """Replace the policy: the limits given, none for what is left out."""
    from web_server.services import risk_policies

    scope, target = _policy_target(account, api_key)
    values = {k: (list(v) if isinstance(v, tuple) else v) or None for k, v in limits.items()}
    try:
        risk_policies.set_policy(scope, target, values, _actor())
    except GatewayError as exc:
        raise _fail(exc) from None
    view = risk_policies.policy_view(risk_policies.get_policy(scope, target), scope, target)
    click.echo(json.dumps(view, default=str, indent=2))


@risk_policy.command("delete")
@click.option("--account", type=int)
@click.option("--api-key", type=int)
def policy_delete(account: int | None, api_key: int | None) -> None:
    """Remove the policy (no limits any more)."""
    from web_server.services import risk_policies

    scope, target = _policy_target(account, api_key)
    try:
        risk_policies.delete_policy(scope, target, _actor())
    except GatewayError as exc:
        raise _fail(exc) from None
    click.echo(f"Policy of {scope} {target} deleted.")


@click.group(cls=AppGroup)
def panic() -> None:
    """Cancel every open order, or close every position, at once (idempotent)."""


def _run_panic(kind: str, scope: str, target: int, idempotency_key: str | None) -> None:
    import uuid

    from web_server.services import panic as panic_service

    key = idempotency_key or f"cli-{uuid.uuid4()}"
    try:
        action, replayed = panic_service.run(
            kind,
            scope,
            target,
            key=panic_service.cli_key(),
            idempotency_key=key,
            actor=_actor(),
        )
    except GatewayError as exc:
        raise _fail(exc) from None
    view = panic_service.action_view(action)
    click.echo(json.dumps(view, default=str, indent=2))
    if replayed:
        click.echo(f"(a replay of the run made with Idempotency-Key {key})", err=True)
    if action.status != "DONE":
        raise click.ClickException(f"Panic action {action.id} ended {action.status}.")


@panic.command("cancel-all")
@click.option("--account", type=int)
@click.option("--api-key", type=int)
@click.option("--idempotency-key", help="Repeat a run safely with the same key (default: new).")
def panic_cancel_all(account: int | None, api_key: int | None, idempotency_key: str | None) -> None:
    """Cancel every open order of an account (also those the gateway does not know) or a key."""
    scope, target = _policy_target(account, api_key)
    _run_panic("CANCEL_ALL", scope, target, idempotency_key)


@panic.command("flatten")
@click.option("--account", type=int, required=True)
@click.option("--idempotency-key", help="Repeat a run safely with the same key (default: new).")
def panic_flatten(account: int, idempotency_key: str | None) -> None:
    """Cancel every open order of an account, then sell every position it holds."""
    _run_panic("FLATTEN", "ACCOUNT", account, idempotency_key)
