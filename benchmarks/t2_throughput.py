#!/usr/bin/env python3
"""T2: background-task throughput, ``--n`` (10,000) ``.delay()`` runs over
``--workers`` (4) task workers.

The runs are issued by ``--callers`` caller processes (this script's ``caller``
mode) with ``--caller-threads`` threads each, released at the same moment, so a
single caller is not the bottleneck. Every run is ``bench_record.delay(seq)``;
its body appends ``<task run id> <seq> <pid> <time>`` to its worker's log file.
Counted from the first ``.delay()`` call:

* ``runs_per_s``: until the server reports every run COMPLETED (polled with
  ``POST /task_runs/count`` every ``--poll`` s, only once the logs show every
  body ran, so the polling does not load the server meanwhile; the workers
  report states through events, so this includes the server's event pipeline);
* ``bodies_per_s``: until the last body ran (from the logs);
* lost (a ``.delay()`` that returned a run id that never ran), duplicated (a run
  id that ran more than once), unexpected (ran but never delayed) from the logs;
* server CPU (its process tree), worker and caller CPU, and the whole machine's
  busy share (2 cores run the callers, the workers and the server).

It stops waiting when nothing progressed for ``--stall`` s or after
``--max-seconds`` (then ``finished`` is false and the rates are lower bounds).

usage: python t2_throughput.py --api-url http://127.0.0.1:4300/api [--server-pid PID]
           [--n 10000] [--workers 4] [--callers 2] [--caller-threads 4] [--out t2.json]
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
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
from bg_common import SUBSCRIBING, Helpers, busy_pct, client_env, go, log, machine_cpu, spread  # noqa: E402


def caller_main(argv: list[str]) -> None:
    """``caller NAME FIRST COUNT THREADS OUT``: after "go", delay seqs FIRST..FIRST+COUNT-1
    as runs named NAME (the same task key: only the run name differs)."""
    name, first, count, threads, out = argv[0], int(argv[1]), int(argv[2]), int(argv[3]), argv[4]
    from bg_common import wait_ready
    from bg_tasks import bench_record

    named = bench_record.with_options(name=name)

    def delay(seq: int) -> list[Any]:
        t0 = time.time()
        try:
            run_id = str(named.delay(seq).task_run_id)
        except Exception as e:  # noqa: BLE001 - counted, reported
            return [seq, None, t0, time.time(), f"{type(e).__name__}: {e}"[:300]]
        return [seq, run_id, t0, time.time(), None]

    bench_record.delay(-1 - first)  # warm the client up (its run is not counted)
    wait_ready()
    cpu0 = time.process_time()
    with ThreadPoolExecutor(threads) as pool:
        rows = list(pool.map(delay, range(first, first + count)))
    Path(out).write_text(json.dumps({"rows": rows, "cpu_s": round(time.process_time() - cpu0, 2)}))
    print("done", flush=True)


class TaskLogs:
    """Reads the workers' log files incrementally (``<prefix>.<pid>``)."""

    def __init__(self, prefix: Path) -> None:
        self.prefix = prefix
        self.offsets: dict[Path, int] = {}
        self.rows: list[tuple[str, int, int, float]] = []

    def read(self) -> int:
        for path in sorted(self.prefix.parent.glob(self.prefix.name + ".*")):
            with open(path, "rb") as f:
                f.seek(self.offsets.get(path, 0))
                data = f.read()
            end = data.rfind(b"\n") + 1  # a line being written is read next time
            self.offsets[path] = self.offsets.get(path, 0) + end
            for line in data[:end].decode().splitlines():
                run_id, seq, pid, t = line.split()
                self.rows.append((run_id, int(seq), int(pid), float(t)))
        return len(self.rows)

    def measured(self) -> list[tuple[str, int, int, float]]:
        return [r for r in self.rows if r[1] >= 0]  # warm-up runs have negative seqs


def wait_until(progress: Any, target: int, stall: float, deadline: float, poll: float) -> int:
    """Call ``progress()`` every ``poll`` s until it reaches ``target``, makes no
    progress for ``stall`` s, or ``deadline`` passes; its last value."""
    last, t_last = -1, time.time()
    while True:
        value = progress()
        if value >= target or time.time() > deadline:
            return value
        if value != last:
            last, t_last = value, time.time()
        elif time.time() - t_last > stall:
            return value
        time.sleep(poll)


