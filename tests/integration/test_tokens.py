"""The token lifecycle against the KIS and Kiwoom simulators over real HTTP."""

from __future__ import annotations

import datetime as dt
import secrets
import threading

import pytest
import requests
from sqlalchemy import select, text

from simulators.registry import create_simulator
from simulators.server import serve_in_thread
from tests.conftest import random_key, remember_secret, run_cli
from web_server.errors import BrokerAuthFailed, BrokerRateLimited, BrokerUnavailable
from web_server.extensions import db
from web_server.models import Account, SecuritiesToken, TokenIssuanceWindow
from web_server.services import accounts as accounts_service
from web_server.services.brokers import adapter_for
from web_server.services.token_provider import AccountTokenProvider
from web_server.services.tokens import (
    app_key_fingerprint,
    backoff_seconds,
    refresh_due_tokens,
    refresh_token,
    token_status,
)


class Clock:
    """The gateway's clock, movable like the simulators'."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset


# A fresh simulator per test: its clock then starts where the gateway's does.
@pytest.fixture
def kis_sim():
    """A KIS simulator for the test."""
    handle = serve_in_thread(create_simulator("kis", rate_limit_per_second=0))
    yield handle.url
    handle.stop()


@pytest.fixture
def kiwoom_sim():
    """A Kiwoom simulator for the test."""
    handle = serve_in_thread(create_simulator("kiwoom", rate_limit_per_second=0))
    yield handle.url
    handle.stop()


@pytest.fixture
def clock(app_ctx):
    """Install a movable gateway clock for the test."""
    clock = Clock()
    app_ctx.extensions["gateway.clock"] = clock
    yield clock
    del app_ctx.extensions["gateway.clock"]


def make_account(sim_url: str, exchange: str = "KIS", environment: str = "REAL") -> Account:
    """Create an account in the simulator and in the gateway; return the gateway's."""
    app_key, secret = remember_secret(random_key(36)), remember_secret(random_key(180))
    number = str(secrets.randbelow(90_000_000) + 10_000_000)
    body = {"app_key": app_key, "account_number": number, "cash": "10000000"}
    if exchange == "KIS":
        body.update(app_secret=secret, product_code="01")
    else:
        body.update(secret_key=secret)
    assert requests.post(f"{sim_url}/_sim/accounts", json=body, timeout=5).status_code == 201
    account = accounts_service.create_account(
        name=f"{exchange.lower()}-{number}",
        exchange=exchange,
        environment=environment,
        api_key=app_key,
        api_secret=secret,
        securities_config={"account_number": number, "product_code": "01"},
        base_url=sim_url,
    )
    db.session.commit()
    return account


def ledger(sim_url: str, account: Account, kind: str) -> list[dict]:
    entries = requests.get(f"{sim_url}/_sim/ledger", params={"kind": kind}, timeout=5).json()
    return [e for e in entries["entries"] if e.get("app_key") == account.api_key]


def advance(sim_url: str, clock: Clock, seconds: float) -> None:
    """Move the simulator's clock and the gateway's together."""
    requests.post(f"{sim_url}/_sim/clock", json={"advance_seconds": seconds}, timeout=5)
    clock.offset += dt.timedelta(seconds=seconds)
    # The issuance windows run on the database's clock, which a test cannot move: move them back.
    db.session.execute(
        text(
            "UPDATE system.token_issuance_windows"
            " SET last_attempt_at = last_attempt_at - make_interval(secs => :seconds)"
        ),
        {"seconds": seconds},
    )
    db.session.commit()


def stored_token(account: Account) -> SecuritiesToken:
    db.session.expire_all()
    return db.session.scalar(
        select(SecuritiesToken).where(SecuritiesToken.account_id == account.id)
    )


def test_first_use_issues_once_then_reuses(kis_sim, clock):
    account = make_account(kis_sim)
    provider = AccountTokenProvider(account.id)
    first = provider.get()
    assert first.count(".") == 2  # KIS tokens are JWTs
    assert provider.get() == first
    assert len(ledger(kis_sim, account, "token_issued")) == 1
    token = stored_token(account)
    assert token.expires_at - clock() > dt.timedelta(hours=23)
    assert token.token_type == "Bearer" and token.expires_in > 80_000


def test_concurrent_requests_share_one_issuance(app, kis_sim, clock):
    account_id = make_account(kis_sim).id
    tokens, errors = [], []

    def ask() -> None:
        with app.app_context():
            try:
                tokens.append(AccountTokenProvider(account_id).get())
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(set(tokens)) == 1 and len(tokens) == 8
    account = db.session.get(Account, account_id)
    assert len(ledger(kis_sim, account, "token_issued")) == 1
    assert ledger(kis_sim, account, "token_refused") == []


