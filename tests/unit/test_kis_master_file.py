"""Tests of the KIS stock master file parser/writer on the real files in ../shared/data/kis_master.

The real files are a fixed snapshot (2026-07-23, see its README), so exact counts are asserted.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import sys
import zipfile
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

_REPO_ROOT = Path(__file__).resolve().parents[2]
if str(_REPO_ROOT) not in sys.path:
    # No conftest or installed package is guaranteed while the repo is being built; make the
    # package importable however pytest is started.
    sys.path.insert(0, str(_REPO_ROOT))

from securities.kis.master_file import (  # noqa: E402
    LAYOUTS,
    REASON_ADMINISTRATIVE,
    REASON_INVESTMENT_ATTENTION,
    REASON_INVESTMENT_WARNING,
    REASON_LIQUIDATION_TRADING,
    REASON_TRADING_HALT,
    REASON_UNFAITHFUL_DISCLOSURE,
    TAIL_WIDTHS,
    MasterFileError,
    MasterParseResult,
    MasterRecord,
    format_record,
    make_record,
    parse_master,
    read_master_zip,
    write_master,
    write_master_zip,
)

DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "kis_master"
FILES = {"KOSPI": "kospi_code.mst", "KOSDAQ": "kosdaq_code.mst"}


def _raw(market: str) -> bytes:
    path = DATA_DIR / FILES[market]
    if not path.is_file():
        pytest.skip(f"real KIS master file not found at {path} (shared data folder absent)")
    return path.read_bytes()


@pytest.fixture(scope="module")
def kospi_raw() -> bytes:
    return _raw("KOSPI")


@pytest.fixture(scope="module")
def kosdaq_raw() -> bytes:
    return _raw("KOSDAQ")


@pytest.fixture(scope="module")
def kospi(kospi_raw: bytes) -> MasterParseResult:
    return parse_master(kospi_raw, "KOSPI")


@pytest.fixture(scope="module")
def kosdaq(kosdaq_raw: bytes) -> MasterParseResult:
    return parse_master(kosdaq_raw, "KOSDAQ")


def _stock_lines_only(raw: bytes) -> bytes:
    """The real file reduced to lines whose short code is six characters."""
    lines = raw.split(b"\n")[:-1]
    return b"".join(line + b"\n" for line in lines if len(line[:9].rstrip()) == 6)


# --- counts ----------------------------------------------------------------------------------


def test_counts_match_the_snapshot(kospi: MasterParseResult, kosdaq: MasterParseResult) -> None:
    assert len(kospi.all_records) == 2568
    assert len(kosdaq.all_records) == 1821
    assert len(kospi.records) + len(kosdaq.records) == 3919
    assert kospi.skipped == 470
    assert kosdaq.skipped == 0
    # F… funds/beneficiary certificates, J… warrants/rights (9 chars), Q… ETNs (7 chars).
    assert kospi.skipped_by_prefix == {"F": 75, "J": 9, "Q": 386}
    assert kosdaq.skipped_by_prefix == {}
    skipped_lengths = Counter(len(r.short_code) for r in kospi.all_records if not r.is_stock_code)
    assert skipped_lengths == {9: 84, 7: 386}


def test_codes_with_letters(kospi: MasterParseResult, kosdaq: MasterParseResult) -> None:
    records = kospi.records + kosdaq.records
    with_letters = [r.short_code for r in records if not r.short_code.isdigit()]
    assert len(with_letters) == 361
    assert all(code[0].isdigit() and len(code) == 6 for code in with_letters)
    codes = {r.short_code for r in records}
    assert {"0001A0", "26490K", "0000D0"} <= codes
    assert len(codes) == 3919  # no code is listed on both markets


def test_samsung(kospi: MasterParseResult) -> None:
    samsung = kospi.by_code()["005930"]
    assert samsung.name == "삼성전자"
    assert samsung.market == "KOSPI"
    assert samsung.standard_code == "KR7005930003"
    assert samsung.group_code == "ST"
    assert samsung.listing_date == datetime.date(1975, 6, 11)
    assert samsung.base_price == Decimal("259000")
    assert samsung.par_value == Decimal("100")
    assert samsung.lot_size == 1
    assert samsung.listed_shares_thousands == 5_846_278
    assert samsung.capital == 778_046_685_000  # KRW
    assert samsung.market_cap == 15_141_861  # 억원
    # Market cap (억원) ≈ base price × shares; confirms the unit.
    estimate = samsung.base_price * samsung.listed_shares_thousands * 1000 / 100_000_000
    assert abs(estimate - samsung.market_cap) / samsung.market_cap < Decimal("0.01")
    assert samsung.market_cap_krw == 15_141_861 * 100_000_000
    assert samsung.sector_large_code == "0027"
    assert samsung.sector_medium_code == "0013"
    assert samsung.sector_small_code is None  # "0000"
    assert samsung.margin_rate == 40
    assert samsung.is_credit_available
    assert not samsung.is_preferred
    assert not samsung.is_trading_halted
    assert samsung.halt_reasons == ()
    assert samsung.fields["stck_sdpr"] == "000259000"  # raw, full width
    assert samsung.field_value("stck_sdpr") == "000259000"
    assert samsung.field_value("po_prc") is None  # blank


def test_kosdaq_letter_code(kosdaq: MasterParseResult) -> None:
    record = kosdaq.by_code()["0001A0"]
    assert record.name == "덕양에너젠"
    assert record.market == "KOSDAQ"
    assert record.standard_code == "KR70001A0001"
    assert record.group_code == "ST"
    assert record.listing_date == datetime.date(2026, 1, 30)
    assert "invt_alrm_yn" in record.fields and "kospi_issu_yn" not in record.fields


def test_every_record_has_every_field(kospi: MasterParseResult, kosdaq: MasterParseResult) -> None:
    for result in (kospi, kosdaq):
        names = [name for name, _ in LAYOUTS[result.market]]
        for record in result.all_records:
            assert list(record.fields) == names
            assert sum(len(v) for v in record.fields.values()) == TAIL_WIDTHS[result.market]


# --- layouts -------------------------------------------------------------------------------------


def _offsets(market: str) -> dict[str, int]:
    """Field name -> offset of the field inside the market's tail."""
    offsets: dict[str, int] = {}
    position = 0
    for name, width in LAYOUTS[market]:
        offsets[name] = position
        position += width
    return offsets


