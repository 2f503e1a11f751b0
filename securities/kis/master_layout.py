r"""Data table: the byte layout of the KIS stock master files, one row per field.

This module holds no logic beyond assembling the table; :mod:`securities.kis.master_file` parses
and writes the files with it and re-exports every public name here.

Sources
-------
Korea Investment & Securities publishes one master file per domestic market, zipped, at
``https://new.real.download.dws.co.kr/common/master/{kospi,kosdaq,konex}_code.mst.zip``; each zip
holds a single member (``kospi_code.mst`` …). The field tables are ``shared/brokers/kis_kiwoom.md``
section 1.8 "Stock master files", taken from KIS's official ``stocks_info/kis_kospi_code_mst.py``
/ ``kis_kosdaq_code_mst.py`` and the C headers ``종목마스터정보(코스피).h`` / ``(코스닥).h``, and,
for KONEX, the official ``stocks_info/kis_konex_code_mst.py`` and ``종목마스터정보(코넥스).h``, all
in ``koreainvestment/open-trading-api``. Field names are the C struct member names of the headers;
widths are the official parsers' ``field_specs``.

Format
------
cp949 text, one record a line, every line terminated by exactly one ``\n`` (the last one too).
Each line is fixed-width **in bytes**::

    bytes  0..8    short code (단축코드), 9 bytes, left-aligned, space-padded ("005930   ")
    bytes  9..20   standard code (표준코드 / ISIN), 12 bytes ("KR7005930003")
    bytes 21..60   Korean name (한글종목명), 40 bytes of cp949, space-padded on the right
    bytes 61..     tail of fixed-width ASCII fields: 227 bytes (KOSPI), 221 (KOSDAQ), 184 (KONEX)

so a KOSPI line is 288 bytes plus the newline, a KOSDAQ line 282 and a KONEX line 245.

KONEX
-----
Section 1.8 only notes that KONEX "uses a different parser". Its tail is the ``ST_KNX_CODE``
struct of ``종목마스터정보(코넥스).h``; the widths add up to 184 and agree with the negative
offsets of the official ``kis_konex_code_mst.py`` (``row[-184:-182]`` is the group code,
``row[-1:]`` the last flag). It has no index-sector, market-cap-class or index-membership fields
and no ``grp_code``. Not checked against a real ``konex_code.mst`` (none in shared/data); the name
width is assumed to be 40 bytes like the other two markets (``SZ_KORNAME`` in all three headers).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = [
    "ENCODING",
    "HEAD_WIDTH",
    "LAYOUTS",
    "MARKETS",
    "MEMBER_NAMES",
    "NAME_WIDTH",
    "SHORT_CODE_WIDTH",
    "STANDARD_CODE_WIDTH",
    "STOCK_CODE_RE",
    "TAIL_WIDTHS",
]

ENCODING: Final = "cp949"
SHORT_CODE_WIDTH: Final = 9
STANDARD_CODE_WIDTH: Final = 12
NAME_WIDTH: Final = 40
HEAD_WIDTH: Final = SHORT_CODE_WIDTH + STANDARD_CODE_WIDTH + NAME_WIDTH  # 61 bytes

#: Short codes of ordinary listed issues (stocks, ETFs, REITs, …): six characters, digit first.
#: Since 2024 KRX also issues codes with letters such as ``0001A0``.
STOCK_CODE_RE: Final = re.compile(r"[0-9][0-9A-Z]{5}")

MARKETS: Final = ("KOSPI", "KOSDAQ", "KONEX")

#: Member name inside the zip KIS publishes, per market.
MEMBER_NAMES: Final[Mapping[str, str]] = MappingProxyType(
    {"KOSPI": "kospi_code.mst", "KOSDAQ": "kosdaq_code.mst", "KONEX": "konex_code.mst"}
)

# Which markets' tails have a field.
_ALL: Final = frozenset(MARKETS)
_KOSPI_KOSDAQ: Final = frozenset({"KOSPI", "KOSDAQ"})
_KOSPI: Final = frozenset({"KOSPI"})
_KOSDAQ: Final = frozenset({"KOSDAQ"})

# Every tail field once: (struct field name, width in bytes, markets that have it), in file order.
# A market's tail is the rows that name it, in this order; rows of different markets that stand
# next to each other fill the same slot (e.g. mnin_cls_code_yn on KOSPI, vntr_issu_yn on KOSDAQ).
_FIELDS: Final[tuple[tuple[str, int, frozenset[str]], ...]] = (
    # 증권그룹구분코드: ST, EF, RT, MF, IF, DR, FS, EN, BC, …; KN (코넥스) on KONEX
    ("scrt_grp_cls_code", 2, _ALL),
    ("avls_scal_cls_code", 1, _KOSPI_KOSDAQ),  # 시가총액 규모: 0 제외 1 대 2 중 3 소
    ("bstp_larg_div_code", 4, _KOSPI_KOSDAQ),  # 지수업종 대분류
    ("bstp_medm_div_code", 4, _KOSPI_KOSDAQ),  # 지수업종 중분류
    ("bstp_smal_div_code", 4, _KOSPI_KOSDAQ),  # 지수업종 소분류
    ("mnin_cls_code_yn", 1, _KOSPI),  # 제조업
    ("vntr_issu_yn", 1, _KOSDAQ),  # 벤처기업
    ("low_current_yn", 1, _KOSPI_KOSDAQ),  # 저유동성종목
    ("sprn_strr_nmix_issu_yn", 1, _KOSPI),  # 지배구조지수종목
    ("kospi200_apnt_cls_code", 1, _KOSPI),  # KOSPI200 섹터업종
    ("kospi100_issu_yn", 1, _KOSPI),
    ("kospi50_issu_yn", 1, _KOSPI),
    ("krx_issu_yn", 1, _KOSPI_KOSDAQ),
    ("etp_prod_cls_code", 1, _KOSPI_KOSDAQ),  # ETP 상품구분
    ("elw_pblc_yn", 1, _KOSPI),  # ELW 발행
    ("krx100_issu_yn", 1, _KOSPI_KOSDAQ),
    ("krx_car_yn", 1, _KOSPI_KOSDAQ),
    ("krx_smcn_yn", 1, _KOSPI_KOSDAQ),
    ("krx_bio_yn", 1, _KOSPI_KOSDAQ),
    ("krx_bank_yn", 1, _KOSPI_KOSDAQ),
    ("etpr_undt_objt_co_yn", 1, _KOSPI_KOSDAQ),  # 기업인수목적회사 (SPAC)
    ("krx_enrg_chms_yn", 1, _KOSPI_KOSDAQ),
    ("krx_stel_yn", 1, _KOSPI_KOSDAQ),
    ("short_over_cls_code", 1, _KOSPI_KOSDAQ),  # 단기과열: 0 없음 1 지정예고 2 지정 3 지정연장
    ("krx_medi_cmnc_yn", 1, _KOSPI_KOSDAQ),
    ("krx_cnst_yn", 1, _KOSPI_KOSDAQ),
    ("krx_fnnc_svc_yn", 1, _KOSPI),  # deleted 2015-12-18, kept as filler
    ("invt_alrm_yn", 1, _KOSDAQ),  # (코스닥) 투자주의환기종목
    ("krx_scrt_yn", 1, _KOSPI_KOSDAQ),
    ("krx_ship_yn", 1, _KOSPI_KOSDAQ),
    ("krx_insu_yn", 1, _KOSPI_KOSDAQ),
    ("krx_trnp_yn", 1, _KOSPI_KOSDAQ),
    ("sri_nmix_yn", 1, _KOSPI),
    ("ksq150_nmix_yn", 1, _KOSDAQ),  # KOSDAQ150
    ("stck_sdpr", 9, _ALL),  # 기준가 (KRW)
    ("frml_mrkt_deal_qty_unit", 5, _ALL),  # 정규시장 매매수량단위
    ("ovtm_mrkt_deal_qty_unit", 5, _ALL),  # 시간외 매매수량단위
    ("trht_yn", 1, _ALL),  # 거래정지
    ("sltr_yn", 1, _ALL),  # 정리매매
    ("mang_issu_yn", 1, _ALL),  # 관리종목
    ("mrkt_alrm_cls_code", 2, _ALL),  # 시장경고: 00 없음 01 투자주의 02 투자경고 03 투자위험
    ("mrkt_alrm_risk_adnt_yn", 1, _ALL),  # 시장경고위험 예고
    ("insn_pbnt_yn", 1, _ALL),  # 불성실공시
    ("byps_lstn_yn", 1, _ALL),  # 우회상장
    ("flng_cls_code", 2, _ALL),  # 락구분
    ("fcam_mod_cls_code", 2, _ALL),  # 액면가 변경
    ("icic_cls_code", 2, _ALL),  # 증자구분
    ("marg_rate", 3, _ALL),  # 증거금비율 (%)
    ("crdt_able", 1, _ALL),  # 신용주문 가능
    ("crdt_days", 3, _ALL),  # 신용기간
    ("prdy_vol", 12, _ALL),  # 전일거래량
    ("stck_fcam", 12, _ALL),  # 액면가 (KRW)
    ("stck_lstn_date", 8, _ALL),  # 상장일자 YYYYMMDD
    ("lstn_stcn", 15, _ALL),  # 상장주수 (천주)
    ("cpfn", 21, _ALL),  # 자본금 (KRW)
    ("stac_month", 2, _ALL),  # 결산월
    ("po_prc", 7, _ALL),  # 공모가
    ("prst_cls_code", 1, _ALL),  # 우선주: 0 보통주 1 구형 2 신형
    ("ssts_hot_yn", 1, _ALL),  # 공매도과열
    ("stange_runup_yn", 1, _ALL),  # 이상급등
    ("krx300_issu_yn", 1, _ALL),  # KONEX header: "실제적으로 필러" (a filler in practice)
    ("kospi_issu_yn", 1, _KOSPI),
    ("sale_account", 9, _ALL),  # 매출액
    ("bsop_prfi", 9, _ALL),  # 영업이익
    ("op_prfi", 9, _ALL),  # 경상이익
    ("thtr_ntin", 5, _ALL),  # 당기순이익 (the KOSDAQ header says 단기순이익)
    ("roe", 9, _ALL),
    ("base_date", 8, _ALL),  # 기준년월
    ("prdy_avls_scal", 9, _ALL),  # 전일기준 시가총액 (억원)
    ("grp_code", 3, _KOSPI_KOSDAQ),  # 그룹사코드
    ("co_crdt_limt_over_yn", 1, _ALL),  # 회사신용한도초과
    ("secu_lend_able_yn", 1, _ALL),  # 담보대출가능
    ("stln_able_yn", 1, _ALL),  # 대주가능
)

#: Tail layout per market: ``(field name, width)`` in file order.
LAYOUTS: Final[Mapping[str, tuple[tuple[str, int], ...]]] = MappingProxyType(
    {
        market: tuple((name, width) for name, width, markets in _FIELDS if market in markets)
        for market in MARKETS
    }
)

#: Tail width in bytes per market (227, 221, 184).
TAIL_WIDTHS: Final[Mapping[str, int]] = MappingProxyType(
    {market: sum(width for _, width in layout) for market, layout in LAYOUTS.items()}
)