def test_job_refreshes_before_expiry_and_respects_the_window(kis_sim, clock):
    account = make_account(kis_sim)
    first = AccountTokenProvider(account.id).get()
    assert refresh_due_tokens().get("issued", 0) == 0  # fresh: not due
    advance(kis_sim, clock, 18 * 3600 + 60)  # now 6 h minus a minute before expiry
    counts = refresh_due_tokens()
    assert counts.get("issued") == 1
    second = stored_token(account).access_token
    assert second != first
    # An operator's forced refresh a second later is deferred by the issuance window: the
    # broker is not asked, so it cannot answer EGW00133.
    result = refresh_token(account.id, force=True)
    assert result.outcome == "deferred" and isinstance(result.error, BrokerRateLimited)
    assert result.token == second  # the current token stays in use
    assert len(ledger(kis_sim, account, "token_issued")) == 2
    assert ledger(kis_sim, account, "token_refused") == []


def test_broker_failures_keep_the_old_token_and_back_off(app, kis_sim, clock):
    account = make_account(kis_sim)
    first = AccountTokenProvider(account.id).get()
    advance(kis_sim, clock, 18 * 3600 + 60)
    fault = {"kind": "http_status", "status": 500, "path_prefix": "/oauth2/tokenP", "count": 1}
    requests.post(f"{kis_sim}/_sim/faults", json=fault, timeout=5)
    assert refresh_due_tokens().get("failed") == 1
    token = stored_token(account)
    assert token.access_token == first  # still in use: it expires in about 6 h
    assert token.last_error and token.refresh_attempts == 1
    wait = (token.next_attempt_at - clock()).total_seconds()
    assert 25 < wait <= backoff_seconds(1, jitter=0.1) + 1
    assert AccountTokenProvider(account.id).get() == first
    assert refresh_due_tokens().get("issued", 0) == 0  # backing off: not asked again yet

    # A timeout: the broker answers too late.
    advance(kis_sim, clock, 62)
    app.config["BROKER_TIMEOUT_SECONDS"] = 0.3
    try:
        slow = {"kind": "latency", "seconds": 1.0, "path_prefix": "/oauth2/tokenP", "count": 1}
        requests.post(f"{kis_sim}/_sim/faults", json=slow, timeout=5)
        assert refresh_due_tokens().get("failed") == 1
    finally:
        app.config["BROKER_TIMEOUT_SECONDS"] = 10.0
    token = stored_token(account)
    assert token.refresh_attempts == 2 and token.access_token == first
    assert (token.next_attempt_at - clock()).total_seconds() > 55  # doubled

    advance(kis_sim, clock, 130)
    assert refresh_due_tokens().get("issued") == 1
    token = stored_token(account)
    assert token.access_token != first
    assert token.last_error is None and token.refresh_attempts == 0
    assert ledger(kis_sim, account, "token_refused") == []


def test_maintenance_revocation_is_recovered_by_one_reissue(kis_sim, clock):
    account = make_account(kis_sim)
    first = AccountTokenProvider(account.id).get()
    advance(kis_sim, clock, 120)
    requests.post(f"{kis_sim}/_sim/faults", json={"kind": "revoke_all_tokens"}, timeout=5)
    balances = adapter_for(account).get_balance()  # refused token → one re-issue → retried
    assert balances and balances[0].currency == "KRW"
    assert stored_token(account).access_token != first
    assert len(ledger(kis_sim, account, "token_issued")) == 2


def test_deleting_an_account_revokes_its_token(kis_sim, clock):
    account = make_account(kis_sim)
    AccountTokenProvider(account.id).get()
    accounts_service.delete_account(account)
    db.session.commit()
    assert len(ledger(kis_sim, account, "token_revoked")) == 1
    assert db.session.scalar(select(SecuritiesToken)) is None


def test_replacing_keys_revokes_the_old_token(kis_sim, clock):
    account = make_account(kis_sim)
    AccountTokenProvider(account.id).get()
    old_key = account.api_key
    accounts_service.replace_keys(account, api_key=old_key, api_secret=account.api_secret)
    db.session.commit()
    assert stored_token(account) is None
    revoked = requests.get(f"{kis_sim}/_sim/ledger", params={"kind": "token_revoked"}, timeout=5)
    assert any(e["app_key"] == old_key for e in revoked.json()["entries"])


def test_tokens_are_never_shared_between_real_and_paper():
    assert app_key_fingerprint("KIS", "REAL", "k") != app_key_fingerprint("KIS", "PAPER", "k")
    assert app_key_fingerprint("KIS", "REAL", "k") != app_key_fingerprint("KIS", "REAL", "k2")


