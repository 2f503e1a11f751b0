r"""Parser and writer for the KIS stock master files (``kospi_code.mst`` and friends).

KIS publishes one zipped master file per domestic market (KOSPI, KOSDAQ, KONEX). Their format,
the field layout of each market and the sources for both are in
:mod:`securities.kis.master_layout`; the record type with its typed properties is
:mod:`securities.kis.master_record`. This module reads and writes whole files and zips, and
re-exports what callers need of the other two, so they import from here only.

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
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from securities.kis.master_layout import (
    ENCODING,
    HEAD_WIDTH,
    LAYOUTS,
    MARKETS,
    MEMBER_NAMES,
    NAME_WIDTH,
    SHORT_CODE_WIDTH,
    STANDARD_CODE_WIDTH,
    STOCK_CODE_RE,
    TAIL_WIDTHS,
)
from securities.kis.master_record import (
    REASON_ADMINISTRATIVE,
    REASON_INVESTMENT_ATTENTION,
    REASON_INVESTMENT_RISK,
    REASON_INVESTMENT_WARNING,
    REASON_LIQUIDATION_TRADING,
    REASON_SHORT_TERM_OVERHEAT,
    REASON_TRADING_HALT,
    REASON_UNFAITHFUL_DISCLOSURE,
    MasterFileError,
    MasterRecord,
    normalize_market,
)

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

# A master file is well under 1 MiB; refuse absurd zip members rather than inflating a zip bomb.
_MAX_MEMBER_BYTES: Final = 64 * 1024 * 1024

# Fixed zip timestamp so that write_master_zip is deterministic (handy for snapshots in tests).
_ZIP_DATE_TIME: Final = (1980, 1, 1, 0, 0, 0)

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

# Field name -> (offset, width) inside the tail, per market.
_OFFSETS: Final[dict[str, dict[str, tuple[int, int]]]] = {}
for _market, _layout in LAYOUTS.items():
    _offset = 0
    _OFFSETS[_market] = {}
    for _name, _width in _layout:
        _OFFSETS[_market][_name] = (_offset, _width)
        _offset += _width
del _market, _layout, _offset, _name, _width


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
    normalized = normalize_market(market)
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
    normalized = normalize_market(market)
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
    normalized = normalize_market(market)
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
    normalized = normalize_market(market)
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
    normalized = normalize_market(market)
    content = write_master(records, normalized)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo(MEMBER_NAMES[normalized], date_time=date_time)
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, content)
    return buffer.getvalue()
