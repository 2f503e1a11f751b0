"""Kill switches: stop new orders of one API key, one account, or the whole gateway.

A switch is a row of ``trade.kill_switches``; engaging inserts it, releasing deletes it, and each
change leaves an audit record (``trade.risk_events``) with who, when and why. The order gate reads
the switches in the very transaction that writes the order's intent (:func:`check`), so a switch
committed by any process on any host stops the next order everywhere at once: there is no
per-process cache to expire (the issue allows one second). A request already past its intent's
commit when the switch lands still goes out; everything after it is refused.

A refused order answers 422 ``kill_switch_engaged`` — 422 like every other pre-trade refusal, so
a client handles one class of "the gateway would not send this" — with the switch's scope, reason,
who set it and when. Panic actions (cancel-all, flatten) are allowed under a switch: they reduce
risk (:mod:`web_server.services.panic`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from brokers import utc_now
from web_server.errors import NotFound, ValidationFailed
from web_server.extensions import db
from web_server.models import Account, ApiKey, KillSwitch
from web_server.services.risk_policies import audit

__all__ = [
    "KillSwitchEngaged",
    "check",
    "engage",
    "list_switches",
    "refusal",
    "release",
    "switch_view",
]

SCOPES = ("GLOBAL", "API_KEY", "ACCOUNT")


class KillSwitchEngaged(ValidationFailed):
    """A kill switch stops new orders of this key, this account or the whole gateway."""

    code = "kill_switch_engaged"
    title = "Kill switch engaged"


def _target(scope: str, target_id: int | None) -> int:
    if scope not in SCOPES:
        raise ValidationFailed(
            f"Unknown kill switch scope {scope!r}.", errors={"path": {"scope": list(SCOPES)}}
        )
    if scope == "GLOBAL":
        return 0
    if target_id is None:
        raise ValidationFailed(f"A {scope} kill switch needs a target id.")
    model = ApiKey if scope == "API_KEY" else Account
    if db.session.get(model, target_id) is None:
        raise NotFound(f"No {scope.lower().replace('_', ' ')} {target_id}.")
    return target_id


def engage(scope: str, target_id: int | None, reason: str, actor: str) -> KillSwitch:
    """Engage (or re-state the reason of) a kill switch; commit. New orders stop at once.

    Raises:
        NotFound: no such key or account.
        ValidationFailed: unknown scope, or no reason given.
    """
    target = _target(scope, target_id)
    reason = reason.strip()
    if not reason:
        raise ValidationFailed(
            "Say why the switch is engaged.", errors={"json": {"reason": ["required"]}}
        )
    switch = db.session.scalar(
        select(KillSwitch).where(KillSwitch.scope == scope, KillSwitch.target_id == target)
    )
    if switch is None:
        switch = KillSwitch(scope=scope, target_id=target)
        db.session.add(switch)
    switch.reason, switch.set_by, switch.set_at = reason, actor, utc_now()
    audit(actor, "kill_switch_engaged", scope, target, {"reason": reason})
    db.session.commit()
    return switch


def release(scope: str, target_id: int | None, actor: str) -> None:
    """Release a kill switch; commit.

    Raises:
        NotFound: no such switch is engaged.
    """
    target = 0 if scope == "GLOBAL" else target_id
    switch = db.session.scalar(
        select(KillSwitch).where(KillSwitch.scope == scope, KillSwitch.target_id == target)
    )
    if switch is None:
        raise NotFound(f"No {scope} kill switch is engaged for {target}.")
    db.session.delete(switch)
    audit(actor, "kill_switch_released", scope, target, {"reason": switch.reason})
    db.session.commit()


def list_switches() -> Sequence[KillSwitch]:
    """Return every engaged switch, the global one first."""
    return db.session.scalars(
        select(KillSwitch).order_by(KillSwitch.scope.desc(), KillSwitch.target_id)
    ).all()


def switch_view(switch: KillSwitch) -> dict[str, Any]:
    """Return a switch as the API shows it."""
    return {
        "scope": switch.scope,
        "target_id": switch.target_id if switch.scope != "GLOBAL" else None,
        "reason": switch.reason,
        "set_by": switch.set_by,
        "set_at": switch.set_at,
    }


def check(session: Session, api_key_id: int, account_id: int) -> None:
    """Refuse if a switch covers this key, this account or the gateway (in ``session``).

    Raises:
        KillSwitchEngaged: a switch is engaged; the problem names it.
    """
    switch = session.scalar(
        select(KillSwitch)
        .where(
            or_(
                KillSwitch.scope == "GLOBAL",
                (KillSwitch.scope == "API_KEY") & (KillSwitch.target_id == api_key_id),
                (KillSwitch.scope == "ACCOUNT") & (KillSwitch.target_id == account_id),
            )
        )
        .order_by(KillSwitch.scope.desc())
        .limit(1)
    )
    if switch is not None:
        raise refusal(switch.scope, switch.reason, switch.set_by, switch.set_at)


def refusal(scope: str, reason: str, set_by: str, set_at: Any) -> KillSwitchEngaged:
    """Return the 422 of an engaged switch (the order gate reads its row in its own query)."""
    what = {"GLOBAL": "the whole gateway", "API_KEY": "this API key", "ACCOUNT": "this account"}
    return KillSwitchEngaged(
        f"A kill switch stops new orders of {what[scope]}: {reason} "
        f"(set by {set_by} at {set_at.isoformat()}).",
        extra={
            "kill_switch": {
                "scope": scope,
                "reason": reason,
                "set_by": set_by,
                "set_at": set_at.isoformat(),
            }
        },
    )