def main() -> None:
    if sys.argv[1:2] == ["caller"]:
        return caller_main(sys.argv[2:])
    p = base_parser(__doc__)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--worker-limit", type=int, default=10, help="runs in flight per worker")
    p.add_argument("--callers", type=int, default=2, help="caller processes")
    p.add_argument("--caller-threads", type=int, default=4, help="threads per caller")
    p.add_argument("--warmup-runs", type=int, default=20)
    p.add_argument("--stall", type=float, default=120, help="give up after no progress this long")
    p.add_argument("--max-seconds", type=float, default=1800, help="from the first delay")
    p.add_argument("--poll", type=float, default=0.25, help="COMPLETED count poll, s")
    p.add_argument("--start-timeout", type=float, default=240, help="for workers and callers")
    args = finish_args(p.parse_args())
    home = client_env(args.api_url, "pfb-t2-")
    wait_healthy(args.api_url)
    mon = ProcMonitor(args.server_pid, args.sample_interval).start()
    t_origin = time.time()
    work = Path(tempfile.mkdtemp(prefix="pfb-t2-run-"))
    prefix = work / "tasks"
    os.environ["BENCH_TASK_LOG"] = str(prefix)
    workers, callers = Helpers(work), Helpers(work)
    logs = TaskLogs(prefix)
    errors: list[str] = []
    result: dict[str, Any] = {}
    try:
        result = run(args, mon, workers, callers, logs, work, errors)
    finally:
        callers.stop()
        workers.stop()
        mon.stop()
    result.update(
        scenario="T2_background_throughput",
        n_requested=args.n,
        workers=args.workers,
        callers=args.callers,
        caller_threads=args.caller_threads,
        errors=errors,
        rss_mb_peak=mon.peak_rss(),
        series=mon.series(t_origin),
    )
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)
    write_result(args, result)


