r"""Parser and writer for the KIS stock master files (``kospi_code.mst`` and friends).

Korea Investment & Securities publishes one master file per domestic market, zipped, at
``https://new.real.download.dws.co.kr/common/master/{kospi,kosdaq,konex}_code.mst.zip``. Each zip
holds a single member (``kospi_code.mst`` …). Sources for everything below:
``shared/brokers/kis_kiwoom.md`` section 1.8 "Stock master files" (field tables taken from KIS's
official ``stocks_info/kis_kospi_code_mst.py`` / ``kis_kosdaq_code_mst.py`` and the C headers
``종목마스터정보(코스피).h`` / ``(코스닥).h``) and, for KONEX, the official
``stocks_info/kis_konex_code_mst.py`` and ``종목마스터정보(코넥스).h`` in
``koreainvestment/open-trading-api``.

Format
------
cp949 text, one record a line, every line terminated by exactly one ``\n`` (the last one too).
Each line is fixed-width **in bytes**::

    bytes  0..8    short code (단축코드), 9 bytes, left-aligned, space-padded ("005930   ")
    bytes  9..20   standard code (표준코드 / ISIN), 12 bytes ("KR7005930003")
    bytes 21..60   Korean name (한글종목명), 40 bytes of cp949, space-padded on the right
    bytes 61..     tail of fixed-width ASCII fields: 227 bytes (KOSPI), 221 (KOSDAQ), 184 (KONEX)

so a KOSPI line is 288 bytes plus the newline, a KOSDAQ line 282 and a KONEX line 245.

Why the tail is sliced from the end
-----------------------------------
The official parser decodes the file as cp949 *text* and then works in characters. A Hangul
syllable is two bytes in cp949 but one character once decoded, so the name occupies between 20
and 40 characters depending on how much of it is Korean: the position of the tail, counted in
characters from the start of the line, varies from record to record. Counting from the end does
not vary, because the tail is pure ASCII (one byte == one character). This module does the same
(``text[-tail_width:]``) and additionally checks that the line has exactly the expected number of
bytes, so that a truncated or otherwise damaged line is reported instead of being sliced into
plausible-looking garbage.

Which records are stocks
------------------------
The KOSPI file also lists funds/beneficiary certificates (``F…``, 9 characters), subscription
warrants and rights (``J…``, 9 characters) and ETNs (``Q…``, 7 characters). Only short codes
matching ``^[0-9][0-9A-Z]{5}$`` (six characters, a digit first; since 2024 KRX also issues codes
with letters such as ``0001A0``) are returned as :attr:`MasterParseResult.records`; the others are
parsed and validated too, counted in :attr:`MasterParseResult.skipped_by_prefix` and kept in
:attr:`MasterParseResult.all_records` so that a file can be rewritten byte for byte.

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

Raw field values
----------------
:attr:`MasterRecord.fields` keeps every tail field exactly as it is in the file (full width,
padding included, e.g. ``"000259000"``) so that a record is written back byte for byte; the typed
properties of :class:`MasterRecord` give the parsed values. When a record is built or changed in
code, shorter values are padded the way the files pad them (see :func:`_pad_value`).
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import re
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Final

__all__ = [
    "HEAD_WIDTH",
    "LAYOUTS",
    "MARKETS",
    "MEMBER_NAMES",
    "NAME_WIDTH",
    "REASON_ADMINISTRATIVE",
    "REASON_INVESTMENT_ATTENTION",
    "REASON_INVESTMENT_RISK",
    "REASON_INVESTMENT_WARNING",
    "REASON_LIQUIDATION_TRADING",
    "REASON_SHORT_TERM_OVERHEAT",
    "REASON_TRADING_HALT",
    "REASON_UNFAITHFUL_DISCLOSURE",
    "STANDARD_CODE_WIDTH",
    "SHORT_CODE_WIDTH",
    "STOCK_CODE_RE",
    "TAIL_WIDTHS",
    "MasterFileError",
    "MasterParseResult",
    "MasterRecord",
    "format_record",
    "make_record",
    "parse_master",
    "read_master_zip",
    "write_master",
    "write_master_zip",
]

ENCODING: Final = "cp949"
SHORT_CODE_WIDTH: Final = 9
STANDARD_CODE_WIDTH: Final = 12
NAME_WIDTH: Final = 40
HEAD_WIDTH: Final = SHORT_CODE_WIDTH + STANDARD_CODE_WIDTH + NAME_WIDTH  # 61 bytes

#: Short codes of ordinary listed issues (stocks, ETFs, REITs, …): six characters, digit first.
STOCK_CODE_RE: Final = re.compile(r"[0-9][0-9A-Z]{5}")

MARKETS: Final = ("KOSPI", "KOSDAQ", "KONEX")

#: Member name inside the zip KIS publishes, per market.
MEMBER_NAMES: Final[Mapping[str, str]] = MappingProxyType(
    {"KOSPI": "kospi_code.mst", "KOSDAQ": "kosdaq_code.mst", "KONEX": "konex_code.mst"}
)

# A master file is well under 1 MiB; refuse absurd zip members rather than inflating a zip bomb.
_MAX_MEMBER_BYTES: Final = 64 * 1024 * 1024

# Fixed zip timestamp so that write_master_zip is deterministic (handy for snapshots in tests).
_ZIP_DATE_TIME: Final = (1980, 1, 1, 0, 0, 0)

# --- layouts ---------------------------------------------------------------------------------
# (struct field name, width) in file order. Names are the C struct member names of KIS's
# headers; widths are the official parsers' ``field_specs`` (kis_kiwoom.md §1.8 tables).

_KOSPI_LAYOUT: Final[tuple[tuple[str, int], ...]] = (
    ("scrt_grp_cls_code", 2),  # 증권그룹구분코드: ST, EF, RT, MF, IF, DR, FS, EN, BC, …
    ("avls_scal_cls_code", 1),  # 시가총액 규모: 0 제외 1 대 2 중 3 소
    ("bstp_larg_div_code", 4),  # 지수업종 대분류
    ("bstp_medm_div_code", 4),  # 지수업종 중분류
    ("bstp_smal_div_code", 4),  # 지수업종 소분류
    ("mnin_cls_code_yn", 1),  # 제조업
    ("low_current_yn", 1),  # 저유동성종목
    ("sprn_strr_nmix_issu_yn", 1),  # 지배구조지수종목
    ("kospi200_apnt_cls_code", 1),  # KOSPI200 섹터업종
    ("kospi100_issu_yn", 1),
    ("kospi50_issu_yn", 1),
    ("krx_issu_yn", 1),
    ("etp_prod_cls_code", 1),  # ETP 상품구분
    ("elw_pblc_yn", 1),  # ELW 발행
    ("krx100_issu_yn", 1),
    ("krx_car_yn", 1),
    ("krx_smcn_yn", 1),
    ("krx_bio_yn", 1),
    ("krx_bank_yn", 1),
    ("etpr_undt_objt_co_yn", 1),  # 기업인수목적회사 (SPAC)
    ("krx_enrg_chms_yn", 1),
    ("krx_stel_yn", 1),
    ("short_over_cls_code", 1),  # 단기과열: 0 없음 1 지정예고 2 지정 3 지정연장
    ("krx_medi_cmnc_yn", 1),
    ("krx_cnst_yn", 1),
    ("krx_fnnc_svc_yn", 1),  # deleted 2015-12-18, kept as filler
    ("krx_scrt_yn", 1),
    ("krx_ship_yn", 1),
    ("krx_insu_yn", 1),
    ("krx_trnp_yn", 1),
    ("sri_nmix_yn", 1),
    ("stck_sdpr", 9),  # 기준가 (KRW)
    ("frml_mrkt_deal_qty_unit", 5),  # 정규시장 매매수량단위
    ("ovtm_mrkt_deal_qty_unit", 5),  # 시간외 매매수량단위
    ("trht_yn", 1),  # 거래정지
    ("sltr_yn", 1),  # 정리매매
    ("mang_issu_yn", 1),  # 관리종목
    ("mrkt_alrm_cls_code", 2),  # 시장경고: 00 없음 01 투자주의 02 투자경고 03 투자위험
    ("mrkt_alrm_risk_adnt_yn", 1),  # 시장경고위험 예고
    ("insn_pbnt_yn", 1),  # 불성실공시
    ("byps_lstn_yn", 1),  # 우회상장
    ("flng_cls_code", 2),  # 락구분
    ("fcam_mod_cls_code", 2),  # 액면가 변경
    ("icic_cls_code", 2),  # 증자구분
    ("marg_rate", 3),  # 증거금비율 (%)
    ("crdt_able", 1),  # 신용주문 가능
    ("crdt_days", 3),  # 신용기간
    ("prdy_vol", 12),  # 전일거래량
    ("stck_fcam", 12),  # 액면가 (KRW)
    ("stck_lstn_date", 8),  # 상장일자 YYYYMMDD
    ("lstn_stcn", 15),  # 상장주수 (천주)
    ("cpfn", 21),  # 자본금 (KRW)
    ("stac_month", 2),  # 결산월
    ("po_prc", 7),  # 공모가
    ("prst_cls_code", 1),  # 우선주: 0 보통주 1 구형 2 신형
    ("ssts_hot_yn", 1),  # 공매도과열
    ("stange_runup_yn", 1),  # 이상급등
    ("krx300_issu_yn", 1),
    ("kospi_issu_yn", 1),
    ("sale_account", 9),  # 매출액
    ("bsop_prfi", 9),  # 영업이익
    ("op_prfi", 9),  # 경상이익
    ("thtr_ntin", 5),  # 당기순이익
    ("roe", 9),
    ("base_date", 8),  # 기준년월
    ("prdy_avls_scal", 9),  # 전일기준 시가총액 (억원)
    ("grp_code", 3),  # 그룹사코드
    ("co_crdt_limt_over_yn", 1),  # 회사신용한도초과
    ("secu_lend_able_yn", 1),  # 담보대출가능
    ("stln_able_yn", 1),  # 대주가능
)

_KOSDAQ_LAYOUT: Final[tuple[tuple[str, int], ...]] = (
    ("scrt_grp_cls_code", 2),
    ("avls_scal_cls_code", 1),
    ("bstp_larg_div_code", 4),
    ("bstp_medm_div_code", 4),
    ("bstp_smal_div_code", 4),
    ("vntr_issu_yn", 1),  # 벤처기업
    ("low_current_yn", 1),
    ("krx_issu_yn", 1),
    ("etp_prod_cls_code", 1),
    ("krx100_issu_yn", 1),
    ("krx_car_yn", 1),
    ("krx_smcn_yn", 1),
    ("krx_bio_yn", 1),
    ("krx_bank_yn", 1),
    ("etpr_undt_objt_co_yn", 1),
    ("krx_enrg_chms_yn", 1),
    ("krx_stel_yn", 1),
    ("short_over_cls_code", 1),
    ("krx_medi_cmnc_yn", 1),
    ("krx_cnst_yn", 1),
    ("invt_alrm_yn", 1),  # (코스닥) 투자주의환기종목
    ("krx_scrt_yn", 1),
    ("krx_ship_yn", 1),
    ("krx_insu_yn", 1),
    ("krx_trnp_yn", 1),
    ("ksq150_nmix_yn", 1),  # KOSDAQ150
    ("stck_sdpr", 9),
    ("frml_mrkt_deal_qty_unit", 5),
    ("ovtm_mrkt_deal_qty_unit", 5),
    ("trht_yn", 1),
    ("sltr_yn", 1),
    ("mang_issu_yn", 1),
    ("mrkt_alrm_cls_code", 2),
    ("mrkt_alrm_risk_adnt_yn", 1),
    ("insn_pbnt_yn", 1),
    ("byps_lstn_yn", 1),
    ("flng_cls_code", 2),
    ("fcam_mod_cls_code", 2),
    ("icic_cls_code", 2),
    ("marg_rate", 3),
    ("crdt_able", 1),
    ("crdt_days", 3),
    ("prdy_vol", 12),
    ("stck_fcam", 12),
    ("stck_lstn_date", 8),
    ("lstn_stcn", 15),
    ("cpfn", 21),
    ("stac_month", 2),
    ("po_prc", 7),
    ("prst_cls_code", 1),
    ("ssts_hot_yn", 1),
    ("stange_runup_yn", 1),
    ("krx300_issu_yn", 1),
    ("sale_account", 9),
    ("bsop_prfi", 9),
    ("op_prfi", 9),
    ("thtr_ntin", 5),  # 단기순이익
    ("roe", 9),
    ("base_date", 8),
    ("prdy_avls_scal", 9),
    ("grp_code", 3),
    ("co_crdt_limt_over_yn", 1),
    ("secu_lend_able_yn", 1),
    ("stln_able_yn", 1),
)

# KONEX: section 1.8 only notes that KONEX "uses a different parser". The layout below is the
# ``ST_KNX_CODE`` struct of KIS's ``종목마스터정보(코넥스).h``; its widths add up to 184 and agree
# with the negative offsets of the official ``kis_konex_code_mst.py`` (``row[-184:-182]`` is the
# group code, ``row[-1:]`` the last flag). The KONEX tail has no index-sector, market-cap-class or
# index-membership fields and no ``grp_code``. Not checked against a real konex_code.mst (none in
# shared/data); the name width is assumed to be 40 bytes like the other two markets
# (``SZ_KORNAME`` in all three headers).
_KONEX_LAYOUT: Final[tuple[tuple[str, int], ...]] = (
    ("scrt_grp_cls_code", 2),  # KN: 코넥스
    ("stck_sdpr", 9),
    ("frml_mrkt_deal_qty_unit", 5),
    ("ovtm_mrkt_deal_qty_unit", 5),
    ("trht_yn", 1),
    ("sltr_yn", 1),
    ("mang_issu_yn", 1),
    ("mrkt_alrm_cls_code", 2),
    ("mrkt_alrm_risk_adnt_yn", 1),
    ("insn_pbnt_yn", 1),
    ("byps_lstn_yn", 1),
    ("flng_cls_code", 2),
    ("fcam_mod_cls_code", 2),
    ("icic_cls_code", 2),
    ("marg_rate", 3),
    ("crdt_able", 1),
    ("crdt_days", 3),
    ("prdy_vol", 12),
    ("stck_fcam", 12),
    ("stck_lstn_date", 8),
    ("lstn_stcn", 15),
    ("cpfn", 21),
    ("stac_month", 2),
    ("po_prc", 7),
    ("prst_cls_code", 1),
    ("ssts_hot_yn", 1),
    ("stange_runup_yn", 1),
    ("krx300_issu_yn", 1),  # "실제적으로 필러" (a filler in practice)
    ("sale_account", 9),
    ("bsop_prfi", 9),
    ("op_prfi", 9),
    ("thtr_ntin", 5),
    ("roe", 9),
    ("base_date", 8),
    ("prdy_avls_scal", 9),
    ("co_crdt_limt_over_yn", 1),
    ("secu_lend_able_yn", 1),
    ("stln_able_yn", 1),
)

#: Tail layout per market: ``(field name, width)`` in file order.
LAYOUTS: Final[Mapping[str, tuple[tuple[str, int], ...]]] = MappingProxyType(
    {"KOSPI": _KOSPI_LAYOUT, "KOSDAQ": _KOSDAQ_LAYOUT, "KONEX": _KONEX_LAYOUT}
)

#: Tail width in bytes per market (227, 221, 184).
TAIL_WIDTHS: Final[Mapping[str, int]] = MappingProxyType(
    {market: sum(width for _, width in layout) for market, layout in LAYOUTS.items()}
)

# Field name -> (offset, width) inside the tail, per market.
_OFFSETS: Final[dict[str, dict[str, tuple[int, int]]]] = {}
for _market, _layout in LAYOUTS.items():
    _offset = 0
    _OFFSETS[_market] = {}
    for _name, _width in _layout:
        _OFFSETS[_market][_name] = (_offset, _width)
        _offset += _width
del _market, _layout, _offset, _name, _width

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

# What zipfile/zlib raise for garbage, truncated or corrupt archives (CRC errors are BadZipFile;
# a damaged deflate stream is zlib.error; an unknown compression method NotImplementedError).
_ZIP_ERRORS: Final = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
)

_NUMERIC_RE: Final = re.compile(r"-?[0-9]+(\.[0-9]+)?")


class MasterFileError(ValueError):
    """A master file (or zip, or record) is malformed; the message says where and why."""


def _normalize_market(market: str) -> str:
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
        market = _normalize_market(self.market)
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


@dataclass(frozen=True)
class MasterParseResult:
    """What :func:`parse_master` found in one file.

    Attributes:
        market: The market the file was parsed as.
        records: Records whose short code matches :data:`STOCK_CODE_RE`, in file order.
        all_records: Every record in file order, the non-stock ones (F…, J…, Q…) included; pass
            this to :func:`write_master` to reproduce the whole file.
        skipped_by_prefix: Count of non-stock records by the first character of their short code
            (real KOSPI file: ``{"F": 75, "J": 9, "Q": 386}``).
    """

    market: str
    records: list[MasterRecord]
    all_records: list[MasterRecord]
    skipped_by_prefix: dict[str, int]

    @property
    def skipped(self) -> int:
        """Number of non-stock records left out of :attr:`records`."""
        return len(self.all_records) - len(self.records)

    def by_code(self) -> dict[str, MasterRecord]:
        """Return the stock records keyed by short code."""
        return {record.short_code: record for record in self.records}


def _default_fields(market: str) -> dict[str, str]:
    """Return plausible defaults for every tail field of a market (an ordinary, quiet stock)."""
    specific = {
        "scrt_grp_cls_code": "ST",
        "avls_scal_cls_code": "3",
        "mrkt_alrm_cls_code": "00",
        "flng_cls_code": "00",
        "fcam_mod_cls_code": "00",
        "icic_cls_code": "00",
        "short_over_cls_code": "0",
        "prst_cls_code": "0",
        "marg_rate": "100",
        "crdt_days": "000",
        "frml_mrkt_deal_qty_unit": "1",
        "ovtm_mrkt_deal_qty_unit": "1",
        "stck_fcam": "500",
        "stac_month": "12",
        "kospi200_apnt_cls_code": "0",
        "etp_prod_cls_code": " ",
        "po_prc": " ",
        "ssts_hot_yn": " ",
        "mnin_cls_code_yn": " ",
        "grp_code": " ",
        "roe": "0.00",
    }
    if market == "KONEX":
        specific["scrt_grp_cls_code"] = "KN"
    defaults: dict[str, str] = {}
    for name, width in LAYOUTS[market]:
        if name in specific:
            defaults[name] = specific[name]
        elif name.endswith("_yn") or name == "crdt_able":
            defaults[name] = "N"
        else:
            # Codes, amounts, dates: zeros, as the real files have for "none".
            defaults[name] = "0" * width
    return defaults


def make_record(
    short_code: str,
    standard_code: str,
    name: str,
    market: str,
    **fields: str,
) -> MasterRecord:
    """Build a record from defaults for an ordinary stock, overriding some tail fields.

    Meant for simulators and tests: ``make_record("005930", "KR7005930003", "삼성전자", "KOSPI",
    stck_sdpr="70000", stck_lstn_date="19750611", prdy_avls_scal="4180000")``.

    Args:
        short_code: Short code.
        standard_code: Standard code (ISIN).
        name: Korean name, at most 40 bytes in cp949.
        market: "KOSPI", "KOSDAQ" or "KONEX".
        **fields: Tail fields to set (KIS struct names); shorter values are padded.

    Returns:
        The record.

    Raises:
        MasterFileError: If a field name is unknown for the market or a value does not fit.
    """
    normalized = _normalize_market(market)
    return MasterRecord(
        short_code=short_code,
        standard_code=standard_code,
        name=name,
        market=normalized,
        fields={**_default_fields(normalized), **fields},
    )


def _parse_line(raw: bytes, line_no: int, market: str) -> MasterRecord:
    """Parse one line (without its newline).

    Args:
        raw: The line's bytes.
        line_no: 1-based line number, for error messages.
        market: Canonical market name.

    Returns:
        The record.

    Raises:
        MasterFileError: If the line is malformed; the message starts with the line number.
    """
    tail_width = TAIL_WIDTHS[market]
    expected = HEAD_WIDTH + tail_width
    if raw.endswith(b"\r"):
        raise MasterFileError(f"line {line_no}: CRLF line ending; master files use LF only")
    if len(raw) != expected:
        raise MasterFileError(
            f"line {line_no}: {len(raw)} bytes, expected {expected} "
            f"({SHORT_CODE_WIDTH}+{STANDARD_CODE_WIDTH}+{NAME_WIDTH}+{tail_width}) for {market}"
        )
    try:
        text = raw.decode(ENCODING)
    except UnicodeDecodeError as exc:
        raise MasterFileError(f"line {line_no}: not valid cp949: {exc}") from exc

    # Slice from the end in characters, like the official parser: the name is variable-width in
    # characters, the tail is not.
    tail = text[-tail_width:]
    head = text[:-tail_width]
    if not tail.isascii() or len(head.encode(ENCODING)) != HEAD_WIDTH:
        # Non-ASCII in the tail means the fields are shifted; byte and character slicing disagree.
        raise MasterFileError(f"line {line_no}: the {tail_width}-byte tail is not ASCII")
    codes = head[: SHORT_CODE_WIDTH + STANDARD_CODE_WIDTH]
    if not codes.isascii():
        raise MasterFileError(f"line {line_no}: short/standard code is not ASCII")

    fields = {
        name: tail[offset : offset + width] for name, (offset, width) in _OFFSETS[market].items()
    }
    try:
        return MasterRecord(
            short_code=codes[:SHORT_CODE_WIDTH],
            standard_code=codes[SHORT_CODE_WIDTH:],
            name=head[SHORT_CODE_WIDTH + STANDARD_CODE_WIDTH :],
            market=market,
            fields=fields,
        )
    except MasterFileError as exc:
        raise MasterFileError(f"line {line_no}: {exc}") from exc


def parse_master(data: bytes, market: str) -> MasterParseResult:
    """Parse the bytes of ``kospi_code.mst`` / ``kosdaq_code.mst`` / ``konex_code.mst``.

    Every line is validated; the first malformed one aborts the parse, so that a damaged file is
    never half-used (a sync would otherwise delist every stock after the damage).

    Args:
        data: The file's bytes (cp949).
        market: "KOSPI", "KOSDAQ" or "KONEX" (case-insensitive); decides the tail layout.

    Returns:
        The records; non-stock short codes are counted in ``skipped_by_prefix``.

    Raises:
        MasterFileError: If the file is empty, does not end with a newline (truncated), has a
            line of the wrong length, undecodable bytes, a non-ASCII tail or a duplicate short
            code; the message names the line number.
    """
    normalized = _normalize_market(market)
    if not data:
        raise MasterFileError(f"{normalized} master file is empty")
    lines = data.split(b"\n")
    if lines[-1]:
        # The official parser needs the final newline too; its absence means truncation.
        raise MasterFileError(f"line {len(lines)}: no newline at the end (truncated file?)")
    lines.pop()

    records: list[MasterRecord] = []
    all_records: list[MasterRecord] = []
    skipped_by_prefix: dict[str, int] = {}
    first_seen: dict[str, int] = {}
    for line_no, raw in enumerate(lines, start=1):
        record = _parse_line(raw, line_no, normalized)
        if record.short_code in first_seen:
            raise MasterFileError(
                f"line {line_no}: duplicate short code {record.short_code!r} "
                f"(first on line {first_seen[record.short_code]})"
            )
        first_seen[record.short_code] = line_no
        all_records.append(record)
        if record.is_stock_code:
            records.append(record)
        else:
            prefix = record.short_code[0]
            skipped_by_prefix[prefix] = skipped_by_prefix.get(prefix, 0) + 1
    return MasterParseResult(
        market=normalized,
        records=records,
        all_records=all_records,
        skipped_by_prefix=dict(sorted(skipped_by_prefix.items())),
    )


def read_master_zip(data: bytes, market: str) -> MasterParseResult:
    """Open the zip KIS publishes (``kospi_code.mst.zip`` …) and parse its master file.

    The member is ``{market}_code.mst`` (lower case); a zip with a single member of another name
    is accepted too.

    Args:
        data: The zip's bytes.
        market: "KOSPI", "KOSDAQ" or "KONEX".

    Returns:
        As :func:`parse_master`.

    Raises:
        MasterFileError: If the zip is not a zip, is truncated or corrupt (CRC), has no suitable
            member, or the member is not a valid master file.
    """
    normalized = _normalize_market(market)
    wanted = MEMBER_NAMES[normalized]
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [info for info in archive.infolist() if not info.is_dir()]
            by_name = {info.filename: info for info in members}
            if wanted in by_name:
                member = by_name[wanted]
            elif len(members) == 1:
                member = members[0]
            else:
                raise MasterFileError(
                    f"zip has no member {wanted!r} (members: {sorted(by_name) or 'none'})"
                )
            if member.file_size > _MAX_MEMBER_BYTES:
                raise MasterFileError(
                    f"zip member {member.filename!r} is {member.file_size} bytes; too large"
                )
            content = archive.read(member)  # checks the CRC
    except MasterFileError:
        raise
    except _ZIP_ERRORS as exc:
        raise MasterFileError(f"{normalized} master zip is unreadable: {exc}") from exc
    return parse_master(content, normalized)


def format_record(record: MasterRecord) -> bytes:
    """Encode one record as a master file line, newline included.

    Args:
        record: The record; its market decides the tail layout.

    Returns:
        ``HEAD_WIDTH + TAIL_WIDTHS[market] + 1`` bytes of cp949.
    """
    # MasterRecord validated widths and encodings on construction, so padding cannot overflow.
    head = (
        record.short_code.ljust(SHORT_CODE_WIDTH).encode("ascii")
        + record.standard_code.ljust(STANDARD_CODE_WIDTH).encode("ascii")
        + record.name.encode(ENCODING).ljust(NAME_WIDTH, b" ")
    )
    tail = "".join(record.fields[name] for name, _ in LAYOUTS[record.market]).encode("ascii")
    return head + tail + b"\n"


def write_master(records: Iterable[MasterRecord], market: str) -> bytes:
    """Encode records as a master file, in the given order.

    ``write_master(parse_master(raw, m).all_records, m) == raw`` for the real KOSPI and KOSDAQ
    files, byte for byte: every name there is left-aligned without leading spaces, and every tail
    is kept raw. A record whose name had leading spaces (none in the real files) would come back
    without them.

    Args:
        records: Records of ``market``; duplicates are not checked here (parse_master rejects
            them, which tests of a sync may want to provoke).
        market: "KOSPI", "KOSDAQ" or "KONEX".

    Returns:
        The file's bytes; empty if there are no records (which :func:`parse_master` rejects).

    Raises:
        MasterFileError: If a record belongs to another market.
    """
    normalized = _normalize_market(market)
    chunks: list[bytes] = []
    for record in records:
        if record.market != normalized:
            raise MasterFileError(
                f"{record.short_code}: a {record.market} record cannot go into a {normalized} file"
            )
        chunks.append(format_record(record))
    return b"".join(chunks)


def write_master_zip(
    records: Iterable[MasterRecord],
    market: str,
    *,
    date_time: tuple[int, int, int, int, int, int] = _ZIP_DATE_TIME,
) -> bytes:
    """Encode records as the zip KIS publishes: one deflated member ``{market}_code.mst``.

    Args:
        records: Records of ``market``.
        market: "KOSPI", "KOSDAQ" or "KONEX".
        date_time: The member's timestamp; fixed by default so the output is deterministic.

    Returns:
        The zip's bytes.

    Raises:
        MasterFileError: If a record belongs to another market.
    """
    normalized = _normalize_market(market)
    content = write_master(records, normalized)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo(MEMBER_NAMES[normalized], date_time=date_time)
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, content)
    return buffer.getvalue()
