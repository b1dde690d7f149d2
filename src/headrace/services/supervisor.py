"""Runs named service loops; restarts a crashed one with backoff, stops all under a deadline."""

from __future__ import annotations

import asyncio
import contextlib
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
    autostart: bool = True
    task: asyncio.Task[None] | None = None
    restarts: int = 0
    started_at: float = field(default_factory=time.monotonic)


class Supervisor:
    """Owns the service tasks of one process.

    A service added with ``autostart=False`` waits for ``launch(name)``; the lease
    keeper launches and halts the singleton services as it gains and loses their
    leases.
    """

    def __init__(self) -> None:
        self.services: dict[str, ServiceState] = {}
        self._watch: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._stopping = False

    def add(self, name: str, loop: ServiceLoop, autostart: bool = True) -> None:
        self.services[name] = ServiceState(name, loop, autostart)

    def start(self) -> None:
        for state in self.services.values():
            if state.autostart:
                self._launch(state)
        self._watch = asyncio.create_task(self._supervise(), name="supervisor")

    def is_running(self, name: str) -> bool:
        return self.services[name].task is not None

    def launch(self, name: str) -> None:
        """Start ``name`` unless it is running (or the supervisor is stopping)."""
        state = self.services[name]
        if state.task is None and not self._stopping:
            state.restarts = 0
            self._launch(state)

    async def halt(self, name: str, timeout: float = 10.0) -> None:
        """Stop ``name`` and wait for it; the supervisor does not restart it."""
        state = self.services[name]
        task, state.task = state.task, None
        self._changed.set()
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), timeout)
        if task.done() and not task.cancelled() and task.exception() is not None:
            logger.error("service %s failed while stopping: %r", name, task.exception())
        logger.info("service %s stopped", name)

    def _launch(self, state: ServiceState, delay: float = 0.0) -> None:
        if delay == 0.0:
            logger.info("service %s started", state.name)
        state.started_at = time.monotonic()
        state.task = asyncio.create_task(self._run(state, delay), name=state.name)
        self._changed.set()

    @staticmethod
    async def _run(state: ServiceState, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
            logger.info("service %s restarted", state.name)
        await state.loop()

    async def _supervise(self) -> None:
        while not self._stopping:
            self._changed.clear()
            tasks = {s.task: s for s in self.services.values() if s.task is not None}
            changed = asyncio.create_task(self._changed.wait())
            try:
                done, _ = await asyncio.wait({*tasks, changed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                changed.cancel()
            for task in done:
                state = tasks.get(task)  # type: ignore[arg-type]
                if state is None or state.task is not task:
                    continue  # the change signal, or a service halted meanwhile
                state.task = None
                if self._stopping or task.cancelled():
                    continue
                exc = task.exception()
                if exc is not None:
                    logger.error("service %s crashed: %r", state.name, exc, exc_info=exc)
                else:
                    logger.warning("service %s returned; restarting", state.name)
                state.restarts += 1
                self._launch(state, delay=min(30.0, 0.5 * 2 ** min(state.restarts, 6)))

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
