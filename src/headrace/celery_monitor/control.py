"""Celery's remote control for Flower's control API: pools, consumers, revoke, limits.

Each operation checks that the worker is one headrace knows (a stored row, from
its events or an ``inspect``), broadcasts one command to it through the broker
in a thread, and turns the worker's reply into Flower's message. Replies are
awaited only for the named worker, so a call returns as soon as it answers;
``timeout`` bounds the wait for a worker that does not.

Celery and kombu are imported only here, when called.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from headrace.celery_monitor.broker import BrokerError
from headrace.errors import HeadraceError, NotFound
from headrace.storage import celery_workers
from headrace.storage.db import Database

logger = logging.getLogger(__name__)

REPLY_TIMEOUT = 5.0  # a busy worker on a loaded machine may take a few seconds
CONNECT_TIMEOUT = 5.0
MAX_CONCURRENT_CALLS = 4  # each holds a thread of the default executor while it waits


class WorkerRefused(HeadraceError):
    """The worker answered the command with an error (Flower answers 403)."""


class NoReply(HeadraceError):
    """The worker did not answer within the timeout."""


def _app(url: str) -> Any:
    from celery import Celery

    return Celery(broker=url, set_as_current=False)


def broadcast(
    url: str,
    command: str,
    arguments: dict[str, Any],
    destination: list[str] | None,
    reply: bool,
    timeout: float,
) -> list[dict[str, Any]]:
    """Send one control command over its own connection (blocking).

    Returns:
        The replies, ``[{hostname: answer}]`` (empty when ``reply`` is false).

    Raises:
        BrokerError: the broker could not be reached.
    """
    app = _app(url)
    try:
        with app.connection_for_write(connect_timeout=CONNECT_TIMEOUT) as conn:
            conn.ensure_connection(max_retries=0)
            answers = app.control.broadcast(
                command,
                arguments=arguments,
                destination=destination,
                reply=reply,
                timeout=timeout,
                connection=conn,
            )
    except Exception as exc:  # kombu raises many kinds; all mean "broker unreachable"
        raise BrokerError(str(exc) or type(exc).__name__) from exc
    return list(answers or [])


def _answer_of(worker: str, replies: list[dict[str, Any]]) -> dict[str, Any] | None:
    for reply in replies:
        answer = reply.get(worker) if isinstance(reply, dict) else None
        if answer is not None:
            return answer if isinstance(answer, dict) else {"error": repr(answer)}
    return None


class Controller:
    """Flower's control operations against the workers of one broker.

    Args:
        db: where the known workers are stored.
        url: the broker URL.
        timeout: seconds to wait for a worker's reply.
    """

    def __init__(self, db: Database, url: str, timeout: float = REPLY_TIMEOUT) -> None:
        self.db = db
        self.url = url
        self.timeout = timeout
        self._calls = asyncio.Semaphore(MAX_CONCURRENT_CALLS)

    async def _known(self, worker: str) -> None:
        async with self.db.read() as conn:
            found = await celery_workers.list_workers(conn, worker)
        if not found:
            raise NotFound(f"Unknown worker '{worker}'")

    async def _send(
        self, command: str, arguments: dict[str, Any], worker: str | None, reply: bool
    ) -> list[dict[str, Any]]:
        destination = [worker] if worker is not None else None
        async with self._calls:
            call = asyncio.to_thread(
                broadcast, self.url, command, arguments, destination, reply, self.timeout
            )
            try:
                # The thread's own timeouts bound it; this bounds the request anyway.
                return await asyncio.wait_for(call, self.timeout + 2 * CONNECT_TIMEOUT)
            except TimeoutError:
                raise BrokerError("the broker did not answer in time") from None

    async def _ask(self, worker: str, command: str, arguments: dict[str, Any]) -> str | None:
        """The worker's ``ok`` text; raises WorkerRefused with its error."""
        await self._known(worker)
        logger.info("celery control: %s %r to %s", command, arguments, worker)
        answer = _answer_of(worker, await self._send(command, arguments, worker, reply=True))
        if answer is None:
            raise NoReply(f"Worker '{worker}' did not answer within {self.timeout:g}s")
        if "ok" not in answer:
            raise WorkerRefused(str(answer.get("error") or "Unknown reason"))
        ok = answer["ok"]
        return None if ok is None else str(ok)

    async def _order(
        self, worker: str, command: str, arguments: dict[str, Any], failure: str
    ) -> str | None:
        try:
            return await self._ask(worker, command, arguments)
        except WorkerRefused as exc:
            raise WorkerRefused(f"{failure}: {exc}") from None

    async def shutdown(self, worker: str) -> str:
        """Warm shutdown of ``worker`` (it sends no reply)."""
        await self._known(worker)
        logger.info("celery control: shutting down %s", worker)
        await self._send("shutdown", {}, worker, reply=False)
        return "Shutting down!"

    async def pool_restart(self, worker: str) -> str:
        """Restart the worker's pool (the worker needs ``worker_pool_restarts``)."""
        failure = f"Failed to restart the '{worker}' pool"
        await self._order(worker, "pool_restart", {"reload": False}, failure)
        return f"Restarting '{worker}' worker's pool"

    async def pool_grow(self, worker: str, n: int) -> str:
        await self._order(worker, "pool_grow", {"n": n}, f"Failed to grow '{worker}' worker's pool")
        return f"Growing '{worker}' worker's pool by {n}"

    async def pool_shrink(self, worker: str, n: int) -> str:
        failure = f"Failed to shrink '{worker}' worker's pool"
        await self._order(worker, "pool_shrink", {"n": n}, failure)
        return f"Shrinking '{worker}' worker's pool by {n}"

    async def autoscale(self, worker: str, minimum: int, maximum: int) -> str:
        """Change the autoscaler's range (the worker needs ``--autoscale``)."""
        failure = f"Failed to autoscale '{worker}' worker"
        await self._order(worker, "autoscale", {"min": minimum, "max": maximum}, failure)
        return f"Autoscaling '{worker}' worker (min={minimum}, max={maximum})"

    async def add_consumer(self, worker: str, queue: str) -> str:
        failure = f"Failed to add '{queue}' consumer to '{worker}' worker"
        return await self._order(worker, "add_consumer", {"queue": queue}, failure) or ""

    async def cancel_consumer(self, worker: str, queue: str) -> str:
        failure = f"Failed to cancel '{queue}' consumer from '{worker}' worker"
        return await self._order(worker, "cancel_consumer", {"queue": queue}, failure) or ""

    async def revoke(self, task_id: str, terminate: bool, signal: str) -> str:
        """Revoke ``task_id`` on every worker (no reply awaited, as Flower does)."""
        logger.info("celery control: revoking %s (terminate=%s)", task_id, terminate)
        arguments = {"task_id": task_id, "terminate": terminate, "signal": signal}
        await self._send("revoke", arguments, None, reply=False)
        return f"Revoked '{task_id}'"

    async def rate_limit(self, task: str, worker: str, rate: str) -> str:
        arguments = {"task_name": task, "rate_limit": rate}
        return await self._task_order(task, worker, "rate_limit", arguments, "rate limit")

    async def time_limit(
        self, task: str, worker: str, soft: float | None, hard: float | None
    ) -> str:
        arguments = {"task_name": task, "soft": soft, "hard": hard}
        return await self._task_order(task, worker, "time_limit", arguments, "timeouts")

    async def _task_order(
        self, task: str, worker: str, command: str, arguments: dict[str, Any], what: str
    ) -> str:
        try:
            return await self._ask(worker, command, arguments) or ""
        except WorkerRefused as exc:
            # headrace has no copy of the Celery app: the worker tells an unknown task.
            if str(exc) == "unknown task":
                raise NotFound(f"Unknown task '{task}'") from None
            raise WorkerRefused(f"Failed to set {what}: '{exc}'") from None
