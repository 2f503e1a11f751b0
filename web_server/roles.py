"""The database roles and what each may do (seed 000 Phase 4, seed 001 §8).

- ``gateway_app``: the gateway's own login. Reads and writes its tables; reads ``market.stocks``
  but cannot write it.
- ``gateway_datasync``: the only writer of ``market.stocks`` (the stocks sync runs as it). It may
  INSERT and UPDATE but not DELETE: delisting is soft, a row is never removed.
- ``gateway_readonly``: other projects that read the stocks master directly; SELECT on ``market``.

Roles belong to the cluster, grants to a database. Creating a role tolerates its existing already
(another database of the same cluster, or a concurrent migration), and grants are idempotent, so
this runs safely in any number of databases. No password is set here: an operator gives the login
roles theirs (``ALTER ROLE gateway_readonly PASSWORD '…'``), so no default secret exists.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

ROLES = ("gateway_app", "gateway_datasync", "gateway_readonly")

_CREATE_ROLE = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
        CREATE ROLE {role} LOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    -- another database's migration created it between our check and our CREATE
    NULL;
END
$$;
"""

_GRANTS = """
DO $$ BEGIN
    EXECUTE format(
        'GRANT CONNECT ON DATABASE %I TO gateway_app, gateway_datasync, gateway_readonly',
        current_database());
END $$;

GRANT USAGE ON SCHEMA public, market, trade, system TO gateway_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public, trade, system TO gateway_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public, trade, system, market TO gateway_app;
GRANT SELECT ON ALL TABLES IN SCHEMA market TO gateway_app;
GRANT INSERT, UPDATE, DELETE ON market.crypto_markets TO gateway_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public, trade, system
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO gateway_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public, trade, system, market
    GRANT USAGE, SELECT ON SEQUENCES TO gateway_app;

-- The gateway's own login may act as gateway_datasync (SET LOCAL ROLE) for the stocks sync,
-- but must not hold its rights all the time: NOINHERIT keeps the membership an explicit step
-- (PostgreSQL 15 has no per-grant INHERIT option). Membership is cluster-wide and goes with
-- the role.
ALTER ROLE gateway_app NOINHERIT;
GRANT gateway_datasync TO gateway_app;
GRANT USAGE ON SCHEMA market TO gateway_datasync;
GRANT SELECT ON ALL TABLES IN SCHEMA market TO gateway_datasync;
GRANT INSERT, UPDATE ON market.stocks TO gateway_datasync;
GRANT EXECUTE ON FUNCTION market.update_stocks_updated_ts() TO gateway_datasync;

GRANT USAGE ON SCHEMA market TO gateway_readonly;
GRANT SELECT ON ALL TABLES IN SCHEMA market TO gateway_readonly;
ALTER DEFAULT PRIVILEGES IN SCHEMA market GRANT SELECT ON TABLES TO gateway_readonly, gateway_app;
"""

_REVOKES = """
ALTER DEFAULT PRIVILEGES IN SCHEMA market
    REVOKE SELECT ON TABLES FROM gateway_readonly, gateway_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public, trade, system
    REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM gateway_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public, trade, system, market
    REVOKE USAGE, SELECT ON SEQUENCES FROM gateway_app;
REVOKE ALL ON ALL TABLES IN SCHEMA public, market, trade, system
    FROM gateway_app, gateway_datasync, gateway_readonly;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public, market, trade, system
    FROM gateway_app, gateway_datasync, gateway_readonly;
REVOKE ALL ON FUNCTION market.update_stocks_updated_ts()
    FROM gateway_app, gateway_datasync, gateway_readonly;
REVOKE ALL ON SCHEMA public, market, trade, system
    FROM gateway_app, gateway_datasync, gateway_readonly;
DO $$ BEGIN
    EXECUTE format(
        'REVOKE ALL ON DATABASE %I FROM gateway_app, gateway_datasync, gateway_readonly',
        current_database());
END $$;
"""

_DROP_ROLE_IF_UNUSED = """
DO $$
BEGIN
    DROP ROLE IF EXISTS {role};
EXCEPTION WHEN dependent_objects_still_exist THEN
    -- still granted rights in another database of the cluster: that one keeps the role
    RAISE NOTICE 'role {role} kept: other databases still use it';
END
$$;
"""


def apply_grants(connection: Connection) -> None:
    """Create the roles if missing and grant them their rights in this database."""
    for role in ROLES:
        connection.execute(text(_CREATE_ROLE.format(role=role)))
    connection.execute(text(_GRANTS))


def revoke_grants(connection: Connection) -> None:
    """Take the roles' rights in this database away; drop a role no other database uses."""
    connection.execute(text(_REVOKES))
    for role in ROLES:
        connection.execute(text(_DROP_ROLE_IF_UNUSED.format(role=role)))
