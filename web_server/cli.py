"""The ``gateway`` command: the operator's single entry point (a Flask CLI group).

Commands that must work before the gateway is configured (``demo``, ``keys generate``) hang off
the top-level group and build the app themselves; the rest run inside the app's context.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from web_server import cli_ops, cli_risk, cli_run
from web_server.cli_run import write_private
from web_server.errors import GatewayError


@click.group(cls=FlaskGroup, create_app=cli_run.create_app_or_exit, add_version_option=False)
def main() -> None:
    """Operate the trading account gateway."""


# -- keys -------------------------------------------------------------------------------------


@main.group()
def keys() -> None:
    """Manage the encryption keys of stored secrets."""


@keys.command("generate", with_appcontext=False)
@click.option("--id", "key_id", help="Key id (letters, digits, - and _); random if omitted.")
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Put the new key first in this file (created with mode 600) instead of printing it.",
)
def keys_generate(key_id: str | None, key_file: Path | None) -> None:
    """Create a new 256-bit key as id:base64key.

    Printed alone on stdout, or prepended to --key-file so that it becomes the key that encrypts
    while the older keys still decrypt. Then run `gateway keys rotate`.
    """
    from web_server.crypto import generate_key_entry

    try:
        entry = generate_key_entry(key_id)
    except GatewayError as exc:
        raise click.ClickException(exc.detail) from None
    if key_file is None:
        click.echo(entry)
        return
    existing = key_file.read_text(encoding="ascii") if key_file.exists() else ""
    write_private(key_file, entry + "\n" + existing)
    click.echo(f"Added key {entry.split(':', 1)[0]} first in {key_file}.", err=True)


@keys.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every stored secret under the first configured key, in one transaction."""
    from web_server.crypto import key_ids_in_use, rotate
    from web_server.database import Base
    from web_server.extensions import db

    keyring = current_app.extensions["gateway.keyring"]
    try:
        rewritten = rotate(db.session, Base, keyring)
        db.session.commit()
    except GatewayError as exc:
        db.session.rollback()
        raise click.ClickException(f"Nothing was changed. {exc.detail}") from None
    in_use = key_ids_in_use(db.session, Base)
    click.echo(
        f"Re-encrypted {rewritten} secret(s) under key {keyring.primary_id}. "
        f"Key ids in use now: {', '.join(f'{k}={n}' for k, n in sorted(in_use.items())) or 'none'}."
    )


@keys.command("status")
def keys_status() -> None:
    """Show the configured key ids and how many stored secrets each one encrypts."""
    from web_server.crypto import key_ids_in_use
    from web_server.database import Base
    from web_server.extensions import db

    keyring = current_app.extensions["gateway.keyring"]
    in_use = key_ids_in_use(db.session, Base)
    for key_id in keyring.key_ids():
        role = "encrypts" if key_id == keyring.primary_id else "decrypts"
        click.echo(f"{key_id}\t{role}\t{in_use.pop(key_id, 0)} secret(s)")
    for key_id, count in in_use.items():
        click.echo(f"{key_id}\tMISSING\t{count} secret(s) cannot be decrypted")


# -- users ------------------------------------------------------------------------------------


@main.group()
def users() -> None:
    """Manage operator users of the web UI."""


@users.command("create")
@click.option("--username", required=True)
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input (scripts)."
)
def users_create(username: str, password_stdin: bool) -> None:
    """Create an operator; the password is asked for (or read from stdin), never an argument."""
    from web_server.extensions import db
    from web_server.services.users import create_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = create_user(username, password)
        db.session.commit()
    except GatewayError as exc:
        db.session.rollback()
        problems = "; ".join(f"{k}: {', '.join(v)}" for k, v in (exc.errors or {}).items())
        raise click.ClickException(f"{exc.detail} {problems}".strip()) from None
    click.echo(f"Created user {user.username} (id {user.id}).")


# -- API keys ---------------------------------------------------------------------------------


@main.group()
def apikeys() -> None:
    """API keys of the strategies (hashed; shown once)."""


