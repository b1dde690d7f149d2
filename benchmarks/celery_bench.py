#!/usr/bin/env python3
"""The shared Celery-monitor yardstick (``../shared/bench/celery``) pointed at headrace.

The headrace counterpart of the shared ``bench.py`` (which starts Flower), built
from its own parts: it starts ``headrace server start`` with a fresh SQLite
database in a temp ``HEADRACE_HOME`` and ``HEADRACE_CELERY_BROKER_URL``, waits
until the monitor is subscribed (a sync heartbeat shows up in
``/flower/api/workers?status=true``), runs the shared ``producer.py`` with the
flags ``bench.py`` gives it, probes ``/flower/api/workers`` and
``/flower/api/tasks?limit=100`` every 100 ms (the shared ``probe.py``), samples
the server's process tree from ``/proc``, waits until ``/flower/metrics``
counts every task event or stops moving, then reads every task and compares
the final states with the producer's id list. Prints ``bench.py``'s JSON (same
keys) plus the monitor's own counters (gaps, reconnects) and what Redis showed
of the subscription (``PubsubWatch``).

Run it with a python that has ``celery[redis]`` (the Flower venv: the producer
is then the very same for both); ``celery_compare.py`` does:

    /tmp/flower-venv/bin/python benchmarks/celery_bench.py --events 50000 --replay --rate 32000
    /tmp/flower-venv/bin/python benchmarks/celery_bench.py --idle 60
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "bench" / "celery"
MONITOR_LINE = re.compile(r"^headrace_celery_(\w+?)(?:_total)?\s+([0-9.e+-]+)$", re.M)


def use_shared(shared: Path) -> Any:
    """Import the shared ``bench.py`` (its /proc sampler, metrics reader, statistics)."""
    if not (shared / "bench.py").exists():
        sys.exit(f"no bench.py in {shared}; pass --shared")
    if str(shared) not in sys.path:
        sys.path.insert(0, str(shared))
    import bench

    return bench


class PubsubWatch(threading.Thread):
    """Redis's view of the monitor's subscription: output buffer and drops.

    Samples ``CLIENT LIST TYPE pubsub`` every ``every`` seconds over one raw RESP
    connection (stdlib only) and follows the subscribers on database ``db``
    that appeared after it started (the monitor's; Redis lists pub/sub clients
    of every database). A followed client that disappears while the watch runs
    was disconnected: by Redis (``client-output-buffer-limit pubsub``) or by a
    reconnect. ``omem`` is the bytes Redis holds for a subscriber that has not
    read them yet; at 32 MB (the default hard limit) Redis drops it.
    """

    def __init__(self, host: str, port: int, db: int, every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.db, self.every, self.halt = db, every, threading.Event()
        self.sock = socket.create_connection((host, port), timeout=5)
        self.reader = self.sock.makefile("rb")
        self.baseline = set(self._clients())
        self.seen: dict[str, dict[str, Any]] = {}
        self.error: str | None = None

    def _clients(self) -> dict[str, dict[str, str]]:
        self.sock.sendall(b"*4\r\n$6\r\nCLIENT\r\n$4\r\nLIST\r\n$4\r\nTYPE\r\n$6\r\npubsub\r\n")
        head = self.reader.readline()
        if not head.startswith(b"$"):
            raise RuntimeError(f"redis answered {head!r}")
        text = self.reader.read(int(head[1:]) + 2)[:-2].decode()
        clients = {}
        for line in text.splitlines():
            fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            if fields.get("db") == str(self.db):
                clients[fields["id"]] = fields
        return clients

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                now, clients = time.time(), self._clients()
            except (OSError, RuntimeError, ValueError) as exc:
                self.error = repr(exc)
                return
            for cid, fields in clients.items():
                if cid in self.baseline:
                    continue
                entry = self.seen.setdefault(cid, {"first": now, "omem_peak": 0, "gone": None})
                entry["last"] = now
                entry["omem_peak"] = max(entry["omem_peak"], int(fields.get("omem", 0)))
            for cid, entry in self.seen.items():
                if cid not in clients and entry["gone"] is None:
                    entry["gone"] = now
            self.halt.wait(self.every)

    def stop(self) -> dict[str, Any]:
        """Stop sampling; the summary (call before the monitor disconnects on purpose)."""
        self.halt.set()
        self.join()
        self.sock.close()
        return {
            "subscriptions": len(self.seen),
            "dropped": sum(1 for e in self.seen.values() if e["gone"] is not None),
            "omem_peak_mb": round(
                max((e["omem_peak"] for e in self.seen.values()), default=0) / 1048576, 2
            ),
            "error": self.error,
        }


def redis_address(broker: str) -> tuple[str, int, int]:
    """(host, port, db) of a ``redis://host:port/db`` URL (no password support needed)."""
    rest = broker.split("://", 1)[1].rsplit("@", 1)[-1]
    hostport, _, db = rest.partition("/")
    host, _, port = hostport.partition(":")
    return host or "127.0.0.1", int(port or 6379), int(db or 0)


