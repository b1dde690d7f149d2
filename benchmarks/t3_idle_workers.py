#!/usr/bin/env python3
"""T3: the server's idle cost with ``--workers`` (20) subscribed task workers.

Starts the task workers (``bg_tasks.py serve idle --index i``: each subscribes
to a task key of its own), waits until every one has logged prefect's
"Subscribing to runs" line, then ``--warmup`` s, then measures over
``--duration`` s with no runs and no requests from this script: the server's
CPU and RSS (its process tree only; the workers are this script's children),
the workers' CPU and the machine's busy share (all users). Workers that exited
before the end are counted (``workers_alive_at_end``).

The reference's subscriptions each poll their queues every 10 ms; headrace's
sleep until a run is enqueued.

usage: python t3_idle_workers.py --api-url http://127.0.0.1:4300/api [--server-pid PID]
           [--workers 20] [--warmup 30] [--duration 120] [--out t3.json]
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

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
from bg_common import SUBSCRIBING, Helpers, busy_pct, client_env, log, machine_cpu  # noqa: E402


def main() -> None:
    p = base_parser(__doc__)
    p.add_argument("--workers", type=int, default=20)
    p.add_argument("--warmup", type=float, default=30)
    p.add_argument("--duration", type=float, default=120)
    p.add_argument("--start-timeout", type=float, default=300, help="for all workers")
    args = finish_args(p.parse_args())
    home = client_env(args.api_url, "pfb-t3-")
    wait_healthy(args.api_url)
    mon = ProcMonitor(args.server_pid, args.sample_interval).start()
    t_origin = time.time()
    work = Path(tempfile.mkdtemp(prefix="pfb-t3-run-"))
    workers = Helpers(work)
    errors: list[str] = []
    idle: dict[str, object] = {}
    subscribed = alive = 0
    started_s = None
    try:
        log(f"starting {args.workers} task workers")
        t0 = time.time()
        for i in range(args.workers):
            workers.start_worker("idle", f"worker-{i}", ["--index", str(i)])
        missing = workers.wait_for_line(SUBSCRIBING, args.start_timeout)
        subscribed = args.workers - len(missing)
        started_s = round(time.time() - t0, 1)
        if missing:
            errors.append(f"{len(missing)} worker(s) did not subscribe: {workers.tail(missing[0])}")
        log(f"{subscribed} subscribing after {started_s}s; warm-up {args.warmup:g}s")
        time.sleep(args.warmup)
        a, m_a, w_a = mon.mark("idle_start"), machine_cpu(), workers.cpu_s()
        time.sleep(args.duration)
        b, m_b, w_b = mon.mark("idle_end"), machine_cpu(), workers.cpu_s()
        alive = workers.alive()
        if alive < args.workers:
            errors.append(f"only {alive} of {args.workers} workers alive at the end")
        dur = b["t"] - a["t"]
        cpu = cpu_delta(a, b)
        idle = {
            "duration_s": round(dur, 2),
            "cpu_s": cpu,
            "cpu_pct_of_one_core": round(100 * cpu / dur, 3) if cpu is not None else None,
            "rss_mb_peak": mon.peak_rss(a["t"], b["t"]),
            "disk_write_mb": round(b["write_mb"] - a["write_mb"], 3),
            "workers_cpu_s": round(w_b - w_a, 2),
            "workers_cpu_pct_of_one_core": round(100 * (w_b - w_a) / dur, 2),
            "machine_busy_pct": busy_pct(m_a, m_b),
        }
        log(f"idle: {idle}")
    finally:
        workers.stop()
        mon.stop()
    result = {
        "scenario": "T3_idle_task_workers",
        "workers": args.workers,
        "workers_subscribed": subscribed,
        "workers_alive_at_end": alive,
        "workers_start_s": started_s,
        "warmup_s": args.warmup,
        **idle,
        "errors": errors,
        "rss_mb_peak": mon.peak_rss(),
        "series": mon.series(t_origin),
    }
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)
    write_result(args, result)


if __name__ == "__main__":
    main()
