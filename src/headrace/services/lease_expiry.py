"""Lease expiry: the slots of a concurrency lease nobody renewed come back when it expires.

No count ever includes an expired lease, so a slot is free from the moment its
lease expires, and a request held for it is let in then. This service is the
bookkeeping of that moment: it sleeps until the earliest lease expires (or until
a lease with an earlier expiry is made), deletes the expired leases, logs for
each one whose holder let it lapse which slots it held and on which limits, and
tells the held requests that slots were freed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from headrace.orchestration.deployment_concurrency import LEASE_KEY
from headrace.services.due import DEFAULT_FALLBACK_SECONDS, Clock, DueService, utc_now
from headrace.storage import concurrency_leases
from headrace.storage.concurrency_leases import Expired
from headrace.storage.db import Database
from headrace.types import WireDict

logger = logging.getLogger(__name__)

BATCH = 500  # leases deleted per write transaction
_LOGGED_PER_PASS = 50  # one line per expired lease up to this many, then a summary


def describe(lease: Expired) -> str:
    holder = f"{lease.holder_type} {lease.holder_id}" if lease.holder_type else "no holder"
    limits = ", ".join(lease.limit_names) or "no limit"
    return (
        f"concurrency lease {lease.id} ({lease.slots} slot(s) on {limits}; {holder}) "
        f"expired at {lease.expires.isoformat()} without renewal or release; slots freed"
    )


class LeaseExpiry(DueService):
    """Deletes expired concurrency leases at the moment they expire.

    Args:
        db: storage.
        released: called after a pass freed slots (wakes held requests).
        fallback: the longest sleep, in seconds.
        clock: the time source of ``loop``.
    """

    name = "lease-expiry"

    def __init__(
        self,
        db: Database,
        released: Callable[[], None] | None = None,
        fallback: float = DEFAULT_FALLBACK_SECONDS,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(None, fallback, clock)
        self.db = db
        self.released = released
        self.expired = 0

    def notice(self, state: WireDict | None) -> None:
        """A flow run entered ``state``: a deployment lease may have been made."""
        details = (state or {}).get("state_details") or {}
        if state is None or details.get(LEASE_KEY):
            self.wake()

    async def run_once(self, now: datetime | None = None) -> datetime | None:
        """Delete every lease expired at ``now``; return when the next one expires."""
        now = now or utc_now()
        freed: list[Expired] = []
        while True:
            async with self.db.write() as conn:
                batch = await concurrency_leases.expire(conn, now, BATCH)
            freed.extend(batch)
            if len(batch) < BATCH:
                break
        if freed:
            self._log(freed)
            self.expired += len(freed)
            if self.released is not None:
                self.released()
        async with self.db.read() as conn:
            return await concurrency_leases.earliest_expiry(conn)

    @staticmethod
    def _log(freed: list[Expired]) -> None:
        for lease in freed[:_LOGGED_PER_PASS]:
            logger.info(describe(lease))
        if len(freed) > _LOGGED_PER_PASS:
            slots = sum(lease.slots for lease in freed)
            logger.info("%d concurrency leases expired (%d slots freed)", len(freed), slots)
