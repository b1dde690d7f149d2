#!/usr/bin/env python3
"""S2w, the seed user's case WITH a worker: a ``process`` work pool, N
deployments (default 42) of a trivial flow from a local directory
(``flow.from_source(...).to_deployment(cron="* * * * *")`` + ``prefect.deploy``),
and one ``prefect worker start --pool NAME`` running them.

After a warm-up, it measures over ``--duration`` seconds:
  * the server's CPU and RSS (the server's process tree only; the worker and
    the flow processes are this script's children, not the server's),
  * the worker's CPU (worker + flow processes) and the whole machine's busy
    share (all users: the machine is shared), to tell when 2 cores saturate,
and for every run whose expected start time fell in the window:
``start_time - expected_start_time``, how many started within ``--within``
seconds of it (default 2; early counts as a miss too: a worker prefetches
runs up to 10 s ahead and the engine may start them early), how many never
started, how many reached Completed (it waits up to ``--drain`` s after the
window for them to finish), and from each run's state history where a delay
came from: the worker's pick-up (PENDING) vs the flow process starting up.

No requests are sent during the window (the worker's and the flows' own
traffic is the load being measured).

usage: python s2w_worker.py --api-url http://127.0.0.1:4300/api [--server-pid PID]
           [--n 42] [--cron "* * * * *"] [--warmup 30] [--duration 180]
           [--drain 120] [--within 2] [--out s2w.json]
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
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
    log,
    pct,
    process_tree,
    sample_tree,
    wait_healthy,
    write_result,
)

FLOW_SOURCE = """from prefect import flow


@flow
def f() -> int:
    return 1
"""
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def ts(text: str | None) -> float | None:
    return datetime.fromisoformat(text).timestamp() if text else None


def machine_cpu() -> tuple[int, int]:
    """(total, idle) jiffies over all cores, from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:9]]
    return sum(vals), vals[3] + vals[4]  # idle + iowait


def create_pool_and_deployments(
    pool: str, n: int, cron: str, src_dir: Path
) -> tuple[list[str], list[str]]:
    """Create the process pool and the deployments as a user would; (ids, errors)."""
    from prefect import deploy, flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.workers.process import ProcessWorker

    # what `prefect work-pool create --type process` sends
    template = ProcessWorker.get_default_base_job_template()
    with get_client(sync_client=True) as client:
        client.create_work_pool(
            WorkPoolCreate(name=pool, type="process", base_job_template=template)
        )
    source = flow.from_source(source=str(src_dir), entrypoint="f.py:f")
    deployments = [source.to_deployment(name=f"s2w-{i:03d}", cron=cron) for i in range(n)]
    try:
        ids = deploy(
            *deployments,
            work_pool_name=pool,
            print_next_steps_message=False,
            ignore_warnings=True,
        )
    except Exception as e:  # noqa: BLE001 - report it, measure nothing
        return [], [f"{type(e).__name__}: {e}"[:300]]
    return [str(x) for x in ids], []


