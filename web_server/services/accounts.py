"""Broker accounts: create, change keys, delete; secrets stored encrypted, never returned.

Changing an account's keys or deleting it revokes its token at the broker first (DESIGN §4): a
token issued for the old keys must not outlive them.

Where an account's keys travel is guarded, because KIS and Kiwoom send the app secret in clear
on every token request (issue 12): an account's ``base_url`` must be the broker's official host
for its environment, the host configured for it (``GATEWAY_BROKERS__…``), an origin in
``GATEWAY_BROKER_URL_ALLOWLIST``, or — outside production (``GATEWAY_ENV``) — loopback, where the
simulators run (:func:`broker_url_problem`). Moving an account to another host or environment
takes its keys in the same change, so whoever moves it already holds them: a leaked API key never
becomes a leaked broker secret.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
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
from web_server.services.grammar import is_ascii_digits, key_problem, text_problem

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
    _check_name(name, problems)
    if exchange not in Exchange.__members__:
        problems["exchange"] = [f"must be one of {', '.join(Exchange)}"]
    if environment not in Environment.__members__:
        problems["environment"] = ["must be REAL or PAPER"]
    _check_keys(api_key, api_secret, problems)
    if "exchange" not in problems and "environment" not in problems:
        _check_host(exchange, environment, base_url, problems)
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


def _check_name(name: str, problems: dict[str, list[str]]) -> None:
    if not isinstance(name, str) or not name or len(name) > 100:
        problems["name"] = ["must be 1 to 100 characters"]
    elif problem := text_problem(name):
        problems["name"] = [problem]


def _check_keys(api_key: str, api_secret: str, problems: dict[str, list[str]]) -> None:
    for field_name, value in (("api_key", api_key), ("api_secret", api_secret)):
        if not value or not isinstance(value, str) or len(value) > 4096:
            problems[field_name] = ["is required (1 to 4096 characters)"]
        elif problem := key_problem(value):
            problems[field_name] = [problem]


def _check_host(
    exchange: str, environment: str, base_url: str | None, problems: dict[str, list[str]]
) -> None:
    """Check the host the account's keys will travel to (its ``base_url``, else the broker's)."""
    from web_server.services.brokers import broker_urls

    if base_url is not None:
        if problem := broker_url_problem(base_url, exchange=exchange, environment=environment):
            problems["base_url"] = [problem]
    elif not broker_urls(exchange, environment):
        problems["environment"] = [
            f"{exchange} has no {environment} environment; give a base_url (a simulator)"
        ]


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
    number = config.get("account_number") or ""
    if number and not (isinstance(number, str) and is_ascii_digits(number) and len(number) == 8):
        problems.setdefault("securities_config", []).append("account_number must be 8 digits")
    code = config.get("product_code") or ""
    if code and not (isinstance(code, str) and is_ascii_digits(code) and len(code) == 2):
        problems.setdefault("securities_config", []).append("product_code must be 2 digits")
    for text in _strings(config):
        if problem := text_problem(text, multiline=True):
            problems.setdefault("securities_config", []).append(f"a value {problem}")
            break
    config.setdefault("market_type", "DOMESTIC_STOCK")
    config.setdefault("additional_params", {})
    return config


def _strings(value: Any) -> list[str]:
    """Return every string inside a JSON-like value, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list | tuple):
        return [s for item in value for s in _strings(item)]
    return []


def is_production() -> bool:
    """Tell whether this gateway runs in production (``GATEWAY_ENV``, ``production`` by default)."""
    return bool(current_app.config.get("ENV", "production") == "production")


def _origin(scheme: str, host: str, port: int | None) -> tuple[str, str, int]:
    return scheme, host.lower().rstrip("."), port or (443 if scheme == "https" else 80)


def _origin_of(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)  # raises on an unbalanced bracket in the host
        port = parts.port  # and on a port that is not a number
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return _origin(parts.scheme, parts.hostname, port)


