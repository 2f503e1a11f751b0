"""Backup and restore with the operator scripts: the restored database serves the same gateway."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from tests.integration.test_orders_api import upbit  # noqa: F401 - a fixture used below
from web_server.extensions import db
from web_server.models import Account
from web_server.services.api_keys import authenticate

ROOT = Path(__file__).resolve().parents[2]


def _script(name: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - our own scripts
        ["/bin/sh", str(ROOT / "scripts" / name), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def _env(base_config, database_url: str, pg_server) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.pop("DATABASE_URL", None)
    env.update(
        GATEWAY_BIN=str(Path(sys.executable).parent / "gateway"),
        GATEWAY_ENV="test",
        GATEWAY_SECRET_KEY=base_config["SECRET_KEY"],
        GATEWAY_ENCRYPTION_KEYS=base_config["ENCRYPTION_KEYS"],
        GATEWAY_DATABASE_URL=database_url,
    )
    if pg_server.handle is not None:  # the embedded server: its own client programs
        env["GATEWAY_PG_BIN_DIR"] = str(pg_server.handle.bin_path)
    return env


def _snapshot(application) -> dict:
    with application.app_context():
        accounts = {
            a.name: (a.exchange, a.api_key, a.api_secret, a.base_url)
            for a in db.session.scalars(select(Account))
        }
    return accounts


def test_backup_and_restore_round_trip(
    app,
    client,
    api_headers,
    upbit,  # noqa: F811 - the fixture imported above
    make_app,
    base_config,
    database_url,
    pg_server,
    tmp_path,  # noqa: F811
):
    resting = (upbit.price("KRW-BTC") / 2 / 1000).quantize(Decimal(1)) * 1000
    order = client.post(
        "/api/v1/orders",
        json={
            "account_id": upbit.account_id,
            "symbol": "KRW-BTC",
            "side": "BUY",
            "type": "LIMIT",
            "quantity": "0.001",
            "limit_price": str(resting),
        },
        headers={**api_headers, "Idempotency-Key": "backup-1"},
    ).get_json()
    assert order["status"] == "SUBMITTED"
    before_accounts = _snapshot(app)
    before_orders = client.get("/api/v1/orders", headers=api_headers).get_json()["orders"]

    dump = tmp_path / "backups" / "gateway.dump"
    backed_up = _script("backup.sh", str(dump), env=_env(base_config, database_url, pg_server))
    assert backed_up.returncode == 0, backed_up.stderr
    assert dump.stat().st_size > 0 and dump.stat().st_mode & 0o077 == 0  # owner only

    name = f"gateway_restore_{os.getpid()}"
    restored_url = pg_server.create_database(name)
    try:
        restored = _script("restore.sh", str(dump), env=_env(base_config, restored_url, pg_server))
        assert restored.returncode == 0, restored.stderr
        assert "every stored secret decrypts" in restored.stdout

        copy = make_app(DATABASE_URL=restored_url)
        # The same accounts, their secrets decrypted with the same keys.
        assert _snapshot(copy) == before_accounts
        reader = copy.test_client()
        # The API key the strategies hold works against the restored database.
        after_orders = reader.get("/api/v1/orders", headers=api_headers).get_json()["orders"]
        assert after_orders == before_orders
        with copy.app_context():
            assert authenticate(api_headers["Authorization"]).revoked_at is None
            db.session.rollback()
            db.engine.dispose()
    finally:
        pg_server.drop_database(name)