def start_worker(pool: str, log_path: Path) -> subprocess.Popen[bytes]:
    prefect = Path(sys.executable).parent / "prefect"
    env = dict(os.environ, PREFECT_LOGGING_LEVEL="INFO")
    with open(log_path, "wb") as out:
        return subprocess.Popen(
            [str(prefect), "worker", "start", "--pool", pool],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """SIGTERM the worker, then SIGKILL it and its flow processes, by PID."""
    tree = process_tree(worker.pid)
    with contextlib.suppress(ProcessLookupError):
        worker.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        worker.wait(timeout=15)
    for pid in tree + process_tree(worker.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    worker.wait()


def window_runs(
    client: httpx.Client, api: str, dep_ids: list[str], t0: float, t1: float
) -> list[dict[str, Any]]:
    """Flow runs of ``dep_ids`` whose expected start time is in [t0, t1)."""
    out: list[dict[str, Any]] = []
    while True:
        r = client.post(
            f"{api}/flow_runs/filter",
            json={
                "flow_runs": {
                    "deployment_id": {"any_": dep_ids},
                    "expected_start_time": {"after_": iso(t0), "before_": iso(t1)},
                },
                "sort": "EXPECTED_START_TIME_ASC",
                "limit": 200,
                "offset": len(out),
            },
            timeout=60,
        )
        r.raise_for_status()
        page = r.json()
        out += page
        if len(page) < 200:
            return [fr for fr in out if (ts(fr["expected_start_time"]) or 0) < t1]


def pending_at(client: httpx.Client, api: str, run_id: str) -> float | None:
    """When the run first entered PENDING (the worker picked it up), from its history."""
    r = client.get(f"{api}/flow_run_states/", params={"flow_run_id": run_id}, timeout=60)
    r.raise_for_status()
    times = [ts(s["timestamp"]) for s in r.json() if s.get("type") == "PENDING"]
    return min((t for t in times if t is not None), default=None)


def _spread(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": round(pct(values, 50), 3) if values else None,
        "p95": round(pct(values, 95), 3) if values else None,
        "max": round(max(values), 3) if values else None,
        "min": round(min(values), 3) if values else None,
    }


def run_stats(
    runs: list[dict[str, Any]], pending: dict[str, float | None], within: float
) -> dict[str, Any]:
    delays, states, per_run = [], {}, []
    picked, to_running = [], []  # where a start delay comes from: pick-up vs process start
    for fr in runs:
        state = (fr.get("state") or {}).get("name") or "?"
        states[state] = states.get(state, 0) + 1
        start, expected = ts(fr.get("start_time")), ts(fr["expected_start_time"])
        delay = None if start is None or expected is None else round(start - expected, 3)
        pend = pending.get(fr["id"])
        if delay is not None:
            delays.append(delay)
        if pend is not None and expected is not None:
            picked.append(pend - expected)
            if start is not None:
                to_running.append(start - pend)
        per_run.append(
            {
                "expected": fr["expected_start_time"],
                "delay_s": delay,
                "pending_minus_expected_s": None if pend is None else round(pend - expected, 3),
                "state": state,
            }
        )
    on_time = sum(1 for d in delays if abs(d) <= within)
    return {
        "due_runs": len(runs),
        "started": len(delays),
        "not_started": len(runs) - len(delays),
        "started_within": on_time,
        "started_early": sum(1 for d in delays if d < -within),
        "started_late": sum(1 for d in delays if d > within),
        "missed": len(runs) - on_time,
        "completed": states.get("Completed", 0),
        "states": states,
        "start_delay_s": _spread(delays),
        # negative: the worker took the run (PENDING) before its scheduled time (prefetch)
        "pending_minus_expected_s": _spread(picked),
        # the flow process starting up and proposing RUNNING (client-side, CPU-bound)
        "pending_to_running_s": _spread(to_running),
        "per_run": per_run,
    }


def main() -> None:
    p = base_parser(__doc__)
    p.add_argument("--n", type=int, default=42, help="deployments (default 42)")
    p.add_argument("--cron", default="* * * * *")
    p.add_argument("--warmup", type=float, default=30)
    p.add_argument("--duration", type=float, default=180)
    p.add_argument("--drain", type=float, default=120, help="max wait for window runs to finish")
    p.add_argument("--within", type=float, default=2.0, help="on-time threshold, s")
    args = finish_args(p.parse_args())
    api = args.api_url

    prefect_home = tempfile.mkdtemp(prefix="pfb-s2w-")
    os.environ.update(
        PREFECT_API_URL=api, PREFECT_HOME=prefect_home, PREFECT_LOGGING_LEVEL="WARNING"
    )
    wait_healthy(api)
    mon = ProcMonitor(args.server_pid, args.sample_interval).start()
    t_origin = time.time()
    tag = uuid.uuid4().hex[:6]
    pool = f"s2w-pool-{tag}"
    src_dir = Path(tempfile.mkdtemp(prefix="pfb-s2w-flow-"))
    (src_dir / "f.py").write_text(FLOW_SOURCE)

    log(f"creating pool {pool} and {args.n} deployments from {src_dir} on {args.cron!r}")
    c0 = time.time()
    dep_ids, errors = create_pool_and_deployments(pool, args.n, args.cron, src_dir)
    create_wall = time.time() - c0
    log(f"created {len(dep_ids)} in {create_wall:.1f}s; starting the worker")
    worker_log = Path(args.out).with_suffix(".worker.log") if args.out else src_dir / "worker.log"
    worker = start_worker(pool, worker_log)
    time.sleep(args.warmup)
    worker_started = worker.poll() is None
    notes: list[str] = []

    a, w_a, m_a = mon.mark("window_start"), sample_tree(worker.pid), machine_cpu()
    time.sleep(args.duration)
    b, w_b, m_b = mon.mark("window_end"), sample_tree(worker.pid), machine_cpu()
    worker_rc = worker.poll()
    dur = b["t"] - a["t"]
    cpu, w_cpu = cpu_delta(a, b), cpu_delta(w_a, w_b)
    busy = 100 * (1 - (m_b[1] - m_a[1]) / max(1, m_b[0] - m_a[0]))
    if busy >= 90:
        notes.append(
            f"machine saturated: {busy:.0f} % of all {os.cpu_count()} cores busy in the window "
            f"(all users; this worker + its flow processes: {100 * (w_cpu or 0) / dur:.0f} % of a "
            "core): start delays then measure the machine, not only the server; if the worker's "
            "share is large, measure a smaller --n too"
        )
        log(notes[-1])

    log(f"window done; waiting up to {args.drain:.0f}s for its runs to finish")
    with httpx.Client() as client:
        deadline = time.time() + args.drain
        runs = window_runs(client, api, dep_ids, a["t"], b["t"]) if dep_ids else []
        while time.time() < deadline and any(
            (fr.get("state") or {}).get("type") not in FINAL for fr in runs
        ):
            time.sleep(5)
            runs = window_runs(client, api, dep_ids, a["t"], b["t"])
        stop_worker(worker)
        pending = {fr["id"]: pending_at(client, api, fr["id"]) for fr in runs}
    mon.stop()
    shutil.rmtree(prefect_home, ignore_errors=True)
    if args.out:  # else the worker's log is in src_dir: keep it
        shutil.rmtree(src_dir, ignore_errors=True)
    stats = run_stats(runs, pending, args.within)
    log(
        f"{stats['due_runs']} due, {stats['started_within']} within {args.within:g}s, "
        f"{stats['not_started']} never started, {stats['completed']} completed; "
        f"delay {stats['start_delay_s']}; PENDING - expected {stats['pending_minus_expected_s']}; "
        f"PENDING -> RUNNING {stats['pending_to_running_s']}"
    )
    result = {
        "scenario": "S2w_cron_deployments_with_worker",
        "n_deployments_requested": args.n,
        "n_deployments_created": len(dep_ids),
        "cron": args.cron,
        "pool": pool,
        "create_wall_s": round(create_wall, 3),
        "create_errors": errors,
        "worker_started": worker_started,
        "worker_rc_before_stop": worker_rc,
        "worker_log": str(worker_log),
        "warmup_s": args.warmup,
        "duration_s": round(dur, 2),
        "cpu_s": cpu,
        "cpu_pct_of_one_core": round(100 * cpu / dur, 2) if cpu is not None else None,
        "rss_mb_peak": mon.peak_rss(a["t"], b["t"]),
        "rss_mb_end": round(b["rss_mb"], 1) if b["rss_mb"] else None,
        "worker_cpu_s": w_cpu,
        "worker_cpu_pct_of_one_core": round(100 * w_cpu / dur, 1) if w_cpu is not None else None,
        "machine_busy_pct": round(busy, 1),
        "machine_cores": os.cpu_count(),
        "within_s": args.within,
        **stats,
        "notes": notes,
        "series": mon.series(t_origin),
    }
    write_result(args, result)


if __name__ == "__main__":
    main()
