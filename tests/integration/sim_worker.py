"""A simulator in its own process, for tests that load the gateway hard (the rate-limit burst).

Run as ``python -m tests.integration.sim_worker <broker> <port> '<json options>'``; it serves until
killed. In its own process a simulator does not compete for the test process's interpreter lock
with the test's fifty client threads, so what it counts is what the gateway sent.
"""

from __future__ import annotations

import json
import sys

from simulators.registry import create_simulator
from simulators.server import run


def main() -> None:
    broker, port, options = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    print(f"{broker} simulator on {port}", flush=True)
    run(create_simulator(broker, **options), "127.0.0.1", port, quiet=True)


if __name__ == "__main__":
    main()
