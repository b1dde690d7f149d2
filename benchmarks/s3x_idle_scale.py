#!/usr/bin/env python3
"""S3x: N deployments (default 10,000) with hourly interval schedules, created
through the Prefect client (the shared ``deploylib``), then an idle window.

Measures
  * creation time (``--concurrency`` requests in flight),
  * the time until every deployment has a SCHEDULED-type run (polled every
    ``--poll`` s with ``POST /deployments/count`` + a flow_runs filter),
  * after ``--settle`` more seconds, the server's CPU and RSS over an idle
    window of ``--duration`` s with no requests at all (the Scheduled runs are
    counted just before and after it: a change means the scheduler was still
    busy, e.g. when coverage had not finished within ``--max-wait``). The schedules share
    one anchor (the schedule object is built once, before creation), so with
    a 1 h interval nothing is due for about an hour after creation starts;
    the runs whose expected start falls in the window are counted afterwards
    (``idle.runs_due_in_window``, expected 0).

usage: python s3x_idle_scale.py --api-url http://127.0.0.1:4300/api
           [--server-pid PID] [--n 10000] [--interval 3600] [--concurrency 4]
           [--max-wait 1800] [--settle 120] [--duration 120] [--out s3x.json]
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from bench_shared import use_shared

use_shared()
from benchlib import (  # noqa: E402
    ProcMonitor,
    base_parser,
    cpu_delta,
    finish_args,
    flow_run_state_counts,
    log,
    wait_healthy,
    write_result,
)
from deploylib import create_deployments  # noqa: E402

SCHEDULED = {"state": {"type": {"any_": ["SCHEDULED"]}}}


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def count(client: httpx.Client, url: str, body: dict[str, Any]) -> int:
    r = client.post(url, json=body, timeout=60)
    r.raise_for_status()
    return int(r.json())


def wait_covered(
    client: httpx.Client, api: str, prefix: str, n: int, poll: float, max_wait: float
) -> tuple[float | None, int | None, list[str]]:
    """Poll until ``n`` deployments named ``prefix*`` have a Scheduled run:
    (time covered or None, scheduled runs then, errors)."""
    names = {"deployments": {"name": {"like_": prefix}}}
    errors: list[str] = []
    t_end = time.time() + max_wait
    while time.time() < t_end:
        t = time.time()
        try:
            covered = count(client, f"{api}/deployments/count", {**names, "flow_runs": SCHEDULED})
            if covered >= n:
                total = count(client, f"{api}/flow_runs/count", {**names, "flow_runs": SCHEDULED})
                return t, total, errors
        except (httpx.HTTPError, ValueError) as e:
            errors.append(f"{type(e).__name__}: {e}"[:200])
        else:
            log(f"covered {covered}/{n}")
        time.sleep(max(0.0, poll - (time.time() - t)))
    return None, None, errors


def main() -> None:
    p = base_parser(__doc__)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--interval", type=float, default=3600)
    p.add_argument("--concurrency", type=int, default=4, help="creation requests in flight")
    p.add_argument("--create-timeout", type=float, default=1800, help="stop creating after this")
    p.add_argument("--max-wait", type=float, default=1800, help="give up waiting for coverage")
    p.add_argument("--poll", type=float, default=2.0)
    p.add_argument("--settle", type=float, default=120, help="wait after coverage, s")
    p.add_argument("--duration", type=float, default=120, help="idle window, s")
    args = finish_args(p.parse_args())
    api = args.api_url

    wait_healthy(api)
    mon = ProcMonitor(args.server_pid, args.sample_interval).start()
    t_origin = time.time()
    tag = uuid.uuid4().hex[:6]
    prefix = f"s3x-{tag}-"
    c0 = mon.mark("create_start")
    log(f"creating {args.n} deployments, interval {args.interval:g}s, {args.concurrency} at a time")
    created = create_deployments(
        api,
        args.n,
        prefix,
        flow_name=f"s3x-flow-{tag}",
        interval_s=args.interval,
        concurrency=args.concurrency,
        deadline_s=args.create_timeout,
    )
    c1 = mon.mark("create_end")
    n = len(created["deployment_ids"])
    wall = created["t_end"] - created["t_start"]
    log(f"created {n} in {wall:.1f}s; waiting until all have scheduled runs")

    with httpx.Client() as client:
        t_all, sched_total, cov_errors = wait_covered(
            client, api, prefix, n, args.poll, args.max_wait
        )
        cov = mon.mark("covered")
        if t_all is None:
            log(f"not all {n} deployments had runs after {args.max_wait:g}s")
        else:
            log(f"all covered {t_all - c1['t']:.1f}s after creation; {sched_total} runs scheduled")
        log(f"settling {args.settle:g}s, then the idle window of {args.duration:g}s")
        time.sleep(args.settle)
        names = {"deployments": {"name": {"like_": prefix}}}
        scheduled = {**names, "flow_runs": SCHEDULED}
        # counted just outside the window: if it changes, the scheduler was not idle
        runs_before = count(client, f"{api}/flow_runs/count", scheduled)
        a = mon.mark("idle_start")
        time.sleep(args.duration)
        b = mon.mark("idle_end")
        runs_after = count(client, f"{api}/flow_runs/count", scheduled)
        due = count(
            client,
            f"{api}/flow_runs/count",
            {
                **names,
                "flow_runs": {
                    "expected_start_time": {"after_": iso(a["t"]), "before_": iso(b["t"])}
                },
            },
        )
        counts_end = flow_run_state_counts(client, api, None)
    mon.stop()
    idle_cpu, dur = cpu_delta(a, b), b["t"] - a["t"]
    result = {
        "scenario": "S3x_idle_at_scale",
        "n_deployments_requested": args.n,
        "n_deployments_created": n,
        "interval_s": args.interval,
        "concurrency": args.concurrency,
        "create_wall_s": round(wall, 3),
        "create_rate_per_s": round(n / wall, 2) if wall else None,
        "create_cpu_s": cpu_delta(c0, c1),
        "create_errors": created["errors"][:20],
        "create_skipped_after_timeout": created["skipped_after_deadline"],
        "time_all_have_runs_since_create_end_s": round(t_all - c1["t"], 2) if t_all else None,
        "time_all_have_runs_since_create_start_s": round(t_all - c0["t"], 2) if t_all else None,
        "scheduled_total_at_coverage": sched_total,
        "coverage_cpu_s": cpu_delta(c1, cov),
        "coverage_errors": cov_errors[:20],
        "settle_s": args.settle,
        "idle": {
            "start_since_create_end_s": round(a["t"] - c1["t"], 1),
            "duration_s": round(dur, 2),
            "cpu_s": idle_cpu,
            "cpu_pct_of_one_core": round(100 * idle_cpu / dur, 3) if idle_cpu is not None else None,
            "rss_mb_peak": mon.peak_rss(a["t"], b["t"]),
            "disk_write_mb": round(b["write_mb"] - a["write_mb"], 3),
            "runs_due_in_window": due,
            "scheduled_runs_at_start": runs_before,
            "scheduled_runs_at_end": runs_after,
        },
        "rss_mb_peak": mon.peak_rss(),
        "flow_runs_end": counts_end,
        "series": mon.series(t_origin),
    }
    write_result(args, result)


if __name__ == "__main__":
    main()
