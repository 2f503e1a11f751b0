"""One record of a KIS stock master file: validation, raw fields and typed properties.

The file format and the field layout are in :mod:`securities.kis.master_layout`; reading and
writing whole files is :mod:`securities.kis.master_file`, which re-exports the record, the error
and the ``REASON_*`` strings.

Raw field values
----------------
:attr:`MasterRecord.fields` keeps every tail field exactly as it is in the file (full width,
padding included, e.g. ``"000259000"``) so that a record is written back byte for byte; the typed
properties of :class:`MasterRecord` give the parsed values. When a record is built or changed in
code, shorter values are padded the way the files pad them (see :func:`_pad_value`).

Units
-----
* ``stck_sdpr`` (base price), ``stck_fcam`` (par value), ``po_prc`` (IPO price): KRW.
* ``cpfn`` (자본금, capital): KRW. The headers do not say so; it was checked on the real files,
  where ``cpfn`` is within rounding of par value × listed shares (e.g. 동화약품 ``27931470000``
  for 27,931 thousand shares of 1,000 won par).
* ``prdy_avls_scal`` (전일기준 시가총액, previous-day market capitalisation): 억원
  (100,000,000 KRW), as the header comment "(억)" says, and as ``stck_sdpr × lstn_stcn``
  confirms on the real files.
* ``lstn_stcn`` (상장주수): thousands of shares ("상장 주수(천)").
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Final

from securities.kis.master_layout import (
    ENCODING,
    LAYOUTS,
    MARKETS,
    NAME_WIDTH,
    SHORT_CODE_WIDTH,
    STANDARD_CODE_WIDTH,
    STOCK_CODE_RE,
)

__all__ = [
    "REASON_ADMINISTRATIVE",
    "REASON_INVESTMENT_ATTENTION",
    "REASON_INVESTMENT_RISK",
    "REASON_INVESTMENT_WARNING",
    "REASON_LIQUIDATION_TRADING",
    "REASON_SHORT_TERM_OVERHEAT",
    "REASON_TRADING_HALT",
    "REASON_UNFAITHFUL_DISCLOSURE",
    "MasterFileError",
    "MasterRecord",
    "normalize_market",
]

# --- halt reasons ----------------------------------------------------------------------------
# Human-readable strings returned by MasterRecord.halt_reasons; public so a sync can compare.
REASON_TRADING_HALT: Final = "trading halted"  # trht_yn = Y (거래정지)
REASON_LIQUIDATION_TRADING: Final = "liquidation trading before delisting"  # sltr_yn (정리매매)
REASON_ADMINISTRATIVE: Final = "administrative issue"  # mang_issu_yn (관리종목)
REASON_INVESTMENT_RISK: Final = "investment risk designation"  # mrkt_alrm_cls_code 03 (투자위험)
REASON_INVESTMENT_WARNING: Final = "investment warning designation"  # 02 (투자경고)
REASON_UNFAITHFUL_DISCLOSURE: Final = "unfaithful disclosure"  # insn_pbnt_yn (불성실공시)
REASON_SHORT_TERM_OVERHEAT: Final = "short-term overheated issue"  # short_over_cls_code 2/3
REASON_INVESTMENT_ATTENTION: Final = "investment attention issue"  # invt_alrm_yn (KOSDAQ)

_NUMERIC_RE: Final = re.compile(r"-?[0-9]+(\.[0-9]+)?")


class MasterFileError(ValueError):
    """A master file (or zip, or record) is malformed; the message says where and why."""


def normalize_market(market: str) -> str:
    """Return the canonical market name ("KOSPI", "KOSDAQ", "KONEX").

    Args:
        market: Market name, case-insensitive.

    Returns:
        The upper-case market name.

    Raises:
        MasterFileError: If the market is not one of :data:`MARKETS`.
    """
    normalized = market.upper() if isinstance(market, str) else market
    if normalized not in MARKETS:
        raise MasterFileError(f"unknown market {market!r}; expected one of {', '.join(MARKETS)}")
    return normalized


def _pad_value(name: str, value: str, width: int) -> str:
    """Pad a tail field value to its width the way KIS's files pad it.

    Numbers (optionally signed, optionally with a decimal part) are zero-filled on the left:
    ``"259000"`` -> ``"000259000"``, ``"-12"`` -> ``"-0012"``, ``"19.16"`` -> ``"000019.16"``,
    ``"1"`` -> ``"01"`` for a two-digit code. Everything else (flags, blanks) is space-padded on the
    right. Values already at full width are kept as they are, which is what makes parsed records
    write back byte for byte.

    Args:
        name: Field name, for error messages.
        value: The value to pad.
        width: The field width in bytes.

    Returns:
        The value at exactly ``width`` characters.

    Raises:
        MasterFileError: If the value is not a str, not ASCII, contains a newline, or is too long.
    """
    if not isinstance(value, str):
        raise MasterFileError(f"field {name}: value must be str, got {type(value).__name__}")
    if not value.isascii() or "\n" in value or "\r" in value:
        # The tail must stay one byte per character, or slicing from the end breaks.
        raise MasterFileError(f"field {name}: value {value!r} must be single-line ASCII")
    if len(value) > width:
        raise MasterFileError(f"field {name}: value {value!r} is longer than {width} characters")
    if len(value) == width:
        return value
    if _NUMERIC_RE.fullmatch(value):
        return value.zfill(width)
    return value.ljust(width)


def _strip_or_none(value: str | None) -> str | None:
    """Return the stripped value, or None if it is missing or blank."""
    if value is None:
        return None
    stripped = value.strip()
    return stripped or None


@dataclass(frozen=True)
class MasterRecord:
    """One record (line) of a KIS stock master file.

    Attributes:
        short_code: Short code (단축코드), e.g. ``"005930"`` or ``"0001A0"``.
        standard_code: Standard code / ISIN (표준코드), e.g. ``"KR7005930003"``.
        name: Korean name (한글종목명) without the padding.
        market: ``"KOSPI"``, ``"KOSDAQ"`` or ``"KONEX"``; decides the tail layout.
        fields: Every tail field of the market's layout (:data:`LAYOUTS`) by its KIS struct
            name, raw and at full width as in the file (e.g. ``fields["stck_sdpr"] ==
            "000259000"``). Read-only. Values given shorter are padded on construction (see
            :func:`_pad_value`); a missing or unknown field name raises :class:`MasterFileError`.
            Use :func:`make_record` to start from defaults.

    Flags behind :attr:`halt_reasons` (Y/N unless noted; meanings from KIS's headers):
        * ``trht_yn`` 거래정지 — trading halted (:attr:`is_trading_halted`).
        * ``sltr_yn`` 정리매매 — liquidation trading, the last days before delisting
          (:attr:`is_liquidation_trading`).
        * ``mang_issu_yn`` 관리종목 — administrative issue (:attr:`is_administrative`).
        * ``mrkt_alrm_cls_code`` 시장경고 — ``00`` none, ``01`` 투자주의 (caution), ``02`` 투자경고
          (warning), ``03`` 투자위험 (risk) (:attr:`market_warning_code`). Caution alone is not
          listed as a halt reason; warning and risk are.
        * ``insn_pbnt_yn`` 불성실공시 — unfaithful disclosure (:attr:`is_unfaithful_disclosure`).
        * ``short_over_cls_code`` 단기과열 — ``0`` none, ``1`` designation announced, ``2``
          designated, ``3`` designation extended; 2 and 3 count (:attr:`is_short_term_overheated`).
        * ``invt_alrm_yn`` 투자주의환기종목 — KOSDAQ only (:attr:`is_investment_attention`).

        Exposed but not halt reasons: ``mrkt_alrm_risk_adnt_yn`` (warning/risk designation
        announced), ``ssts_hot_yn`` (short-selling overheated), ``stange_runup_yn`` (abnormal
        surge), ``low_current_yn`` (low liquidity).
    """

    short_code: str
    standard_code: str
    name: str
    market: str
    # Mappings are not hashable, so the record hashes on its identity fields only; the 70-odd
    # raw fields would drown a log line, so they stay out of the repr.
    fields: Mapping[str, str] = field(hash=False, repr=False)

    def __post_init__(self) -> None:
        """Validate and normalise the record so that every record can be written.

        Raises:
            MasterFileError: If a code, the name, the market or a field does not fit the format.
        """
        market = normalize_market(self.market)
        object.__setattr__(self, "market", market)

        short_code = self.short_code.strip() if isinstance(self.short_code, str) else None
        if (
            not short_code
            or not short_code.isascii()
            or len(short_code) > SHORT_CODE_WIDTH
            or any(ch.isspace() for ch in short_code)
        ):
            raise MasterFileError(f"invalid short code {self.short_code!r}")
        object.__setattr__(self, "short_code", short_code)

        standard_code = self.standard_code.strip() if isinstance(self.standard_code, str) else None
        if (
            standard_code is None
            or not standard_code.isascii()
            or len(standard_code) > STANDARD_CODE_WIDTH
            or any(ch.isspace() for ch in standard_code)
        ):
            raise MasterFileError(f"{short_code}: invalid standard code {self.standard_code!r}")
        object.__setattr__(self, "standard_code", standard_code)

        if not isinstance(self.name, str):
            raise MasterFileError(f"{short_code}: name must be str")
        # The file pads names with spaces, so surrounding whitespace cannot survive a round trip.
        name = self.name.strip()
        if any(ch in name for ch in "\r\n,"):
            # A comma would break the official parser, which re-reads the head as CSV.
            raise MasterFileError(f"{short_code}: name {name!r} contains a newline or a comma")
        try:
            encoded_name = name.encode(ENCODING)
        except UnicodeEncodeError as exc:
            raise MasterFileError(f"{short_code}: name {name!r} is not cp949: {exc}") from exc
        if len(encoded_name) > NAME_WIDTH:
            raise MasterFileError(
                f"{short_code}: name {name!r} is {len(encoded_name)} bytes in cp949, "
                f"more than {NAME_WIDTH}"
            )
        object.__setattr__(self, "name", name)

        if not isinstance(self.fields, Mapping):
            raise MasterFileError(f"{short_code}: fields must be a mapping")
        layout = LAYOUTS[market]
        expected = {field_name for field_name, _ in layout}
        missing = sorted(expected - set(self.fields))
        unknown = sorted(set(self.fields) - expected)
        if missing or unknown:
            raise MasterFileError(
                f"{short_code}: fields do not match the {market} layout "
                f"(missing: {missing or 'none'}; unknown: {unknown or 'none'})"
            )
        padded = {
            field_name: _pad_value(field_name, self.fields[field_name], width)
            for field_name, width in layout
        }
        object.__setattr__(self, "fields", MappingProxyType(padded))

    # --- generic access ------------------------------------------------------------------------

    def field_value(self, field_name: str) -> str | None:
        """Return a tail field stripped of padding, or None if blank or absent in this market.

        Args:
            field_name: KIS struct field name, e.g. ``"trht_yn"``.

        Returns:
            The stripped value, or None.
        """
        return _strip_or_none(self.fields.get(field_name))

    def with_fields(self, **changes: str) -> MasterRecord:
        """Return a copy with some tail fields changed, e.g. ``rec.with_fields(trht_yn="Y")``.

        Args:
            **changes: Field name to new value; shorter values are padded like the files do.

        Returns:
            The changed record.

        Raises:
            MasterFileError: If a field name is unknown for this market or a value does not fit.
        """
        return dataclasses.replace(self, fields={**self.fields, **changes})

    def _flag(self, field_name: str) -> bool:
        """Return True if a Y/N field is ``"Y"`` (False if absent in this market's layout)."""
        return self.fields.get(field_name, "").strip() == "Y"

    def _int(self, field_name: str) -> int | None:
        """Parse an integer field; None if blank or absent.

        Raises:
            MasterFileError: If the field holds something that is not an integer.
        """
        value = self.field_value(field_name)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError as exc:
            raise MasterFileError(
                f"{self.short_code}: {field_name}={value!r} is not an integer"
            ) from exc

    def _decimal(self, field_name: str) -> Decimal | None:
        """Parse a decimal field; None if blank or absent.

        Raises:
            MasterFileError: If the field holds something that is not a number.
        """
        value = self.field_value(field_name)
        if value is None:
            return None
        try:
            return Decimal(value)
        except InvalidOperation as exc:
            raise MasterFileError(
                f"{self.short_code}: {field_name}={value!r} is not a number"
            ) from exc

    def _code(self, field_name: str) -> str | None:
        """Return a code field, None if blank, all zeros (KIS's "none") or absent."""
        value = self.field_value(field_name)
        if value is None or set(value) == {"0"}:
            return None
        return value

    # --- identity and classification -----------------------------------------------------------

    @property
    def is_stock_code(self) -> bool:
        """True for six-character short codes (stocks, ETFs, REITs …); False for F…, J…, Q…."""
        return STOCK_CODE_RE.fullmatch(self.short_code) is not None

    @property
    def group_code(self) -> str:
        """Security group (scrt_grp_cls_code).

        ST 주권 (stock), EF ETF, EN ETN, RT REIT, MF investment company, IF infrastructure fund,
        DR depositary receipt, FS foreign stock, FE foreign ETF, BC beneficiary certificate,
        SW/SR subscription warrants/rights, EW ELW, KN KONEX, PF (seen in data, not in the header).
        """
        return self.fields["scrt_grp_cls_code"].strip()

    @property
    def sector_large_code(self) -> str | None:
        """Index industry large classification (bstp_larg_div_code); None if none/KONEX."""
        return self._code("bstp_larg_div_code")

    @property
    def sector_medium_code(self) -> str | None:
        """Index industry medium classification (bstp_medm_div_code); None if none/KONEX."""
        return self._code("bstp_medm_div_code")

    @property
    def sector_small_code(self) -> str | None:
        """Index industry small classification (bstp_smal_div_code); None if none/KONEX."""
        return self._code("bstp_smal_div_code")

    @property
    def is_spac(self) -> bool:
        """Special purpose acquisition company (etpr_undt_objt_co_yn); False on KONEX."""
        return self._flag("etpr_undt_objt_co_yn")

    @property
    def preferred_share_code(self) -> str | None:
        """prst_cls_code: ``0`` common, ``1`` old-type preferred, ``2`` new-type preferred."""
        return self.field_value("prst_cls_code")

    @property
    def is_preferred(self) -> bool:
        """True for preferred shares (prst_cls_code 1 or 2)."""
        return self.preferred_share_code in ("1", "2")

    # --- prices and sizes -----------------------------------------------------------------------

    @property
    def base_price(self) -> Decimal | None:
        """Base price for the day (stck_sdpr), KRW."""
        return self._decimal("stck_sdpr")

    @property
    def par_value(self) -> Decimal | None:
        """Par value (stck_fcam), KRW."""
        return self._decimal("stck_fcam")

    @property
    def ipo_price(self) -> Decimal | None:
        """Public offering price (po_prc), KRW; None when blank (most older listings)."""
        return self._decimal("po_prc")

    @property
    def lot_size(self) -> int | None:
        """Regular-session trading unit in shares (frml_mrkt_deal_qty_unit)."""
        return self._int("frml_mrkt_deal_qty_unit")

    @property
    def previous_volume(self) -> int | None:
        """Previous day's traded volume in shares (prdy_vol)."""
        return self._int("prdy_vol")

    @property
    def listed_shares_thousands(self) -> int | None:
        """Listed shares in thousands (lstn_stcn, "상장 주수(천)")."""
        return self._int("lstn_stcn")

    @property
    def capital(self) -> int | None:
        """Paid-in capital (cpfn, 자본금) in KRW (checked against par × shares on real files)."""
        return self._int("cpfn")

    @property
    def market_cap(self) -> int | None:
        """Previous-day market capitalisation (prdy_avls_scal) in 억원 (100,000,000 KRW)."""
        return self._int("prdy_avls_scal")

    @property
    def market_cap_krw(self) -> int | None:
        """:attr:`market_cap` converted to KRW (precision is still 억원)."""
        cap = self.market_cap
        return None if cap is None else cap * 100_000_000

    @property
    def margin_rate(self) -> int | None:
        """Margin rate in percent (marg_rate), e.g. 40 or 100."""
        return self._int("marg_rate")

    @property
    def is_credit_available(self) -> bool:
        """Credit (margin) orders allowed (crdt_able)."""
        return self._flag("crdt_able")

    @property
    def settlement_month(self) -> int | None:
        """Fiscal year-end month (stac_month), 1-12."""
        return self._int("stac_month")

    @property
    def listing_date(self) -> datetime.date | None:
        """Listing date (stck_lstn_date, YYYYMMDD); None if blank or all zeros.

        Raises:
            MasterFileError: If the field holds something that is not a YYYYMMDD date.
        """
        value = self._code("stck_lstn_date")
        if value is None:
            return None
        try:
            return datetime.datetime.strptime(value, "%Y%m%d").date()
        except ValueError as exc:
            raise MasterFileError(
                f"{self.short_code}: stck_lstn_date={value!r} is not a YYYYMMDD date"
            ) from exc

    # --- status flags ---------------------------------------------------------------------------

    @property
    def is_trading_halted(self) -> bool:
        """Trading halted (trht_yn, 거래정지)."""
        return self._flag("trht_yn")

    @property
    def is_liquidation_trading(self) -> bool:
        """In liquidation trading before delisting (sltr_yn, 정리매매)."""
        return self._flag("sltr_yn")

    @property
    def is_administrative(self) -> bool:
        """Administrative issue (mang_issu_yn, 관리종목)."""
        return self._flag("mang_issu_yn")

    @property
    def market_warning_code(self) -> str:
        """mrkt_alrm_cls_code: ``00`` none, ``01`` caution, ``02`` warning, ``03`` risk."""
        return self.fields["mrkt_alrm_cls_code"].strip() or "00"

    @property
    def is_investment_caution(self) -> bool:
        """Designated 투자주의 (investment caution, market warning 01)."""
        return self.market_warning_code == "01"

    @property
    def is_investment_warning(self) -> bool:
        """Designated 투자경고 (investment warning, market warning 02)."""
        return self.market_warning_code == "02"

    @property
    def is_investment_risk(self) -> bool:
        """Designated 투자위험 (investment risk, market warning 03)."""
        return self.market_warning_code == "03"

    @property
    def is_market_warning_announced(self) -> bool:
        """A warning/risk designation has been announced (mrkt_alrm_risk_adnt_yn, 경고위험 예고)."""
        return self._flag("mrkt_alrm_risk_adnt_yn")

    @property
    def is_unfaithful_disclosure(self) -> bool:
        """Designated for unfaithful disclosure (insn_pbnt_yn, 불성실공시)."""
        return self._flag("insn_pbnt_yn")

    @property
    def short_term_overheat_code(self) -> str:
        """short_over_cls_code: ``0`` none, ``1`` announced, ``2`` designated, ``3`` extended."""
        return self.fields.get("short_over_cls_code", "").strip() or "0"

    @property
    def is_short_term_overheated(self) -> bool:
        """Designated (or extended) short-term overheated issue (단기과열, code 2 or 3)."""
        return self.short_term_overheat_code in ("2", "3")

    @property
    def is_short_selling_overheated(self) -> bool:
        """Short-selling overheated issue (ssts_hot_yn, 공매도과열)."""
        return self._flag("ssts_hot_yn")

    @property
    def is_abnormal_surge(self) -> bool:
        """Abnormal price surge issue (stange_runup_yn, 이상급등)."""
        return self._flag("stange_runup_yn")

    @property
    def is_low_liquidity(self) -> bool:
        """Low-liquidity issue (low_current_yn, 저유동성); False on KONEX."""
        return self._flag("low_current_yn")

    @property
    def is_investment_attention(self) -> bool:
        """KOSDAQ 투자주의환기종목 (invt_alrm_yn); always False on KOSPI and KONEX."""
        return self._flag("invt_alrm_yn")

    @property
    def halt_reasons(self) -> tuple[str, ...]:
        """Human-readable reasons why the issue is halted or restricted, most severe first.

        Only :data:`REASON_TRADING_HALT` means the exchange has stopped trading; the other reasons
        mark issues that still trade but under restrictions or at risk of delisting. A sync can
        take ``not is_trading_halted`` (optionally also excluding liquidation trading) as
        tradable and ``"; ".join(halt_reasons)`` as the reason text.

        Returns:
            A tuple of the ``REASON_*`` strings that apply, empty if none.
        """
        reasons: list[str] = []
        if self.is_trading_halted:
            reasons.append(REASON_TRADING_HALT)
        if self.is_liquidation_trading:
            reasons.append(REASON_LIQUIDATION_TRADING)
        if self.is_administrative:
            reasons.append(REASON_ADMINISTRATIVE)
        if self.is_investment_risk:
            reasons.append(REASON_INVESTMENT_RISK)
        if self.is_investment_warning:
            reasons.append(REASON_INVESTMENT_WARNING)
        if self.is_unfaithful_disclosure:
            reasons.append(REASON_UNFAITHFUL_DISCLOSURE)
        if self.is_short_term_overheated:
            reasons.append(REASON_SHORT_TERM_OVERHEAT)
        if self.is_investment_attention:
            reasons.append(REASON_INVESTMENT_ATTENTION)
        return tuple(reasons)
