"""Commands that run things: ``gateway serve``, ``gateway simulate`` and ``gateway demo``.

They work before the gateway is configured (the demo configures itself in its instance folder),
so they hang off the top-level group without an app context and build the app themselves.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup

from web_server import create_app
from web_server.errors import GatewayError


def register(group: AppGroup) -> None:
    """Attach ``serve``, ``simulate`` and ``demo`` to the ``gateway`` group."""
    for command in (serve, simulate, demo):
        group.add_command(command)


def create_app_or_exit() -> Flask:
    """Build the app, or end the command with the configuration error's message."""
    try:
        return create_app()
    except GatewayError as exc:
        raise click.ClickException(exc.detail) from None


@click.command()
@click.option("--bind", default="127.0.0.1:8000", show_default=True)
@click.option("--workers", default=2, show_default=True)
@click.option(
    "--threads",
    default=64,
    show_default=True,
    help="Threads per worker: each open event stream holds one (docs/architecture.md).",
)
def serve(bind: str, workers: int, threads: int) -> None:
    """Run the web server under gunicorn (production).

    Metrics of all workers are added up through files in PROMETHEUS_MULTIPROC_DIR; when it is
    unset a fresh folder is made for this server, and a folder that is set is emptied first (the
    files of an earlier run would be counted again; docs/operations.md).
    """
    _prepare_metrics_dir()
    os.execvp(  # noqa: S606 - replacing this process with gunicorn is the point
        sys.executable,
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            bind,
            "--workers",
            str(workers),
            # Threaded workers: an event stream (GET /api/v1/events) is a long request, and a
            # sync worker would be taken whole by one.
            "--worker-class",
            "gthread",
            "--threads",
            str(threads),
            "--access-logfile",
            "-",
            "--config",
            "python:web_server.gunicorn_conf",
            "web_server:create_app()",
        ],
    )


def _prepare_metrics_dir() -> None:
    import tempfile

    from web_server.metrics import MULTIPROC_ENV

    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="gateway-metrics-")
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()


@click.command()
@click.argument("broker", type=click.Choice(["kis", "kiwoom", "upbit", "bithumb", "binance"]))
@click.option("--port", type=int, help="Default: the broker's demo port (18001-18005).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--seed", default=0, show_default=True, help="Seed of the price paths.")
@click.option("--paper", is_flag=True, help="KIS/Kiwoom: the paper-trading environment.")
@click.option(
    "--master-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="KIS: serve the master files of this folder instead of generated ones.",
)
def simulate(
    broker: str, port: int | None, host: str, seed: int, paper: bool, master_dir: Path | None
) -> None:
    """Run one broker's simulator on loopback (faithful protocol plus the /_sim control surface)."""
    from simulators.registry import DEFAULT_PORTS, create_simulator
    from simulators.server import run

    options: dict[str, object] = {"seed": seed}
    if broker in ("kis", "kiwoom"):
        options["paper"] = paper
    elif paper:
        raise click.UsageError("--paper is for kis and kiwoom.")
    if master_dir is not None:
        if broker != "kis":
            raise click.UsageError("--master-dir is for kis.")
        options["master_dir"] = master_dir
    port = port or DEFAULT_PORTS[broker]
    click.echo(f"{broker} simulator on http://{host}:{port} (control: /_sim/)")
    run(create_simulator(broker, **options), host, port)


