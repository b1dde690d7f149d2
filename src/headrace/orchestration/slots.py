"""Slot arithmetic of global concurrency limits: occupancy, decay, grants, waits.

A limit's occupancy at a moment ``t`` is exact, not a counter kept in step:

    occupancy(t) = leased + unleased(t)

* ``leased`` is the sum of ``slots`` over the live leases (``expires > t``) that
  cover the limit. A leased slot does not decay: it is held until its lease is
  released or expires.
* ``unleased(t)`` is occupancy taken without a lease (``/increment``, which
  ``rate_limit()`` uses). It is stored as a value at a moment ``unleased_at``;
  on a limit with ``slot_decay_per_second = d > 0`` it decays linearly,
  ``unleased(t) = max(0, unleased - d * (t - unleased_at))``; with ``d = 0`` it
  stays until ``/decrement`` gives it back.

A request for ``n`` slots fits when ``occupancy(t) + n <= limit``. The
``active_slots`` a client reads is the integer ``leased + ceil(unleased(t))``:
a slot that has partly decayed still counts, so a limit that reports
``active_slots == limit`` never fits another slot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

Mode = Literal["concurrency", "rate_limit"]

# Float noise (a decay of exactly the right amount) must not deny a slot.
_EPSILON = 1e-9


@dataclass(frozen=True)
class LimitView:
    """One limit as the arithmetic needs it.

    Attributes:
        id: The limit's id.
        name: The limit's name.
        limit: The most slots that may be occupied at once.
        active: Inactive limits are ignored by every request.
        decay: ``slot_decay_per_second``.
        leased: Slots held by live leases.
        unleased: Unleased occupancy as of ``unleased_at``.
        unleased_at: When ``unleased`` was last written (None: never).
    """

    id: str
    name: str
    limit: int
    active: bool
    decay: float
    leased: int
    unleased: float
    unleased_at: datetime | None


@dataclass(frozen=True)
class Verdict:
    """Whether a request fits, and if not, when to look again.

    Attributes:
        fits: Every active limit has room for the request now.
        retry_at: Blocked only: the moment decay alone makes room (None when
            only a release or a lease expiry can).
    """

    fits: bool
    retry_at: datetime | None = None


class SlotsError(ValueError):
    """The request can never be granted as asked (the API answers 422)."""


def unleased_now(view: LimitView, now: datetime) -> float:
    """The unleased occupancy at ``now``, decayed."""
    if view.decay <= 0 or view.unleased_at is None or view.unleased <= 0:
        return max(0.0, view.unleased)
    elapsed = max(0.0, (now - view.unleased_at).total_seconds())
    return max(0.0, view.unleased - view.decay * elapsed)


def occupancy(view: LimitView, now: datetime) -> float:
    return view.leased + unleased_now(view, now)


def active_slots(view: LimitView, now: datetime) -> int:
    """The ``active_slots`` a client reads: leased plus partly decayed slots, rounded up."""
    return view.leased + math.ceil(unleased_now(view, now) - _EPSILON)


def check_request(views: list[LimitView], slots: int, mode: Mode) -> None:
    """Refuse requests the reference answers with 422.

    Raises:
        SlotsError: More slots than an active limit allows, or a rate limit
            asked of an active limit that does not decay.
    """
    active = [v for v in views if v.active]
    if any(v.limit < slots for v in active):
        raise SlotsError("Slots requested is greater than the limit")
    if mode == "rate_limit":
        flat = [v.name for v in active if v.decay <= 0]
        if flat:
            raise SlotsError(
                "Only concurrency limits with slot decay can be used for rate limiting. "
                f"The following limits do not have a decay configured: {','.join(flat)!r}"
            )


def room_at(view: LimitView, slots: int, now: datetime) -> datetime | None:
    """When ``slots`` more fit on this limit if nothing but decay happens.

    Returns ``now`` when they fit already, None when decay cannot make room
    (a lease must end first, or the limit does not decay).
    """
    excess = occupancy(view, now) + slots - view.limit
    if excess <= _EPSILON:
        return now
    unleased = unleased_now(view, now)
    if view.decay <= 0 or excess > unleased + _EPSILON:
        return None
    return now + timedelta(seconds=excess / view.decay)


def judge(views: list[LimitView], slots: int, now: datetime) -> Verdict:
    """Whether ``slots`` fit on every active limit at ``now``."""
    blocked = [v for v in views if v.active and room_at(v, slots, now) != now]
    if not blocked:
        return Verdict(True)
    moments = [room_at(v, slots, now) for v in blocked]
    if any(m is None for m in moments):
        return Verdict(False)
    return Verdict(False, max(m for m in moments if m is not None))


def add_unleased(view: LimitView, delta: float, now: datetime) -> float:
    """The unleased occupancy to store at ``now`` after adding ``delta`` (never below 0)."""
    return max(0.0, unleased_now(view, now) + delta)


def unleased_for_total(view: LimitView, total: int, now: datetime) -> float:
    """The unleased occupancy that makes ``active_slots`` equal ``total``.

    Leases are not revoked: a total below the leased slots leaves no unleased
    occupancy and ``active_slots`` equal to the leased slots.
    """
    return float(max(0, total - view.leased))
