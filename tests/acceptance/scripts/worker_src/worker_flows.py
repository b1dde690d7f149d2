"""Flows deployed from local source and run by `prefect worker start` (test_worker.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from prefect import flow, get_run_logger


@flow(name="greet")
def greet(name: str, n: int = 1, out: str = "") -> str:
    """Write what it was called with to ``out`` so the test can see the parameters."""
    text = f"hello {name}" * n
    get_run_logger().info("greet got name=%s n=%s", name, n)
    if out:
        Path(out).write_text(json.dumps({"name": name, "n": n, "text": text}))
    return text


@flow(name="sleeper")
def sleeper(seconds: float = 60) -> None:
    get_run_logger().info("sleeping %s s", seconds)
    time.sleep(seconds)


@flow(name="child")
def child(seconds: float = 60) -> None:
    get_run_logger().info("child sleeping %s s", seconds)
    time.sleep(seconds)


@flow(name="parent")
def parent(seconds: float = 60) -> None:
    child(seconds)