def _is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def broker_url_problem(url: str, *, exchange: str, environment: str) -> str | None:
    """Say why ``url`` may not be the broker host of an account, or None.

    Allowed: the broker's official host for ``environment`` (``DEFAULT_BASE_URLS`` of its
    package), the host configured for it (``GATEWAY_BROKERS__<EXCHANGE>__<ENV>_URL``), an origin
    of ``GATEWAY_BROKER_URL_ALLOWLIST`` (all https), and outside production a loopback host
    (``localhost``, 127.0.0.0/8, ``::1``: the simulators), over http or https. Only the origin
    (scheme, host, port) is compared; a URL may not carry a user, a password, a query or a
    fragment.
    """
    from web_server.services.brokers import broker_urls

    if not isinstance(url, str) or not url or len(url) > 2048:
        return "must be a URL of at most 2048 characters"
    if problem := text_problem(url):
        return problem
    origin = _origin_of(url)
    if origin is None:
        return "must be an https URL such as https://openapi.koreainvestment.com:9443"
    parts = urlsplit(url)  # (it parsed above)
    if parts.username or parts.password:
        return "must not carry a user name or password"
    if parts.query or parts.fragment:
        return "must not carry a query or a fragment"
    scheme, host, _ = origin
    if _is_loopback(parts.hostname or ""):
        if is_production():
            return "a loopback host is allowed only outside production (GATEWAY_ENV)"
        return None
    if scheme != "https":
        return "must be https (plain http only to a loopback address, outside production)"
    allowed = {_origin_of(u) for u in broker_urls(exchange, environment)}
    allowed |= {_origin_of(u) for u in current_app.config.get("BROKER_URL_ALLOWLIST") or ()}
    if origin in allowed:
        return None
    return (
        f"{host} is not a {exchange} {environment} host: use the broker's official host, or "
        "ask the operator to add it to GATEWAY_BROKER_URL_ALLOWLIST"
    )


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
    api_key: str | None = None,
    api_secret: str | None = None,
    **changes: Any,
) -> None:
    """Rename, (de)activate, move (``base_url``, ``environment``) or re-key an account.

    ``base_url`` may be set to None (the broker's host). Moving the account to another host or
    environment needs its keys in the same call (``api_key`` and ``api_secret``, which replace
    the stored ones): whoever points an account somewhere already holds what will travel there.
    New keys, or a move, revoke the token at the old host first.

    Raises:
        ValidationFailed: a field is unacceptable, the host is not allowed, or a move comes
            without the keys (``errors`` names the fields).
        Conflict: the new name is taken.
    """
    problems: dict[str, list[str]] = {}
    if name is not None:
        _check_name(name, problems)
    environment = changes.pop("environment", account.environment)
    if environment not in Environment.__members__:
        problems["environment"] = ["must be REAL or PAPER"]
    base_url = account.base_url
    if "base_url" in changes:
        url = changes.pop("base_url")
        base_url = url.rstrip("/") if url else None
    if changes:
        problems.update({k: ["unknown field"] for k in changes})
    rekeyed = api_key is not None or api_secret is not None
    if rekeyed:
        _check_keys(api_key or "", api_secret or "", problems)
    moved = environment != account.environment or base_url != account.base_url
    if "environment" not in problems and moved:
        _check_host(account.exchange, environment, base_url, problems)
    if moved and not rekeyed:
        needed = "required in the same request when base_url or environment changes"
        problems.setdefault("api_key", []).append(needed)
        problems.setdefault("api_secret", []).append(needed)
    if problems:
        raise ValidationFailed("The account cannot be changed.", errors=problems)
    if name is not None and name != account.name:
        taken = db.session.scalar(select(Account.id).where(Account.name == name))
        if taken is not None:
            raise Conflict(f"An account named {name!r} already exists.")
        account.name = name
    if is_active is not None:
        account.is_active = is_active
    if rekeyed or moved:
        # The stored token was issued to the old keys by the old host: revoke it there, before
        # anything changes, and never let it travel to the new one.
        _revoke_token(account)
        account.environment = environment
        account.base_url = base_url
    if rekeyed:
        account.api_key = api_key
        account.api_secret = api_secret
    db.session.flush()


def replace_keys(account: Account, *, api_key: str, api_secret: str) -> None:
    """Store new keys; the token of the old keys is revoked at the broker and forgotten.

    Raises:
        ValidationFailed: a key is not printable ASCII of 1 to 4096 characters.
    """
    update_account(account, api_key=api_key, api_secret=api_secret)


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
