r"""KIS stock master files (``kospi_code.mst`` …) written from the KRX universe, and their routes.

Format (kis_kiwoom.md §1.8): cp949, one record a line, each line ending in exactly one ``\n``
(the last one too). Bytes 0–8 short code, 9–20 standard code (ISIN), 21–60 Korean name padded
with spaces to 40 bytes, then a fixed-width ASCII tail: 227 bytes on KOSPI (a line is 289 bytes
with its newline), 221 on KOSDAQ (283), 184 on KONEX (246). The tail layouts below are KIS's
official ``field_specs`` with the C struct names of ``종목마스터정보(코스피|코스닥|코넥스).h``.

This is the simulator's own small writer (simulators import nothing from ``securities``). Fields
the universe does not model get the values ordinary issues carry in the real files (flags "N",
margin rate 40, credit available, …). Numeric fields are right-aligned and zero-filled to their
width; code fields are left-aligned.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

from flask import Blueprint, Response, abort

from simulators.krx import Listing

__all__ = [
    "LAYOUTS",
    "MEMBER_NAMES",
    "TAIL_WIDTHS",
    "create_master_blueprint",
    "format_record",
    "write_master",
    "zip_member",
]

MEMBER_NAMES: Final[Mapping[str, str]] = {
    "KOSPI": "kospi_code.mst",
    "KOSDAQ": "kosdaq_code.mst",
    "KONEX": "konex_code.mst",
}

_KOSPI: Final[tuple[tuple[str, int], ...]] = (
    ("scrt_grp_cls_code", 2),
    ("avls_scal_cls_code", 1),
    ("bstp_larg_div_code", 4),
    ("bstp_medm_div_code", 4),
    ("bstp_smal_div_code", 4),
    ("mnin_cls_code_yn", 1),
    ("low_current_yn", 1),
    ("sprn_strr_nmix_issu_yn", 1),
    ("kospi200_apnt_cls_code", 1),
    ("kospi100_issu_yn", 1),
    ("kospi50_issu_yn", 1),
    ("krx_issu_yn", 1),
    ("etp_prod_cls_code", 1),
    ("elw_pblc_yn", 1),
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
    ("krx_fnnc_svc_yn", 1),
    ("krx_scrt_yn", 1),
    ("krx_ship_yn", 1),
    ("krx_insu_yn", 1),
    ("krx_trnp_yn", 1),
    ("sri_nmix_yn", 1),
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
    ("kospi_issu_yn", 1),
    ("sale_account", 9),
    ("bsop_prfi", 9),
    ("op_prfi", 9),
    ("thtr_ntin", 5),
    ("roe", 9),
    ("base_date", 8),
    ("prdy_avls_scal", 9),
    ("grp_code", 3),
    ("co_crdt_limt_over_yn", 1),
    ("secu_lend_able_yn", 1),
    ("stln_able_yn", 1),
)
_KOSDAQ: Final[tuple[tuple[str, int], ...]] = (
    ("scrt_grp_cls_code", 2),
    ("avls_scal_cls_code", 1),
    ("bstp_larg_div_code", 4),
    ("bstp_medm_div_code", 4),
    ("bstp_smal_div_code", 4),
    ("vntr_issu_yn", 1),
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
    ("invt_alrm_yn", 1),
    ("krx_scrt_yn", 1),
    ("krx_ship_yn", 1),
    ("krx_insu_yn", 1),
    ("krx_trnp_yn", 1),
    ("ksq150_nmix_yn", 1),
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
    ("thtr_ntin", 5),
    ("roe", 9),
    ("base_date", 8),
    ("prdy_avls_scal", 9),
    ("grp_code", 3),
    ("co_crdt_limt_over_yn", 1),
    ("secu_lend_able_yn", 1),
    ("stln_able_yn", 1),
)
# KONEX: the ST_KNX_CODE struct (widths add up to 184, matching the official parser's negative
# offsets, e.g. row[-184:-182] is the group code).
_KONEX: Final[tuple[tuple[str, int], ...]] = (
    ("scrt_grp_cls_code", 2),
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
    ("thtr_ntin", 5),
    ("roe", 9),
    ("base_date", 8),
    ("prdy_avls_scal", 9),
    ("co_crdt_limt_over_yn", 1),
    ("secu_lend_able_yn", 1),
    ("stln_able_yn", 1),
)

LAYOUTS: Final[Mapping[str, tuple[tuple[str, int], ...]]] = {
    "KOSPI": _KOSPI,
    "KOSDAQ": _KOSDAQ,
    "KONEX": _KONEX,
}
TAIL_WIDTHS: Final[Mapping[str, int]] = {m: sum(w for _, w in lay) for m, lay in LAYOUTS.items()}

# Fields that hold numbers: right-aligned, zero-filled. Everything else is left-aligned text.
_NUMERIC: Final = frozenset(
    {
        "stck_sdpr",
        "frml_mrkt_deal_qty_unit",
        "ovtm_mrkt_deal_qty_unit",
        "marg_rate",
        "crdt_days",
        "prdy_vol",
        "stck_fcam",
        "lstn_stcn",
        "cpfn",
        "po_prc",
        "sale_account",
        "bsop_prfi",
        "op_prfi",
        "thtr_ntin",
        "prdy_avls_scal",
    }
)
_NAME_BYTES: Final = 40
_ZIP_TIME: Final = (1980, 1, 1, 0, 0, 0)


def _values(listing: Listing) -> dict[str, str]:
    """The tail values of one listing; unmodelled fields get ordinary-issue defaults."""
    etf = listing.is_etf
    cap = listing.market_cap_eok
    size_class = "0" if etf else ("1" if cap >= 20_000 else "2" if cap >= 2_000 else "3")
    return {
        "scrt_grp_cls_code": listing.group,
        "avls_scal_cls_code": size_class,
        "bstp_larg_div_code": listing.sector[0] or "0000",
        "bstp_medm_div_code": listing.sector[1] or "0000",
        "bstp_smal_div_code": "0000",
        "etp_prod_cls_code": "2" if etf else "0",
        "short_over_cls_code": "0",
        "stck_sdpr": str(int(listing.base_price)),
        "frml_mrkt_deal_qty_unit": "1",
        "ovtm_mrkt_deal_qty_unit": "1",
        "trht_yn": "Y" if listing.halted else "N",
        "sltr_yn": "N",
        "mang_issu_yn": "Y" if listing.administrative else "N",
        "mrkt_alrm_cls_code": "00",
        "flng_cls_code": "00",
        "fcam_mod_cls_code": "00",
        "icic_cls_code": "00",
        "marg_rate": "100" if listing.halted or listing.administrative else "40",
        "crdt_able": "N" if listing.halted or listing.administrative else "Y",
        "crdt_days": "90",
        "prdy_vol": "0",
        "stck_fcam": str(listing.par_value),
        "stck_lstn_date": listing.listed_on.strftime("%Y%m%d"),
        "lstn_stcn": str(listing.listed_shares_thousands),
        "cpfn": str(listing.capital),
        "stac_month": "12",
        "po_prc": "0",
        "prst_cls_code": listing.preferred,
        "sale_account": "0",
        "bsop_prfi": "0",
        "op_prfi": "0",
        "thtr_ntin": "0",
        "roe": "0.00",
        "base_date": "20260331",
        "prdy_avls_scal": str(cap),
        "grp_code": "",
        "krx_issu_yn": "Y" if cap >= 20_000 and not etf else "N",
        "kospi_issu_yn": "Y" if listing.market == "KOSPI" and not etf else "N",
    }


def _field(name: str, width: int, value: str | None) -> str:
    if value is None:
        value = "N" if width == 1 else ""
    text = value.rjust(width, "0") if name in _NUMERIC else value.ljust(width)
    if len(text) != width or not text.isascii():
        raise ValueError(f"{name}={value!r} does not fit {width} ASCII bytes")
    return text


def format_record(listing: Listing) -> bytes:
    """Return one master line, newline included, for ``listing``.

    Raises:
        ValueError: if a value does not fit its field, or the name exceeds 40 cp949 bytes.
    """
    name = listing.name.encode("cp949")
    if len(name) > _NAME_BYTES or b"," in name:
        raise ValueError(f"name {listing.name!r} does not fit 40 cp949 bytes without a comma")
    head = (
        listing.symbol.ljust(9).encode("ascii")
        + listing.isin.ljust(12).encode("ascii")
        + name.ljust(_NAME_BYTES, b" ")
    )
    values = _values(listing)
    tail = "".join(_field(n, w, values.get(n)) for n, w in LAYOUTS[listing.market])
    return head + tail.encode("ascii") + b"\n"


def write_master(listings: Iterable[Listing], market: str) -> bytes:
    """Return the ``.mst`` bytes of the listings of ``market`` (in universe order)."""
    return b"".join(format_record(x) for x in listings if x.market == market)


def zip_member(member: str, data: bytes) -> bytes:
    """Zip one member the way KIS publishes it (deterministic timestamp)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo(member, date_time=_ZIP_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, data)
    return buffer.getvalue()


def create_master_blueprint(listings: Iterable[Listing], master_dir: Path | None) -> Blueprint:
    """Serve ``/common/master/<market>_code.mst.zip`` from the universe or ``master_dir``.

    With ``master_dir``, ``<member>`` files found there (e.g. the real ``kospi_code.mst``) are
    zipped on the fly instead; a market without a file there is 404, as KIS answers an unknown
    download path.
    """
    bp = Blueprint("kis_master", __name__)
    universe = tuple(listings)
    by_zip = {f"{member}.zip": (market, member) for market, member in MEMBER_NAMES.items()}

    @bp.get("/common/master/<filename>")
    def master_zip(filename: str) -> Response:
        if filename not in by_zip:
            abort(404)
        market, member = by_zip[filename]
        if master_dir is not None:
            path = master_dir / member
            if not path.is_file():
                abort(404)
            data = path.read_bytes()
        else:
            data = write_master(universe, market)
        response = Response(zip_member(member, data), mimetype="application/x-zip-compressed")
        response.headers["Content-Disposition"] = f"attachment; filename={filename}"
        return response

    return bp
