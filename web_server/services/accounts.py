"""Broker accounts: create, change keys, delete; secrets stored encrypted, never returned.

Changing an account's keys or deleting it revokes its token at the broker first (DESIGN §4): a
token issued for the old keys must not outlive them.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import selectinload

from web_server.errors import Conflict, NotFound, ValidationFailed
from web_server.extensions import db
from web_server.models import Account
from web_server.models.accounts import (
    SECURITIES_EXCHANGES,
    Environment,
    Exchange,
    account_type_for,
)

log = logging.getLogger(__name__)

# The model's vocabulary, for the views' schemas and forms (which never import the models).
EXCHANGES: tuple[Exchange, ...] = tuple(Exchange)
ENVIRONMENTS: tuple[Environment, ...] = tuple(Environment)

# Securities accounts need these in ``securities_config`` (seed 002's structure).
SECURITIES_CONFIG_REQUIRED = ("account_number", "product_code")
SECURITIES_CONFIG_ALLOWED = (
    "account_number",
    "product_code",
    "market_type",
    "cert_password",
    "additional_params",
)


def create_account(
    *,
    name: str,
    exchange: str,
    environment: str,
    api_key: str,
    api_secret: str,
    securities_config: Mapping[str, Any] | None = None,
    base_url: str | None = None,
) -> Account:
    """Create an account with encrypted keys and configuration.

    Raises:
        ValidationFailed: a field is missing or invalid (``errors`` names it).
        Conflict: the name is taken.
    """
    problems: dict[str, list[str]] = {}
    if not name or len(name) > 100:
        problems["name"] = ["must be 1 to 100 characters"]
    if exchange not in Exchange.__members__:
        problems["exchange"] = [f"must be one of {', '.join(Exchange)}"]
    if environment not in Environment.__members__:
        problems["environment"] = ["must be REAL or PAPER"]
    for field_name, value in (("api_key", api_key), ("api_secret", api_secret)):
        if not value or len(value) > 4096:
            problems[field_name] = ["is required"]
    if base_url is not None and (problem := base_url_problem(base_url)):
        problems["base_url"] = [problem]
    config = _check_securities_config(exchange, securities_config, problems)
    if problems:
        raise ValidationFailed("The account cannot be created.", errors=problems)
    if db.session.scalar(select(Account.id).where(Account.name == name)) is not None:
        raise Conflict(f"An account named {name!r} already exists.")
    account = Account(
        name=name,
        exchange=exchange,
        environment=environment,
        account_type=account_type_for(Exchange(exchange)).value,
        base_url=base_url.rstrip("/") if base_url else None,
    )
    account.api_key = api_key
    account.api_secret = api_secret
    if config is not None:
        account.securities_config_json = json.dumps(config, ensure_ascii=False)
    db.session.add(account)
    db.session.flush()
    return account


def _check_securities_config(
    exchange: str, config: Mapping[str, Any] | None, problems: dict[str, list[str]]
) -> dict[str, Any] | None:
    if exchange not in SECURITIES_EXCHANGES:
        if config:
            problems["securities_config"] = ["only securities accounts (KIS, KIWOOM) have one"]
        return None
    config = dict(config or {})
    for key in SECURITIES_CONFIG_REQUIRED:
        if not str(config.get(key) or "").strip():
            problems.setdefault("securities_config", []).append(f"{key} is required")
    unknown = set(config) - set(SECURITIES_CONFIG_ALLOWED)
    if unknown:
        problems.setdefault("securities_config", []).append(
            f"unknown keys: {', '.join(sorted(unknown))}"
        )
    number = str(config.get("account_number") or "")
    if number and not (number.isdigit() and len(number) == 8):
        problems.setdefault("securities_config", []).append("account_number must be 8 digits")
    config.setdefault("market_type", "DOMESTIC_STOCK")
    config.setdefault("additional_params", {})
    return config


def base_url_problem(url: str) -> str | None:
    """Say what is wrong with a broker base URL, or None.

    Keys and tokens travel to this URL, so it must be https; plain http is allowed only on the
    loopback interface, where the simulators run.
    """
    parts = urlsplit(url)
    if parts.username or parts.password:
        return "must not carry a user name or password"
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname:
        host = parts.hostname
        try:
            if host == "localhost" or ipaddress.ip_address(host).is_loopback:
                return None
        except ValueError:
            pass
        return "must be https (plain http only to a loopback address such as 127.0.0.1)"
    return "must be an https URL"


def get_account(account_id: int) -> Account:
    """Return an account.

    Raises:
        NotFound: no such account.
    """
    account = db.session.get(Account, account_id)
    if account is None:
        raise NotFound(f"Account {account_id} does not exist.")
    return account


def list_accounts(*, with_tokens: bool = False) -> Sequence[Account]:
    """Return every account by id; ``with_tokens`` loads their tokens in the same round trip."""
    statement = select(Account).order_by(Account.id)
    if with_tokens:
        statement = statement.options(selectinload(Account.token))
    return db.session.scalars(statement).all()


def account_names() -> dict[int, str]:
    """Return each account's name by id (to label the accounts an API key may use)."""
    return {row.id: row.name for row in db.session.execute(select(Account.id, Account.name))}