def monitor_counters(fb: Any, base: str) -> dict[str, float]:
    """``headrace_celery_*`` from ``/flower/metrics`` (gaps, reconnects, events...)."""
    status, body = fb.get(base + "/metrics", 10)
    if status != 200:
        return {}
    return {k: float(v) for k, v in MONITOR_LINE.findall(body.decode())}


def start_headrace(fb: Any, cmd: str, broker: str, port: int, home: Path, log: Path) -> Any:
    env = dict(
        os.environ, HEADRACE_HOME=str(home), HEADRACE_CELERY_BROKER_URL=broker, DO_NOT_TRACK="1"
    )
    argv = [cmd, "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "ab") as sink:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            argv,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("headrace exited: " + log.read_text()[-800:])
        if fb.get(f"http://127.0.0.1:{port}/api/health", 2)[0] == 200:
            return proc
        time.sleep(0.3)
    fb.stop_group(proc)
    raise SystemExit("headrace did not answer /api/health within 90 s")


def settle(fb: Any, base: str, want: int, t_sent: float, a: argparse.Namespace) -> tuple:
    """Poll the committed task-event count until it reaches ``want`` or stops moving."""
    last, t_last_change, t_done = -1, time.time(), None
    while True:
        n, _ = fb.events_total(base, timeout=10)
        if n is not None and n != last:
            last, t_last_change = n, time.time()
        if n is not None and n >= want:
            t_done = time.time()
            break
        if time.time() - t_last_change > a.settle or time.time() - t_sent > a.max_wait:
            break
        time.sleep(0.5)
    return last, t_done, t_done or t_last_change


def final_tasks(fb: Any, base: str, out: Path, res: dict[str, Any]) -> None:
    """Read every task through the API; compare with the producer's id list."""
    t0 = time.time()
    status, body = fb.get(base + "/api/tasks", timeout=300)
    res["api_tasks_full_s"] = round(time.time() - t0, 2)
    shown = json.loads(body) if status == 200 else {}
    ids = [ln.split(",") for ln in (out / "ids.txt").read_text().splitlines()]
    res["api_tasks_count"], res["api_tasks_bytes"] = len(shown), len(body)
    res["tasks_sent"] = len(ids)
    res["tasks_missing"] = sum(1 for i, *_ in ids if i not in shown)
    res["tasks_wrong_state"] = sum(
        1 for i, s, *_ in ids if i in shown and shown[i].get("state") != s
    )
    states: dict[str, int] = {}
    for task in shown.values():
        states[task.get("state")] = states.get(task.get("state"), 0) + 1
    res["api_states"] = states


def flood_figures(fb: Any, res: dict, out: Path, samp: Any, marks: tuple, usage0: tuple) -> None:
    """bench.py's latency, RSS and CPU figures over the run's windows."""
    t_start, t_sent, t_end = marks
    cpu0, rss0 = usage0
    rows = []
    for line in (out / "probe.csv").read_text().splitlines():
        which, t, d, st = line.split(",")
        rows.append((which, float(t), float(d), int(st)))
    workers = [r for r in rows if r[0] == "workers"]
    tasks = [r for r in rows if r[0] == "tasks"]
    srows = samp.window(t_start, t_end)
    res["rss_peak_mb"] = round(max(r[2] for r in srows), 1)
    res["rss_end_mb"] = round(srows[-1][2], 1)
    res["rss_growth_mb"] = round(srows[-1][2] - rss0, 1)
    res["cpu_s"] = round(srows[-1][1] - cpu0, 1)
    span = max(1e-6, srows[-1][0] - srows[0][0])
    res["cpu_pct_avg"] = round(100 * (srows[-1][1] - srows[0][1]) / span, 1)
    res["lat_workers_flood"] = fb.lat_stats(workers, t_start, t_sent)
    res["lat_tasks_flood"] = fb.lat_stats(tasks, t_start, t_sent)
    res["lat_workers_until_drained"] = fb.lat_stats(workers, t_start, t_end)
    res["lat_tasks_until_drained"] = fb.lat_stats(tasks, t_start, t_end)


def run(a: argparse.Namespace, fb: Any, out: Path, res: dict[str, Any]) -> None:
    port = a.port or fb.free_port()
    api = f"http://127.0.0.1:{port}"
    base = api + "/flower"
    home = Path(tempfile.mkdtemp(prefix="headrace-celerybench-"))
    watch = PubsubWatch(*redis_address(a.broker))  # before the monitor subscribes
    watch.start()
    server, probe, spy = None, None, None
    try:
        server = start_headrace(fb, a.headrace, a.broker, port, home, out / "headrace.log")
        res["sync_s"] = round(fb.sync(a.broker, base), 2)
        usage0 = fb.usage(server.pid)
        res["rss_start_mb"] = round(usage0[1], 1)
        samp = fb.Sampler(server.pid)
        samp.start()
        if a.py_spy:  # the server's stacks over the measured part (costs some CPU)
            spy = subprocess.Popen(
                [
                    a.py_spy,
                    "record",
                    "--pid",
                    str(server.pid),
                    "--threads",
                    "--rate",
                    "100",
                    "-o",
                    str(out / "profile.folded"),
                    "--format",
                    "raw",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        if not a.idle:
            probe = subprocess.Popen(
                [
                    sys.executable,
                    str(a.shared / "probe.py"),
                    api,
                    str(out / "probe.csv"),
                    str(out / "probe.stop"),
                    "/flower/api",
                ],
                start_new_session=True,
            )
            time.sleep(1.0)
        argv = [
            sys.executable,
            str(a.shared / "producer.py"),
            "--broker",
            a.broker,
            "--workers",
            str(a.workers),
        ]
        argv += (
            ["--idle", str(a.idle)]
            if a.idle
            else ["--events", str(a.events), "--ids-out", str(out / "ids.txt")]
        )
        argv += (["--replay"] if a.replay else []) + (["--rate", str(a.rate)] if a.rate else [])
        res["replay"], res["rate"] = a.replay, a.rate or "max"
        t_start = time.time()
        prod = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
        t_sent = time.time()
        if prod.returncode != 0:
            raise SystemExit("producer failed: " + prod.stderr[-800:])
        ps = json.loads(prod.stdout.strip().splitlines()[-1])
        keys = ("tasks", "task_events", "heartbeats", "seconds", "task_events_per_s", "build_s")
        res["producer"] = {k: ps.get(k) for k in keys}
        if ps.get("replay"):  # the clock starts when the first pipelined publish goes out
            t_start = ps["t0"]
        if a.idle:
            samp.stop()
            rows = samp.window(t_start + 5, t_sent)  # skip the first 5 s, as bench.py
            span = rows[-1][0] - rows[0][0] if len(rows) > 1 else 0
            res["idle_cpu_pct"] = (
                round((rows[-1][1] - rows[0][1]) / span * 100, 2) if span else None
            )
            res["rss_end_mb"] = round(rows[-1][2], 1) if rows else None
        else:
            last, t_done, t_end = settle(fb, base, ps["task_events"], t_sent, a)
            (out / "probe.stop").touch()
            probe.wait(30)
            samp.stop()
            res["flower_task_events"] = last
            res["all_events_seen"] = t_done is not None
            res["ingest_s"] = round(t_end - t_start, 2)
            res["ingest_rate"] = round(last / (t_end - t_start), 1)
            res["drain_after_producer_s"] = round(t_end - t_sent, 2)
            flood_figures(fb, res, out, samp, (t_start, t_sent, t_end), usage0)
            final_tasks(fb, base, out, res)
            status, body = fb.get(base + "/api/workers?status=true", 30)
            res["api_workers_status_count"] = len(json.loads(body)) if status == 200 else None
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        res["monitor"] = monitor_counters(fb, base)
        res["redis_pubsub"] = watch.stop()
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        if probe and probe.poll() is None:
            (out / "probe.stop").touch()
            probe.wait(30)
        if watch.is_alive():
            watch.stop()
        if server is not None:
            t0 = time.time()
            fb.stop_group(server, timeout=30)
            res["shutdown_s"], res["exit_code"] = round(time.time() - t0, 2), server.returncode
        log = out / "headrace.log"
        text = log.read_text(errors="replace").splitlines() if log.exists() else []
        res["log_errors"] = [ln for ln in text if "ERROR" in ln or "Traceback" in ln][:5]
        res["log_gap_lines"] = sum(1 for ln in text if "are lost" in ln)
        if not a.keep_home:
            subprocess.run(["rm", "-rf", str(home)], check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--broker", default="redis://127.0.0.1:6379/11")
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--workers", type=int, default=50)
    ap.add_argument("--idle", type=float, default=0.0, help="heartbeats only, this many seconds")
    ap.add_argument("--replay", action="store_true", help="producer --replay (pipelined)")
    ap.add_argument("--rate", type=float, default=0.0, help="producer --rate (0 = max)")
    ap.add_argument("--settle", type=float, default=20.0)
    ap.add_argument("--max-wait", type=float, default=300.0)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--headrace", default=str(REPO / ".venv" / "bin" / "headrace"))
    ap.add_argument("--shared", type=Path, default=SHARED, help="the shared bench/celery dir")
    ap.add_argument("--keep-home", action="store_true")
    ap.add_argument(
        "--py-spy",
        help="path to py-spy: record the server to OUT/profile.folded (collapsed stacks)",
    )
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    fb = use_shared(a.shared)
    out = Path(a.out or tempfile.mkdtemp(prefix="headrace-celerybench-out-"))
    out.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {
        "server": "headrace",
        "mode": "idle" if a.idle else "flood",
        "events": a.events,
        "workers": a.workers,
    }
    try:
        run(a, fb, out, res)
    finally:
        res["out"] = str(out)
        print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
