"""The Postgres bus: notices reach other processes' handlers, not the sender's twice."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from headrace.messaging.postgres import PostgresBus, asyncpg_dsn
from headrace.types import WireDict

pytestmark = pytest.mark.postgres


async def eventually(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "notice not delivered in time"
        await asyncio.sleep(0.02)


async def test_notices_cross_between_buses_and_reconnects_say_look_again(pg_url: str) -> None:
    sender, receiver = PostgresBus(pg_url), PostgresBus(pg_url)
    got_sender: list[WireDict | None] = []
    got_receiver: list[WireDict | None] = []
    sender.subscribe("flow-runs", got_sender.append)
    receiver.subscribe("flow-runs", got_receiver.append)
    await sender.start()
    await receiver.start()
    try:
        assert await sender.wait_connected(10) and await receiver.wait_connected(10)
        sender.publish("flow-runs", {"state": {"type": "CANCELLED"}})
        sender.publish("flow-runs", {"ids": ["x"]}, local=False)
        await eventually(lambda: len(got_receiver) == 2)
        assert got_receiver == [{"state": {"type": "CANCELLED"}}, {"ids": ["x"]}]
        await asyncio.sleep(0.2)
        assert got_sender == [{"state": {"type": "CANCELLED"}}]  # local dispatch only, once

        # Cut the receiver's connection: on reconnect its handlers hear "look again".
        admin = await asyncpg.connect(asyncpg_dsn(pg_url))
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'headrace-bus' AND pid <> pg_backend_pid()"
            )
        finally:
            await admin.close()
        await eventually(lambda: None in got_receiver, timeout=15)
        assert receiver.reconnects >= 1
        await eventually(lambda: sender.reconnects >= 1, timeout=15)
        got_receiver.clear()
        sender.publish("flow-runs", {"after": True})
        await eventually(lambda: {"after": True} in got_receiver)
    finally:
        await sender.stop()
        await receiver.stop()


async def test_an_oversized_notice_travels_as_look_again(pg_url: str) -> None:
    sender, receiver = PostgresBus(pg_url), PostgresBus(pg_url)
    got: list[WireDict | None] = []
    receiver.subscribe("events", got.append)
    await sender.start()
    await receiver.start()
    try:
        assert await sender.wait_connected(10) and await receiver.wait_connected(10)
        sender.publish("events", {"ids": ["x" * 100] * 100}, local=False)
        await eventually(lambda: got == [None])
    finally:
        await sender.stop()
        await receiver.stop()