def test_layouts_are_the_kis_headers_unchanged() -> None:
    # sha256 of one "market name width" line per field, in file order, taken from the three
    # layouts as they were declared before the KOSPI and KOSDAQ tables were merged into one. It
    # pins names, order and widths; change it only together with a change of KIS's headers.
    text = "\n".join(
        f"{market} {name} {width}" for market in LAYOUTS for name, width in LAYOUTS[market]
    )
    assert list(LAYOUTS) == ["KOSPI", "KOSDAQ", "KONEX"]
    assert hashlib.sha256(text.encode()).hexdigest() == (
        "f161d101360de2be7197c9c747cdbc86d10611cdff477f8ddc700a7aa7cb2e8a"
    ), text
    assert {market: len(layout) for market, layout in LAYOUTS.items()} == {
        "KOSPI": 70,
        "KOSDAQ": 64,
        "KONEX": 38,
    }
    assert TAIL_WIDTHS == {"KOSPI": 227, "KOSDAQ": 221, "KONEX": 184}


def test_layout_differences_between_markets() -> None:
    kospi, kosdaq, konex = (_offsets(market) for market in ("KOSPI", "KOSDAQ", "KONEX"))
    assert {name: kospi[name] for name in kospi.keys() - kosdaq.keys()} == {
        "mnin_cls_code_yn": 15,
        "sprn_strr_nmix_issu_yn": 17,
        "kospi200_apnt_cls_code": 18,
        "kospi100_issu_yn": 19,
        "kospi50_issu_yn": 20,
        "elw_pblc_yn": 23,
        "krx_fnnc_svc_yn": 35,
        "sri_nmix_yn": 40,
        "kospi_issu_yn": 162,
    }
    assert {name: kosdaq[name] for name in kosdaq.keys() - kospi.keys()} == {
        "vntr_issu_yn": 15,
        "invt_alrm_yn": 30,
        "ksq150_nmix_yn": 35,
    }
    assert konex.keys() < kospi.keys() & kosdaq.keys()  # KONEX has no field of its own
    widths = [dict(LAYOUTS[market]) for market in LAYOUTS]
    for name in kospi.keys() | kosdaq.keys():
        assert len({layout[name] for layout in widths if name in layout}) == 1, name