def run(
    args: Any,
    mon: ProcMonitor,
    workers: Helpers,
    callers: Helpers,
    logs: TaskLogs,
    work: Path,
    errors: list[str],
) -> dict[str, Any]:
    from bg_tasks import bench_record

    log(f"starting {args.workers} task workers and {args.callers} callers")
    for i in range(args.workers):
        workers.start_worker("record", f"worker-{i}", ["--limit", str(args.worker_limit)])
    name = f"t2-{uuid.uuid4().hex[:8]}"  # the measured runs' name, to count them
    share = -(-args.n // args.callers)
    for i in range(args.callers):
        first, count = i * share, min(share, args.n - i * share)
        out = work / f"caller-{i}.json"
        callers.start(
            [__file__, "caller", name, str(first), str(count), str(args.caller_threads), str(out)],
            f"caller-{i}",
            stdin=True,
        )
    missing = workers.wait_for_line(SUBSCRIBING, args.start_timeout)
    if missing:
        errors.append(f"task worker(s) {missing} did not subscribe: {workers.tail(missing[0])}")
        return {}
    for i in range(args.warmup_runs):
        bench_record.delay(-1000 - i)
    # the callers' own warm-up runs count too (one each)
    warm = args.warmup_runs + args.callers
    deadline = time.time() + args.start_timeout
    if wait_until(logs.read, warm, args.stall, deadline, 0.2) < warm:
        errors.append(f"warm-up runs did not all run: {logs.read()} of {warm}")
        return {}
    missing = callers.wait_for_line("ready", args.start_timeout)
    if missing:
        errors.append(f"caller(s) {missing} never got ready: {callers.tail(missing[0])}")
        return {}
    time.sleep(2)  # let the warm-up's state events settle

    a, m_a, w_a = mon.mark("go"), machine_cpu(), workers.cpu_s()
    t_go = go(callers.procs)
    deadline = t_go + args.max_seconds
    log(f"go: {args.n} delays")
    callers.wait_for_line("done", args.max_seconds)
    t_delayed = time.time()
    rows: list[list[Any]] = []
    caller_cpu = 0.0
    for i in range(args.callers):
        try:
            data = json.loads((work / f"caller-{i}.json").read_text())
        except (OSError, ValueError):
            errors.append(f"caller {i} wrote no result: {callers.tail(i)}")
            continue
        rows += data["rows"]
        caller_cpu += data["cpu_s"]
    delay_errors = [r[4] for r in rows if r[4]]
    delayed = {r[1]: r for r in rows if r[1]}
    log(f"{len(delayed)} delayed in {t_delayed - t_go:.1f}s; waiting for the bodies")

    def bodies_ran() -> int:
        logs.read()
        return len(logs.measured())

    bodies = wait_until(bodies_ran, len(delayed), args.stall, deadline, 0.5)
    b_bodies = mon.mark("bodies_done")
    ran = logs.measured()
    t_last_body = max((r[3] for r in ran), default=None)
    log(f"{bodies} bodies ran; waiting for the server to report them COMPLETED")
    ours = {"task_runs": {"name": {"any_": [name]}, "state": {"type": {"any_": ["COMPLETED"]}}}}

    with httpx.Client(base_url=args.api_url, timeout=60) as http:

        def completed() -> int:
            r = http.post("/task_runs/count", json=ours)
            r.raise_for_status()
            return int(r.json())

        n_completed = wait_until(completed, len(delayed), args.stall, deadline, args.poll)
    b = mon.mark("completed")
    m_b, w_b = machine_cpu(), workers.cpu_s()
    t_first = min((r[2] for r in rows), default=t_go)
    counts = Counter(r[0] for r in ran)
    lost = [i for i in delayed if i not in counts]
    cut_short = bodies < len(delayed) and time.time() > deadline
    dup = [i for i, c in counts.items() if c > 1]
    unexpected = [i for i in counts if i not in delayed]
    queued = [r[3] - delayed[r[0]][2] for r in ran if r[0] in delayed]
    finished = n_completed >= len(delayed) == args.n and not lost
    wall = b["t"] - t_first
    cpu = cpu_delta(a, b)
    busy = busy_pct(m_a, m_b)
    notes = []
    if busy >= 90:
        notes.append(
            f"machine saturated: {busy:.0f} % of all {os.cpu_count()} cores busy (all users); "
            f"callers {caller_cpu:.0f} CPU-s, task workers {w_b - w_a:.0f} CPU-s, server "
            f"{cpu or 0:.0f} CPU-s: runs/s then measures the machine more than the server; "
            "compare the server's CPU per run"
        )
        log(notes[-1])
    return {
        "delayed": len(delayed),
        "delay_errors": len(delay_errors),
        "delay_error_samples": delay_errors[:5],
        "ran": len(ran),
        # runs still not run when the deadline cut the wait short are late, not lost
        "lost": None if cut_short else len(lost),
        "lost_samples": lost[:10],
        "not_run_at_deadline": len(lost) if cut_short else 0,
        "duplicated": len(dup),
        "duplicated_samples": dup[:10],
        "unexpected": len(unexpected),
        "completed_in_server": n_completed,
        "finished": finished,
        "delay_wall_s": round(t_delayed - t_first, 2),
        "delays_per_s": round(len(delayed) / (t_delayed - t_first), 1) if delayed else None,
        "bodies_wall_s": round(t_last_body - t_first, 2) if t_last_body else None,
        "bodies_per_s": round(len(ran) / (t_last_body - t_first), 1) if t_last_body else None,
        "wall_s": round(wall, 2),
        "runs_per_s": round(n_completed / wall, 1) if wall > 0 else None,
        "delay_to_body_ms": spread(queued),
        "delay_call_ms": spread([r[3] - r[2] for r in rows if r[1]]),
        "server_cpu_s": cpu,
        "server_cpu_ms_per_run": round(1000 * cpu / len(ran), 2) if cpu and ran else None,
        "server_cpu_s_to_bodies_done": cpu_delta(a, b_bodies),
        "server_cpu_pct_of_one_core": round(100 * cpu / (b["t"] - a["t"]), 1) if cpu else None,
        "workers_cpu_s": round(w_b - w_a, 2),
        "callers_cpu_s": round(caller_cpu, 2),
        "machine_busy_pct": busy,
        "machine_cores": os.cpu_count(),
        "notes": notes,
    }


if __name__ == "__main__":
    main()
