#!/usr/bin/env python3
"""The background tasks of t1-t3 and the task worker process that serves them.

Both sides import this file: the scenario scripts call ``.delay()`` on the
tasks, and each task worker runs it as a script. A task's key is its function's
name plus a hash of its code, so callers and workers agree on the keys.

    bg_tasks.py serve start [--limit N]    t1: bench_start
    bg_tasks.py serve record [--limit N]   t2: bench_record
    bg_tasks.py serve idle --index I       t3: bench_idle_I (a task key of its own)

Environment (set by ``bg_common.client_env``): ``PREFECT_API_URL``, and
``PREFECT_HOME`` shared with the callers (``.delay()`` writes the parameters to
its local storage; the worker reads them there); ``BENCH_NOTIFY`` (t1: a UNIX
datagram socket the caller listens on); ``BENCH_TASK_LOG`` (t2: a path prefix;
each worker appends to ``<prefix>.<pid>``).

The worker keeps prefect's task-worker logger at INFO (its "Subscribing to runs"
line tells the scenario the worker is about to subscribe); everything else
follows ``PREFECT_LOGGING_LEVEL``.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading
import time
import types
from typing import Any

from prefect import Task, task
from prefect.context import TaskRunContext

_lock = threading.Lock()
_notify_socket: socket.socket | None = None
_log_fd: int | None = None


def _notify(text: str) -> None:
    global _notify_socket
    with _lock:
        if _notify_socket is None:
            _notify_socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    _notify_socket.sendto(text.encode(), os.environ["BENCH_NOTIFY"])


def _append(line: str) -> None:
    """One ``write`` of a short line to an O_APPEND file: lines never interleave."""
    global _log_fd
    with _lock:
        if _log_fd is None:
            path = f"{os.environ['BENCH_TASK_LOG']}.{os.getpid()}"
            _log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(_log_fd, line.encode())


@task
def bench_start(seq: int) -> int:
    """t1: tell the caller the moment the body starts (``<seq> <time.time()>``)."""
    _notify(f"{seq} {time.time():.6f}")
    return seq


@task
def bench_record(seq: int) -> int:
    """t2: append ``<task run id> <seq> <pid> <time.time()>`` to this worker's log."""
    run = TaskRunContext.get()
    run_id = run.task_run.id if run is not None else "?"
    _append(f"{run_id} {seq} {os.getpid()} {time.time():.6f}\n")
    return seq


def _idle_body() -> None:
    """t3: never runs (nothing is delayed in the idle scenario)."""


def idle_task(index: int) -> Task[[], None]:
    """A task with a key of its own (``bench_idle_<index>-<code hash>``)."""
    fn = types.FunctionType(_idle_body.__code__, globals(), f"bench_idle_{index}")
    fn.__qualname__ = fn.__name__
    return task(fn)


def serve_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="bg_tasks.py serve")
    ap.add_argument("kind", choices=["start", "record", "idle"])
    ap.add_argument("--index", type=int, default=0, help="idle: which task key")
    ap.add_argument("--limit", type=int, default=10, help="runs in flight (the client's default)")
    a = ap.parse_args(argv)
    from prefect.task_worker import serve

    logging.getLogger("prefect.task_worker").setLevel(logging.INFO)
    tasks: dict[str, Any] = {
        "start": bench_start,
        "record": bench_record,
        "idle": idle_task(a.index),
    }
    print(f"serving {a.kind} pid={os.getpid()}", flush=True)
    serve(tasks[a.kind], limit=a.limit)


if __name__ == "__main__":
    if sys.argv[1:2] != ["serve"]:
        sys.exit(__doc__)
    serve_main(sys.argv[2:])
