"""The broker core and every adapter load without the web app, Flask or SQLAlchemy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PACKAGES = [
    "brokers",
    "brokers.interface",
    "brokers.http",
    "brokers.krx",
    "securities.kis",
    "securities.kis.master_file",
    "securities.kiwoom",
    "crypto_exchanges.upbit",
    "crypto_exchanges.bithumb",
    "crypto_exchanges.binance",
]


@pytest.mark.parametrize("package", PACKAGES)
def test_package_loads_without_the_web_app(package: str) -> None:
    # A fresh interpreter: this test process has long since imported Flask.
    probe = (
        "import importlib, json, sys\n"
        f"importlib.import_module({package!r})\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(result.stdout))
    assert package.split(".")[0] in loaded
    assert not loaded & {"flask", "sqlalchemy", "web_server", "simulators"}, package


def test_adapters_implement_the_protocols() -> None:
    from brokers import CryptoAdapter, SecuritiesAdapter
    from crypto_exchanges.binance import BinanceAdapter
    from crypto_exchanges.bithumb import BithumbAdapter
    from crypto_exchanges.upbit import UpbitAdapter
    from securities.kis import KisAdapter
    from securities.kiwoom import KiwoomAdapter

    # issubclass() refuses protocols with ClassVar members, so compare the members directly.
    def members(protocol: type) -> set[str]:
        names: set[str] = set()
        for base in protocol.__mro__:
            if base is object or base.__name__ in ("Protocol", "Generic"):
                continue
            names |= {n for n in vars(base) if not n.startswith("_")}
            names |= set(getattr(base, "__annotations__", {}))
        return names

    for protocol, classes in (
        (SecuritiesAdapter, (KisAdapter, KiwoomAdapter)),
        (CryptoAdapter, (UpbitAdapter, BithumbAdapter, BinanceAdapter)),
    ):
        expected = members(protocol)
        assert {"place_order", "cancel_order", "exchange", "capabilities"} <= expected
        for cls in classes:
            missing = {name for name in expected if not hasattr(cls, name)}
            assert not missing, (cls.__name__, missing)