def reload_account(account_id: int) -> Account:
    """Return an account read afresh, after another transaction (a token refresh) changed it.

    Raises:
        NotFound: no such account.
    """
    db.session.expire_all()
    return get_account(account_id)


def forget_loaded_token(account: Account) -> None:
    """Drop the account's loaded token, so the next read sees what another transaction wrote."""
    db.session.expire(account, ["token"])


def securities_config(account: Account) -> dict[str, Any]:
    """Return the decrypted broker configuration of a securities account ({} for crypto)."""
    raw = account.securities_config_json
    return json.loads(raw) if raw else {}


def update_account(
    account: Account,
    *,
    name: str | None = None,
    is_active: bool | None = None,
    **changes: Any,
) -> None:
    """Rename, (de)activate or repoint an account (``base_url`` may be set to None).

    Raises:
        Conflict: the new name is taken.
    """
    if name is not None and name != account.name:
        taken = db.session.scalar(select(Account.id).where(Account.name == name))
        if taken is not None:
            raise Conflict(f"An account named {name!r} already exists.")
        account.name = name
    if is_active is not None:
        account.is_active = is_active
    if "base_url" in changes:
        url = changes.pop("base_url")
        if url and (problem := base_url_problem(url)):
            raise ValidationFailed(
                "The base URL is not acceptable.", errors={"base_url": [problem]}
            )
        new_url = url.rstrip("/") if url else None
        if new_url != account.base_url:
            # The stored token was issued by the old host; it must not travel to the new one.
            _revoke_token(account)
            account.base_url = new_url
    if changes:
        raise ValidationFailed(
            "These fields cannot be changed.", errors={k: ["unknown field"] for k in changes}
        )
    db.session.flush()


def replace_keys(account: Account, *, api_key: str, api_secret: str) -> None:
    """Store new keys; the token of the old keys is revoked at the broker and forgotten."""
    _revoke_token(account)
    account.api_key = api_key
    account.api_secret = api_secret
    db.session.flush()


def has_history(account: Account) -> bool:
    """Tell whether trade rows reference the account (then it is deactivated, never deleted)."""
    from web_server.models import Holding, OrderIntent

    return bool(
        db.session.scalar(
            select(
                or_(
                    exists().where(OrderIntent.account_id == account.id),
                    exists().where(Holding.account_id == account.id),
                )
            )
        )
    )


def delete_account(account: Account) -> None:
    """Delete an account; its token is revoked at the broker first (best effort)."""
    _revoke_token(account)
    db.session.delete(account)
    db.session.flush()


def _revoke_token(account: Account) -> None:
    from web_server.services import tokens

    if account.account_type != "SECURITIES_STOCK":
        return
    tokens.revoke_and_forget(account)
    forget_loaded_token(account)
