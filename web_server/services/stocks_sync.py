"""Sync ``market.stocks`` from KIS's master files (seed 000 Phase 2, seed 003; DESIGN §4).

The sync is all or nothing. Every file is downloaded and parsed in full before the database is
touched; any failure (a refused or truncated download, a corrupt zip, a malformed record) raises
``StocksSyncFailed`` and the table stays as it was. The write is one transaction, run as
``gateway_datasync`` (the only role that may write the master):

1. the parsed rows are copied into a temporary table (``COPY``, one round trip);
2. one ``INSERT … ON CONFLICT DO UPDATE … WHERE row IS DISTINCT FROM new row`` adds new symbols and
   changes only rows whose values differ, so an unchanged row is not written and its
   ``updated_ts`` stays;
3. one ``UPDATE`` marks symbols that vanished from a synced market DELISTED (``is_tradable=false``,
   ``delisting_date`` today in Seoul). Nothing is ever deleted: trade rows keep their foreign keys;
4. ``NOTIFY stocks_master_changed`` tells every gateway process to drop its symbol cache; the
   notification is delivered only if the transaction commits.

Mapping from the master record: ``status`` is SUSPENDED while KRX halts trading (``trht_yn``), else
ACTIVE; ``is_tradable`` mirrors the exchange: false for a halt (and a delisting) only, with
``trade_halt_reason`` saying so. KRX's designations do not stop trading (관리종목
administrative issue, 투자주의/경고/위험 investment caution, warning, risk, 정리매매
liquidation trading, …); they are ``designations`` codes a key's risk policy may refuse.
``nxt_eligible`` is derived as the simulators derive it (trading-days.md §1.2: KOSPI and
KOSDAQ ordinary stocks, not halted or administrative), since the master does not carry
Nextrade's list. The master's base price (``stck_sdpr``) is stored in
``market.stock_base_prices`` for the sync's Seoul date: the sync runs before the open, when
the file carries that day's base price.

The delisting guard: a master that would delist more than ``max_delist_share`` of a market's
listed stocks at once (a damaged file that still parses) is refused with
``stocks_sync_delist_guard`` and nothing changes, unless ``force`` is given. Every outcome is
recorded in ``system.stocks_sync_runs`` (the stocks page shows the latest) and logged.

``market_cap`` is in KRW (the file gives 억원). ``sector`` and ``industry`` hold KRX's
index-industry codes (large, medium/small): the master files carry codes, not names.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import zipfile
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, ProgrammingError
from sqlalchemy.pool import NullPool

from securities.kis.master_file import (
    REASON_TRADING_HALT,
    MasterFileError,
    MasterRecord,
    read_master_zip,
)
from web_server.config import normalize_database_url
from web_server.errors import ConfigError, GatewayError

log = logging.getLogger(__name__)

SEOUL = zoneinfo.ZoneInfo("Asia/Seoul")
DEFAULT_MASTER_URL = "https://new.real.download.dws.co.kr/common/master"
NOTIFY_CHANNEL = "stocks_master_changed"
# KOSPI and KOSDAQ must be present; a source without the KONEX file leaves KONEX rows untouched.
REQUIRED_MARKETS = ("KOSPI", "KOSDAQ")
OPTIONAL_MARKETS = ("KONEX",)
#: Designation codes (``market.stocks.designations``) and the master flag behind each.
DESIGNATIONS: dict[str, Callable[[MasterRecord], bool]] = {
    "ADMINISTRATIVE": lambda r: r.is_administrative,
    "INVESTMENT_CAUTION": lambda r: r.is_investment_caution,
    "INVESTMENT_WARNING": lambda r: r.is_investment_warning,
    "INVESTMENT_RISK": lambda r: r.is_investment_risk,
    "LIQUIDATION_TRADING": lambda r: r.is_liquidation_trading,
    "UNFAITHFUL_DISCLOSURE": lambda r: r.is_unfaithful_disclosure,
    "SHORT_TERM_OVERHEAT": lambda r: r.is_short_term_overheated,
    "INVESTMENT_ATTENTION": lambda r: r.is_investment_attention,
}
#: Default of ``GATEWAY_STOCKS_SYNC_MAX_DELIST_SHARE``.
DEFAULT_MAX_DELIST_SHARE = 0.05
COLUMNS = (
    "symbol",
    "name",
    "market",
    "status",
    "listing_date",
    "sector",
    "industry",
    "market_cap",
    "is_tradable",
    "trade_halt_reason",
    "standard_code",
    "security_group",
    "designations",
    "nxt_eligible",
)
# Columns a sync owns; a changed value in any of them rewrites the row.
_COMPARED = [c for c in COLUMNS if c != "symbol"] + ["delisting_date"]

# Built from this module's constants only. The WHERE clause skips rows whose values are all the
# same, so an unchanged stock is not rewritten and its updated_ts (set by the trigger) stays.
_UPSERT_SQL = (
    f"INSERT INTO market.stocks ({', '.join(COLUMNS)}, delisting_date)"
    f" SELECT {', '.join(COLUMNS)}, NULL FROM incoming_stocks"
    f" ON CONFLICT (symbol) DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in _COMPARED)}"
    f" WHERE ({', '.join('stocks.' + c for c in _COMPARED)})"
    f" IS DISTINCT FROM ({', '.join('EXCLUDED.' + c for c in _COMPARED)})"
    " RETURNING (xmax = 0) AS inserted"
)

Progress = Callable[[str, int], None]


class StocksSyncFailed(GatewayError):
    """The sync could not complete; nothing was changed."""

    code = "stocks_sync_failed"
    http_status = 502
    title = "Stocks master sync failed"


class StocksSyncDelistGuard(StocksSyncFailed):
    """The master would delist too large a share of a market at once; nothing was changed."""

    code = "stocks_sync_delist_guard"
    http_status = 409
    title = "Stocks master would delist too much"


@dataclass
class SyncSummary:
    """What a sync did."""

    added: int = 0
    changed: int = 0
    delisted: int = 0
    halted: int = 0
    skipped: int = 0
    unchanged: int = 0
    markets: list[str] = field(default_factory=list)
    #: Per synced market: listed stocks before the sync, how many it delists, and the share.
    delist_shares: dict[str, dict[str, Any]] = field(default_factory=dict)
    forced: bool = False

    def line(self) -> str:
        """Return the one-line summary printed after every sync."""
        return (
            f"stocks sync ({', '.join(self.markets)}): added {self.added}, changed {self.changed},"
            f" delisted {self.delisted}, halted {self.halted}, skipped {self.skipped}"
            f" (unchanged {self.unchanged})"
        )


def _file_name(market: str) -> str:
    return f"{market.lower()}_code.mst.zip"


def download_masters(
    source: str,
    *,
    session: requests.Session | None = None,
    timeout: float = 30.0,
    progress: Progress | None = None,
) -> dict[str, bytes]:
    """Download the master zips from ``source`` (a URL prefix or a folder), complete or not at all.

    A folder may hold the zips or the bare ``.mst`` files (KIS's unzipped downloads).

    Raises:
        StocksSyncFailed: a required file is missing, refused or truncated.
    """
    payloads: dict[str, bytes] = {}
    for market in REQUIRED_MARKETS + OPTIONAL_MARKETS:
        data = (
            _read_folder(Path(source), market)
            if not source.startswith(("http://", "https://"))
            else _download(source.rstrip("/") + "/" + _file_name(market), session, timeout)
        )
        if data is None:
            if market in REQUIRED_MARKETS:
                raise StocksSyncFailed(f"The {market} master file is missing from {source}.")
            log.info(
                "stocks sync: no %s master at %s; %s rows left as they are", market, source, market
            )
            continue
        payloads[market] = data
        if progress:
            progress(f"downloaded {market}", 1)
    return payloads


def _read_folder(folder: Path, market: str) -> bytes | None:
    if not folder.is_dir():
        raise StocksSyncFailed(f"{folder} is not a folder of master files.")
    zipped = folder / _file_name(market)
    if zipped.exists():
        return zipped.read_bytes()
    plain = folder / _file_name(market).removesuffix(".zip")
    if plain.exists():
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(plain.name, plain.read_bytes())
        return buffer.getvalue()
    return None


def _download(url: str, session: requests.Session | None, timeout: float) -> bytes | None:
    try:
        response = (session or requests).get(url, timeout=timeout)
    except requests.RequestException as exc:
        raise StocksSyncFailed(f"Downloading {url} failed: {type(exc).__name__}.") from exc
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise StocksSyncFailed(f"Downloading {url} failed: HTTP {response.status_code}.")
    # A body cut short fails here (urllib3 checks Content-Length) or in the zip check after.
    return response.content


def parse_masters(payloads: dict[str, bytes]) -> tuple[list[MasterRecord], int]:
    """Parse every downloaded zip; return the stock records and how many records were skipped.

    Raises:
        StocksSyncFailed: a file is not a valid master file.
    """
    records: list[MasterRecord] = []
    skipped = 0
    for market, data in payloads.items():
        try:
            result = read_master_zip(data, market)
        except MasterFileError as exc:
            raise StocksSyncFailed(f"The {market} master file is damaged: {exc}") from exc
        records.extend(result.records)
        skipped += result.skipped
    return records, skipped


def row_from_record(record: MasterRecord) -> tuple[object, ...]:
    """Map a master record to a ``market.stocks`` row, in ``COLUMNS`` order."""
    halted = record.is_trading_halted
    designations = [code for code, flagged in DESIGNATIONS.items() if flagged(record)]
    return (
        record.short_code,
        record.name,
        record.market,
        "SUSPENDED" if record.is_trading_halted else "ACTIVE",
        record.listing_date,
        record.sector_large_code,
        record.sector_medium_code,
        record.market_cap_krw,
        not halted,
        REASON_TRADING_HALT if halted else None,
        record.standard_code,
        record.group_code or None,
        designations,
        record.group_code == "ST"
        and record.market in ("KOSPI", "KOSDAQ")
        and not halted
        and not record.is_administrative,
    )


def sync_stocks(
    connection: Connection,
    records: Iterable[MasterRecord],
    *,
    markets: Iterable[str],
    skipped: int = 0,
    today: dt.date | None = None,
    max_delist_share: float = DEFAULT_MAX_DELIST_SHARE,
    force: bool = False,
) -> SyncSummary:
    """Upsert ``records`` and delist what vanished, in the caller's transaction.

    Raises:
        StocksSyncDelistGuard: a market would lose more than ``max_delist_share`` of its listed
            stocks and ``force`` is false (the caller rolls back).
        StocksSyncFailed: the connection's role may not write the master.
    """
    markets = list(markets)
    today = today or dt.datetime.now(SEOUL).date()
    records = list(records)
    rows = [row_from_record(record) for record in records]
    summary = SyncSummary(skipped=skipped, markets=markets)
    raw = connection.connection.driver_connection
    assert raw is not None
    try:
        connection.execute(
            text(
                "CREATE TEMPORARY TABLE incoming_stocks"
                " (LIKE market.stocks INCLUDING DEFAULTS) ON COMMIT DROP"
            )
        )
        copy_sql = f"COPY incoming_stocks ({', '.join(COLUMNS)}) FROM STDIN"
        with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for row in rows:
                copy.write_row(row)
        summary.delist_shares = _delist_shares(connection, markets)
        too_many = {
            market: share
            for market, share in summary.delist_shares.items()
            if share["share"] > max_delist_share
        }
        if too_many and not force:
            raise StocksSyncDelistGuard(
                "The master would delist "
                + ", ".join(
                    f"{share['delisted']} of {share['listed']} {market} stocks"
                    f" ({share['share']:.1%})"
                    for market, share in too_many.items()
                )
                + f" at once, more than the {max_delist_share:.1%} allowed"
                " (GATEWAY_STOCKS_SYNC_MAX_DELIST_SHARE). A damaged master file would look like"
                " this. Check the source; if the delisting is real, sync again with --force.",
                extra={"delist_shares": summary.delist_shares},
            )
        summary.forced = bool(too_many)
        changed = connection.execute(text(_UPSERT_SQL)).scalars().all()
        summary.added = sum(1 for inserted in changed if inserted)
        summary.changed = len(changed) - summary.added
        summary.delisted = connection.execute(
            text(
                "UPDATE market.stocks SET status = 'DELISTED', is_tradable = false,"
                " delisting_date = :today, trade_halt_reason = 'delisted'"
                " WHERE market = ANY(:markets) AND status <> 'DELISTED'"
                " AND symbol NOT IN (SELECT symbol FROM incoming_stocks)"
            ),
            {"today": today, "markets": markets},
        ).rowcount
        # The master's base prices are today's (the sync runs before the open); an operator's
        # own price for the day is kept.
        connection.execute(
            text(
                "INSERT INTO market.stock_base_prices (symbol, trading_date, base_price, source)"
                " SELECT symbol, :today, price, 'MASTER' FROM unnest("
                "   CAST(:symbols AS text[]), CAST(:prices AS numeric[])) AS p(symbol, price)"
                " WHERE price > 0"
                " ON CONFLICT (symbol, trading_date) DO UPDATE"
                "   SET base_price = EXCLUDED.base_price, updated_ts = now()"
                " WHERE stock_base_prices.source = 'MASTER'"
                "   AND stock_base_prices.base_price <> EXCLUDED.base_price"
            ),
            {
                "today": today,
                "symbols": [r.short_code for r in records if r.base_price],
                "prices": [r.base_price for r in records if r.base_price],
            },
        )
        connection.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": NOTIFY_CHANNEL, "payload": today.isoformat()},
        )
    except ProgrammingError as exc:
        if "permission denied" in str(exc.orig):
            raise StocksSyncFailed(
                "The database role running the sync may not write market.stocks. Run the sync "
                "as gateway_datasync (set GATEWAY_DATASYNC_DATABASE_URL to a login of that role, "
                "or let the gateway's login `SET ROLE gateway_datasync`)."
            ) from None
        raise
    summary.halted = sum(1 for row in rows if not row[8])
    summary.unchanged = len(rows) - summary.added - summary.changed
    return summary


def _delist_shares(connection: Connection, markets: list[str]) -> dict[str, dict[str, Any]]:
    """Return, per market, how many listed stocks the incoming master would delist."""
    rows = connection.execute(
        text(
            "SELECT market, count(*) AS listed,"
            " count(*) FILTER (WHERE symbol NOT IN (SELECT symbol FROM incoming_stocks))"
            " FROM market.stocks WHERE market = ANY(:markets) AND status <> 'DELISTED'"
            " GROUP BY market"
        ),
        {"markets": markets},
    ).all()
    return {
        market: {"listed": listed, "delisted": gone, "share": gone / listed if listed else 0.0}
        for market, listed, gone in rows
    }


def record_run(
    database_url: str,
    outcome: str,
    detail: str,
    *,
    code: str | None = None,
    source: str | None = None,
    delist_shares: Mapping[str, Any] | None = None,
) -> None:
    """Record a sync's outcome in ``system.stocks_sync_runs``, in a transaction of its own.

    A failure to record is logged, never raised: it must not hide the sync's own outcome.
    """
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO system.stocks_sync_runs"
                    " (outcome, code, detail, source, delist_shares)"
                    " VALUES (:outcome, :code, :detail, :source, CAST(:shares AS jsonb))"
                ),
                {
                    "outcome": outcome,
                    "code": code,
                    "detail": detail,
                    "source": source,
                    "shares": json.dumps(delist_shares) if delist_shares is not None else None,
                },
            )
    except DBAPIError as exc:
        log.warning("stocks sync: could not record the run: %s", type(exc).__name__)
    finally:
        engine.dispose()


def max_delist_share(config: Mapping[str, Any]) -> float:
    """Return ``GATEWAY_STOCKS_SYNC_MAX_DELIST_SHARE`` (a fraction, default 0.05).

    Raises:
        ConfigError: not a number from 0 to 1.
    """
    value = config.get("STOCKS_SYNC_MAX_DELIST_SHARE", DEFAULT_MAX_DELIST_SHARE)
    try:
        share = float(value)
    except (TypeError, ValueError):
        share = -1.0
    if not 0 <= share <= 1:
        raise ConfigError(
            "GATEWAY_STOCKS_SYNC_MAX_DELIST_SHARE must be a fraction from 0 to 1 (0.05 = 5 %)."
        )
    return share


def latest_runs(limit: int = 5) -> list[dict[str, Any]]:
    """Return the newest sync records (for the stocks page), newest first."""
    from web_server.extensions import db

    rows = db.session.execute(
        text(
            "SELECT at, outcome, code, detail, delist_shares FROM system.stocks_sync_runs"
            " ORDER BY id DESC LIMIT :limit"
        ),
        {"limit": limit},
    ).mappings()
    return [dict(row) for row in rows]


def datasync_target(config: Mapping[str, Any]) -> tuple[str, str | None]:
    """Return the database URL the sync writes through and the role it sets, if any.

    ``GATEWAY_DATASYNC_DATABASE_URL`` (a login of ``gateway_datasync``) wins; otherwise the
    gateway's own login takes the role with ``SET LOCAL ROLE``.
    """
    if config.get("DATASYNC_DATABASE_URL"):
        return normalize_database_url(config["DATASYNC_DATABASE_URL"]), None
    return config["SQLALCHEMY_DATABASE_URI"], config["DATASYNC_ROLE"]


def run_sync(
    database_url: str,
    source: str,
    *,
    role: str | None = "gateway_datasync",
    progress: Progress | None = None,
    session: requests.Session | None = None,
    today: dt.date | None = None,
    max_delist_share: float = DEFAULT_MAX_DELIST_SHARE,
    force: bool = False,
) -> SyncSummary:
    """Download, parse and apply the master files in one transaction; a boundary of its own.

    The outcome (applied, forced past the delisting guard, or refused by it) is recorded in
    ``system.stocks_sync_runs`` and logged.

    ``role`` is taken with ``SET LOCAL ROLE`` when the connection's login is not that role
    already; ``None`` uses the login as it is (a URL that logs in as ``gateway_datasync``).

    Raises:
        StocksSyncFailed: anything went wrong; the table is unchanged.
    """
    payloads = download_masters(source, session=session, progress=progress)
    records, skipped = parse_masters(payloads)
    if progress:
        progress("parsed", 1)
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            if role:
                try:
                    connection.execute(text(f'SET LOCAL ROLE "{role}"'))
                except DBAPIError as exc:
                    raise StocksSyncFailed(
                        f"Cannot act as {role}: the database login is not a member of it "
                        f"(GRANT {role} TO <login>), or the role does not exist "
                        "(run `gateway db upgrade`)."
                    ) from exc
            summary = sync_stocks(
                connection,
                records,
                markets=list(payloads),
                skipped=skipped,
                today=today,
                max_delist_share=max_delist_share,
                force=force,
            )
    except StocksSyncDelistGuard as exc:
        log.error("stocks sync refused (%s): %s", exc.code, exc.detail)
        record_run(
            database_url,
            "REFUSED",
            exc.detail,
            code=exc.code,
            source=source,
            delist_shares=exc.extra.get("delist_shares"),
        )
        raise
    finally:
        engine.dispose()
    if summary.forced:
        log.warning("stocks sync forced past the delisting guard: %s", summary.line())
    record_run(
        database_url,
        "FORCED" if summary.forced else "APPLIED",
        summary.line(),
        source=source,
        delist_shares=summary.delist_shares,
    )
    if progress:
        progress("written", 1)
    log.info("%s", summary.line())
    return summary
