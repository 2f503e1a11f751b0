"""Roles and grants (seed 000 Phase 4, seed 001 §8): gateway_app, _datasync and _readonly.

``gateway_datasync`` is the only writer of ``market.stocks`` (INSERT and UPDATE; no DELETE, since
delisting is soft); ``gateway_readonly`` may SELECT everything in ``market``; ``gateway_app`` runs
the gateway. Roles are cluster-wide, so creating them tolerates their existing (a second database
in the same cluster), and the downgrade drops a role only when no other database still grants it
anything. The statements live in ``web_server.roles`` so that ``gateway db roles`` re-applies the
very same grants (for example after restoring a dump taken without privileges).

Running this revision needs a user that may create roles (a superuser or CREATEROLE).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from alembic import op

from web_server.roles import apply_grants, revoke_grants

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_grants(op.get_bind())


def downgrade() -> None:
    revoke_grants(op.get_bind())