# Tail offsets of stck_sdpr, stck_lstn_date, prdy_avls_scal and stln_able_yn; KOSDAQ's are those
# of the table in kis_kiwoom.md §1.8.
@pytest.mark.parametrize(
    ("market", "expected"),
    [("KOSPI", (41, 105, 212, 226)), ("KOSDAQ", (36, 100, 206, 220)), ("KONEX", (2, 66, 172, 183))],
)
def test_offsets_of_known_fields(market: str, expected: tuple[int, ...]) -> None:
    offsets = _offsets(market)
    names = ("stck_sdpr", "stck_lstn_date", "prdy_avls_scal", "stln_able_yn")
    assert tuple(offsets[name] for name in names) == expected


def test_known_values_sit_at_the_layout_offsets(kospi_raw: bytes, kosdaq_raw: bytes) -> None:
    def tail_of(raw: bytes, code: bytes) -> bytes:
        (line,) = [line for line in raw.split(b"\n") if line[:9].rstrip() == code]
        return line[61:]

    samsung = tail_of(kospi_raw, b"005930")
    assert samsung[41:50] == b"000259000"  # stck_sdpr
    assert samsung[105:113] == b"19750611"  # stck_lstn_date
    assert samsung[212:221] == b"015141861"  # prdy_avls_scal
    starco = tail_of(kosdaq_raw, b"060240")
    assert starco[30:31] == b"Y"  # invt_alrm_yn
    assert starco[100:108] == b"20020104"  # stck_lstn_date


# Fields whose every value in the real files is digits; a field shifted by a byte would not be.
_DIGIT_FIELDS = (
    "bstp_larg_div_code",
    "stck_sdpr",
    "frml_mrkt_deal_qty_unit",
    "mrkt_alrm_cls_code",
    "marg_rate",
    "crdt_days",
    "prdy_vol",
    "stck_fcam",
    "stck_lstn_date",
    "lstn_stcn",
    "cpfn",
    "sale_account",
    "prdy_avls_scal",
)


def test_every_field_holds_its_kind_of_value(
    kospi: MasterParseResult, kosdaq: MasterParseResult
) -> None:
    for result in (kospi, kosdaq):
        for name, _ in LAYOUTS[result.market]:
            values = {record.fields[name] for record in result.all_records}
            if name.endswith("_yn") or name == "crdt_able":
                assert values <= {"Y", "N", " "}, (result.market, name, values)
            elif name in _DIGIT_FIELDS:
                assert all(value.isdigit() for value in values), (result.market, name)
        assert {r.fields["po_prc"] for r in result.all_records} == {"       "}


def test_group_codes(kospi: MasterParseResult, kosdaq: MasterParseResult) -> None:
    kospi_groups = Counter(r.group_code for r in kospi.records)
    kosdaq_groups = Counter(r.group_code for r in kosdaq.records)
    assert kospi_groups == {
        "EF": 1151,
        "ST": 917,
        "RT": 23,
        "PF": 2,
        "IF": 2,
        "MF": 1,
        "DR": 1,
        "FS": 1,
    }
    assert kosdaq_groups == {"ST": 1802, "FS": 11, "DR": 8}
    skipped_groups = Counter(r.group_code for r in kospi.all_records if not r.is_stock_code)
    assert skipped_groups == {"EN": 386, "BC": 75, "SR": 5, "SW": 4}


def test_every_listing_date_parses(kospi: MasterParseResult, kosdaq: MasterParseResult) -> None:
    for record in kospi.all_records + kosdaq.all_records:
        listed = record.listing_date
        assert listed is not None, record.short_code
        assert datetime.date(1950, 1, 1) <= listed <= datetime.date(2026, 12, 31)


