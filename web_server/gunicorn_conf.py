"""gunicorn settings of ``gateway serve``: what multiprocess metrics need from the master.

When a worker exits, its live gauges must leave the scrape (prometheus-client's
``mark_process_dead``); its counters and histograms stay, added up with the other workers'.
"""

from __future__ import annotations

from typing import Any


def child_exit(server: Any, worker: Any) -> None:
    """Called by the gunicorn master when a worker has exited."""
    from web_server.metrics import multiprocess_dir

    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
