"""The KIS master zips at KIS's download paths: cp949, fixed width, from the KRX universe."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from securities.kis.master_file import read_master_zip
from simulators.kis.master import LAYOUTS
from simulators.krx import LISTINGS, isin_check_digit, price_limits

from .conftest import TIMEOUT

REAL_MASTERS = Path(__file__).resolve().parents[4] / "shared" / "data" / "kis_master"
LINE_BYTES = {"KOSPI": 289, "KOSDAQ": 283, "KONEX": 246}
FILES = {"KOSPI": "kospi_code.mst", "KOSDAQ": "kosdaq_code.mst", "KONEX": "konex_code.mst"}


def fetch(sim: Any, market: str) -> bytes:
    r = sim.http.get(f"{sim.url}/common/master/{FILES[market]}.zip", timeout=TIMEOUT)
    assert r.status_code == 200
    with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
        assert archive.namelist() == [FILES[market]]
        return archive.read(FILES[market])


def tail_fields(line: bytes, market: str) -> dict[str, str]:
    """Slice the tail the way the official parser does: counted from the end of the line."""
    text = line.decode("cp949")
    width = sum(w for _, w in LAYOUTS[market])
    tail, out, offset = text[-(width + 1) : -1], {}, 0
    for name, w in LAYOUTS[market]:
        out[name] = tail[offset : offset + w]
        offset += w
    return out


@pytest.mark.parametrize("market", ["KOSPI", "KOSDAQ", "KONEX"])
def test_master_records_are_fixed_width_cp949_lines(start_sim: Any, market: str) -> None:
    sim = start_sim("kis")
    data = fetch(sim, market)
    assert data.endswith(b"\n") and b"\r" not in data
    lines = data.split(b"\n")[:-1]
    expected = [x for x in LISTINGS if x.market == market]
    assert len(lines) == len(expected)
    assert {len(line) + 1 for line in lines} == {LINE_BYTES[market]}
    for line, listing in zip(lines, expected, strict=True):
        assert line[:9].decode("ascii").rstrip() == listing.symbol
        assert line[9:21].decode("ascii") == listing.isin
        assert line[21:61].decode("cp949").strip() == listing.name
        fields = tail_fields(line + b"\n", market)
        assert fields["scrt_grp_cls_code"] == listing.group
        assert fields["trht_yn"] == ("Y" if listing.halted else "N")
        assert fields["mang_issu_yn"] == ("Y" if listing.administrative else "N")
        assert fields["stck_lstn_date"] == listing.listed_on.strftime("%Y%m%d")
        assert int(fields["stck_sdpr"]) == listing.base_price
        assert int(fields["prdy_avls_scal"]) == listing.market_cap_eok


def test_universe_covers_the_required_shapes() -> None:
    by = {x.symbol: x for x in LISTINGS}
    assert by["005930"].name == "삼성전자" and by["005930"].market == "KOSPI"
    assert by["0001A0"].market == "KOSDAQ" and by["26490K"].name == "크라운제과우"
    assert by["069500"].group == "EF" and any(x.market == "KONEX" for x in LISTINGS)
    assert any(x.halted for x in LISTINGS) and any(x.administrative for x in LISTINGS)
    assert 40 <= len(LISTINGS) <= 60
    for listing in LISTINGS:
        assert listing.isin[-1] == isin_check_digit(listing.isin[:-1]), listing.symbol
    assert price_limits(by["005930"].base_price) == (336500, 181300)


@pytest.mark.parametrize("market", ["KOSPI", "KOSDAQ", "KONEX"])
def test_the_gateways_own_master_parser_reads_the_simulators_zips(
    start_sim: Any, market: str
) -> None:
    sim = start_sim("kis")
    r = sim.http.get(f"{sim.url}/common/master/{FILES[market]}.zip", timeout=TIMEOUT)
    result = read_master_zip(r.content, market)
    codes = {rec.short_code: rec for rec in result.records}
    for listing in (x for x in LISTINGS if x.market == market):
        rec = codes[listing.symbol]
        assert rec.name == listing.name and rec.standard_code == listing.isin
        assert rec.is_trading_halted is listing.halted
        assert rec.is_administrative is listing.administrative
        assert rec.listing_date == listing.listed_on


@pytest.mark.skipif(not REAL_MASTERS.is_dir(), reason="shared/data/kis_master is not present")
def test_master_dir_serves_the_real_files_zipped(start_sim: Any) -> None:
    sim = start_sim("kis", master_dir=REAL_MASTERS)
    data = fetch(sim, "KOSPI")
    assert data == (REAL_MASTERS / "kospi_code.mst").read_bytes()
    r = sim.http.get(f"{sim.url}/common/master/konex_code.mst.zip", timeout=TIMEOUT)
    assert r.status_code == 404  # no konex file in that folder