def test_numeric_properties_parse(kospi: MasterParseResult, kosdaq: MasterParseResult) -> None:
    for record in kospi.records + kosdaq.records:
        assert record.base_price is not None and record.base_price >= 0
        assert record.market_cap is not None and record.market_cap >= 0
        assert record.capital is not None and record.capital >= 0
        assert record.lot_size is not None and record.lot_size >= 1
        assert record.market_warning_code in ("00", "01", "02", "03")


# --- halt and administrative flags --------------------------------------------------------------


def test_halt_and_administrative_counts(
    kospi: MasterParseResult, kosdaq: MasterParseResult
) -> None:
    assert sum(r.is_trading_halted for r in kospi.records) == 32
    assert sum(r.is_administrative for r in kospi.records) == 26
    assert sum(r.is_trading_halted for r in kosdaq.records) == 86
    assert sum(r.is_administrative for r in kosdaq.records) == 86
    assert sum(r.is_liquidation_trading for r in kosdaq.records) == 3
    assert sum(r.is_investment_attention for r in kosdaq.records) == 90
    assert not any(r.is_investment_attention for r in kospi.records)  # KOSDAQ-only field
    warnings = Counter(r.market_warning_code for r in kospi.records + kosdaq.records)
    assert warnings == {"00": 3882, "01": 25, "02": 12}


def test_known_halted_and_flagged_issues(
    kospi: MasterParseResult, kosdaq: MasterParseResult
) -> None:
    kospi_codes = kospi.by_code()
    kosdaq_codes = kosdaq.by_code()

    sambu = kospi_codes["001470"]  # 삼부토건: halted and administrative
    assert sambu.name == "삼부토건"
    assert sambu.is_trading_halted and sambu.is_administrative
    assert sambu.halt_reasons == (REASON_TRADING_HALT, REASON_ADMINISTRATIVE)

    dongsung = kospi_codes["002210"]  # 동성제약: halted, unfaithful disclosure
    assert dongsung.halt_reasons == (REASON_TRADING_HALT, REASON_UNFAITHFUL_DISCLOSURE)

    shd = kospi_codes["001770"]  # administrative but still trading
    assert shd.is_administrative and not shd.is_trading_halted
    assert shd.halt_reasons == (REASON_ADMINISTRATIVE,)

    warned = kospi_codes["002070"]  # 비비안: 투자경고
    assert warned.is_investment_warning and not warned.is_trading_halted
    assert warned.halt_reasons == (REASON_INVESTMENT_WARNING,)

    overheated = kospi_codes["000545"]  # 흥국화재우: short-term overheated (code 3)
    assert overheated.short_term_overheat_code == "3" and overheated.is_short_term_overheated

    starco = kosdaq_codes["060240"]  # 스타코링크: liquidation trading before delisting
    assert starco.halt_reasons == (
        REASON_LIQUIDATION_TRADING,
        REASON_ADMINISTRATIVE,
        REASON_INVESTMENT_ATTENTION,
    )


# --- writer and round trips ------------------------------------------------------------------


@pytest.mark.parametrize("market", ["KOSPI", "KOSDAQ"])
def test_whole_file_is_reproduced_byte_for_byte(market: str) -> None:
    raw = _raw(market)
    result = parse_master(raw, market)
    assert write_master(result.all_records, market) == raw


@pytest.mark.parametrize("market", ["KOSPI", "KOSDAQ"])
def test_stock_only_file_round_trip(market: str) -> None:
    raw = _raw(market)
    result = parse_master(raw, market)
    written = write_master(result.records, market)
    assert written == _stock_lines_only(raw)
    again = parse_master(written, market)
    assert again.records == result.records
    assert again.skipped == 0


def test_format_record_line_widths(kospi: MasterParseResult, kosdaq: MasterParseResult) -> None:
    assert len(format_record(kospi.by_code()["005930"])) == 61 + 227 + 1
    assert len(format_record(kosdaq.by_code()["0001A0"])) == 61 + 221 + 1


