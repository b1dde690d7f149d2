"""What ``/api/health/details`` reports: the database, each service, the Celery monitor.

``/api/health`` itself answers ``true`` and nothing else (the Prefect client
compares it); the details are for people and probes that want to know why.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from headrace import __version__

if TYPE_CHECKING:
    from headrace.server import Server


async def details(server: Server) -> dict[str, Any]:
    """The process's health, read from the live objects (one database ping).

    Returns:
        ``healthy`` (database reachable, and the Celery monitor connected
        wherever it runs here), ``database``, ``services`` (name -> running here,
        restarts, lease held, seconds since started) and ``celery_monitor``
        (``CeleryMonitor.status()``: connected, reconnects, backoff_seconds,
        last_error, gaps, lag_seconds, ...; None without a broker).
    """
    reachable = await server.db.ping()
    held = server.leases.held if server.leases is not None else set()
    leased = server.leases.names if server.leases is not None else []
    now = time.monotonic()
    services = {
        name: {
            "running": state.task is not None,
            "restarts": state.restarts,
            "lease_held": name in held if name in leased else None,
            "running_seconds": round(now - state.started_at, 3) if state.task else None,
        }
        for name, state in server.supervisor.services.items()
    }
    monitor = server.celery_monitor
    status = monitor.status() if monitor is not None else None
    # The broker connection only matters in the process that runs the monitor.
    consuming = bool(services.get("celery-monitor", {}).get("running"))
    return {
        "healthy": reachable and (not consuming or bool(status and status["connected"])),
        "version": __version__,
        "database": {"reachable": reachable},
        "services": services,
        "celery_monitor": status,
    }