def test_kiwoom_token_lifecycle(kiwoom_sim, clock):
    account = make_account(kiwoom_sim, exchange="KIWOOM")
    first = AccountTokenProvider(account.id).get()
    assert first and len(ledger(kiwoom_sim, account, "token_issued")) == 1
    advance(kiwoom_sim, clock, 18 * 3600 + 60)
    assert refresh_due_tokens().get("issued") == 1
    assert stored_token(account).access_token != first
    holdings = adapter_for(account).get_holdings()
    assert holdings == []


def test_tokens_cli(app, kis_sim, clock):
    account = make_account(kis_sim)
    missing = run_cli(app, "tokens", "status")
    assert "missing" in missing.output
    refreshed = run_cli(app, "tokens", "refresh", "--account", str(account.id))
    assert refreshed.exit_code == 0 and "issued" in refreshed.output
    status = run_cli(app, "tokens", "status")
    assert f"{account.id}\t{account.name}\tKIS\tREAL\tvalid" in status.output
    assert account.api_key not in status.output


def test_a_failed_first_issuance_is_recorded_and_backed_off(kiwoom_sim, clock):
    account = make_account(kiwoom_sim, exchange="KIWOOM")
    account.api_secret = "not-the-secret"
    db.session.commit()
    with pytest.raises(BrokerAuthFailed):
        AccountTokenProvider(account.id).get()
    # Asked again at once (a request loop): the broker is not called again during the backoff.
    with pytest.raises(BrokerUnavailable, match="last token issuance failed"):
        AccountTokenProvider(account.id).get()
    assert len(ledger(kiwoom_sim, account, "token_refused")) == 1
    status = token_status(db.session.get(Account, account.id))
    assert status["state"] == "missing" and status["refresh_attempts"] == 1
    assert "broker_auth_failed" in status["last_error"]
    assert "not-the-secret" not in str(status)


def test_an_unreadable_answer_is_recorded_and_releases_the_app_key(kis_sim, clock):
    account = make_account(kis_sim)
    fault = {
        "kind": "http_status",
        "status": 200,
        "body": {"unexpected": True},
        "path_prefix": "/oauth2/tokenP",
        "count": 1,
    }
    requests.post(f"{kis_sim}/_sim/faults", json=fault, timeout=5)
    result = refresh_token(account.id)
    assert result.outcome == "failed" and result.token is None
    advance(kis_sim, clock, 3600)
    # The app key's lock was released: the next attempt neither hangs nor is skipped.
    assert refresh_token(account.id, wait=False).outcome == "issued"


def test_real_and_paper_with_one_app_key_get_their_own_tokens(clock):
    real = serve_in_thread(create_simulator("kis", rate_limit_per_second=0))
    # Another seed: two hosts of the real KIS sign with different keys.
    paper = serve_in_thread(create_simulator("kis", paper=True, seed=1, rate_limit_per_second=0))
    try:
        app_key, secret = random_key(36), remember_secret(random_key(180))
        accounts = []
        for number, (url, environment) in enumerate(((real.url, "REAL"), (paper.url, "PAPER"))):
            account_number = f"5555000{number}"
            requests.post(
                f"{url}/_sim/accounts",
                timeout=5,
                json={
                    "app_key": app_key,
                    "app_secret": secret,
                    "account_number": account_number,
                    "product_code": "01",
                    "cash": "1000000",
                },
            ).raise_for_status()
            accounts.append(
                accounts_service.create_account(
                    name=f"same-key-{environment}",
                    exchange="KIS",
                    environment=environment,
                    api_key=app_key,
                    api_secret=secret,
                    base_url=url,
                    securities_config={"account_number": account_number, "product_code": "01"},
                )
            )
        db.session.commit()
        tokens = {AccountTokenProvider(a.id).get() for a in accounts}
        assert len(tokens) == 2  # one per environment, never shared
        for url, account in ((real.url, accounts[0]), (paper.url, accounts[1])):
            assert len(ledger(url, account, "token_issued")) == 1
        windows = db.session.scalars(select(TokenIssuanceWindow)).all()
        assert len(windows) == 2  # the issuance window of REAL does not hold PAPER back
    finally:
        real.stop()
        paper.stop()


def test_the_window_holds_when_a_process_dies_mid_call(app, kis_sim, clock, monkeypatch):
    account = make_account(kis_sim)

    def die(self):
        raise SystemExit("worker killed while the broker was being asked")

    from securities.kis import KisAdapter

    monkeypatch.setattr(KisAdapter, "issue_token", die)
    with pytest.raises(SystemExit):
        refresh_token(account.id)
    monkeypatch.undo()
    # The attempt was committed before the call: a successor waits out KIS's minute.
    result = refresh_token(account.id)
    assert result.outcome == "deferred" and isinstance(result.error, BrokerRateLimited)
    advance(kis_sim, clock, 62)
    assert refresh_token(account.id).outcome == "issued"
    assert ledger(kis_sim, account, "token_refused") == []