def test_changed_snapshot(kospi: MasterParseResult) -> None:
    records = kospi.records
    samsung = kospi.by_code()["005930"]
    halted = samsung.with_fields(trht_yn="Y", stck_sdpr="70000")
    assert halted.fields["stck_sdpr"] == "000070000"  # padded like the file
    assert halted.base_price == Decimal("70000")
    changed = [
        halted if r.short_code == "005930" else r for r in records if r.short_code != "000660"
    ]
    again = parse_master(write_master(changed, "KOSPI"), "KOSPI")
    codes = again.by_code()
    assert "000660" not in codes
    assert len(again.records) == len(records) - 1
    assert codes["005930"].is_trading_halted
    assert codes["005930"].halt_reasons == (REASON_TRADING_HALT,)
    assert codes["005930"] == halted


def test_with_fields_validation(kospi: MasterParseResult) -> None:
    samsung = kospi.by_code()["005930"]
    with pytest.raises(MasterFileError, match="unknown"):
        samsung.with_fields(trht_y="Y")
    with pytest.raises(MasterFileError, match="longer"):
        samsung.with_fields(trht_yn="YY")
    with pytest.raises(MasterFileError, match="ASCII"):
        samsung.with_fields(trht_yn="예")
    assert samsung.with_fields(mrkt_alrm_cls_code="3").is_investment_risk  # "3" -> "03"
    assert samsung.with_fields(thtr_ntin="-12").fields["thtr_ntin"] == "-0012"


def test_make_record_for_each_market() -> None:
    for market in ("KOSPI", "KOSDAQ", "KONEX"):
        record = make_record(
            "123450",
            "KR7123450007",
            "테스트전자우",
            market,
            stck_sdpr="12345",
            stck_lstn_date="20240102",
            prdy_avls_scal="1234",
            trht_yn="Y",
        )
        line = format_record(record)
        assert len(line) == 61 + TAIL_WIDTHS[market] + 1
        parsed = parse_master(line, market).records
        assert parsed == [record]
        assert record.base_price == Decimal("12345")
        assert record.listing_date == datetime.date(2024, 1, 2)
        assert record.market_cap == 1234
        assert record.halt_reasons == (REASON_TRADING_HALT,)
    assert TAIL_WIDTHS == {"KOSPI": 227, "KOSDAQ": 221, "KONEX": 184}
    assert make_record("123450", "KR7123450007", "x", "KONEX").group_code == "KN"


def test_record_validation() -> None:
    with pytest.raises(MasterFileError, match="bytes in cp949"):
        make_record("123450", "KR7123450007", "가" * 21, "KOSPI")  # 42 bytes
    with pytest.raises(MasterFileError, match="comma"):
        make_record("123450", "KR7123450007", "a,b", "KOSPI")
    with pytest.raises(MasterFileError, match="short code"):
        make_record("1234567890", "KR7123450007", "a", "KOSPI")
    with pytest.raises(MasterFileError, match="unknown market"):
        make_record("123450", "KR7123450007", "a", "NYSE")
    record = make_record("123450", "KR7123450007", "  a  ", "kospi")
    assert record.name == "a" and record.market == "KOSPI"
    assert hash(record) == hash(make_record("123450", "KR7123450007", "a", "KOSPI"))


def test_writer_rejects_a_record_of_another_market(kosdaq: MasterParseResult) -> None:
    with pytest.raises(MasterFileError, match="KOSDAQ record"):
        write_master(kosdaq.records[:1], "KOSPI")


# --- malformed input ---------------------------------------------------------------------------


def test_truncated_file_names_the_line(kospi_raw: bytes) -> None:
    cut = kospi_raw[: 289 * 10 + 100]  # ends in the middle of line 11
    with pytest.raises(MasterFileError, match=r"line 11\b.*no newline"):
        parse_master(cut, "KOSPI")


