#!/usr/bin/env python3
"""headrace's Celery monitor side by side with flower==2.2.0, on the shared yardstick.

One run of issue #8's performance table: for each size, Flower 2.2 under the
shared ``bench.py`` (``../shared/bench/celery``, not copied here) and then
headrace under ``celery_bench.py`` (the same producer, prober and /proc
sampling, pointed at ``/flower``), both on the machine's Redis; then both idle
with 50 workers heartbeating. Prints the issue's table with the goals; raw
outputs go to ``benchmarks/results/celery-<timestamp>/`` (git-ignored).

Flower runs in a throwaway venv (``--flower-venv``, default /tmp/flower-venv),
made on first use with ``pip install 'flower==2.2.0' 'celery[redis]' httpx`` and
reused after; the producer runs with that venv's python for both servers.

examples:
  python3 benchmarks/celery_compare.py                     # 50k and 200k at 32k/s, idle 60 s
  python3 benchmarks/celery_compare.py --quick             # 5,000 events, idle 15 s
  python3 benchmarks/celery_compare.py --sizes 200000 --no-idle --only headrace
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import celery_bench
import celery_report

REPO = Path(__file__).resolve().parent.parent
FLOWER_PINS = ("flower==2.2.0", "celery[redis]", "httpx")


def log(msg: str) -> None:
    print(f"[celery-compare {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", type=int, nargs="+", help="task events per flood (50000 200000)")
    ap.add_argument("--rate", type=float, default=32000, help="offered task events/s (replay)")
    ap.add_argument("--idle", type=float, help="idle scenario length, s (60; quick 15)")
    ap.add_argument("--no-idle", action="store_true", help="skip the idle scenario")
    ap.add_argument("--no-flood", action="store_true", help="skip the floods")
    ap.add_argument("--only", choices=["both", "flower", "headrace"], default="both")
    ap.add_argument("--quick", action="store_true", help="5,000 events, idle 15 s (smoke run)")
    ap.add_argument("--broker", default="redis://127.0.0.1:6379/11")
    ap.add_argument("--max-tasks", type=int, default=1_000_000, help="Flower --max_tasks")
    ap.add_argument(
        "--settle", type=float, default=20.0, help="stop when counts are flat this long"
    )
    ap.add_argument("--max-wait", type=float, default=300.0, help="longest wait after the producer")
    ap.add_argument("--flower-venv", type=Path, default=Path("/tmp/flower-venv"))
    ap.add_argument("--headrace", default=str(REPO / ".venv" / "bin" / "headrace"))
    ap.add_argument("--shared", type=Path, default=celery_bench.SHARED)
    ap.add_argument("--out", type=Path, help="results dir (default benchmarks/results/celery-TS)")
    a = ap.parse_args(argv)
    a.sizes = a.sizes or ([5000] if a.quick else [50_000, 200_000])
    a.idle = a.idle if a.idle is not None else (15.0 if a.quick else 60.0)
    return a


def ensure_flower_venv(venv: Path) -> Path:
    """The venv's python, after creating it and installing Flower if needed."""
    python = venv / "bin" / "python"
    check = "import flower, celery, redis, httpx; assert flower.__version__ == '2.2.0'"
    if python.exists() and subprocess.run([python, "-c", check]).returncode == 0:
        return python
    log(f"creating {venv} with {' '.join(FLOWER_PINS)}")
    subprocess.run([shutil.which("python3") or sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", *FLOWER_PINS], check=True)
    subprocess.run([python, "-c", check], check=True)
    return python


def run_one(name: str, argv: list[str], out: Path, watch_broker: str | None) -> dict[str, Any]:
    """Run one measurement; its last stdout line is its JSON result."""
    load0 = os.getloadavg()
    watch = (
        celery_bench.PubsubWatch(*celery_bench.redis_address(watch_broker))
        if watch_broker
        else None
    )
    if watch:
        watch.start()
    log(f"{name}: {' '.join(argv)}")
    (out / f"{name}.cmd").write_text(" ".join(argv) + "\n")
    t0 = time.time()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=7200)
    (out / f"{name}.stdout").write_text(proc.stdout)
    (out / f"{name}.stderr").write_text(proc.stderr)
    lines = proc.stdout.strip().splitlines()
    try:
        res = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        res = {}
    if watch:  # Flower's run: what Redis showed of its subscription
        res["redis_pubsub"] = watch.stop()
    res["returncode"], res["wall_s"] = proc.returncode, round(time.time() - t0, 1)
    res["loadavg_before"], res["loadavg_after"] = load0, os.getloadavg()
    if proc.returncode != 0:
        res["error"] = proc.stderr[-800:]
        log(f"{name} failed ({proc.returncode}): {proc.stderr[-300:]}")
    (out / f"{name}.json").write_text(json.dumps(res, indent=1))
    return res


def plan(a: argparse.Namespace, py: Path, out: Path) -> list[tuple[str, list[str], str | None]]:
    """(name, argv, broker to watch for Flower) for every run, Flower before headrace."""
    servers = ["flower", "headrace"] if a.only == "both" else [a.only]
    common = ["--broker", a.broker]
    runs = []
    scenarios: list[tuple[str, list[str]]] = []
    if not a.no_flood:
        for n in a.sizes:
            flags = ["--events", str(n), "--replay", "--rate", str(a.rate)]
            flags += ["--settle", str(a.settle), "--max-wait", str(a.max_wait)]
            scenarios.append((f"flood-{n}", flags))
    if not a.no_idle and a.idle > 0:
        scenarios.append(("idle", ["--idle", str(a.idle)]))
    for scenario, flags in scenarios:
        for server in servers:
            name = f"{server}-{scenario}"
            if server == "flower":
                argv = [str(py), str(a.shared / "bench.py"), *common, *flags]
                argv += ["--max-tasks", str(a.max_tasks), "--out", str(out / name)]
                runs.append((name, argv, a.broker))
            else:
                argv = [str(py), str(Path(__file__).with_name("celery_bench.py")), *common, *flags]
                argv += [
                    "--headrace",
                    a.headrace,
                    "--shared",
                    str(a.shared),
                    "--out",
                    str(out / name),
                ]
                runs.append((name, argv, None))
    return runs


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    out = a.out or REPO / "benchmarks" / "results" / time.strftime("celery-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    py = ensure_flower_venv(a.flower_venv)
    results: dict[str, dict[str, Any]] = {}
    failed = False
    for name, run_argv, watch in plan(a, py, out):
        results[name] = res = run_one(name, run_argv, out, watch)
        failed |= res["returncode"] != 0
    table = celery_report.table(a, results)
    (out / "summary.json").write_text(
        json.dumps({"args": vars(a), "results": results}, indent=1, default=str)
    )
    (out / "summary.md").write_text(table + "\n")
    print(table)
    log(f"results in {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
