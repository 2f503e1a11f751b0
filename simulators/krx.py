"""The KRX universe the securities simulators (KIS, Kiwoom) list: real issues, plausible numbers.

Every listing is a real KRX issue with its real short code, ISIN (표준코드), Korean name, market,
security group (ST 주권, EF ETF, IF 인프라투융자회사), listing date, par value, listed shares and
capital, as they stood in the KIS master files of 2026-07-23 (``shared/data/kis_master``). The base
price (기준가) is that day's too; the simulators' price path wanders around it. Three issues keep
the flags they had that day, so that halts and administrative issues can be exercised: 삼부토건
and 이화공영 are halted (거래정지), 동일기연 is an administrative issue (관리종목).

The KONEX listing (판도라티비) is not in those files (no KONEX master was captured); its numbers
are plausible, not checked, and its ISIN is computed with the standard check digit.

Nothing here is mutable module state: :data:`LISTINGS` is a tuple of frozen records, and each
simulator builds its own :class:`~simulators.engine.Instrument` objects from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta, timezone
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from types import MappingProxyType
from typing import Final

from simulators.engine import AssetClass, Instrument, krx_tick_size

__all__ = [
    "KST",
    "LISTINGS",
    "Listing",
    "by_symbol",
    "instruments",
    "isin_check_digit",
    "price_limits",
]

#: Korea Standard Time (no daylight saving), the zone of every KRX timestamp on the wire.
KST: Final = timezone(timedelta(hours=9), "KST")

#: Daily price limit (가격제한폭) of KRX stocks since 2015-06-15: ±30 % of the base price.
_LIMIT_RATE: Final = Decimal("0.30")


@dataclass(frozen=True)
class Listing:
    """One KRX issue.

    Attributes:
        symbol: short code (단축코드), six characters, digit first ("005930", "0001A0").
        isin: standard code (표준코드).
        name: Korean name as the master files spell it.
        market: "KOSPI", "KOSDAQ" or "KONEX".
        group: security group code (증권그룹구분코드): ST, EF, IF, ….
        base_price: 기준가 in KRW (previous close).
        listed_on: listing date.
        listed_shares_thousands: 상장주수 in thousands.
        par_value: 액면가 in KRW (0 for ETFs and funds).
        capital: 자본금 in KRW.
        sector: index sector codes (large, medium) as the master files carry them ("" if none).
        preferred: 우선주 구분: "0" common, "1" old-style, "2" new-style preferred.
        halted: 거래정지.
        administrative: 관리종목.
    """

    symbol: str
    isin: str
    name: str
    market: str
    group: str
    base_price: Decimal
    listed_on: date
    listed_shares_thousands: int
    par_value: int
    capital: int
    sector: tuple[str, str] = ("", "")
    preferred: str = "0"
    halted: bool = False
    administrative: bool = False

    @property
    def market_cap_eok(self) -> int:
        """Previous-day market capitalisation in 억원 (100 million KRW), as the masters carry it."""
        return int(self.base_price * self.listed_shares_thousands * 1000 / Decimal(100_000_000))

    @property
    def is_etf(self) -> bool:
        """Whether the issue is an ETF (group EF)."""
        return self.group == "EF"

    @property
    def nxt(self) -> bool:
        """Whether NXT (Nextrade) also trades the issue.

        [DERIVED] NXT lists KOSPI and KOSDAQ stocks, not ETFs, funds, KONEX issues, halted or
        administrative issues (trading-days.md §1.2); the real list is a few hundred names and
        changes quarterly, so the simulators decide by this rule.
        """
        return (
            self.group == "ST"
            and self.market in {"KOSPI", "KOSDAQ"}
            and not (self.halted or self.administrative)
        )


def _l(
    symbol: str,
    isin: str,
    name: str,
    market: str,
    group: str,
    price: int,
    listed_on: str,
    shares_k: int,
    par: int,
    capital: int,
    sector: tuple[str, str] = ("", ""),
    **flags: str | bool,
) -> Listing:
    return Listing(
        symbol=symbol,
        isin=isin,
        name=name,
        market=market,
        group=group,
        base_price=Decimal(price),
        listed_on=date.fromisoformat(listed_on),
        listed_shares_thousands=shares_k,
        par_value=par,
        capital=capital,
        sector=sector,
        **flags,  # type: ignore[arg-type]
    )


_KOSPI_MFG_ELEC = ("0027", "0013")  # 제조업 / 전기·전자
_KOSPI_MFG_AUTO = ("0027", "0015")  # 제조업 / 운송장비·부품
_KOSPI_MFG_CHEM = ("0027", "0008")  # 제조업 / 화학
_KOSPI_MFG_PHARMA = ("0027", "0009")  # 제조업 / 제약
_KOSPI_FIN = ("0021", "")  # 금융

# One row per issue reads best as a table; keep the formatter out of it.
# fmt: off
LISTINGS: Final[tuple[Listing, ...]] = (
    # --- KOSPI: stocks -------------------------------------------------------------------
    _l("005930", "KR7005930003", "삼성전자", "KOSPI", "ST", 259000, "1975-06-11", 5846278, 100, 778046685000, _KOSPI_MFG_ELEC),  # noqa: E501
    _l("005935", "KR7005931001", "삼성전자우", "KOSPI", "ST", 181000, "1989-09-25", 802371, 100, 119467135000, _KOSPI_MFG_ELEC, preferred="1"),  # noqa: E501
    _l("000660", "KR7000660001", "SK하이닉스", "KOSPI", "ST", 1836000, "1996-12-26", 712702, 5000, 3657652050000, _KOSPI_MFG_ELEC),  # noqa: E501
    _l("035420", "KR7035420009", "NAVER", "KOSPI", "ST", 193000, "2008-11-28", 156944, 100, 16490499900, ("0029", "")),  # noqa: E501
    _l("005380", "KR7005380001", "현대차", "KOSPI", "ST", 399000, "1974-06-28", 204757, 5000, 1157982395000, _KOSPI_MFG_AUTO),  # noqa: E501
    _l("000270", "KR7000270009", "기아", "KOSPI", "ST", 144600, "1973-07-21", 390412, 5000, 2139316735000, _KOSPI_MFG_AUTO),  # noqa: E501
    _l("051910", "KR7051910008", "LG화학", "KOSPI", "ST", 250500, "2001-04-25", 70592, 5000, 352961715000, _KOSPI_MFG_CHEM),  # noqa: E501
    _l("006400", "KR7006400006", "삼성SDI", "KOSPI", "ST", 416500, "1979-02-27", 80585, 5000, 407577650000, _KOSPI_MFG_ELEC),  # noqa: E501
    _l("068270", "KR7068270008", "셀트리온", "KOSPI", "ST", 171600, "2018-02-09", 232553, 1000, 250553370000, _KOSPI_MFG_PHARMA),  # noqa: E501
    _l("105560", "KR7105560007", "KB금융", "KOSPI", "ST", 174000, "2008-10-10", 354687, 5000, 2090557685000, _KOSPI_FIN),  # noqa: E501
    _l("055550", "KR7055550008", "신한지주", "KOSPI", "ST", 104700, "2001-09-10", 474654, 5000, 2695586060000, _KOSPI_FIN),  # noqa: E501
    _l("035720", "KR7035720002", "카카오", "KOSPI", "ST", 35300, "2017-07-10", 442981, 100, 44348107000, ("0029", "")),  # noqa: E501
    _l("207940", "KR7207940008", "삼성바이오로직스", "KOSPI", "ST", 1395000, "2016-11-10", 46290, 2500, 115727377500, _KOSPI_MFG_PHARMA),  # noqa: E501
    _l("373220", "KR7373220003", "LG에너지솔루션", "KOSPI", "ST", 317000, "2022-01-27", 234000, 500, 117000000000, _KOSPI_MFG_ELEC),  # noqa: E501
    _l("005490", "KR7005490008", "POSCO홀딩스", "KOSPI", "ST", 303000, "1988-06-10", 79241, 5000, 482403125000, ("0027", "0011")),  # noqa: E501
    _l("012330", "KR7012330007", "현대모비스", "KOSPI", "ST", 479500, "1989-09-05", 90732, 5000, 490969315000, _KOSPI_MFG_AUTO),  # noqa: E501
    _l("028260", "KR7028260008", "삼성물산", "KOSPI", "ST", 343500, "2014-12-18", 162167, 100, 18370138100, ("0016", "")),  # noqa: E501
    _l("066570", "KR7066570003", "LG전자", "KOSPI", "ST", 173200, "2002-04-22", 162884, 5000, 818230325000, _KOSPI_MFG_ELEC),  # noqa: E501
    _l("003550", "KR7003550001", "LG", "KOSPI", "ST", 97300, "1970-02-13", 151192, 5000, 786255825000, _KOSPI_FIN),  # noqa: E501
    _l("017670", "KR7017670001", "SK텔레콤", "KOSPI", "ST", 85100, "1989-11-07", 214790, 100, 30492715900, ("0020", "")),  # noqa: E501
    _l("030200", "KR7030200000", "KT", "KOSPI", "ST", 52700, "1998-12-23", 252021, 5000, 1564498835000, ("0020", "")),  # noqa: E501
    _l("032830", "KR7032830002", "삼성생명", "KOSPI", "ST", 316000, "2010-05-12", 200000, 500, 100000000000, ("0021", "0025")),  # noqa: E501
    _l("015760", "KR7015760002", "한국전력", "KOSPI", "ST", 33700, "1989-08-10", 641964, 5000, 3209820385000, ("0017", "")),  # noqa: E501
    _l("034730", "KR7034730002", "SK", "KOSPI", "ST", 596000, "2009-11-11", 72502, 200, 16029865800, _KOSPI_FIN),  # noqa: E501
    _l("096770", "KR7096770003", "SK이노베이션", "KOSPI", "ST", 116300, "2007-07-25", 169052, 5000, 869863810000, _KOSPI_MFG_CHEM),  # noqa: E501
    _l("011200", "KR7011200003", "HMM", "KOSPI", "ST", 20100, "1995-10-05", 943237, 5000, 5125197480000, ("0019", "")),  # noqa: E501
    _l("264900", "KR7264900002", "크라운제과", "KOSPI", "ST", 8030, "2017-04-11", 12523, 200, 2504770000, ("0027", "0005")),  # noqa: E501
    _l("26490K", "KR726490K013", "크라운제과우", "KOSPI", "ST", 7120, "2017-04-11", 773, 200, 154712000, ("0027", "0005"), preferred="2"),  # noqa: E501
    _l("001470", "KR7001470004", "삼부토건", "KOSPI", "ST", 347, "1976-06-26", 229681, 1000, 229681824000, ("0018", ""), halted=True),  # noqa: E501
    # --- KOSPI: ETFs and an infrastructure fund ------------------------------------------
    _l("069500", "KR7069500007", "KODEX 200", "KOSPI", "EF", 108140, "2002-10-14", 225150, 0, 0),  # noqa: E501
    _l("102110", "KR7102110004", "TIGER 200", "KOSPI", "EF", 108110, "2008-04-03", 92300, 0, 0),  # noqa: E501
    _l("252670", "KR7252670005", "KODEX 200선물인버스2X", "KOSPI", "EF", 101, "2016-09-22", 9143900, 0, 0),  # noqa: E501
    _l("0000D0", "KR70000D0009", "TIGER 엔비디아미국채커버드콜밸런스(합성)", "KOSPI", "EF", 9740, "2024-12-17", 6800, 0, 0),  # noqa: E501
    _l("088980", "KR7088980008", "맥쿼리인프라", "KOSPI", "IF", 10020, "2006-03-15", 478921, 0, 3297209055534, _KOSPI_FIN),  # noqa: E501
    # --- KOSDAQ --------------------------------------------------------------------------
    _l("0001A0", "KR70001A0001", "덕양에너젠", "KOSDAQ", "ST", 7880, "2026-01-30", 25468, 500, 13178921000),  # noqa: E501
    _l("247540", "KR7247540008", "에코프로비엠", "KOSDAQ", "ST", 105900, "2019-03-05", 97830, 500, 48955454000, ("1009", "1028")),  # noqa: E501
    _l("086520", "KR7086520004", "에코프로", "KOSDAQ", "ST", 75200, "2007-07-20", 135776, 100, 13577615200, ("1014", "")),  # noqa: E501
    _l("196170", "KR7196170005", "알테오젠", "KOSDAQ", "ST", 273000, "2014-12-12", 53586, 500, 26793171500, ("1006", "")),  # noqa: E501
    _l("028300", "KR7028300002", "HLB", "KOSDAQ", "ST", 30400, "1996-07-27", 133198, 500, 66599111500, ("1009", "1024")),  # noqa: E501
    _l("293490", "KR7293490009", "카카오게임즈", "KOSDAQ", "ST", 7590, "2020-09-10", 107245, 100, 10724526500),  # noqa: E501
    _l("263750", "KR7263750002", "펄어비스", "KOSDAQ", "ST", 33350, "2017-09-14", 62843, 100, 6623450000),  # noqa: E501
    _l("035900", "KR7035900000", "JYP Ent.", "KOSDAQ", "ST", 44350, "2001-08-30", 35532, 500, 17960951500, ("1015", "")),  # noqa: E501
    _l("041510", "KR7041510009", "에스엠", "KOSDAQ", "ST", 67100, "2000-04-27", 22894, 500, 11915450500, ("1015", "")),  # noqa: E501
    _l("357780", "KR7357780006", "솔브레인", "KOSDAQ", "ST", 280000, "2020-08-06", 7778, 500, 3889283000, ("1009", "1023")),  # noqa: E501
    _l("001840", "KR7001840008", "이화공영", "KOSDAQ", "ST", 2215, "1994-11-23", 28256, 500, 14128404500, ("1010", ""), halted=True),  # noqa: E501
    _l("032960", "KR7032960007", "동일기연", "KOSDAQ", "ST", 1955, "1997-07-18", 17592, 100, 5309297500, ("1009", "1028"), administrative=True),  # noqa: E501
    # --- KONEX (plausible numbers, see the module docstring) ------------------------------
    _l("202960", "KR7202960001", "판도라티비", "KONEX", "ST", 1460, "2014-12-22", 12734, 500, 6367000000),  # noqa: E501
)
# fmt: on


def isin_check_digit(body: str) -> str:
    """Return the ISIN check digit of an 11-character ISIN body (letters count as 10..35)."""
    digits = "".join(str(int(char, 36)) for char in body.upper())
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


def by_symbol(listings: Iterable[Listing] = LISTINGS) -> Mapping[str, Listing]:
    """Return a read-only ``symbol -> Listing`` map."""
    return MappingProxyType({listing.symbol: listing for listing in listings})


def instruments(
    listings: Iterable[Listing] = LISTINGS, *, max_deviation: Decimal = Decimal("0.10")
) -> list[Instrument]:
    """Build the engine's instruments: KRW quote, lot 1, the KRX tick rule."""
    return [
        Instrument(
            symbol=listing.symbol,
            quote="KRW",
            initial_price=listing.base_price,
            tick_rule=krx_tick_size,
            asset_class=AssetClass.SECURITY,
            name=listing.name,
            max_deviation=max_deviation,
        )
        for listing in listings
    ]


def price_limits(base_price: Decimal) -> tuple[Decimal, Decimal]:
    """Return the (upper, lower) price limits: base ±30 %, kept inside the band and on the tick."""
    upper_raw = base_price * (1 + _LIMIT_RATE)
    lower_raw = base_price * (1 - _LIMIT_RATE)
    upper_tick = krx_tick_size(upper_raw)
    lower_tick = krx_tick_size(lower_raw)
    upper = (upper_raw / upper_tick).to_integral_value(rounding=ROUND_FLOOR) * upper_tick
    lower = (lower_raw / lower_tick).to_integral_value(rounding=ROUND_CEILING) * lower_tick
    return upper, max(lower, Decimal(1))
