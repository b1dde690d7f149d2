#!/usr/bin/env python3
"""T4: ``--waiters`` (6) waiters on a global concurrency limit of 1: how soon the
next waiter enters after a release.

The limit is created through the client (``create_global_concurrency_limit``,
what ``prefect gcl create NAME --limit 1`` sends). Each waiter is a process (the
client serialises the acquisitions of one process through one service, so
waiters in one process would not wait side by side) running this script's
``waiter`` mode: after a common "go", ``--rounds`` times::

    t_request; with concurrency(NAME, occupy=1): t_enter; sleep(--hold); t_exit
    t_released; sleep(--pause)

and the times of the requests underneath: the client's
``increment_concurrency_slots_with_lease`` and
``release_concurrency_slots_with_lease`` are wrapped to note when the grant
came back (``t_granted``; 423 answers counted as ``denied``), and when the
release was called and returned (``t_release_sent``, ``t_release_done``).

``--pause`` (0.1 s) lets the others, already waiting, take the slot before the
one that just left asks again. Measured, over the entries sorted by
``t_enter``, for each hand-over to ANOTHER waiter:

* ``handover`` = next ``t_granted`` - previous ``t_release_sent``: the release
  request leaves the holder, the server frees the slot and answers a waiting
  request (the goal's figure: an upper bound of "release -> next waiter let
  in", by the server and the client's protocol);
* ``enter_after_release`` = next ``t_enter`` - previous ``t_release_sent``
  (plus the waiter's client getting into the block: events, lease renewal);
* ``from_exit`` = next ``t_enter`` - previous ``t_exit`` (what a user sees,
  with the client's cost of leaving the block: ~0.1 s before the release
  request is even sent);
* ``after_release_done`` = next ``t_enter`` - previous ``t_release_done``
  (negative: the next one was in before the holder's release call returned);
* each acquisition's wait (``t_enter - t_request``), entries per waiter;
* overlaps (an entry before the previous exit: the limit was exceeded) and the
  limit's ``active_slots`` after everything (expected 0).

The client's protocol: a request that does not fit is answered 423 with
``Retry-After`` and the client sleeps that long before asking again
(``prefect/concurrency/services.py``); the reference's ``Retry-After`` grows
with the limit's average occupancy and the denied slots. headrace holds such a
request open for up to 5 s and answers it as soon as a slot frees, so a waiter
asking while the slot is taken is let in at the release, not at its next poll.

usage: python t4_slot_waiters.py --api-url http://127.0.0.1:4300/api [--server-pid PID]
           [--waiters 6] [--rounds 10] [--hold 0.2] [--pause 0.1] [--out t4.json]
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from bench_shared import use_shared

use_shared()
from benchlib import (  # noqa: E402
    ProcMonitor,
    base_parser,
    cpu_delta,
    finish_args,
    wait_healthy,
    write_result,
)
from bg_common import Helpers, client_env, go, log, spread  # noqa: E402


def waiter_main(argv: list[str]) -> None:
    """``waiter NAME ROUNDS HOLD PAUSE TIMEOUT OUT``"""
    name, rounds, hold, pause = argv[0], int(argv[1]), float(argv[2]), float(argv[3])
    timeout, out = float(argv[4]), Path(argv[5])
    from bg_common import wait_ready
    from prefect.client.orchestration import PrefectClient
    from prefect.concurrency.sync import concurrency

    increment = PrefectClient.increment_concurrency_slots_with_lease
    release = PrefectClient.release_concurrency_slots_with_lease
    stamps: list[tuple[float, float]] = []
    grants: list[float] = []
    denied = [0]

    async def timed_increment(self: Any, *a: Any, **kw: Any) -> Any:
        try:
            response = await increment(self, *a, **kw)
        except httpx.HTTPStatusError:
            denied[0] += 1
            raise
        grants.append(time.time())
        return response

    async def timed_release(self: Any, lease_id: Any) -> Any:
        t = time.time()
        try:
            return await release(self, lease_id)
        finally:
            stamps.append((t, time.time()))

    PrefectClient.increment_concurrency_slots_with_lease = timed_increment  # type: ignore[method-assign]
    PrefectClient.release_concurrency_slots_with_lease = timed_release  # type: ignore[method-assign]
    rows: list[dict[str, Any]] = []
    wait_ready()
    for i in range(rounds):
        row: dict[str, Any] = {"round": i, "t_request": time.time()}
        denied[0] = 0
        try:
            with concurrency(name, occupy=1, timeout_seconds=timeout, strict=True):
                row["t_enter"] = time.time()
                row["t_granted"], row["denied"] = grants[-1], denied[0]
                time.sleep(hold)
                row["t_exit"] = time.time()
            row["t_released"] = time.time()
            if stamps:
                row["t_release_sent"], row["t_release_done"] = stamps.pop()
        except Exception as e:  # noqa: BLE001 - reported
            row["error"] = f"{type(e).__name__}: {e}"[:300]
        rows.append(row)
        out.write_text(json.dumps(rows))
        time.sleep(pause)
    print("done", flush=True)


def handovers(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Hand-over figures over the entries sorted by entry time."""
    entries = sorted(entries, key=lambda r: r["t_enter"])
    gaps, enter, from_exit, after_release = [], [], [], []
    overlaps = same_waiter = 0
    for prev, nxt in zip(entries, entries[1:], strict=False):
        if nxt["t_enter"] < prev["t_exit"]:
            overlaps += 1
        if nxt["waiter"] == prev["waiter"]:
            same_waiter += 1
            continue
        from_exit.append(nxt["t_enter"] - prev["t_exit"])
        if "t_release_sent" in prev:
            gaps.append(nxt["t_granted"] - prev["t_release_sent"])
            enter.append(nxt["t_enter"] - prev["t_release_sent"])
            after_release.append(nxt["t_enter"] - prev["t_release_done"])
    return {
        "handover_ms": spread(gaps),
        "enter_after_release_ms": spread(enter),
        "from_exit_ms": spread(from_exit),
        "after_release_done_ms": spread(after_release),
        "overlaps": overlaps,
        "same_waiter_again": same_waiter,
    }


