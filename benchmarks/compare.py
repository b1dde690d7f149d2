#!/usr/bin/env python3
"""Run the shared Prefect-API benchmarks against headrace and the reference
server (prefect 3.9.1) and print a side-by-side table with the issue's goals.

Every scenario gets a FRESH server (new temp home, free port on 127.0.0.1),
started, measured and stopped by the shared harness ``run_scenario.py``; the
scenario scripts run with the client venv's python. Raw outputs go to
``benchmarks/results/<timestamp>/{headrace,reference}/``; the table also to
``summary.md`` and ``summary.json`` there.

examples:
  benchmarks/compare.py                                  # everything, both servers, full size
  benchmarks/compare.py --scenarios s2 s2w s3 s3x        # the scheduler scenarios of issue #5
  benchmarks/compare.py --scenarios t1 t2 t3 t4          # background tasks + concurrency, issue #6
  benchmarks/compare.py --quick --only reference         # plumbing check
  benchmarks/compare.py --scenarios s4 --events 20000 --only headrace \\
      --reference-results benchmarks/results/20250101-120000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bg_plans
import report
import sched_plans

REPO = Path(__file__).resolve().parent.parent
SERVERS = ("headrace", "reference")
ALL_SCENARIOS = ("s1", "s2", "s2w", "s3", "s3x", "s4", "s5", "t1", "t2", "t3", "t4")

DEFAULT_CMDS = {
    "headrace": f"{REPO}/.venv/bin/headrace server start --host 127.0.0.1 --port {{port}}",
    "reference": f"{REPO}/.venv-client/bin/prefect server start --host 127.0.0.1 --port {{port}}",
}
DEFAULT_ENVS = {
    "headrace": ["HEADRACE_HOME={home}"],
    # keep the reference's traffic on 127.0.0.1: no usage telemetry
    "reference": ["PREFECT_HOME={home}", "PREFECT_SERVER_ANALYTICS_ENABLED=false"],
}


def log(msg: str) -> None:
    print(f"[compare {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--scenarios",
        nargs="+",
        default=list(ALL_SCENARIOS),
        help="any of s1 s2 s2w s3 s3x s4 s5 t1 t2 t3 t4 (space- or comma-separated; default: "
        "all; s3x runs against headrace only)",
    )
    ap.add_argument("--only", choices=["headrace", "reference", "both"], default="both")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="short sizes for a plumbing check: S1 10 s warm-up + 20 s, S4 10,000 events, "
        "S5 2 big flows + 2 rounds, S2 10 + 60 s, S2w 5 deployments 15 + 60 s, S3 100 "
        "deployments, S3x 500 deployments, T1 50 runs, T2 200 runs / 2 workers, T3 4 workers "
        "10 + 20 s, T4 3 rounds (explicit flags still win)",
    )
    ap.add_argument("--duration", type=float, help="S1 measured window, s (default 120; quick 20)")
    ap.add_argument("--warmup", type=float, help="S1 warm-up, s (default 30; quick 10)")
    ap.add_argument("--events", type=int, help="S4 events (default 100000; quick 10000)")
    ap.add_argument(
        "--connections", type=int, default=4, help="S4 WebSocket connections (default 4)"
    )
    ap.add_argument(
        "--s4-stall",
        type=float,
        default=60,
        help="S4: stop waiting when the persisted count is flat this long (default 60)",
    )
    ap.add_argument("--tasks", type=int, default=200, help="S5 tasks per big flow (default 200)")
    ap.add_argument("--repeats", type=int, help="S5 big flows (default 5; quick 2)")
    ap.add_argument(
        "--rounds", type=int, help="S5 rounds of concurrent short flows (default 3; quick 2)"
    )
    ap.add_argument(
        "--concurrency", type=int, default=20, help="S5 concurrent short flows (default 20)"
    )
    sched_plans.add_args(ap)
    bg_plans.add_args(ap)
    ap.add_argument(
        "--shared",
        type=Path,
        default=REPO.parent / "shared" / "bench",
        help="the shared bench scripts (default: ../shared/bench from the repo root)",
    )
    ap.add_argument(
        "--client-python",
        default=str(REPO / ".venv-client" / "bin" / "python"),
        help="python with httpx, websockets, prefect (client side)",
    )
    ap.add_argument(
        "--headrace-cmd", default=DEFAULT_CMDS["headrace"], help="{port} and {home} are substituted"
    )
    ap.add_argument("--reference-cmd", default=DEFAULT_CMDS["reference"])
    ap.add_argument(
        "--headrace-env", action="append", default=[], help="extra KEY=VALUE for headrace"
    )
    ap.add_argument(
        "--reference-env", action="append", default=[], help="extra KEY=VALUE for the reference"
    )
    ap.add_argument(
        "--reference-results",
        type=Path,
        help="an earlier results dir whose reference/ figures to compare against "
        "when the reference is not run now",
    )
    ap.add_argument(
        "--startup-timeout", type=float, default=120, help="seconds to wait for /api/health"
    )
    ap.add_argument("--timeout-scale", type=float, default=1.0, help="multiply every hard timeout")
    ap.add_argument("--out", type=Path, help="results dir (default benchmarks/results/<timestamp>)")
    ap.add_argument("--keep-homes", action="store_true", help="keep the servers' temp home dirs")
    ap.add_argument(
        "--fail-on-goal", action="store_true", help="exit 1 when a headrace goal is not met"
    )
    a = ap.parse_args(argv)
    a.scenarios = [s for x in a.scenarios for s in x.replace(",", " ").split()]
    bad = [s for s in a.scenarios if s not in ALL_SCENARIOS]
    if bad:
        ap.error(f"unknown scenario(s) {bad}; choose from {list(ALL_SCENARIOS)}")
    q = a.quick
    a.duration = a.duration if a.duration is not None else (20 if q else 120)
    a.warmup = a.warmup if a.warmup is not None else (10 if q else 30)
    a.events = a.events if a.events is not None else (10_000 if q else 100_000)
    a.repeats = a.repeats if a.repeats is not None else (2 if q else 5)
    a.rounds = a.rounds if a.rounds is not None else (2 if q else 3)
    a.shared = a.shared.resolve()
    sched_plans.finish(a)
    bg_plans.finish(a)
    return a


def scenario_plan(
    a: argparse.Namespace, scen: str, server: str, out_dir: Path
) -> tuple[str, list[str], float]:
    """(run name, scenario script + args, hard timeout in s excluding start-up)."""
    if scen in sched_plans.SCENARIOS:
        return sched_plans.plan(a, scen, server, out_dir)
    if scen in bg_plans.SCENARIOS:
        return bg_plans.plan(a, scen, server, out_dir)
    if scen == "s1":
        return (
            "s1_idle_r1",
            ["s1_idle.py", "--warmup", str(a.warmup), "--duration", str(a.duration)],
            a.warmup + a.duration + 60,
        )
    if scen == "s4":
        n = a.events
        name = f"s4_events{n // 1000}k_r1" if n % 1000 == 0 else f"s4_events{n}_r1"
        max_wait = 300
        send_budget = n / 500  # the reference accepts 1,600-3,000 events/s; leave room
        args = [
            "s4_events_flood.py",
            "--connections",
            str(a.connections),
            "--events",
            str(n),
            "--stall",
            str(a.s4_stall),
            "--max-wait",
            str(max_wait),
            "--probe-csv",
            str(out_dir / f"{name}.latency.csv"),
        ]
        return name, args, 5 + send_budget + max_wait + 120
    if scen == "s5":
        args = [
            "s5_flow_throughput.py",
            "--tasks",
            str(a.tasks),
            "--repeats",
            str(a.repeats),
            "--concurrency",
            str(a.concurrency),
            "--rounds",
            str(a.rounds),
        ]
        # Part B stops starting rounds after --max-seconds (330); each step may wait 60 s to settle
        return "s5_flows_r1", args, 330 + 60 * (a.repeats + a.rounds) + 300
    raise ValueError(scen)


def process_tree(root: int) -> list[int]:
    """``root`` and its live descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                data = f.read().decode()
            ppid = int(data[data.rindex(")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, stack = [], [root]
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(children.get(p, []))
    return out


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().split(b") ")[-1][:1] != b"Z"
    except OSError:
        return False


def kill_tree(root: int, grace: float = 10) -> None:
    """SIGTERM ``root``, then SIGKILL it and every descendant still there (by PID)."""
    tree = process_tree(root)
    with contextlib.suppress(ProcessLookupError):
        os.kill(root, signal.SIGTERM)
    t0 = time.time()
    while time.time() - t0 < grace and alive(root):
        time.sleep(0.2)
    for pid in tree + process_tree(root):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def run_one(
    a: argparse.Namespace, server: str, scen: str, out_root: Path, work_root: Path
) -> dict[str, Any]:
    """Run one scenario against one fresh server through the shared harness."""
    out_dir = out_root / server
    out_dir.mkdir(parents=True, exist_ok=True)
    name, scen_args, budget = scenario_plan(a, scen, server, out_dir)
    port = free_port()
    cmd_t = a.headrace_cmd if server == "headrace" else a.reference_cmd
    envs = DEFAULT_ENVS[server] + (a.headrace_env if server == "headrace" else a.reference_env)
    harness = [
        a.client_python,
        str(a.shared / "run_scenario.py"),
        "--name",
        name,
        "--out-dir",
        str(out_dir),
        "--server-cmd",
        cmd_t,
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--python",
        a.client_python,
        "--workdir-root",
        str(work_root / server),
        "--startup-timeout",
        str(a.startup_timeout),
    ]
    for kv in envs:
        harness += ["--env", kv]
    harness += ["--", *scen_args]
    timeout = (a.startup_timeout + budget + 60) * a.timeout_scale

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "HEADRACE_"))}
    env.update(DO_NOT_TRACK="1", NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    env["BENCH_SHARED_DIR"] = str(a.shared)  # our scenario scripts import benchlib from there
    hlog_path = out_dir / f"{name}.harness.log"
    log(f"{server} {scen}: port {port}, hard timeout {timeout:.0f}s -> {hlog_path}")
    (out_dir / f"{name}.cmd").write_text(shlex.join(harness) + "\n")
    t0 = time.time()
    with open(hlog_path, "wb") as hlog:
        proc = subprocess.Popen(
            harness,
            cwd=str(a.shared),
            env=env,
            stdout=hlog,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        timed_out = False
        rc = None
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            log(f"{server} {scen}: hard timeout after {timeout:.0f}s; stopping it")
        except KeyboardInterrupt:
            log(f"{server} {scen}: interrupted; stopping it")
            raise
        finally:
            # the harness starts the server in its own session: stop it by PID first,
            # then the harness itself with the scenario and its latency prober
            server_pid = _server_pid(hlog_path)
            if server_pid and alive(server_pid):
                log(f"{server} {scen}: server pid {server_pid} still running; stopping it")
                kill_tree(server_pid)
            if proc.poll() is None:
                kill_tree(proc.pid, grace=5)
            proc.wait()
    wall = round(time.time() - t0, 1)
    data, meta = report.load_run(out_dir, name)
    status = "timeout" if timed_out else ("ok" if rc == 0 else f"rc={rc}")
    if not timed_out and meta and not meta.get("healthy"):
        status = "never healthy"
    errors = report.scenario_errors(scen, data) if status == "ok" else []
    if errors:
        status = "ok with errors: " + "; ".join(e[:160] for e in errors)
    if status != "ok":
        _print_log_tail(out_dir / f"{name}.server.log", f"{server} {scen}")
    log(f"{server} {scen}: {status} in {wall}s")
    if not a.keep_homes:
        _remove_workdir(meta.get("workdir"), work_root)
    return {
        "server": server,
        "scenario": scen,
        "name": name,
        "status": status,
        "rc": rc,
        "wall_s": wall,
        "server_pid": server_pid,
        "port": port,
        "metrics": report.extract(scen, data, meta),
        "notes": data.get("notes") or [],  # e.g. S2w: the machine was saturated
    }


def _print_log_tail(path: Path, what: str, lines: int = 20) -> None:
    try:
        tail = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        tail = ["(no server log)"]
    log(f"{what}: last {len(tail)} lines of {path}:\n  " + "\n  ".join(tail))


def _server_pid(harness_log: Path) -> int | None:
    try:
        m = re.search(r"server pid (\d+)", harness_log.read_text(errors="replace"))
    except OSError:
        return None
    return int(m.group(1)) if m else None


def _remove_workdir(workdir: str | None, work_root: Path) -> None:
    import shutil

    if workdir and Path(workdir).resolve().is_relative_to(work_root.resolve()):
        shutil.rmtree(workdir, ignore_errors=True)


def reference_figures(
    a: argparse.Namespace, runs: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Reference metric values: this run's, else ``--reference-results``, else documented."""
    values: dict[str, Any] = {}
    source: dict[str, str] = {}
    for r in runs:
        if r["server"] == "reference":
            values.update({k: v for k, v in r["metrics"].items() if v is not None})
    if a.reference_results:
        prev = a.reference_results / "reference"
        for scen in a.scenarios:
            for f in sorted(prev.glob(f"{scen}_*_r1.json")):
                if f.name.endswith(".server.json"):
                    continue
                data, meta = report.load_run(prev, f.name[:-5])
                for k, v in report.extract(scen, data, meta).items():
                    if v is not None and k not in values:
                        values[k], source[k] = v, str(a.reference_results.name)
    for k, doc in report.DOC_REFERENCE.items():
        if k not in values and k.split(".")[0] in a.scenarios:
            values[k], source[k] = doc.value, "doc"
    return values, source


def scenario_params(a: argparse.Namespace) -> list[str]:
    """One-line descriptions of the sizes of the selected scenarios, in order."""
    own = {
        "s1": f"S1 warm-up {a.warmup:g} s + {a.duration:g} s",
        "s4": f"S4 {a.events:,} events over {a.connections} sockets",
        "s5": f"S5 {a.repeats} x {a.tasks} tasks, {a.rounds} x {a.concurrency} concurrent "
        "short flows",
    }
    sched = dict(zip(sched_plans.SCENARIOS, sched_plans.params(a), strict=True))
    sched.update(zip(bg_plans.SCENARIOS, bg_plans.params(a), strict=True))
    return [own.get(s) or sched[s] for s in a.scenarios]


def _jsonable(o: Any) -> Any:
    if isinstance(o, float) and o == float("inf"):
        return "never"
    if isinstance(o, dict):
        return {k: _jsonable(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_jsonable(v) for v in o]
    return o


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # stop the servers on SIGTERM too
    if not (a.shared / "run_scenario.py").exists():
        sys.exit(f"no run_scenario.py in {a.shared}; give --shared")
    if not Path(a.client_python).exists():
        sys.exit(f"client python {a.client_python} not found; give --client-python")
    servers = SERVERS if a.only == "both" else (a.only,)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_root = (a.out or REPO / "benchmarks" / "results" / stamp).resolve()
    out_root.mkdir(parents=True, exist_ok=True)
    work_root = Path(tempfile.mkdtemp(prefix=f"headrace-bench-{stamp}-"))
    log(f"results -> {out_root}; server homes under {work_root}")

    runs = []
    try:
        for scen in a.scenarios:
            for server in servers:  # one at a time: both share the same 2 cores
                if server == "reference" and scen in sched_plans.HEADRACE_ONLY:
                    continue
                runs.append(run_one(a, server, scen, out_root, work_root))
    finally:
        if not a.keep_homes:
            import shutil

            shutil.rmtree(work_root, ignore_errors=True)

    headrace = {k: v for r in runs if r["server"] == "headrace" for k, v in r["metrics"].items()}
    reference, ref_source = reference_figures(a, runs)
    md, rows = report.table(a.scenarios, headrace, reference, ref_source)
    status = "\n".join(
        f"- {r['server']} {r['scenario']} ({r['name']}): {r['status']}, {r['wall_s']} s"
        + "".join(f"\n  - note: {n}" for n in r["notes"])
        for r in runs
    )
    params = "; ".join(scenario_params(a))
    text = f"# headrace vs reference ({stamp})\n\n{params}\n\n{status}\n\n{md}\n"
    (out_root / "summary.md").write_text(text)
    (out_root / "summary.json").write_text(
        json.dumps(
            _jsonable(
                {"stamp": stamp, "argv": sys.argv, "params": params, "runs": runs, "table": rows}
            ),
            indent=1,
        )
    )
    print(text)
    print(f"raw outputs: {out_root}")
    failed = any(r["status"] != "ok" for r in runs)
    missed = any(r["met"] is False for r in rows)
    return 1 if failed or (a.fail_on_goal and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