@apikeys.command("create")
@click.option("--label", required=True, help="Who uses the key, e.g. 'momentum-v3 on host-a'.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(["orders:write", "orders:read", "holdings:read", "accounts:read", "admin"]),
)
@click.option(
    "--account",
    "account_ids",
    type=int,
    multiple=True,
    help="Accounts the key may touch (default: all).",
)
def apikeys_create(label: str, scopes: tuple[str, ...], account_ids: tuple[int, ...]) -> None:
    """Create a key; it is printed once, alone on the last line."""
    from web_server.extensions import db
    from web_server.services.api_keys import create_api_key

    try:
        row, key = create_api_key(label, scopes, account_ids or None)
        db.session.commit()
    except GatewayError as exc:
        db.session.rollback()
        problems = "; ".join(f"{k}: {', '.join(v)}" for k, v in (exc.errors or {}).items())
        raise click.ClickException(f"{exc.detail} {problems}".strip()) from None
    click.echo(
        f"API key {row.id} ({row.label}): scopes {', '.join(row.scopes)}; "
        f"accounts {', '.join(map(str, row.account_ids or [])) or 'all'}. "
        "Store it now; it cannot be shown again:",
        err=True,
    )
    click.echo(key)


@apikeys.command("list")
def apikeys_list() -> None:
    """List the keys (prefix, label, scopes, accounts, last use); never the keys themselves."""
    from sqlalchemy import select

    from web_server.extensions import db
    from web_server.models import ApiKey

    click.echo("id\tprefix\tlabel\tscopes\taccounts\tlast_used_at\tstate")
    for row in db.session.scalars(select(ApiKey).order_by(ApiKey.id)):
        click.echo(
            "\t".join(
                str(v)
                for v in (
                    row.id,
                    f"gw_{row.prefix}_…",
                    row.label,
                    ",".join(row.scopes),
                    ",".join(map(str, row.account_ids or [])) or "all",
                    row.last_used_at or "-",
                    "revoked" if row.revoked_at else "active",
                )
            )
        )


@apikeys.command("revoke")
@click.argument("key_id", type=int)
def apikeys_revoke(key_id: int) -> None:
    """Revoke a key; it stops working at once."""
    from web_server.extensions import db
    from web_server.services.api_keys import revoke_api_key

    try:
        revoke_api_key(key_id)
        db.session.commit()
    except GatewayError as exc:
        raise click.ClickException(exc.detail) from None
    click.echo(f"API key {key_id} revoked.")


# -- tokens and the scheduler -------------------------------------------------------------------


@main.group()
def tokens() -> None:
    """OAuth tokens of the KIS and Kiwoom accounts."""


@tokens.command("status")
def tokens_status() -> None:
    """Show each securities account's token: state, expiry, last refresh, last error."""
    from sqlalchemy import select

    from web_server.extensions import db
    from web_server.models import Account
    from web_server.services.tokens import token_status

    accounts = db.session.scalars(
        select(Account).where(Account.account_type == "SECURITIES_STOCK").order_by(Account.id)
    ).all()
    click.echo(
        "id\taccount\texchange\tenv\tstate\texpires_at\tlast_refreshed_at\tlast_error"
        "\tnext_attempt_at"
    )
    for account in accounts:
        status = token_status(account)
        click.echo(
            "\t".join(
                str(v)
                for v in (
                    account.id,
                    account.name,
                    account.exchange,
                    account.environment,
                    status["state"],
                    status.get("expires_at") or "-",
                    status.get("last_refreshed_at") or "-",
                    status.get("last_error") or "-",
                    status.get("next_attempt_at") or "-",
                )
            )
        )


