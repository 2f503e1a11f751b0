"""Faithful local broker simulators: one shared exchange core and one protocol facade per broker.

Shared pieces:

* :mod:`simulators.engine` — clock, ledger, instruments, price path, accounts, orders, fills.
* :mod:`simulators.control` — the ``/_sim/`` control surface, faults, tokens, ``SimState``.
* :mod:`simulators.server` — serve a simulator in a thread or in the foreground.

Simulators import nothing from ``web_server``, ``securities`` or ``crypto_exchanges``, so they
cannot share the adapters' bugs. Importing this package does no work.
"""

__all__ = ["control", "engine", "server"]
