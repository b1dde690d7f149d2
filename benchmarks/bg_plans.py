"""Command-line options and run plans of the background-task and concurrency
scenarios (issue #6) for ``compare.py``.

All four are our scripts in this directory: ``t1_dispatch.py``,
``t2_throughput.py``, ``t3_idle_workers.py``, ``t4_slot_waiters.py`` (helpers in
``bg_common.py``, the tasks in ``bg_tasks.py``). Each runs against both servers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCENARIOS = ("t1", "t2", "t3", "t4")

# full size / --quick (explicit flags still win)
DEFAULTS: dict[str, tuple[float, float]] = {
    "t1_n": (1000, 50),
    "t1_raw_n": (1000, 50),
    "t1_warmup_runs": (20, 5),
    "t1_phase_timeout": (900, 300),
    "t2_n": (10_000, 200),
    "t2_workers": (4, 2),
    "t2_max_seconds": (3600, 600),
    "t3_workers": (20, 4),
    "t3_warmup": (30, 10),
    "t3_duration": (120, 20),
    "t4_rounds": (10, 3),
}


def add_args(ap: argparse.ArgumentParser) -> None:
    """The options of t1-t4 (defaults are applied by ``finish``)."""
    g = ap.add_argument_group("background tasks and concurrency (t1, t2, t3, t4)")
    g.add_argument("--t1-n", type=int, help="T1 client-observed runs (default 1000; quick 50)")
    g.add_argument("--t1-raw-n", type=int, help="T1 server-path runs (default 1000; quick 50)")
    g.add_argument("--t1-warmup-runs", type=int, help="T1 warm-up runs per phase (20; quick 5)")
    g.add_argument(
        "--t1-phase-timeout", type=float, help="T1: stop a phase after this, s (900; quick 300)"
    )
    g.add_argument("--t2-n", type=int, help="T2 .delay() runs (default 10000; quick 200)")
    g.add_argument("--t2-workers", type=int, help="T2 task workers (default 4; quick 2)")
    g.add_argument("--t2-callers", type=int, default=2, help="T2 caller processes (2)")
    g.add_argument("--t2-caller-threads", type=int, default=4, help="T2 threads per caller (4)")
    g.add_argument(
        "--t2-max-seconds",
        type=float,
        help="T2: give up this long after the first delay (3600; quick 600)",
    )
    g.add_argument("--t3-workers", type=int, help="T3 subscribed task workers (20; quick 4)")
    g.add_argument("--t3-warmup", type=float, help="T3 warm-up, s (default 30; quick 10)")
    g.add_argument("--t3-duration", type=float, help="T3 idle window, s (default 120; quick 20)")
    g.add_argument("--t4-waiters", type=int, default=6, help="T4 waiter processes (6)")
    g.add_argument("--t4-rounds", type=int, help="T4 entries per waiter (default 10; quick 3)")
    g.add_argument("--t4-hold", type=float, default=0.2, help="T4 seconds inside (0.2)")
    g.add_argument("--t4-pause", type=float, default=0.1, help="T4 pause between rounds (0.1)")


def finish(a: argparse.Namespace) -> None:
    """Fill the unset sizes from DEFAULTS (full or --quick)."""
    for key, (full, quick) in DEFAULTS.items():
        if getattr(a, key) is None:
            setattr(a, key, type(full)(quick if a.quick else full))


def params(a: argparse.Namespace) -> list[str]:
    """One-line descriptions of the sizes of t1, t2, t3, t4 (in that order)."""
    return [
        f"T1 {a.t1_n} .delay() runs + {a.t1_raw_n} bare POST -> push runs, one at a time",
        f"T2 {a.t2_n:,} .delay() runs from {a.t2_callers} x {a.t2_caller_threads} caller "
        f"threads, {a.t2_workers} task workers",
        f"T3 {a.t3_workers} subscribed task workers, warm-up {a.t3_warmup:g} s "
        f"+ {a.t3_duration:g} s",
        f"T4 {a.t4_waiters} waiters x {a.t4_rounds} rounds on a limit of 1, hold {a.t4_hold:g} s",
    ]


def plan(
    a: argparse.Namespace, scen: str, server: str, out_dir: Path
) -> tuple[str, list[str], float]:
    """(run name, scenario script + args, hard timeout in s excluding start-up)."""
    del server, out_dir  # same plan for both servers
    if scen == "t1":
        args = [str(HERE / "t1_dispatch.py"), "--n", str(a.t1_n), "--raw-n", str(a.t1_raw_n)]
        args += ["--warmup-runs", str(a.t1_warmup_runs)]
        args += ["--phase-timeout", str(a.t1_phase_timeout)]
        # worker start-up, two phases (each stops itself at its timeout), the last run's wait
        return f"t1_dispatch{a.t1_n}_r1", args, 180 + 2 * a.t1_phase_timeout + 120
    if scen == "t2":
        args = [str(HERE / "t2_throughput.py"), "--n", str(a.t2_n)]
        args += ["--workers", str(a.t2_workers), "--callers", str(a.t2_callers)]
        args += ["--caller-threads", str(a.t2_caller_threads)]
        args += ["--max-seconds", str(a.t2_max_seconds)]
        # start-up and warm-up (<= 2 x 240 s), the run (stops itself), the final counts
        return f"t2_throughput{a.t2_n}_r1", args, 480 + a.t2_max_seconds + 180
    if scen == "t3":
        args = [str(HERE / "t3_idle_workers.py"), "--workers", str(a.t3_workers)]
        args += ["--warmup", str(a.t3_warmup), "--duration", str(a.t3_duration)]
        return f"t3_idle{a.t3_workers}w_r1", args, 300 + a.t3_warmup + a.t3_duration + 120
    if scen == "t4":
        args = [str(HERE / "t4_slot_waiters.py"), "--waiters", str(a.t4_waiters)]
        args += ["--rounds", str(a.t4_rounds), "--hold", str(a.t4_hold)]
        args += ["--pause", str(a.t4_pause), "--max-seconds", "900"]
        return f"t4_waiters{a.t4_waiters}_r1", args, 180 + 900 + 120
    raise ValueError(scen)
