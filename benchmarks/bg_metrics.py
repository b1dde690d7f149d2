"""Metrics and goals of the background-task and concurrency scenarios (issue #6's
performance table).

* t1 -- ``t1_dispatch.py``: ``.delay()`` -> the task body starts, one run at a
  time, one task worker (client-observed); and the server path alone, a bare
  ``POST /task_runs/`` -> push on a bare subscription, less a ``GET /health``
  round trip (the server-side estimate the goal applies to).
* t2 -- ``t2_throughput.py``: 10,000 ``.delay()`` runs, 4 task workers.
* t3 -- ``t3_idle_workers.py``: 20 subscribed task workers, idle.
* t4 -- ``t4_slot_waiters.py``: 6 waiters on a concurrency limit of 1.

Nobody has measured these on the reference outside this harness, so there are
no documented reference figures: the relative goal (t2) needs this run's
reference or ``--reference-results``.
"""

from __future__ import annotations

from typing import Any

from goals import Goal, Metric, get

SCENARIOS = ("t1", "t2", "t3", "t4")


def scenario_errors(scenario: str, data: dict[str, Any]) -> list[str]:
    """Failures inside a scenario that still exited 0."""
    errs = [str(e)[:300] for e in data.get("errors") or []]
    if scenario == "t1":
        for phase in ("client", "raw"):
            part = data.get(phase) or {}
            if part and not part.get("error") and part.get("finished") is False:
                errs.append(f"{phase} phase did not finish: stopped by its timeout or misses")
    if scenario == "t2" and data.get("delayed") is not None:
        if data.get("delay_errors"):
            errs.append(f"{data['delay_errors']} .delay() call(s) failed")
        if not data.get("finished"):
            errs.append(
                f"did not finish: {data.get('completed_in_server')} of {data.get('n_requested')} "
                f"COMPLETED after {data.get('wall_s')} s; "
                f"{data.get('not_run_at_deadline') or data.get('lost')} never ran"
            )
    if scenario == "t4" and data.get("acquire_errors"):
        errs.append(f"{data['acquire_errors']} acquisition(s) failed")
    if scenario == "t4" and data.get("finished") is False:
        errs.append("not every waiter finished its rounds")
    return errs


def _at(path: str) -> Any:
    return lambda d, m: get(d, path)


