"""Blocking calls to a Celery broker for the API: ``inspect`` and queue lengths.

Each call opens its own connection and is meant for ``asyncio.to_thread``;
Celery and kombu are imported only here, when called.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

logger = logging.getLogger(__name__)

INSPECT_TIMEOUT = 1.0  # Flower's default inspect_timeout
# Flower's inspect methods; the task lists can be huge, so only for one named worker.
INSPECT_METHODS = ("stats", "active_queues", "registered", "conf")
TASK_LIST_METHODS = ("scheduled", "active", "reserved", "revoked")
DEFAULT_QUEUE = "celery"  # Celery's task_default_queue


class BrokerError(Exception):
    """The broker could not be reached or did not answer."""


def _app(url: str) -> Any:
    from celery import Celery

    return Celery(broker=url, set_as_current=False)


def inspect_workers(
    url: str, workername: str | None = None, timeout: float = INSPECT_TIMEOUT
) -> dict[str, dict[str, Any]]:
    """Ask the workers (or one) about themselves, as Flower's ``?refresh=1`` does.

    Returns:
        hostname -> {method: answer} for every worker that answered.

    Raises:
        BrokerError: the broker could not be reached.
    """
    app = _app(url)
    methods = INSPECT_METHODS + (TASK_LIST_METHODS if workername else ())
    answers: dict[str, dict[str, Any]] = {}
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)
            inspect = app.control.inspect(
                timeout=timeout,
                destination=[workername] if workername else None,
                connection=conn,
            )
            for method in methods:
                call = getattr(inspect, method)
                result = call(safe=True) if method == "active" else call()
                for hostname, answer in (result or {}).items():
                    if answer is None:
                        continue
                    if method == "stats" and isinstance(answer, dict):
                        # Flower drops it too: alternates may hold broker passwords.
                        (answer.get("broker") or {}).pop("alternates", None)
                    answers.setdefault(hostname, {})[method] = answer
    except Exception as exc:
        raise BrokerError(str(exc) or type(exc).__name__) from exc
    return answers


def queue_lengths(url: str, names: list[str]) -> list[dict[str, Any]]:
    """Messages waiting in each queue: ``[{"name": ..., "messages": n}]``.

    Raises:
        BrokerError: the broker could not be reached.
    """
    app = _app(url)
    lengths = []
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)
            for name in names:
                channel = conn.channel()
                try:
                    declared = channel.queue_declare(queue=name, passive=True)
                    messages = int(declared.message_count)
                except conn.channel_errors:
                    messages = 0  # Redis has no empty queues, AMQP none never declared
                finally:
                    # A refused passive declare may have closed the channel already.
                    with contextlib.suppress(Exception):
                        channel.close()
                lengths.append({"name": name, "messages": messages})
    except Exception as exc:
        raise BrokerError(str(exc) or type(exc).__name__) from exc
    return lengths