def test_short_line_names_the_line(kospi_raw: bytes) -> None:
    lines = kospi_raw.split(b"\n")
    lines[4] = lines[4][:-1]  # line 5 loses a tail byte
    with pytest.raises(MasterFileError, match=r"line 5: 287 bytes, expected 288"):
        parse_master(b"\n".join(lines), "KOSPI")


def test_undecodable_line_names_the_line(kosdaq_raw: bytes) -> None:
    lines = kosdaq_raw.split(b"\n")
    lines[6] = lines[6][:21] + b"\xff\xff" + lines[6][23:]  # not cp949
    with pytest.raises(MasterFileError, match=r"line 7: not valid cp949"):
        parse_master(b"\n".join(lines), "KOSDAQ")


def test_non_ascii_tail_names_the_line(kosdaq_raw: bytes) -> None:
    lines = kosdaq_raw.split(b"\n")
    # Move two name bytes into the tail: same length, but the Hangul now sits in the tail.
    line = lines[2]
    lines[2] = line[:21] + line[23:61] + b"  " + "가".encode("cp949") + line[63:]
    assert len(lines[2]) == len(line)
    with pytest.raises(MasterFileError, match=r"line 3: .*not ASCII"):
        parse_master(b"\n".join(lines), "KOSDAQ")


def test_other_malformed_files(kospi_raw: bytes, kosdaq_raw: bytes) -> None:
    with pytest.raises(MasterFileError, match="empty"):
        parse_master(b"", "KOSPI")
    with pytest.raises(MasterFileError, match="line 1: 282 bytes, expected 288"):
        parse_master(kosdaq_raw, "KOSPI")  # wrong market
    with pytest.raises(MasterFileError, match="line 1: CRLF"):
        parse_master(kospi_raw.replace(b"\n", b"\r\n"), "KOSPI")
    first = kospi_raw.split(b"\n")[0] + b"\n"
    with pytest.raises(MasterFileError, match="line 2: duplicate short code"):
        parse_master(first + first, "KOSPI")
    with pytest.raises(MasterFileError, match="line 2: 0 bytes"):
        parse_master(first + b"\n" + first, "KOSPI")  # blank line


# --- zip -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("market", ["KOSPI", "KOSDAQ"])
def test_zip_round_trip(market: str) -> None:
    raw = _raw(market)
    result = parse_master(raw, market)
    archive = write_master_zip(result.all_records, market)
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        assert opened.namelist() == [FILES[market]]
        assert opened.read(FILES[market]) == raw
    assert read_master_zip(archive, market) == result
    assert write_master_zip(result.all_records, market) == archive  # deterministic


def test_zip_with_one_member_of_another_name(kospi_raw: bytes) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("KOSPI_CODE.MST", kospi_raw)
    assert len(read_master_zip(buffer.getvalue(), "KOSPI").records) == 2098


def test_corrupt_zips_raise(kospi: MasterParseResult) -> None:
    archive = write_master_zip(kospi.records[:50], "KOSPI")
    with pytest.raises(MasterFileError, match="unreadable"):
        read_master_zip(b"not a zip at all", "KOSPI")
    with pytest.raises(MasterFileError, match="unreadable"):
        read_master_zip(archive[: len(archive) // 2], "KOSPI")  # truncated download
    damaged = bytearray(archive)
    damaged[len(archive) // 3] ^= 0xFF  # inside the deflated data
    with pytest.raises(MasterFileError, match="unreadable"):
        read_master_zip(bytes(damaged), "KOSPI")

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as two_members:
        two_members.writestr("a.mst", b"")
        two_members.writestr("b.mst", b"")
    with pytest.raises(MasterFileError, match="no member 'kospi_code.mst'"):
        read_master_zip(buffer.getvalue(), "KOSPI")

    empty_member = write_master_zip([], "KOSPI")
    with pytest.raises(MasterFileError, match="empty"):
        read_master_zip(empty_member, "KOSPI")


def test_master_record_is_frozen(kospi: MasterParseResult) -> None:
    samsung = kospi.by_code()["005930"]
    with pytest.raises(AttributeError):
        samsung.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        samsung.fields["trht_yn"] = "Y"  # type: ignore[index]
    assert isinstance(samsung, MasterRecord)
