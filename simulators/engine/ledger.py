"""The ledger: what a broker "saw" (orders, cancels, amendments, fills, token issuances).

Entries are appended in order and stamped with the :class:`~simulators.engine.SimClock`'s time;
the ledger is the ground truth for "nothing lost, nothing doubled".
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from simulators.engine.clock import SimClock

__all__ = ["Ledger", "LedgerEntry", "LedgerKind"]


class LedgerKind(enum.StrEnum):
    """What a ledger entry records."""

    ACCOUNT_CREATED = "account_created"
    ORDER_PLACED = "order_placed"
    ORDER_REJECTED = "order_rejected"
    ORDER_AMENDED = "order_amended"
    ORDER_CANCELLED = "order_cancelled"
    ORDER_EXPIRED = "order_expired"
    FILL = "fill"
    TOKEN_ISSUED = "token_issued"  # noqa: S105 - a ledger kind, not a secret
    TOKEN_REUSED = "token_reused"  # noqa: S105 - a ledger kind, not a secret
    TOKEN_REVOKED = "token_revoked"  # noqa: S105 - a ledger kind, not a secret
    TOKEN_REFUSED = "token_refused"  # noqa: S105 - a ledger kind, not a secret
    TOKENS_REVOKED_ALL = "tokens_revoked_all"
    FAULT_APPLIED = "fault_applied"
    REQUEST_REFUSED = "request_refused"


_RESERVED_LEDGER_KEYS = frozenset({"seq", "kind", "time", "account_id", "app_key"})


@dataclass(frozen=True)
class LedgerEntry:
    """One thing the broker saw, at a simulated time."""

    seq: int
    kind: str
    time: datetime
    account_id: str | None
    app_key: str | None
    data: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        """Return a flat JSON-ready dict (Decimals and datetimes as strings)."""
        out: dict[str, Any] = {
            "seq": self.seq,
            "kind": self.kind,
            "time": self.time.isoformat(),
            "account_id": self.account_id,
            "app_key": self.app_key,
        }
        out.update({key: _jsonable(value) for key, value in self.data.items()})
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class Ledger:
    """Append-only record of what the broker saw; thread-safe.

    Never store secrets here: app keys and account ids are fine, secrets and tokens are not
    (tokens appear as a fingerprint).
    """

    def __init__(self, clock: SimClock) -> None:
        self._clock = clock
        self._entries: list[LedgerEntry] = []
        self._lock = threading.Lock()

    def record(
        self,
        kind: str,
        *,
        account_id: str | None = None,
        app_key: str | None = None,
        **data: Any,
    ) -> LedgerEntry:
        """Append an entry stamped with the clock's time and return it.

        Raises:
            ValueError: if a data key collides with a reserved entry field.
        """
        clash = _RESERVED_LEDGER_KEYS.intersection(data)
        if clash:
            raise ValueError(f"reserved ledger keys: {sorted(clash)}")
        with self._lock:
            entry = LedgerEntry(
                seq=len(self._entries) + 1,
                kind=str(kind),
                time=self._clock.now(),
                account_id=account_id,
                app_key=app_key,
                data=dict(data),
            )
            self._entries.append(entry)
            return entry

    def entries(
        self,
        *,
        kinds: Iterable[str] | None = None,
        since: datetime | None = None,
        account_id: str | None = None,
    ) -> list[LedgerEntry]:
        """Return entries in order, filtered by kind(s), time (inclusive) and account."""
        wanted = {str(k) for k in kinds} if kinds is not None else None
        with self._lock:
            snapshot = list(self._entries)
        return [
            e
            for e in snapshot
            if (wanted is None or e.kind in wanted)
            and (since is None or e.time >= since)
            and (account_id is None or e.account_id == account_id)
        ]