@tokens.command("refresh")
@click.option(
    "--account",
    "account_ids",
    type=int,
    multiple=True,
    help="Only these accounts (default: every due token).",
)
@click.option("--force", is_flag=True, help="Issue even if the token is not due yet.")
def tokens_refresh(account_ids: tuple[int, ...], force: bool) -> None:
    """Refresh due tokens now (the scheduler does this every minute)."""
    from web_server.services.tokens import refresh_due_tokens, refresh_token

    try:
        if not account_ids:
            counts = refresh_due_tokens()
            click.echo(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none due")
            return
        for account_id in account_ids:
            result = refresh_token(account_id, force=force)
            detail = f" ({result.error.detail})" if result.error else ""
            click.echo(f"account {account_id}: {result.outcome}{detail}")
    except GatewayError as exc:
        raise click.ClickException(exc.detail) from None


@main.command()
def scheduler() -> None:
    """Run the background jobs (token refresh, stocks sync); a second one is a hot standby."""
    from web_server.jobs.scheduler import build_scheduler, shutdown

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    # SIGTERM (systemd, kill) must release the leader lock at once, not leave it to the OS.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    click.echo("scheduler: electing a leader; jobs run only on the leader")
    try:
        build_scheduler(app, blocking=True).start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        shutdown(app)


@main.command()
def leaders() -> None:
    """Show who leads the background jobs and flag a stale leader (heartbeat older than 15 s)."""
    from web_server.extensions import db
    from web_server.jobs.leader import leaders as recorded_leaders

    rows = recorded_leaders(db.session.connection())
    if not rows:
        click.echo("no leader recorded: is a `gateway scheduler` running?")
    for row in rows:
        flag = "STALE" if row["stale"] else "ok"
        click.echo(
            f"{row['lock_name']}\t{row['instance_id']}\thost={row['host']}\tpid={row['pid']}"
            f"\theartbeat {float(row['age']):.1f} s ago\t{flag}"
        )


# -- stocks master ----------------------------------------------------------------------------


@main.group()
def stocks() -> None:
    """The Korean stocks master (market.stocks)."""


@stocks.command("sync")
@click.option("--source", help="URL prefix of the master zips (default: GATEWAY_KIS_MASTER_URL).")
@click.option(
    "--master-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Read kospi_code.mst(.zip), kosdaq_… and konex_… from this folder instead.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Apply even if it delists more than GATEWAY_STOCKS_SYNC_MAX_DELIST_SHARE of a market.",
)
def stocks_sync(source: str | None, master_dir: Path | None, force: bool) -> None:
    """Download KIS's master files and apply them to market.stocks, all or nothing."""
    from web_server.services.stocks_sync import datasync_target, max_delist_share, run_sync

    if source and master_dir:
        raise click.UsageError("Give --source or --master-dir, not both.")
    origin = str(master_dir) if master_dir else (source or current_app.config["KIS_MASTER_URL"])
    steps = ["downloaded KOSPI", "downloaded KOSDAQ", "downloaded KONEX", "parsed", "written"]
    bar = click.progressbar(length=len(steps), label="stocks sync", file=sys.stderr)
    interactive = sys.stderr.isatty()
    if interactive:
        bar.__enter__()
    try:
        url, role = datasync_target(current_app.config)
        summary = run_sync(
            url,
            origin,
            role=role,
            progress=(lambda step, n: bar.update(n)) if interactive else None,
            max_delist_share=max_delist_share(current_app.config),
            force=force,
        )
    except GatewayError as exc:
        raise click.ClickException(f"[{exc.code}] {exc.detail} Nothing was changed.") from None
    finally:
        if interactive:
            bar.__exit__(None, None, None)
    click.echo(summary.line())


# -- crypto markets ---------------------------------------------------------------------------


@main.group()
def markets() -> None:
    """The crypto exchanges' markets (market.crypto_markets)."""


@markets.command("sync")
@click.option(
    "--exchange",
    "exchanges",
    multiple=True,
    type=click.Choice(["UPBIT", "BITHUMB", "BINANCE"]),
    help="Only these exchanges (default: all three).",
)
def markets_sync(exchanges: tuple[str, ...]) -> None:
    """Read each exchange's market list with its tick, lot and notional rules."""
    from web_server.extensions import db
    from web_server.services.crypto_markets import CRYPTO_EXCHANGES, sync_all_markets

    summaries = sync_all_markets(exchanges or CRYPTO_EXCHANGES)
    db.session.commit()
    for summary in summaries:
        click.echo(summary.line())
    missing = set(exchanges or CRYPTO_EXCHANGES) - {s.exchange for s in summaries}
    if missing:
        raise click.ClickException(f"Not synced (see the log): {', '.join(sorted(missing))}.")


# -- database roles ---------------------------------------------------------------------------


@click.command("roles")
@with_appcontext
def db_roles() -> None:
    """Create the gateway's roles if missing and grant them their rights in this database."""
    from web_server.extensions import db
    from web_server.roles import apply_grants

    apply_grants(db.session.connection())
    db.session.commit()
    click.echo("Roles gateway_app, gateway_datasync and gateway_readonly are in place.")


# -- risk controls and panic actions (web_server/cli_risk.py) ---------------------------------

main.add_command(cli_risk.risk)
main.add_command(cli_risk.panic)

# -- backup, restore and load test (web_server/cli_ops.py) ------------------------------------

cli_ops.register(main)

# -- serve, simulate and demo (web_server/cli_run.py) -----------------------------------------

cli_run.register(main)


def register_commands(app: Flask) -> None:
    """Attach the commands that need a configured app to ``app.cli`` and ``flask db``."""
    from flask_migrate.cli import db as db_group

    if "roles" not in db_group.commands:
        db_group.add_command(db_roles)
