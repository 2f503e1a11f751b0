"""Operator commands: ``gateway backup``, ``gateway restore``, ``gateway load-test``.

Backups are PostgreSQL's own custom-format dumps (``pg_dump -Fc``) of the gateway's database:
every schema (accounts, trade, market, system) with the secrets still encrypted. The encryption
keys are never in the database, so a backup is useless without the key file, and the key file
is worthless without a backup: keep both, apart (docs/operations.md "Backup and restore").

``pg_dump``/``pg_restore`` come from ``GATEWAY_PG_BIN_DIR``, else from the embedded server's wheel
when the gateway runs on it (their version matches its server), else from ``PATH``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from flask import current_app
from flask.cli import with_appcontext


def _libpq_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


def _tool(name: str) -> str:
    configured = os.environ.get("GATEWAY_PG_BIN_DIR")
    if configured:
        return str(Path(configured) / name)
    handle = current_app.extensions.get("gateway.embedded_db")
    if handle is not None:
        return str(Path(handle.bin_path) / name)
    found = shutil.which(name)
    if found is None:
        raise click.ClickException(
            f"{name} not found: install PostgreSQL's client programs (apt-get install "
            "postgresql-client) or set GATEWAY_PG_BIN_DIR."
        )
    return found


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise click.ClickException(f"{Path(command[0]).name} failed: {result.stderr.strip()}")


@click.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
def backup(path: Path) -> None:
    """Write a backup of the gateway's database to PATH (pg_dump custom format, mode 600).

    The secrets in it stay encrypted: keep the encryption key file too, somewhere else.
    """
    url = _libpq_url(current_app.config["SQLALCHEMY_DATABASE_URI"])
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.touch(mode=0o600)
    try:
        _run(
            [_tool("pg_dump"), "--format=custom", "--no-owner", "--no-acl", "-f", str(partial), url]
        )
        os.chmod(partial, 0o600)
        os.replace(partial, path)  # a backup file is whole or absent
    finally:
        partial.unlink(missing_ok=True)
    keyring = current_app.extensions["gateway.keyring"]
    click.echo(
        f"Backup written to {path} ({path.stat().st_size} bytes). Its secrets need key(s) "
        f"{', '.join(keyring.key_ids())}: keep the key file with it, but not beside it."
    )


@click.command("restore")
@click.argument("path", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--yes", is_flag=True, help="Replace what the database holds (no question asked).")
@with_appcontext
def restore(path: Path, yes: bool) -> None:
    """Restore a backup into the configured database, replacing its contents, in one transaction.

    Then grants the gateway's roles their rights and checks that every stored secret can be
    decrypted with the configured keys.
    """
    from sqlalchemy import text

    from web_server.crypto import key_ids_in_use
    from web_server.database import Base
    from web_server.extensions import db
    from web_server.roles import apply_grants

    url = _libpq_url(current_app.config["SQLALCHEMY_DATABASE_URI"])
    has_data = db.session.execute(
        text("SELECT to_regclass('public.accounts') IS NOT NULL")
    ).scalar()
    db.session.rollback()
    target = urlsplit(url).path.lstrip("/") or "the configured database"
    if has_data and not yes:
        click.confirm(f"Replace everything in {target} with {path}?", abort=True)
    db.engine.dispose()  # no connection of ours holds a lock the restore must take
    _run(
        [
            _tool("pg_restore"),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-acl",
            "--single-transaction",
            "--exit-on-error",
            "-d",
            url,
            str(path),
        ]
    )
    apply_grants(db.session.connection())
    db.session.commit()
    keyring = current_app.extensions["gateway.keyring"]
    in_use = key_ids_in_use(db.session, Base)
    missing = sorted(set(in_use) - set(keyring.key_ids()))
    db.session.rollback()
    if missing:
        raise click.ClickException(
            f"Restored, but secrets under key(s) {', '.join(missing)} cannot be decrypted: "
            "configure those keys (GATEWAY_ENCRYPTION_KEY_FILE) before starting the gateway."
        )
    click.echo(
        f"Restored {path} into {target}; every stored secret decrypts with the configured keys "
        f"({', '.join(f'{k}={n}' for k, n in sorted(in_use.items())) or 'no secrets'})."
    )


@click.command("load-test", context_settings={"show_default": True})
@click.option("--url", default="http://127.0.0.1:8000", help="The gateway to load.")
@click.option(
    "--api-key-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help="A file holding an API key with accounts:read and orders:read.",
)
@click.option("--requests", "count", default=500, type=click.IntRange(1, 100_000))
@click.option("--concurrency", default=8, type=click.IntRange(1, 256))
@click.option("--max-seconds", default=60.0, type=click.FloatRange(1, 3600))
@click.option(
    "--path", "paths", multiple=True, default=("/api/v1/accounts", "/api/v1/orders?limit=50")
)
def load_test(
    url: str, api_key_file: Path, count: int, concurrency: int, max_seconds: float, paths: tuple
) -> None:
    """Send a bounded number of read requests and print throughput and latency percentiles.

    Reads only: a load test must never place orders at a broker. Point it at a gateway on this
    machine (or a staging host you own); it stops after --requests or --max-seconds.
    """
    import requests

    host = urlsplit(url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1") and not click.confirm(
        f"{host} is not this machine. Load it anyway?", default=False
    ):
        raise click.Abort()
    key = api_key_file.read_text().strip()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    issued = iter(range(count))
    deadline = time.monotonic() + max_seconds

    def worker() -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        for number in issued:
            if time.monotonic() > deadline:
                return
            started = time.perf_counter()
            try:
                status = session.get(url + paths[number % len(paths)], timeout=30).status_code
            except requests.RequestException:
                status = 0
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                statuses[status] = statuses.get(status, 0) + 1

    began = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    _report(latencies, statuses, wall)


def _report(latencies: list[float], statuses: dict[int, Any], wall: float) -> None:
    if not latencies:
        raise click.ClickException("no request was sent")
    ordered = sorted(latencies)
    cuts = statistics.quantiles(ordered, n=100) if len(ordered) > 1 else ordered * 99
    click.echo(
        f"{len(ordered)} requests in {wall:.2f} s: {len(ordered) / wall:.1f}/s; "
        f"p50 {cuts[49] * 1000:.1f} ms, p95 {cuts[94] * 1000:.1f} ms, "
        f"p99 {cuts[98] * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms; "
        f"statuses {', '.join(f'{k}: {v}' for k, v in sorted(statuses.items()))}"
    )
    if any(status == 0 or status >= 500 for status in statuses):
        raise click.ClickException("some requests failed (status 0: no answer)")


def register(main: click.Group) -> None:
    """Attach the operator commands to the ``gateway`` group."""
    main.add_command(backup)
    main.add_command(restore)
    main.add_command(load_test)
