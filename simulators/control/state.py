"""The state one simulator instance owns: clock, ledger, engine, faults, held requests, tokens."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask

from simulators.control.faults import Fault, FaultBook, FaultKind
from simulators.control.held import HeldRequests
from simulators.control.tokens import TokenRegistry
from simulators.engine import Engine, Instrument, Ledger, SimClock

__all__ = ["STATE_EXTENSION_KEY", "SimState", "get_state"]

#: Where :func:`~simulators.control.install_control` keeps the state in ``app.extensions``.
STATE_EXTENSION_KEY = "simulators.state"


@dataclass
class SimState:
    """Everything one simulator instance owns; built once per ``create_app(state=None)``.

    Attributes:
        broker: the facade's name ("kis", "upbit", …).
        seed: the seed the engine's price path uses.
        clock, ledger, engine, faults, tokens: the shared machinery.
        options: facade-specific settings (free-form).
        held: requests a ``late`` fault holds (built from ``clock`` when not given).
    """

    broker: str
    seed: int | str
    clock: SimClock
    ledger: Ledger
    engine: Engine
    faults: FaultBook
    tokens: TokenRegistry
    options: dict[str, Any] = field(default_factory=dict)
    held: HeldRequests = None  # type: ignore[assignment]  # set in __post_init__

    def __post_init__(self) -> None:
        if self.held is None:
            self.held = HeldRequests(self.clock)

    @classmethod
    def create(
        cls,
        broker: str,
        *,
        seed: int | str = 0,
        clock: SimClock | None = None,
        instruments: Iterable[Instrument] = (),
        token_factory: Callable[[str], str] | None = None,
        options: Mapping[str, Any] | None = None,
        **engine_options: Any,
    ) -> SimState:
        """Build a state with a fresh clock (real time unless given), ledger, engine and faults.

        ``engine_options`` go to :class:`~simulators.engine.Engine` (fees, order_numbers,
        money_places, timezone, amend_mode, client_id_scope, …).
        """
        clock = clock or SimClock()
        ledger = Ledger(clock)
        engine = Engine(
            clock=clock, seed=seed, ledger=ledger, instruments=instruments, **engine_options
        )
        return cls(
            broker=broker,
            seed=seed,
            clock=clock,
            ledger=ledger,
            engine=engine,
            faults=FaultBook(broker),
            tokens=TokenRegistry(clock, ledger, token_factory),
            options=dict(options or {}),
        )

    def take_token_refusal(self, path: str) -> Fault | None:
        """For the facade's token route: consume a pending ``token_refusal`` fault, if any."""
        return self.faults.take(FaultKind.TOKEN_REFUSAL, path)


def get_state(app: Flask) -> SimState:
    """Return the SimState an app was installed with.

    Raises:
        KeyError: if :func:`~simulators.control.install_control` was not called on ``app``.
    """
    return app.extensions[STATE_EXTENSION_KEY]  # type: ignore[no-any-return]
