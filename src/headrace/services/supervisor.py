"""Runs named service loops; restarts a crashed one with backoff, stops all under a deadline."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

ServiceLoop = Callable[[], Coroutine[Any, Any, None]]


@dataclass
class ServiceState:
    name: str
    loop: ServiceLoop
    task: asyncio.Task[None] | None = None
    restarts: int = 0
    started_at: float = field(default_factory=time.monotonic)


class Supervisor:
    """Owns the service tasks of one process."""

    def __init__(self) -> None:
        self.services: dict[str, ServiceState] = {}
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False

    def add(self, name: str, loop: ServiceLoop) -> None:
        self.services[name] = ServiceState(name, loop)

    def start(self) -> None:
        for state in self.services.values():
            self._launch(state)
        self._watch = asyncio.create_task(self._supervise(), name="supervisor")

    def _launch(self, state: ServiceState) -> None:
        logger.info("service %s started", state.name)
        state.started_at = time.monotonic()
        state.task = asyncio.create_task(state.loop(), name=state.name)

    async def _supervise(self) -> None:
        while not self._stopping:
            tasks = {s.task: s for s in self.services.values() if s.task is not None}
            if not tasks:
                return
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                state = tasks[task]
                if self._stopping or task.cancelled():
                    continue
                exc = task.exception()
                if exc is not None:
                    logger.error("service %s crashed: %r", state.name, exc, exc_info=exc)
                else:
                    logger.warning("service %s returned; restarting", state.name)
                state.restarts += 1
                await asyncio.sleep(min(30.0, 0.5 * 2 ** min(state.restarts, 6)))
                if not self._stopping:
                    self._launch(state)

    async def stop(self, timeout: float) -> None:
        """Cancel every service and wait for each, independently, up to ``timeout``."""
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
        running = {s.task: s for s in self.services.values() if s.task is not None}
        for task in running:
            task.cancel()
        if not running:
            return
        done, pending = await asyncio.wait(running, timeout=timeout)
        for task in done:
            name = running[task].name
            if not task.cancelled() and task.exception() is not None:
                logger.error("service %s failed while stopping: %r", name, task.exception())
            logger.info("service %s stopped", name)
        for task in pending:
            logger.error("service %s did not stop within %.1fs", running[task].name, timeout)