@click.command()
@click.option("--port", default=8000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--simulator-ports",
    "simulator_base_port",
    type=click.IntRange(1024, 65530),
    help="First of five consecutive ports for the simulators (default: 18001-18005).",
)
@click.option(
    "--reset",
    is_flag=True,
    help="Start over: delete the demo's database, simulator state, keys and logins first.",
)
def demo(port: int, host: str, simulator_base_port: int | None, reset: bool) -> None:
    """Run the whole product locally, with no keys and no broker.

    Embedded PostgreSQL (unless DATABASE_URL is set), the five broker simulators, a demo account at
    each, the stocks master, the token job, and a demo operator whose login is printed.

    Keys and the session secret for the demo are created in the instance folder on first run. The
    gateway's database and the simulators' state are kept there too, so a restart carries on
    where the last run stopped; --reset deletes them first. Ctrl-C, SIGTERM and SIGHUP stop the
    demo cleanly, embedded PostgreSQL included.
    """
    instance = Path(os.environ.get("GATEWAY_INSTANCE_DIR", Path.cwd() / "instance"))
    if reset:
        _reset_demo(instance)
    instance.mkdir(parents=True, exist_ok=True)
    _prepare_demo_settings(instance)
    # SIGTERM (systemd, kill) and SIGHUP (a closed terminal) end the demo as Ctrl-C does: through
    # the `finally` blocks, which save the simulators and stop the embedded PostgreSQL.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)
    app = create_app_or_exit()
    try:
        from flask_migrate import upgrade

        with app.app_context():
            upgrade()
            username, password = _ensure_demo_operator(instance)
        click.echo("")
        click.echo(f"  Gateway:  http://{host}:{port}/")
        click.echo(f"  Log in:   {username} / {password}")
        click.echo(f"  API docs: http://{host}:{port}/api/v1/docs")
        from web_server import demo as demo_runner

        try:
            demo_runner.run(
                app,
                host=host,
                port=port,
                instance=instance,
                simulator_base_port=simulator_base_port,
            )
        except demo_runner.DemoError as exc:
            raise click.ClickException(str(exc)) from None
    finally:
        _stop_embedded_database(app)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _stop_embedded_database(app: Flask) -> None:
    """Close the app's connections, then leave (and so stop) the embedded PostgreSQL."""
    from web_server import embedded_db
    from web_server.extensions import db

    handle = app.extensions.get("gateway.embedded_db")
    if handle is None:
        return
    symbols = app.extensions.get("gateway.symbols")
    with app.app_context():
        if symbols is not None:
            symbols.close()
        db.engine.dispose()
    embedded_db.stop(handle)
    click.echo("  Embedded PostgreSQL stopped.")


def _reset_demo(instance: Path) -> None:
    """Delete what the demo keeps in ``instance``: database, simulator state, keys, logins."""
    import shutil

    from web_server import embedded_db

    if os.environ.get("DATABASE_URL") or os.environ.get("GATEWAY_DATABASE_URL"):
        raise click.ClickException(
            "--reset deletes the embedded database only; DATABASE_URL is set, and the demo "
            "will not drop an outside database. Unset it, or drop that database yourself."
        )
    pgdata = Path(os.environ.get("GATEWAY_EMBEDDED_DB_DIR") or instance / "pgdata")
    try:
        embedded_db.wipe(pgdata)
    except RuntimeError as exc:
        raise click.ClickException(f"Cannot reset: {exc}.") from None
    shutil.rmtree(instance / "simulators", ignore_errors=True)
    for name in ("demo_api_key", "demo_operator", "encryption.keys", "secret_key"):
        (instance / name).unlink(missing_ok=True)
    click.echo(f"  Reset: the demo in {instance} starts over.")


def _prepare_demo_settings(instance: Path) -> None:
    os.environ.setdefault("GATEWAY_ENV", "development")
    os.environ.setdefault("GATEWAY_EMBEDDED_DB_DIR", str(instance / "pgdata"))
    key_file = instance / "encryption.keys"
    if not os.environ.get("GATEWAY_ENCRYPTION_KEYS") and not os.environ.get(
        "GATEWAY_ENCRYPTION_KEY_FILE"
    ):
        if not key_file.exists():
            from web_server.crypto import generate_key_entry

            write_private(key_file, generate_key_entry("demo1") + "\n")
        os.environ["GATEWAY_ENCRYPTION_KEY_FILE"] = str(key_file)
    secret_file = instance / "secret_key"
    if not os.environ.get("GATEWAY_SECRET_KEY"):
        if not secret_file.exists():
            write_private(secret_file, secrets.token_urlsafe(48))
        os.environ["GATEWAY_SECRET_KEY"] = secret_file.read_text().strip()


def _ensure_demo_operator(instance: Path) -> tuple[str, str]:
    from sqlalchemy import select

    from web_server.extensions import db
    from web_server.models import User
    from web_server.services.users import create_user

    username = "demo"
    credentials = instance / "demo_operator"
    user = db.session.scalar(select(User).where(User.username == username))
    if user is not None and credentials.exists():
        return username, credentials.read_text().strip()
    password = secrets.token_urlsafe(12)
    if user is None:
        create_user(username, password)
    else:
        from argon2 import PasswordHasher

        user.password_hash = PasswordHasher().hash(password)
    db.session.commit()
    write_private(credentials, password)
    return username, password


def write_private(path: Path, content: str) -> None:
    """Write a file only its owner can read (secrets, keys)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(content)
    os.chmod(path, 0o600)
