#!/usr/bin/env python3
"""T1: dispatch latency of background tasks, ``.delay()`` -> the task function starts.

Two phases, one after the other, each with ONE run in flight: the next run is
issued only once the previous one has started, so the figures are latencies,
not queueing.

* client-observed: one task worker (``prefect.task_worker.serve(bench_start)``,
  a subprocess sharing this script's ``PREFECT_HOME``), ``--n`` calls of
  ``bench_start.delay(seq)``. The caller notes ``time.time()`` just before
  ``.delay()``; the task body sends ``time.time()`` at its entry back over a
  UNIX datagram socket. latency = body entry - before ``.delay()``: it covers
  the parameters written to local storage, ``POST /task_runs/``, the push, the
  acknowledgement, the worker reading the parameters and proposing the run's
  states, and the body's first line (all on the same clock).
* server path: a bare WebSocket subscriber speaking the client's protocol
  (auth, subscribe, ack each run) and ``POST /task_runs/`` with the body
  ``.delay()`` sends (a deferred Scheduled state, no parameters) over one
  keep-alive httpx connection, ``--raw-n`` times. ``push`` = push received -
  POST sent. As a no-op baseline, ``GET /health`` is timed over the same
  connection just before each POST; ``server_est`` = push - the median /health
  round trip, i.e. the server's own work between the request and the push
  (validation, insert, commit, wake-up, claim, serialisation, send) without
  the fixed cost of one request on the loopback. ``push - created``: push
  received - the run's ``created`` stamp (set by the server; same clock).

Server CPU per run is measured in both phases (the worker and this script are
not in the server's process tree). A run that has not started after
``--run-timeout`` s counts as not started; a phase stops issuing runs after
``--phase-timeout`` s (then ``finished`` is false).

usage: python t1_dispatch.py --api-url http://127.0.0.1:4300/api [--server-pid PID]
           [--n 1000] [--raw-n 1000] [--warmup-runs 20] [--out t1.json]
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import tempfile
import time
import uuid
from datetime import datetime
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
from bg_common import SUBSCRIBING, Helpers, client_env, log, spread  # noqa: E402


def client_phase(args: Any, mon: ProcMonitor, helpers: Helpers, notify: socket.socket) -> dict:
    """``.delay()`` -> body entry with the real client and one task worker."""
    from bg_tasks import bench_start

    helpers.start_worker("start", "worker")
    missing = helpers.wait_for_line(SUBSCRIBING, args.start_timeout)
    if missing:
        return {"error": f"the task worker did not subscribe: {helpers.tail(0)}"}
    latency, call, after = [], [], []
    not_started: list[int] = []
    t_end = time.time() + args.phase_timeout
    a, issued = None, 0
    for seq in range(args.warmup_runs + args.n):
        if seq == args.warmup_runs:
            a = mon.mark("client_start")
        if time.time() > t_end or len(not_started) >= args.max_misses:
            break
        issued += seq >= args.warmup_runs
        t0 = time.time()
        bench_start.delay(seq)
        t1 = time.time()
        started = wait_started(notify, seq, t1 + args.run_timeout)
        if seq < args.warmup_runs:
            continue
        if started is None:
            not_started.append(seq)
            log(f"run {seq} did not start within {args.run_timeout:g}s")
            continue
        latency.append(started - t0)
        call.append(t1 - t0)
        after.append(started - t1)
    b = mon.mark("client_end")
    helpers.stop()
    done = len(latency)
    cpu = cpu_delta(a, b) if a else None
    return {
        "issued": issued,
        "started": done,
        "not_started": len(not_started),
        "not_started_seqs": not_started[:20],
        "finished": done + len(not_started) == args.n,
        "wall_s": round(b["t"] - a["t"], 2) if a else None,
        "latency_ms": spread(latency),
        "delay_call_ms": spread(call),
        "after_delay_returned_ms": spread(after),
        "server_cpu_s": cpu,
        "server_cpu_ms_per_run": round(1000 * cpu / done, 3) if cpu and done else None,
    }


def wait_started(notify: socket.socket, seq: int, deadline: float) -> float | None:
    """The body-entry time the worker sent for ``seq`` (older, late ones are skipped)."""
    while (left := deadline - time.time()) > 0:
        notify.settimeout(left)
        try:
            data = notify.recv(256).decode().split()
        except TimeoutError:
            return None
        if int(data[0]) == seq:
            return float(data[1])
    return None


def create_body(key: str) -> dict[str, Any]:
    """What ``task.delay()`` sends for a task without parameters."""
    details = {"deferred": True, "task_parameters_id": None, "scheduled_time": None}
    return {
        "name": "bench_raw",
        "flow_run_id": None,
        "task_key": key,
        "dynamic_key": f"{key}-{uuid.uuid4().hex}",
        "state": {"type": "SCHEDULED", "name": "Scheduled", "state_details": details},
        "empirical_policy": {"max_retries": 0, "retry_delay_seconds": 0.0, "retries": 0},
        "tags": [],
        "labels": {},
        "task_inputs": {},
    }


async def raw_phase(args: Any, mon: ProcMonitor) -> dict:
    """POST /task_runs/ -> push on a bare subscription, with a /health baseline."""
    import websockets.asyncio.client

    tag = uuid.uuid4().hex[:8]
    key, client_id = f"bench_raw-{tag}", f"bench-raw-{tag}"
    ws_url = args.api_url.replace("http", "ws", 1) + "/task_runs/subscriptions/scheduled"
    pushes: dict[str, tuple[float, float, str | None]] = {}
    arrived = asyncio.Event()
    health, push, post, created = [], [], [], []
    missing = 0
    async with websockets.asyncio.client.connect(ws_url, subprotocols=["prefect"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "auth", "token": None}))
        auth = json.loads(await ws.recv())
        if auth.get("type") != "auth_success":
            return {"error": f"subscription auth failed: {auth}"}
        await ws.send(json.dumps({"type": "subscribe", "keys": [key], "client_id": client_id}))

        async def reader() -> None:
            async for message in ws:
                t, wall = time.perf_counter(), time.time()
                run = json.loads(message)
                await ws.send('{"type": "ack"}')
                pushes[run["id"]] = (t, wall, run.get("created"))
                arrived.set()

        reading = asyncio.create_task(reader())
        await asyncio.sleep(1.0)  # the protocol confirms nothing: let the subscription settle
        a = None
        t_end = time.time() + args.phase_timeout
        async with httpx.AsyncClient(base_url=args.api_url, timeout=30) as http:
            for i in range(args.warmup_runs + args.raw_n):
                if i == args.warmup_runs:
                    a = mon.mark("raw_start")
                if time.time() > t_end or missing >= args.max_misses:
                    break
                h0 = time.perf_counter()
                (await http.get("/health")).raise_for_status()
                h1 = time.perf_counter()
                r = await http.post("/task_runs/", json=create_body(key))
                p1 = time.perf_counter()
                r.raise_for_status()
                run_id = r.json()["id"]
                deadline = time.monotonic() + args.run_timeout
                while run_id not in pushes and not reading.done():
                    arrived.clear()
                    try:
                        await asyncio.wait_for(arrived.wait(), deadline - time.monotonic())
                    except TimeoutError:
                        break
                if i < args.warmup_runs:
                    continue
                if run_id not in pushes:
                    missing += 1
                    log(f"raw run {run_id} was not pushed within {args.run_timeout:g}s")
                    continue
                t_push, wall, stamp = pushes[run_id]
                health.append(h1 - h0)
                post.append(p1 - h1)
                push.append(t_push - h1)
                if stamp:
                    created.append(wall - datetime.fromisoformat(stamp).timestamp())
        b = mon.mark("raw_end")
        reading.cancel()
    base = sorted(health)[len(health) // 2] if health else 0.0
    cpu = cpu_delta(a, b) if a else None
    return {
        "pushed": len(push),
        "missing": missing,
        "finished": len(push) + missing == args.raw_n,
        "wall_s": round(b["t"] - a["t"], 2) if a else None,
        "push_ms": spread(push),
        "server_est_ms": spread([x - base for x in push]),
        "push_minus_created_ms": spread(created),
        "post_rtt_ms": spread(post),
        "health_rtt_ms": spread(health),
        "baseline_ms": round(base * 1000, 3),
        "server_cpu_s": cpu,
        "server_cpu_ms_per_run": round(1000 * cpu / len(push), 3) if cpu and push else None,
    }


def main() -> None:
    p = base_parser(__doc__)
    p.add_argument("--n", type=int, default=1000, help="client-observed runs (0: skip)")
    p.add_argument("--raw-n", type=int, default=1000, help="server-path runs (0: skip)")
    p.add_argument("--warmup-runs", type=int, default=20, help="per phase, not measured")
    p.add_argument("--run-timeout", type=float, default=30, help="a run not started: missed")
    p.add_argument("--max-misses", type=int, default=5, help="stop a phase after this many")
    p.add_argument("--phase-timeout", type=float, default=600, help="stop issuing runs after")
    p.add_argument("--start-timeout", type=float, default=180, help="for the task worker")
    args = finish_args(p.parse_args())
    home = client_env(args.api_url, "pfb-t1-")
    wait_healthy(args.api_url)
    mon = ProcMonitor(args.server_pid, args.sample_interval).start()
    t_origin = time.time()
    work = Path(tempfile.mkdtemp(prefix="pfb-t1-run-"))
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(work / "notify.sock"))
    helpers = Helpers(work)
    os.environ["BENCH_NOTIFY"] = str(work / "notify.sock")
    client: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    try:
        if args.n > 0:
            log(f"client phase: {args.n} runs (+{args.warmup_runs} warm-up), one task worker")
            client = client_phase(args, mon, helpers, notify)
            log(
                f"client phase: {json.dumps({k: client.get(k) for k in ('started', 'latency_ms')})}"
            )
        if args.raw_n > 0:
            log(f"server path: {args.raw_n} runs (+{args.warmup_runs} warm-up), bare subscriber")
            raw = asyncio.run(raw_phase(args, mon))
            log(f"server path: {json.dumps({k: raw.get(k) for k in ('pushed', 'push_ms')})}")
    finally:
        helpers.stop()
        mon.stop()
        notify.close()
    errors = [x["error"] for x in (client, raw) if x.get("error")]
    result = {
        "scenario": "T1_dispatch_latency",
        "n_requested": args.n,
        "raw_n_requested": args.raw_n,
        "warmup_runs": args.warmup_runs,
        "client": client,
        "raw": raw,
        "errors": errors,
        "worker_log_tail": helpers.tail(0, 3000) if errors and helpers.logs else "",
        "rss_mb_peak": mon.peak_rss(),
        "series": mon.series(t_origin),
    }
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)
    write_result(args, result)


if __name__ == "__main__":
    main()