def main() -> None:
    if sys.argv[1:2] == ["waiter"]:
        return waiter_main(sys.argv[2:])
    p = base_parser(__doc__)
    p.add_argument("--waiters", type=int, default=6)
    p.add_argument("--rounds", type=int, default=10, help="entries per waiter")
    p.add_argument("--hold", type=float, default=0.2, help="seconds inside")
    p.add_argument("--pause", type=float, default=0.1, help="seconds between a waiter's rounds")
    p.add_argument("--acquire-timeout", type=float, default=300, help="per acquisition")
    p.add_argument("--max-seconds", type=float, default=900, help="for all rounds")
    p.add_argument("--start-timeout", type=float, default=180, help="for the waiter processes")
    args = finish_args(p.parse_args())
    home = client_env(args.api_url, "pfb-t4-")
    wait_healthy(args.api_url)
    mon = ProcMonitor(args.server_pid, args.sample_interval).start()
    t_origin = time.time()
    work = Path(tempfile.mkdtemp(prefix="pfb-t4-run-"))
    waiters = Helpers(work)
    name = f"t4-{uuid.uuid4().hex[:8]}"
    errors: list[str] = []
    result: dict[str, Any] = {}
    try:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

        with get_client(sync_client=True) as client:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        log(f"limit {name!r} of 1; starting {args.waiters} waiters")
        for i in range(args.waiters):
            cmd = [__file__, "waiter", name, str(args.rounds), str(args.hold), str(args.pause)]
            cmd += [str(args.acquire_timeout), str(work / f"waiter-{i}.json")]
            waiters.start(cmd, f"waiter-{i}", stdin=True)
        missing = waiters.wait_for_line("ready", args.start_timeout)
        if missing:
            errors.append(f"waiter(s) {missing} never got ready: {waiters.tail(missing[0])}")
        else:
            a = mon.mark("go")
            t_go = go(waiters.procs)
            missing = waiters.wait_for_line("done", args.max_seconds)
            b = mon.mark("done")
            if missing:
                errors.append(f"{len(missing)} waiter(s) not done after {args.max_seconds:g}s")
            result = measure(args, waiters, work, name, errors)
            result.update(
                wall_s=round(b["t"] - t_go, 2),
                server_cpu_s=cpu_delta(a, b),
                finished=not missing and result["entries"] == args.waiters * args.rounds,
            )
    finally:
        waiters.stop()
        mon.stop()
    result.update(
        scenario="T4_slot_waiters",
        limit_name=name,
        waiters=args.waiters,
        rounds=args.rounds,
        hold_s=args.hold,
        pause_s=args.pause,
        errors=errors,
        rss_mb_peak=mon.peak_rss(),
        series=mon.series(t_origin),
    )
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)
    write_result(args, result)


def measure(
    args: Any, waiters: Helpers, work: Path, name: str, errors: list[str]
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for i in range(args.waiters):
        try:
            rows += [dict(r, waiter=i) for r in json.loads((work / f"waiter-{i}.json").read_text())]
        except (OSError, ValueError):
            errors.append(f"waiter {i} wrote nothing: {waiters.tail(i)}")
    failed = [r["error"] for r in rows if r.get("error")]
    entries = [r for r in rows if "t_released" in r]
    r = httpx.get(f"{args.api_url}/v2/concurrency_limits/{name}", timeout=30)
    active = r.json().get("active_slots") if r.status_code == 200 else None
    return {
        "entries": len(entries),
        "acquire_errors": len(failed),
        "acquire_error_samples": failed[:5],
        **handovers(entries),
        "wait_ms": spread([x["t_enter"] - x["t_request"] for x in entries]),
        "denied_423": sum(x["denied"] for x in entries),
        "release_call_ms": spread(
            [x["t_release_done"] - x["t_release_sent"] for x in entries if "t_release_sent" in x]
        ),
        "leave_ms": spread(
            [x["t_release_sent"] - x["t_exit"] for x in entries if "t_release_sent" in x]
        ),
        "entries_per_waiter": [
            sum(1 for x in entries if x["waiter"] == i) for i in range(args.waiters)
        ],
        "active_slots_after": active,
    }


if __name__ == "__main__":
    main()
