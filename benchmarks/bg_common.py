"""What the background-task and concurrency scenarios (t1-t4) share: the client's
environment, helper processes (task workers, callers, waiters) and percentiles.

Helper processes are this script's children, not the server's, so the harness's
server CPU figures never include them; they are stopped by PID.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_shared import use_shared

use_shared()
from benchlib import log, pct, process_tree, sample_tree  # noqa: E402

HERE = Path(__file__).resolve().parent
BG_TASKS = HERE / "bg_tasks.py"
SUBSCRIBING = "Subscribing to runs"  # prefect.task_worker logs it just before it connects


def client_env(api_url: str, prefix: str) -> Path:
    """Point this process (and the helpers it starts) at the server; returns a fresh
    ``PREFECT_HOME`` shared by all of them. Call before importing prefect.

    The prefect logger stays at WARNING, so task runs ship no INFO logs to the
    API: the load is the dispatch and the runs' state events.
    """
    home = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ.update(
        PREFECT_API_URL=api_url,
        PREFECT_HOME=str(home),
        PREFECT_LOGGING_LEVEL="WARNING",
        PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW="ignore",
    )
    return home


def spread(values: list[float], scale: float = 1000.0) -> dict[str, Any]:
    """n, min, p50, p95, p99, max, mean of ``values`` x ``scale`` (default: s -> ms)."""
    v = [x * scale for x in values]
    if not v:
        return {"n": 0}
    return {
        "n": len(v),
        "min": round(min(v), 3),
        "p50": round(pct(v, 50) or 0, 3),
        "p95": round(pct(v, 95) or 0, 3),
        "p99": round(pct(v, 99) or 0, 3),
        "max": round(max(v), 3),
        "mean": round(sum(v) / len(v), 3),
    }


def machine_cpu() -> tuple[int, int]:
    """(total, idle) jiffies over all cores, from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:9]]
    return sum(vals), vals[3] + vals[4]  # idle + iowait


def busy_pct(a: tuple[int, int], b: tuple[int, int]) -> float:
    """Share of all cores busy between two ``machine_cpu`` readings (all users)."""
    return round(100 * (1 - (b[1] - a[1]) / max(1, b[0] - a[0])), 1)


class Helpers:
    """Child processes of the scenario (task workers, callers, waiters), each with
    its output in ``log_dir``; stopped by PID."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(
        self, args: list[str], name: str, env: dict[str, str] | None = None, stdin: bool = False
    ) -> subprocess.Popen[bytes]:
        path = self.log_dir / f"{name}.log"
        with open(path, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, *args],
                env=dict(os.environ, **(env or {})),
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        self.logs.append(path)
        return proc

    def start_worker(
        self,
        kind: str,
        name: str,
        extra: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """A task worker serving ``bg_tasks.py``'s ``kind`` task(s)."""
        return self.start([str(BG_TASKS), "serve", kind, *(extra or [])], name, env)

    def output(self, i: int) -> str:
        try:
            return self.logs[i].read_text(errors="replace")
        except OSError:
            return ""

    def wait_for_line(self, text: str, timeout: float) -> list[int]:
        """Wait until every helper's output contains ``text``; the indexes still without it."""
        deadline = time.time() + timeout
        while True:
            missing = [i for i in range(len(self.procs)) if text not in self.output(i)]
            dead = [i for i in missing if self.procs[i].poll() is not None]
            if not missing or dead or time.time() > deadline:
                return missing
            time.sleep(0.2)

    def alive(self) -> int:
        return sum(1 for p in self.procs if p.poll() is None)

    def cpu_s(self) -> float:
        """CPU seconds of the live helpers (and their children) so far."""
        return sum(sample_tree(p.pid)["cpu_s"] or 0.0 for p in self.procs if p.poll() is None)

    def tail(self, i: int, chars: int = 1500) -> str:
        return self.output(i)[-chars:]

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM every helper, then SIGKILL what is left of their trees (by PID)."""
        trees = {p.pid: process_tree(p.pid) for p in self.procs if p.poll() is None}
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)
        deadline = time.time() + grace
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.1, deadline - time.time()))
        for pids in trees.values():
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for p in self.procs:
            p.wait()


def go(procs: list[subprocess.Popen[bytes]]) -> float:
    """Tell every helper waiting on stdin to start, as close together as possible."""
    t = time.time()
    for p in procs:
        assert p.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            p.stdin.write(b"go\n")
            p.stdin.flush()
    return t


def wait_ready(stdin_line: str = "go") -> None:
    """Helper side of ``go``: print "ready" and block until the scenario says go."""
    print("ready", flush=True)
    line = sys.stdin.readline().strip()
    if line != stdin_line:
        sys.exit(f"expected {stdin_line!r} on stdin, got {line!r}")


__all__ = [
    "SUBSCRIBING",
    "Helpers",
    "busy_pct",
    "client_env",
    "go",
    "log",
    "machine_cpu",
    "spread",
    "wait_ready",
]