METRICS = [
    # ---- T1: dispatch latency, one run at a time
    Metric("t1", "t1.started", "runs started (client)", "runs", _at("client.started")),
    Metric(
        "t1",
        "t1.not_started",
        "runs never started (client)",
        "runs",
        _at("client.not_started"),
        Goal("0", "==", 0),
    ),
    Metric(
        "t1",
        "t1.client_p50",
        ".delay() -> body starts, p50 (client-observed)",
        "ms",
        _at("client.latency_ms.p50"),
    ),
    Metric("t1", "t1.client_p95", "... p95", "ms", _at("client.latency_ms.p95")),
    Metric("t1", "t1.client_p99", "... p99", "ms", _at("client.latency_ms.p99")),
    Metric("t1", "t1.client_max", "... max", "ms", _at("client.latency_ms.max")),
    Metric(
        "t1",
        "t1.delay_call_p50",
        ".delay() call itself, p50 (client work + POST)",
        "ms",
        _at("client.delay_call_ms.p50"),
    ),
    Metric(
        "t1",
        "t1.client_cpu",
        "server CPU per run (client phase: push, states, events)",
        "ms",
        _at("client.server_cpu_ms_per_run"),
    ),
    Metric(
        "t1",
        "t1.server_p50",
        "server-side: POST -> push minus /health RTT, p50",
        "ms",
        _at("raw.server_est_ms.p50"),
        Goal("< 2 ms", "<", 2.0),
    ),
    Metric(
        "t1",
        "t1.server_p95",
        "server-side ... p95",
        "ms",
        _at("raw.server_est_ms.p95"),
    ),
    Metric(
        "t1",
        "t1.server_p99",
        "server-side ... p99",
        "ms",
        _at("raw.server_est_ms.p99"),
        Goal("< 10 ms", "<", 10.0),
    ),
    Metric("t1", "t1.server_max", "server-side ... max", "ms", _at("raw.server_est_ms.max")),
    Metric(
        "t1", "t1.push_p50", "bare POST sent -> push received, p50", "ms", _at("raw.push_ms.p50")
    ),
    Metric(
        "t1", "t1.push_p99", "bare POST sent -> push received, p99", "ms", _at("raw.push_ms.p99")
    ),
    Metric(
        "t1",
        "t1.created_p50",
        "push received - run's `created` stamp, p50",
        "ms",
        _at("raw.push_minus_created_ms.p50"),
    ),
    Metric(
        "t1", "t1.health_p50", "/health RTT (baseline), p50", "ms", _at("raw.health_rtt_ms.p50")
    ),
    Metric("t1", "t1.raw_missing", "bare runs never pushed", "runs", _at("raw.missing")),
    Metric(
        "t1",
        "t1.raw_cpu",
        "server CPU per run (bare POST + push + ack)",
        "ms",
        _at("raw.server_cpu_ms_per_run"),
    ),
    # ---- T2: throughput
    Metric("t2", "t2.delayed", ".delay() runs issued", "runs", _at("delayed")),
    Metric(
        "t2",
        "t2.runs_per_s",
        "runs/s, first .delay() -> all COMPLETED in the server",
        "runs/s",
        _at("runs_per_s"),
        Goal(">= 3x reference", ">=", 3.0, relative=True),
    ),
    Metric("t2", "t2.wall", "first .delay() -> all COMPLETED", "s", _at("wall_s")),
    Metric(
        "t2", "t2.bodies_per_s", "runs/s, until the last body ran", "runs/s", _at("bodies_per_s")
    ),
    Metric(
        "t2", "t2.delays_per_s", ".delay() calls/s (all callers)", "calls/s", _at("delays_per_s")
    ),
    Metric(
        "t2", "t2.lost", "runs lost (delayed, never ran)", "runs", _at("lost"), Goal("0", "==", 0)
    ),
    Metric(
        "t2",
        "t2.duplicated",
        "runs that ran more than once",
        "runs",
        _at("duplicated"),
        Goal("0", "==", 0),
    ),
    Metric(
        "t2", "t2.queue_p50", ".delay() -> body, p50 (queueing)", "ms", _at("delay_to_body_ms.p50")
    ),
    Metric("t2", "t2.queue_p99", ".delay() -> body, p99", "ms", _at("delay_to_body_ms.p99")),
    Metric("t2", "t2.cpu_per_run", "server CPU per run", "ms", _at("server_cpu_ms_per_run")),
    Metric("t2", "t2.cpu_pct", "server CPU", "% of 1 core", _at("server_cpu_pct_of_one_core")),
    Metric("t2", "t2.workers_cpu", "task workers' CPU", "CPU-s", _at("workers_cpu_s")),
    Metric("t2", "t2.callers_cpu", "callers' CPU", "CPU-s", _at("callers_cpu_s")),
    Metric(
        "t2",
        "t2.machine_busy",
        "whole machine busy (all users)",
        "% of all cores",
        _at("machine_busy_pct"),
    ),
    Metric("t2", "t2.rss_peak", "RSS peak", "MiB", _at("rss_mb_peak")),
    # ---- T3: idle with subscribed task workers
    Metric("t3", "t3.subscribed", "task workers subscribed", "workers", _at("workers_subscribed")),
    Metric(
        "t3", "t3.alive", "task workers alive at the end", "workers", _at("workers_alive_at_end")
    ),
    Metric("t3", "t3.cpu_s", "server CPU over the window", "CPU-s", _at("cpu_s")),
    Metric(
        "t3",
        "t3.cpu_pct",
        "server CPU, idle",
        "% of 1 core",
        _at("cpu_pct_of_one_core"),
        Goal("<= 0.1 %", "<=", 0.1),
    ),
    Metric("t3", "t3.rss_peak", "RSS peak in the window", "MiB", _at("rss_mb_peak")),
    Metric(
        "t3",
        "t3.workers_cpu",
        "task workers' CPU",
        "% of 1 core",
        _at("workers_cpu_pct_of_one_core"),
    ),
    # ---- T4: waiters on a limit of 1
    Metric("t4", "t4.entries", "entries (waiters x rounds)", "count", _at("entries")),
    Metric(
        "t4",
        "t4.handover_p50",
        "release sent -> next waiter granted, p50",
        "ms",
        _at("handover_ms.p50"),
    ),
    Metric("t4", "t4.handover_p99", "... p99", "ms", _at("handover_ms.p99")),
    Metric(
        "t4",
        "t4.handover_max",
        "... max",
        "ms",
        _at("handover_ms.max"),
        Goal("<= 50 ms", "<=", 50.0),
    ),
    Metric(
        "t4",
        "t4.enter_p50",
        "release sent -> next waiter in its block, p50",
        "ms",
        _at("enter_after_release_ms.p50"),
    ),
    Metric(
        "t4",
        "t4.from_exit_p50",
        "holder leaves its block -> next in its block, p50",
        "ms",
        _at("from_exit_ms.p50"),
    ),
    Metric(
        "t4", "t4.release_p50", "release call round trip, p50", "ms", _at("release_call_ms.p50")
    ),
    Metric("t4", "t4.wait_p50", "wait per acquisition, p50", "ms", _at("wait_ms.p50")),
    Metric("t4", "t4.wait_max", "wait per acquisition, max", "ms", _at("wait_ms.max")),
    Metric("t4", "t4.denied", "423 answers (client slept Retry-After)", "count", _at("denied_423")),
    Metric(
        "t4",
        "t4.overlaps",
        "entries while another held the slot",
        "count",
        _at("overlaps"),
        Goal("0", "==", 0),
    ),
    Metric(
        "t4",
        "t4.active_after",
        "active slots after all released",
        "slots",
        _at("active_slots_after"),
        Goal("0", "==", 0),
    ),
    Metric("t4", "t4.cpu", "server CPU over the run", "CPU-s", _at("server_cpu_s")),
]
