"""The storage contract: every query module behaves the same on SQLite and Postgres.

One suite, parametrized over the backends by the ``db`` fixture (a freshly
migrated database per test). Anything a backend does differently is a bug.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from headrace.errors import NotFound
from headrace.events import recorder
from headrace.events.filters import EventFilter, sql_prefilter
from headrace.storage import events, flow_runs, flows, logs, task_runs
from headrace.storage import tables as t
from headrace.storage.db import Database
from headrace.types import WireDict

T0 = datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def uid(n: int) -> str:
    """A fixed, ordered UUID (so ID_DESC order is known)."""
    return str(uuid.UUID(int=n, version=4))


# -- helpers ------------------------------------------------------------------


async def make_flow(db: Database, name: str = "demo", tags: list[str] | None = None) -> WireDict:
    async with db.write() as conn:
        flow, _ = await flows.ensure_flow(conn, name, tags or [], {})
    return flow


async def make_run(db: Database, flow_id: str, now: datetime = T0, **body: Any) -> WireDict:
    async with db.write() as conn:
        run, created = await flow_runs.create_flow_run(conn, {"flow_id": flow_id, **body}, now)
    assert created
    return run


async def run_ids(db: Database, body: WireDict, limit: int | None = None, offset: int = 0) -> list:
    async with db.read() as conn:
        found = await flow_runs.filter_flow_runs(conn, body, limit, offset, T0)
    return [r["id"] for r in found]


async def set_state(
    db: Database, run_id: str, type_: str, now: datetime, force: bool = False
) -> flow_runs.Transition:
    async with db.write() as conn:
        return await flow_runs.set_flow_run_state(conn, run_id, {"type": type_}, force, now)


async def count_rows(db: Database, table: sa.Table) -> int:
    async with db.read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar())


# -- flows --------------------------------------------------------------------


async def test_ensure_flow_is_idempotent_by_name(db: Database) -> None:
    async with db.write() as conn:
        first, created = await flows.ensure_flow(conn, "etl", ["a"], {"team": "data"})
    async with db.write() as conn:
        again, created_again = await flows.ensure_flow(conn, "etl", ["other"], {})

    assert created is True
    assert created_again is False
    assert again == first
    assert first["name"] == "etl"
    assert first["tags"] == ["a"]
    assert first["labels"] == {"team": "data"}
    assert first["created"].tzinfo is not None
    assert await count_rows(db, t.flows) == 1


async def test_ensure_flow_twice_in_one_transaction(db: Database) -> None:
    async with db.write() as conn:
        first, created = await flows.ensure_flow(conn, "etl", [], {})
        again, created_again = await flows.ensure_flow(conn, "etl", [], {})

    assert (created, created_again) == (True, False)
    assert again["id"] == first["id"]


async def test_read_flow_by_id_and_name(db: Database) -> None:
    flow = await make_flow(db, "etl")

    async with db.read() as conn:
        assert await flows.read_flow(conn, flow["id"]) == flow
        assert await flows.read_flow_by_name(conn, "etl") == flow
        with pytest.raises(NotFound):
            await flows.read_flow(conn, uid(1))
        with pytest.raises(NotFound):
            await flows.read_flow_by_name(conn, "nope")


async def test_filter_flows_by_name_like_is_case_insensitive(db: Database) -> None:
    for name in ("nightly-etl", "ETL-hourly", "report"):
        await make_flow(db, name)

    async with db.read() as conn:
        found = await flows.filter_flows(conn, {"flows": {"name": {"like_": "etl"}}}, None, 0)
        count = await flows.count_flows(conn, {"flows": {"name": {"like_": "etl"}}})
        exact = await flows.filter_flows(conn, {"flows": {"name": {"any_": ["report"]}}}, None, 0)

    assert [f["name"] for f in found] == ["ETL-hourly", "nightly-etl"]
    assert count == 2
    assert [f["name"] for f in exact] == ["report"]


async def test_filter_flows_by_tags(db: Database) -> None:
    await make_flow(db, "ab", ["a", "b"])
    await make_flow(db, "a", ["a"])
    await make_flow(db, "none", [])

    async def names(tags: WireDict) -> list[str]:
        async with db.read() as conn:
            found = await flows.filter_flows(conn, {"flows": {"tags": tags}}, None, 0)
        return [f["name"] for f in found]

    assert await names({"all_": ["a", "b"]}) == ["ab"]
    assert await names({"all_": ["a"]}) == ["a", "ab"]
    assert await names({"all_": ["c"]}) == []
    assert await names({"any_": ["b", "c"]}) == ["ab"]
    assert await names({"is_null_": True}) == ["none"]
    assert await names({"is_null_": False}) == ["a", "ab"]


async def test_flow_sorts_and_paging(db: Database) -> None:
    for name in ("b", "c", "a"):
        await make_flow(db, name)
    # Fix creation times so CREATED_DESC is deterministic: c oldest, a newest.
    async with db.write() as conn:
        for i, name in enumerate(("c", "b", "a")):
            await conn.execute(
                sa.update(t.flows).where(t.flows.c.name == name).values(created=at(i))
            )

    async def names(sort: str | None, limit: int | None = None, offset: int = 0) -> list[str]:
        async with db.read() as conn:
            found = await flows.filter_flows(conn, {"sort": sort}, limit, offset)
        return [f["name"] for f in found]

    assert await names(None) == ["a", "b", "c"]
    assert await names("NAME_ASC") == ["a", "b", "c"]
    assert await names("NAME_DESC") == ["c", "b", "a"]
    assert await names("CREATED_DESC") == ["a", "b", "c"]
    assert await names("NAME_ASC", limit=1, offset=1) == ["b"]


async def test_filter_flows_through_their_runs(db: Database) -> None:
    busy = await make_flow(db, "busy")
    await make_flow(db, "idle")
    await make_run(db, busy["id"], tags=["prod"])

    async with db.read() as conn:
        found = await flows.filter_flows(conn, {"flow_runs": {"tags": {"all_": ["prod"]}}}, None, 0)

    assert [f["name"] for f in found] == ["busy"]


async def test_delete_flow(db: Database) -> None:
    flow = await make_flow(db, "gone")

    async with db.write() as conn:
        await flows.delete_flow(conn, flow["id"])
    async with db.write() as conn:
        with pytest.raises(NotFound):
            await flows.delete_flow(conn, flow["id"])
    async with db.read() as conn:
        with pytest.raises(NotFound):
            await flows.read_flow(conn, flow["id"])


# -- flow runs ----------------------------------------------------------------


async def test_create_flow_run_defaults(db: Database) -> None:
    flow = await make_flow(db)

    run = await make_run(db, flow["id"], parameters={"x": 5})

    assert re.fullmatch(r"[a-z]+-[a-z]+", run["name"])
    assert run["flow_id"] == flow["id"]
    assert run["labels"] == {"prefect.flow.id": flow["id"]}
    assert run["parameters"] == {"x": 5}
    assert run["tags"] == []
    assert run["state_type"] == "PENDING"
    assert run["state"]["type"] == "PENDING"
    assert run["state"]["name"] == "Pending"
    assert run["state"]["state_details"]["flow_run_id"] == run["id"]
    assert run["state_id"] == run["state"]["id"]
    assert run["expected_start_time"] == T0
    assert run["run_count"] == 0
    assert run["empirical_policy"]["retries"] == 0
    async with db.read() as conn:
        stored = await flow_runs.read_flow_run(conn, run["id"], T0)
        history = await flow_runs.read_states(conn, run["id"])
    assert stored["name"] == run["name"]
    assert stored["labels"] == run["labels"]
    assert stored["state"]["id"] == run["state_id"]
    assert stored["created"] == T0
    assert [(s["id"], s["type"], s["name"]) for s in history] == [
        (run["state_id"], "PENDING", "Pending")
    ]
    assert history[0]["timestamp"] == T0


async def test_create_flow_run_keeps_given_name_labels_and_deployment_label(db: Database) -> None:
    flow = await make_flow(db)
    deployment = uid(7)

    run = await make_run(
        db, flow["id"], name="my-run", labels={"team": "data"}, deployment_id=deployment
    )

    assert run["name"] == "my-run"
    assert run["labels"] == {
        "prefect.flow.id": flow["id"],
        "team": "data",
        "prefect.deployment.id": deployment,
    }


async def test_create_flow_run_for_unknown_flow(db: Database) -> None:
    async with db.write() as conn:
        with pytest.raises(NotFound):
            await flow_runs.create_flow_run(conn, {"flow_id": uid(1)}, T0)


async def test_create_flow_run_with_a_scheduled_state(db: Database) -> None:
    flow = await make_flow(db)
    when = at(3600)

    run = await make_run(
        db,
        flow["id"],
        state={"type": "SCHEDULED", "state_details": {"scheduled_time": when.isoformat()}},
    )

    async with db.read() as conn:
        stored = await flow_runs.read_flow_run(conn, run["id"], T0)
    assert stored["state_type"] == "SCHEDULED"
    assert stored["expected_start_time"] == when
    assert stored["next_scheduled_start_time"] == when


async def test_idempotency_key_returns_the_existing_run(db: Database) -> None:
    flow = await make_flow(db)
    other_flow = await make_flow(db, "other")
    first = await make_run(db, flow["id"], idempotency_key="k1")

    async with db.write() as conn:
        again, created = await flow_runs.create_flow_run(
            conn, {"flow_id": flow["id"], "idempotency_key": "k1", "name": "new"}, at(5)
        )
        other, other_created = await flow_runs.create_flow_run(
            conn, {"flow_id": other_flow["id"], "idempotency_key": "k1"}, at(5)
        )

    assert created is False
    assert again["id"] == first["id"]
    assert again["name"] == first["name"]
    assert other_created is True
    assert other["id"] != first["id"]
    assert await count_rows(db, t.flow_runs) == 2
    assert await count_rows(db, t.flow_run_states) == 2


async def test_update_flow_run(db: Database) -> None:
    flow = await make_flow(db)
    run = await make_run(db, flow["id"])

    async with db.write() as conn:
        await flow_runs.update_flow_run(
            conn,
            run["id"],
            {
                "name": "renamed",
                "tags": ["x"],
                "parameters": {"y": 1},
                "infrastructure_pid": "1234",
                "empirical_policy": {"retries": 3},
                "flow_id": uid(99),  # not updatable: ignored
            },
            at(10),
        )
        with pytest.raises(NotFound):
            await flow_runs.update_flow_run(conn, uid(1), {"name": "x"}, at(10))
    async with db.read() as conn:
        stored = await flow_runs.read_flow_run(conn, run["id"], at(10))

    assert stored["name"] == "renamed"
    assert stored["tags"] == ["x"]
    assert stored["parameters"] == {"y": 1}
    assert stored["infrastructure_pid"] == "1234"
    assert stored["empirical_policy"]["retries"] == 3
    assert stored["empirical_policy"]["pause_keys"] == []
    assert stored["flow_id"] == flow["id"]
    assert stored["updated"] == at(10)


async def test_merge_labels(db: Database) -> None:
    flow = await make_flow(db)
    run = await make_run(db, flow["id"], labels={"keep": "1", "replace": "old"})

    async with db.write() as conn:
        await flow_runs.merge_labels(conn, run["id"], {"replace": "new", "add": "2"}, at(1))
        with pytest.raises(NotFound):
            await flow_runs.merge_labels(conn, uid(1), {"a": "b"}, at(1))
    async with db.read() as conn:
        stored = await flow_runs.read_flow_run(conn, run["id"], at(1))

    assert stored["labels"] == {
        "prefect.flow.id": flow["id"],
        "keep": "1",
        "replace": "new",
        "add": "2",
    }


async def test_delete_flow_run(db: Database) -> None:
    flow = await make_flow(db)
    run = await make_run(db, flow["id"])
    kept = await make_run(db, flow["id"])

    async with db.write() as conn:
        await flow_runs.delete_flow_run(conn, run["id"])
    async with db.read() as conn:
        with pytest.raises(NotFound):
            await flow_runs.read_flow_run(conn, run["id"], T0)
        assert await flow_runs.read_states(conn, run["id"]) == []
        assert len(await flow_runs.read_states(conn, kept["id"])) == 1
    async with db.write() as conn:
        with pytest.raises(NotFound):
            await flow_runs.delete_flow_run(conn, run["id"])


async def test_filter_flow_runs_by_state(db: Database) -> None:
    flow = await make_flow(db)
    pending = await make_run(db, flow["id"], id=uid(1))
    running = await make_run(db, flow["id"], id=uid(2), state={"type": "RUNNING"})
    done = await make_run(db, flow["id"], id=uid(3))
    await set_state(db, done["id"], "RUNNING", at(1))
    await set_state(db, done["id"], "COMPLETED", at(2))

    def by_type(ops: WireDict) -> WireDict:
        return {"flow_runs": {"state": {"type": ops}}}

    assert await run_ids(db, by_type({"any_": ["RUNNING", "COMPLETED"]})) == [
        done["id"],
        running["id"],
    ]
    assert await run_ids(db, by_type({"not_any_": ["RUNNING", "COMPLETED"]})) == [pending["id"]]
    assert await run_ids(db, {"flow_runs": {"state": {"name": {"any_": ["Completed"]}}}}) == [
        done["id"]
    ]
    async with db.read() as conn:
        assert await flow_runs.count_flow_runs(conn, by_type({"any_": ["PENDING"]})) == 1
        assert await flow_runs.count_flow_runs(conn, {}) == 3


async def test_filter_flow_runs_by_parent_task_run(db: Database) -> None:
    flow = await make_flow(db)
    parent = uid(50)
    child = await make_run(db, flow["id"], parent_task_run_id=parent)
    await make_run(db, flow["id"])

    body = {
        "flow_runs": {"parent_task_run_id": {"any_": [parent]}},
        "sort": "EXPECTED_START_TIME_DESC",
    }
    assert await run_ids(db, body, limit=1) == [child["id"]]
    assert await run_ids(db, {"flow_runs": {"parent_task_run_id": {"any_": [uid(51)]}}}) == []


async def test_filter_flow_runs_by_tags(db: Database) -> None:
    flow = await make_flow(db)
    both = await make_run(db, flow["id"], id=uid(1), tags=["prod", "db"])
    prod = await make_run(db, flow["id"], id=uid(2), tags=["prod"])
    bare = await make_run(db, flow["id"], id=uid(3))

    def tags(ops: WireDict) -> WireDict:
        return {"flow_runs": {"tags": ops}, "sort": "NAME_ASC"}

    assert set(await run_ids(db, tags({"all_": ["prod"]}))) == {both["id"], prod["id"]}
    assert await run_ids(db, tags({"all_": ["prod", "db"]})) == [both["id"]]
    assert await run_ids(db, tags({"is_null_": True})) == [bare["id"]]


async def test_filter_flow_runs_by_expected_start_time(db: Database) -> None:
    flow = await make_flow(db)
    early = await make_run(db, flow["id"], at(0))
    middle = await make_run(db, flow["id"], at(60))
    late = await make_run(db, flow["id"], at(120))

    def window(**ops: str) -> WireDict:
        return {"flow_runs": {"expected_start_time": ops}, "sort": "EXPECTED_START_TIME_ASC"}

    # Bounds are inclusive, and the three datetime spellings the client sends all work.
    assert await run_ids(db, window(after_=at(60).isoformat())) == [middle["id"], late["id"]]
    assert await run_ids(db, window(before_=at(60).isoformat())) == [early["id"], middle["id"]]
    assert await run_ids(
        db,
        window(
            after_=at(30).isoformat().replace("+00:00", "Z"),
            before_=at(90).isoformat().replace("T", " "),
        ),
    ) == [middle["id"]]
    assert await run_ids(db, window(after_=at(121).isoformat())) == []


async def test_flow_run_sorts(db: Database) -> None:
    flow = await make_flow(db)
    # ids ascend with creation; expected start times do not.
    a = await make_run(db, flow["id"], at(20), id=uid(1), name="alpha")
    b = await make_run(db, flow["id"], at(10), id=uid(2), name="bravo")
    c = await make_run(db, flow["id"], at(30), id=uid(3), name="charlie")
    # b starts running late, so START_TIME differs from EXPECTED_START_TIME.
    await set_state(db, b["id"], "RUNNING", at(100))

    async def order(sort: str) -> list[str]:
        return await run_ids(db, {"sort": sort})

    assert await order("ID_DESC") == [c["id"], b["id"], a["id"]]
    assert await run_ids(db, {}) == [c["id"], b["id"], a["id"]]
    assert await order("EXPECTED_START_TIME_ASC") == [b["id"], a["id"], c["id"]]
    assert await order("EXPECTED_START_TIME_DESC") == [c["id"], a["id"], b["id"]]
    assert await order("START_TIME_ASC") == [a["id"], c["id"], b["id"]]
    assert await order("START_TIME_DESC") == [b["id"], c["id"], a["id"]]
    assert await order("NAME_ASC") == [a["id"], b["id"], c["id"]]
    assert await order("NAME_DESC") == [c["id"], b["id"], a["id"]]
    assert await order("CREATED_DESC") == [c["id"], a["id"], b["id"]]
    assert await order("UPDATED_DESC") == [b["id"], c["id"], a["id"]]
    assert await run_ids(db, {"sort": "NAME_ASC"}, limit=2, offset=1) == [b["id"], c["id"]]


async def test_filter_flow_runs_by_flow_name(db: Database) -> None:
    etl = await make_flow(db, "etl")
    other = await make_flow(db, "other")
    mine = await make_run(db, etl["id"])
    await make_run(db, other["id"])

    assert await run_ids(db, {"flows": {"name": {"any_": ["etl"]}}}) == [mine["id"]]
    async with db.read() as conn:
        assert await flow_runs.count_flow_runs(conn, {"flows": {"name": {"like_": "o"}}}) == 1


async def test_set_flow_run_state_running_then_completed(db: Database) -> None:
    flow = await make_flow(db, "etl")
    run = await make_run(db, flow["id"])

    running = await set_state(db, run["id"], "RUNNING", at(10))
    completed = await set_state(db, run["id"], "COMPLETED", at(25))

    assert running.decision.status == "ACCEPT"
    assert running.previous is not None
    assert running.previous["type"] == "PENDING"
    assert running.flow_name == "etl"
    assert running.written is not None
    assert running.written["state_details"]["flow_run_id"] == run["id"]
    assert running.run["state_type"] == "RUNNING"
    assert running.run["run_count"] == 1
    assert running.run["start_time"] == at(10)
    assert completed.decision.status == "ACCEPT"
    assert completed.written is not None
    async with db.read() as conn:
        stored = await flow_runs.read_flow_run(conn, run["id"], at(30))
        history = await flow_runs.read_states(conn, run["id"])
        written = await flow_runs.read_state(conn, completed.written["id"])
        with pytest.raises(NotFound):
            await flow_runs.read_state(conn, uid(1))
    assert stored["state_type"] == "COMPLETED"
    assert stored["state_name"] == "Completed"
    assert stored["state_id"] == completed.written["id"]
    assert stored["state"]["id"] == completed.written["id"]
    assert stored["run_count"] == 1
    assert stored["start_time"] == at(10)
    assert stored["end_time"] == at(25)
    assert stored["total_run_time"] == pytest.approx(15.0)
    assert stored["estimated_run_time"] == pytest.approx(15.0)
    assert [(s["type"], s["timestamp"]) for s in history] == [
        ("PENDING", T0),
        ("RUNNING", at(10)),
        ("COMPLETED", at(25)),
    ]
    assert history[-1] == written
    assert written["state_details"]["flow_run_id"] == run["id"]


async def test_estimated_run_time_of_a_running_run(db: Database) -> None:
    flow = await make_flow(db)
    run = await make_run(db, flow["id"])
    await set_state(db, run["id"], "RUNNING", at(10))

    async with db.read() as conn:
        stored = await flow_runs.read_flow_run(conn, run["id"], at(14))

    assert stored["estimated_run_time"] == pytest.approx(4.0)
    assert stored["estimated_start_time_delta"] == pytest.approx(10.0)


async def test_the_rules_see_that_a_run_is_a_subflow(db: Database) -> None:
    """Suspending (a pause that reschedules) is refused for a subflow, as by the reference."""
    flow = await make_flow(db)
    sub = await make_run(db, flow["id"], parent_task_run_id=uid(77))
    await set_state(db, sub["id"], "RUNNING", at(1))
    suspend = {"type": "PAUSED", "name": "Suspended", "state_details": {"pause_reschedule": True}}
    async with db.write() as conn:
        transition = await flow_runs.set_flow_run_state(conn, sub["id"], suspend, False, at(2))
    assert transition.decision.status.value == "ABORT"
    assert transition.decision.details["reason"] == "Cannot suspend subflows."


async def test_set_state_of_a_missing_flow_run(db: Database) -> None:
    async with db.write() as conn:
        with pytest.raises(NotFound):
            await flow_runs.set_flow_run_state(conn, uid(1), {"type": "RUNNING"}, False, T0)


# -- task runs ----------------------------------------------------------------


def task_body(
    flow_run_id: str | None, task_key: str = "add-1a2b", dynamic_key: str = "0"
) -> WireDict:
    return {
        "name": f"{task_key}-{dynamic_key}",
        "flow_run_id": flow_run_id,
        "task_key": task_key,
        "dynamic_key": dynamic_key,
        "tags": ["t"],
        "task_inputs": {"n": []},
        "state": {"type": "PENDING", "name": "Pending"},
    }


async def make_task(db: Database, body: WireDict, now: datetime = T0) -> tuple[WireDict, bool]:
    async with db.write() as conn:
        return await task_runs.create_task_run(conn, body, now)


async def test_create_task_run_is_idempotent_by_flow_run_task_key_dynamic_key(
    db: Database,
) -> None:
    flow = await make_flow(db)
    run = await make_run(db, flow["id"])

    first, created = await make_task(db, task_body(run["id"]))
    again, created_again = await make_task(db, {**task_body(run["id"]), "name": "x"}, at(5))
    other, created_other = await make_task(db, task_body(run["id"], dynamic_key="1"))

    assert (created, created_again, created_other) == (True, False, True)
    assert again["id"] == first["id"]
    assert again["name"] == first["name"]
    assert other["id"] != first["id"]
    assert first["labels"] == {
        "prefect.flow.id": flow["id"],
        "prefect.flow-run.id": run["id"],
    }
    assert first["state"]["state_details"]["flow_run_id"] == run["id"]
    assert first["state"]["state_details"]["task_run_id"] == first["id"]
    async with db.read() as conn:
        stored = await task_runs.read_task_run(conn, first["id"], T0)
        history = await task_runs.read_states(conn, first["id"])
        with pytest.raises(NotFound):
            await task_runs.read_task_run(conn, uid(1), T0)
    assert stored["task_inputs"] == {"n": []}
    assert stored["state_type"] == "PENDING"
    assert [s["id"] for s in history] == [stored["state_id"]]
    assert await count_rows(db, t.task_runs) == 2


async def test_create_task_run_with_an_id_is_idempotent_by_id(db: Database) -> None:
    body = {**task_body(None), "id": uid(9)}

    first, created = await make_task(db, body)
    again, created_again = await make_task(db, body)

    assert (created, created_again) == (True, False)
    assert first["id"] == again["id"] == uid(9)
    assert first["flow_run_id"] is None


async def test_background_task_runs_without_ids_are_distinct(db: Database) -> None:
    first, _ = await make_task(db, task_body(None))
    second, created = await make_task(db, task_body(None))

    assert created is True
    assert first["id"] != second["id"]


async def test_filter_and_count_task_runs(db: Database) -> None:
    flow = await make_flow(db)
    run = await make_run(db, flow["id"])
    other = await make_run(db, flow["id"])
    mine, _ = await make_task(db, task_body(run["id"]))
    await make_task(db, task_body(other["id"]))

    async with db.read() as conn:
        found = await task_runs.filter_task_runs(
            conn, {"task_runs": {"flow_run_id": {"any_": [run["id"]]}}}, None, 0, T0
        )
        through_runs = await task_runs.count_task_runs(
            conn, {"flow_runs": {"id": {"any_": [other["id"]]}}}
        )
        total = await task_runs.count_task_runs(conn, {})

    assert [r["id"] for r in found] == [mine["id"]]
    assert (through_runs, total) == (1, 2)


# Task-run events as the 3.9.1 client emits them (PREFECT_API.md §W1.1).


def task_event(
    run_id: str,
    state_type: str,
    state_name: str,
    stamp: datetime,
    flow_run_id: str | None,
    task_run: WireDict | None = None,
) -> WireDict:
    related = []
    if flow_run_id is not None:
        related.append(
            {
                "prefect.resource.id": f"prefect.flow-run.{flow_run_id}",
                "prefect.resource.role": "flow-run",
                "prefect.resource.name": "ochre-kakapo",
            }
        )
    return {
        "occurred": stamp,
        "received": stamp,
        "event": f"prefect.task-run.{state_name}",
        "resource": {
            "prefect.resource.id": f"prefect.task-run.{run_id}",
            "prefect.resource.name": "add-0",
            "prefect.state-message": "",
            "prefect.state-name": state_name,
            "prefect.state-timestamp": stamp.isoformat(),
            "prefect.state-type": state_type,
            "prefect.orchestration": "client",
        },
        "related": related,
        "payload": {
            "validated_state": {
                "type": state_type,
                "name": state_name,
                "message": "",
                "state_details": {},
                "data": None,
            },
            "task_run": {
                "name": "add-0",
                "task_key": "add-1a2b",
                "dynamic_key": "0",
                "empirical_policy": {"retries": 0},
                "tags": ["t"],
                "labels": {},
                "task_inputs": {},
                "run_count": 0,
                "flow_run_run_count": 1,
                "expected_start_time": T0.isoformat(),
                "total_run_time": 0.0,
                **(task_run or {}),
            },
        },
        "id": str(uuid.uuid4()),
        "follows": None,
    }


def task_lifecycle(run_id: str, flow_run_id: str | None) -> list[WireDict]:
    """Pending at T0, Running at +1 s, Completed at +3 s."""
    return [
        task_event(run_id, "PENDING", "Pending", T0, flow_run_id),
        task_event(
            run_id,
            "RUNNING",
            "Running",
            at(1),
            flow_run_id,
            {"run_count": 1, "start_time": at(1).isoformat()},
        ),
        task_event(
            run_id,
            "COMPLETED",
            "Completed",
            at(3),
            flow_run_id,
            {
                "run_count": 1,
                "start_time": at(1).isoformat(),
                "end_time": at(3).isoformat(),
                "total_run_time": 2.0,
            },
        ),
    ]


async def record(db: Database, batch: list[WireDict], now: datetime = at(60)) -> None:
    async with db.write() as conn:
        await task_runs.record(conn, recorder.fold(batch), now)


async def read_task(db: Database, run_id: str) -> tuple[WireDict, list[WireDict]]:
    async with db.read() as conn:
        return (
            await task_runs.read_task_run(conn, run_id, at(60)),
            await task_runs.read_states(conn, run_id),
        )


async def test_record_inserts_a_task_run_from_its_events(db: Database) -> None:
    flow = await make_flow(db)
    flow_run = await make_run(db, flow["id"])
    run_id = str(uuid.uuid4())
    events = task_lifecycle(run_id, flow_run["id"])

    await record(db, events)

    run, history = await read_task(db, run_id)
    assert run["flow_run_id"] == flow_run["id"]
    assert run["name"] == "add-0"
    assert (run["task_key"], run["dynamic_key"]) == ("add-1a2b", "0")
    assert run["state_type"] == "COMPLETED"
    assert run["state_name"] == "Completed"
    assert run["state_id"] == events[2]["id"]
    assert run["state"]["id"] == events[2]["id"]
    assert run["run_count"] == 1
    assert run["start_time"] == at(1)
    assert run["end_time"] == at(3)
    assert run["total_run_time"] == 2.0
    assert run["expected_start_time"] == T0
    assert run["empirical_policy"]["retries"] == 0
    assert [(s["id"], s["type"], s["timestamp"]) for s in history] == [
        (events[0]["id"], "PENDING", T0),
        (events[1]["id"], "RUNNING", at(1)),
        (events[2]["id"], "COMPLETED", at(3)),
    ]
    assert history[2]["state_details"]["flow_run_id"] == flow_run["id"]
    assert history[2]["state_details"]["task_run_id"] == run_id


async def test_record_one_event_per_batch_follows_the_run(db: Database) -> None:
    run_id = str(uuid.uuid4())
    pending, running, completed = task_lifecycle(run_id, uid(5))

    await record(db, [pending])
    assert (await read_task(db, run_id))[0]["state_type"] == "PENDING"
    await record(db, [running])
    run, _ = await read_task(db, run_id)
    assert (run["state_type"], run["start_time"], run["run_count"]) == ("RUNNING", at(1), 1)
    await record(db, [completed])

    run, history = await read_task(db, run_id)
    assert run["state_type"] == "COMPLETED"
    assert run["end_time"] == at(3)
    assert [s["type"] for s in history] == ["PENDING", "RUNNING", "COMPLETED"]
    assert await count_rows(db, t.task_runs) == 1


async def test_record_duplicates_do_not_duplicate_states(db: Database) -> None:
    run_id = str(uuid.uuid4())
    events = task_lifecycle(run_id, uid(5))

    await record(db, events + events)  # twice in one batch
    await record(db, events)  # and again in a later batch
    await record(db, [events[1]])

    run, history = await read_task(db, run_id)
    assert run["state_type"] == "COMPLETED"
    assert [s["id"] for s in history] == [e["id"] for e in events]
    assert await count_rows(db, t.task_run_states) == 3
    assert await count_rows(db, t.task_runs) == 1


async def test_record_out_of_order_keeps_the_newest_state(db: Database) -> None:
    run_id = str(uuid.uuid4())
    _, running, completed = task_lifecycle(run_id, uid(5))

    await record(db, [completed])
    await record(db, [running])

    run, history = await read_task(db, run_id)
    assert run["state_type"] == "COMPLETED"
    assert run["state_id"] == completed["id"]
    assert run["end_time"] == at(3)
    assert run["total_run_time"] == 2.0
    assert [(s["id"], s["type"]) for s in history] == [
        (running["id"], "RUNNING"),
        (completed["id"], "COMPLETED"),
    ]


async def test_record_out_of_order_in_one_batch(db: Database) -> None:
    run_id = str(uuid.uuid4())
    pending, running, completed = task_lifecycle(run_id, uid(5))

    await record(db, [completed, pending, running])

    run, history = await read_task(db, run_id)
    assert run["state_type"] == "COMPLETED"
    assert run["end_time"] == at(3)
    assert [s["type"] for s in history] == ["PENDING", "RUNNING", "COMPLETED"]


async def test_record_background_task_run(db: Database) -> None:
    run_id = str(uuid.uuid4())

    await record(db, task_lifecycle(run_id, None))

    run, history = await read_task(db, run_id)
    assert run["flow_run_id"] is None
    assert run["state_type"] == "COMPLETED"
    assert len(history) == 3
    assert all("flow_run_id" not in s["state_details"] for s in history)


async def test_record_updates_a_run_created_over_http(db: Database) -> None:
    flow = await make_flow(db)
    flow_run = await make_run(db, flow["id"])
    created, _ = await make_task(db, {**task_body(flow_run["id"]), "id": uid(20)})
    _, running, completed = task_lifecycle(uid(20), flow_run["id"])

    await record(db, [running, completed])

    run, history = await read_task(db, uid(20))
    assert run["state_type"] == "COMPLETED"
    assert run["created"] == created["created"]
    assert [s["type"] for s in history] == ["PENDING", "RUNNING", "COMPLETED"]
    assert await count_rows(db, t.task_runs) == 1


async def test_record_same_task_under_another_id_upserts_the_existing_run(db: Database) -> None:
    # PREFECT_API.md §W1.1: the upsert key is (flow_run_id, task_key, dynamic_key)
    # when a flow run is related; "the existing id wins".
    flow = await make_flow(db)
    flow_run = await make_run(db, flow["id"])
    await make_task(db, {**task_body(flow_run["id"]), "id": uid(20)})
    _, running, completed = task_lifecycle(uid(21), flow_run["id"])

    await record(db, [running, completed])

    assert await count_rows(db, t.task_runs) == 1
    async with db.read() as conn:
        with pytest.raises(NotFound):
            await task_runs.read_task_run(conn, uid(21), T0)
    run, history = await read_task(db, uid(20))
    assert run["state_type"] == "COMPLETED"
    assert [s["type"] for s in history] == ["PENDING", "RUNNING", "COMPLETED"]


async def test_record_nothing(db: Database) -> None:
    async with db.write() as conn:
        await task_runs.record(conn, {}, T0)

    assert await count_rows(db, t.task_runs) == 0


# -- logs ---------------------------------------------------------------------


def log(level: int, seconds: float, flow_run_id: str | None, message: str = "m") -> WireDict:
    return {
        "name": "prefect.flow_runs",
        "level": level,
        "message": message,
        "timestamp": at(seconds),
        "flow_run_id": flow_run_id,
        "task_run_id": None,
    }


async def test_insert_and_filter_logs(db: Database) -> None:
    run_a, run_b = uid(1), uid(2)
    async with db.write() as conn:
        await logs.insert_logs(
            conn,
            [
                log(20, 2, run_a, "info later"),
                log(10, 1, run_a, "debug"),
                log(40, 3, run_a, "error"),
                log(20, 0, run_b, "other run"),
            ],
            at(10),
        )
        await logs.insert_logs(conn, [], at(10))

    async def messages(body: WireDict, limit: int | None = None, offset: int = 0) -> list[str]:
        async with db.read() as conn:
            return [r["message"] for r in await logs.filter_logs(conn, body, limit, offset)]

    mine = {"flow_run_id": {"any_": [run_a]}}
    assert await messages({"logs": mine}) == ["debug", "info later", "error"]
    assert await messages({"logs": mine, "sort": "TIMESTAMP_DESC"}) == [
        "error",
        "info later",
        "debug",
    ]
    assert await messages({"logs": {**mine, "level": {"ge_": 20}}}) == ["info later", "error"]
    assert await messages({"logs": {"level": {"ge_": 20, "le_": 20}}}) == [
        "other run",
        "info later",
    ]
    assert await messages({"logs": mine}, limit=1, offset=1) == ["info later"]
    assert await messages({}) == ["other run", "debug", "info later", "error"]
    async with db.read() as conn:
        (row,) = await logs.filter_logs(conn, {"logs": {"flow_run_id": {"any_": [run_b]}}}, 1, 0)
    assert row["created"] == row["updated"] == at(10)
    assert row["timestamp"] == at(0)
    assert row["flow_run_id"] == run_b
    assert row["level"] == 20


async def test_trim_logs(db: Database) -> None:
    async with db.write() as conn:
        await logs.insert_logs(conn, [log(20, s, None, str(s)) for s in range(5)], at(10))

    async with db.write() as conn:
        first = await logs.trim_logs(conn, at(3), chunk=2)
    async with db.write() as conn:
        second = await logs.trim_logs(conn, at(3), chunk=2)
    async with db.write() as conn:
        third = await logs.trim_logs(conn, at(3), chunk=2)

    assert (first, second, third) == (2, 1, 0)
    async with db.read() as conn:
        left = await logs.filter_logs(conn, {}, None, 0)
    assert [r["message"] for r in left] == ["3", "4"]


# -- events -------------------------------------------------------------------

FLOW_RUN = f"prefect.flow-run.{uid(100)}"
FLOW = f"prefect.flow.{uid(101)}"
OTHER_FLOW_RUN = f"prefect.flow-run.{uid(102)}"


def event(
    name: str,
    seconds: float,
    resource_id: str,
    related: Sequence[tuple[str, str]] = (),
    event_id: str | None = None,
) -> WireDict:
    return {
        "id": event_id or str(uuid.uuid4()),
        "occurred": at(seconds),
        "received": at(seconds + 0.5),
        "event": name,
        "resource": {"prefect.resource.id": resource_id, "prefect.resource.name": "r"},
        "related": [
            {"prefect.resource.id": rid, "prefect.resource.role": role} for rid, role in related
        ],
        "payload": {"n": seconds},
        "follows": None,
    }


def prefilter(**spec: Any) -> dict[str, Any]:
    """sql_prefilter of an EventFilter, over a window around T0 unless given."""
    spec.setdefault("occurred", {"since": at(-3600).isoformat(), "until": at(3600).isoformat()})
    return dict(sql_prefilter(EventFilter.model_validate(spec)))


@pytest.fixture
async def stored_events(db: Database) -> list[WireDict]:
    batch = [
        event("prefect.flow-run.Pending", 0, FLOW_RUN, [(FLOW, "flow")]),
        event("prefect.flow-run.Running", 10, FLOW_RUN, [(FLOW, "flow")]),
        event(
            "prefect.task-run.Completed",
            20,
            "prefect.task-run.x",
            [(FLOW_RUN, "flow-run"), (FLOW, "flow")],
        ),
        event("prefect.flow-run.Completed", 30, FLOW_RUN, [(FLOW, "flow")]),
        event("my.custom_event", 40, "my.resource", [(OTHER_FLOW_RUN, "flow-run")]),
    ]
    async with db.write() as conn:
        inserted = await events.insert_events(conn, batch)
    assert inserted == {e["id"] for e in batch}
    return batch


async def query(
    db: Database, pf: dict[str, Any], limit: int = 100, offset: int = 0, ascending: bool = True
) -> tuple[list[str], int]:
    async with db.read() as conn:
        page, total = await events.query_events(conn, pf, limit, offset, ascending)
    return [e["event"] for e in page], total


async def test_insert_events_skips_duplicates(db: Database, stored_events: list[WireDict]) -> None:
    fresh = event("prefect.flow-run.Late", 50, FLOW_RUN, [(FLOW, "flow")])

    async with db.write() as conn:
        inserted = await events.insert_events(conn, [*stored_events[:2], fresh])
    async with db.write() as conn:
        assert await events.insert_events(conn, []) == set()

    assert inserted == {fresh["id"]}
    assert await count_rows(db, t.events) == 6
    # One event_resources row per (event, related resource), none duplicated.
    assert await count_rows(db, t.event_resources) == 7


async def test_insert_events_with_a_duplicate_inside_the_batch(db: Database) -> None:
    twice = event("prefect.flow-run.Running", 1, FLOW_RUN, [(FLOW, "flow")])
    once = event("prefect.flow-run.Completed", 2, FLOW_RUN, [(FLOW, "flow")])

    async with db.write() as conn:
        inserted = await events.insert_events(conn, [twice, dict(twice), once])

    assert inserted == {twice["id"], once["id"]}
    assert await count_rows(db, t.events) == 2
    assert await count_rows(db, t.event_resources) == 2


async def test_query_events_round_trips_the_wire_form(
    db: Database, stored_events: list[WireDict]
) -> None:
    original = stored_events[2]

    async with db.read() as conn:
        (found,), total = await events.query_events(
            conn, prefilter(id={"id": [original["id"]]}), 10
        )

    assert total == 1
    assert found == original


async def test_query_events_order_limit_and_total(
    db: Database, stored_events: list[WireDict]
) -> None:
    names = [e["event"] for e in stored_events]

    assert await query(db, prefilter()) == (names, 5)
    assert await query(db, prefilter(), ascending=False) == (names[::-1], 5)
    assert await query(db, prefilter(), limit=2, offset=1) == (names[1:3], 5)


async def test_query_events_by_name_and_prefix(db: Database, stored_events: list[WireDict]) -> None:
    assert await query(db, prefilter(event={"name": ["my.custom_event"]})) == (
        ["my.custom_event"],
        1,
    )
    assert await query(db, prefilter(event={"prefix": ["prefect.flow-run."]})) == (
        ["prefect.flow-run.Pending", "prefect.flow-run.Running", "prefect.flow-run.Completed"],
        3,
    )
    # "_" and "%" in a prefix are literal characters, not LIKE wildcards.
    assert await query(db, prefilter(event={"prefix": ["my_custom"]})) == ([], 0)
    assert await query(db, prefilter(event={"prefix": ["my.custom_"]})) == (
        ["my.custom_event"],
        1,
    )
    assert await query(
        db,
        prefilter(event={"prefix": ["prefect."], "exclude_prefix": ["prefect.task-run."]}),
    ) == (
        ["prefect.flow-run.Pending", "prefect.flow-run.Running", "prefect.flow-run.Completed"],
        3,
    )
    assert await query(
        db,
        prefilter(event={"exclude_name": ["prefect.flow-run.Running", "my.custom_event"]}),
    ) == (
        ["prefect.flow-run.Pending", "prefect.task-run.Completed", "prefect.flow-run.Completed"],
        3,
    )


async def test_query_events_by_resource(db: Database, stored_events: list[WireDict]) -> None:
    assert (await query(db, prefilter(resource={"id": [FLOW_RUN]})))[1] == 3
    assert await query(db, prefilter(resource={"id_prefix": ["prefect.task-run."]})) == (
        ["prefect.task-run.Completed"],
        1,
    )
    assert await query(db, prefilter(resource={"id": ["my.resource", "prefect.task-run.x"]})) == (
        ["prefect.task-run.Completed", "my.custom_event"],
        2,
    )


async def test_query_events_by_related(db: Database, stored_events: list[WireDict]) -> None:
    assert (await query(db, prefilter(related={"id": [FLOW]})))[1] == 4
    assert await query(db, prefilter(related={"role": ["flow-run"]})) == (
        ["prefect.task-run.Completed", "my.custom_event"],
        2,
    )
    assert await query(db, prefilter(related={"id": [FLOW_RUN], "role": ["flow-run"]})) == (
        ["prefect.task-run.Completed"],
        1,
    )
    # id and role must hold for the same related resource.
    assert await query(db, prefilter(related={"id": [FLOW], "role": ["flow-run"]})) == ([], 0)
    assert await query(
        db, prefilter(related={"resources_in_roles": [[OTHER_FLOW_RUN, "flow-run"]]})
    ) == (["my.custom_event"], 1)
    assert await query(
        db, prefilter(related={"resources_in_roles": [[OTHER_FLOW_RUN, "flow"]]})
    ) == ([], 0)
    # A list of related filters must all hold (each for some related resource).
    both = [{"id": [FLOW], "role": ["flow"]}, {"id": [FLOW_RUN], "role": ["flow-run"]}]
    assert await query(db, prefilter(related=both)) == (["prefect.task-run.Completed"], 1)
    # The primary resource is not a related resource.
    assert await query(db, prefilter(related={"id": [FLOW_RUN], "role": ["flow"]})) == ([], 0)


async def test_query_events_by_occurred_range(db: Database, stored_events: list[WireDict]) -> None:
    window = prefilter(occurred={"since": at(10).isoformat(), "until": at(30).isoformat()})
    assert await query(db, window) == (
        ["prefect.flow-run.Running", "prefect.task-run.Completed", "prefect.flow-run.Completed"],
        3,
    )
    offset_zone = prefilter(
        occurred={"since": "2026-11-25T13:00:39+01:00", "until": at(3600).isoformat()}
    )
    assert await query(db, offset_zone) == (["my.custom_event"], 1)


async def test_query_events_by_event_id(db: Database, stored_events: list[WireDict]) -> None:
    ids = [stored_events[0]["id"], stored_events[4]["id"]]

    assert await query(db, prefilter(id={"id": ids})) == (
        ["prefect.flow-run.Pending", "my.custom_event"],
        2,
    )


async def test_count_by(db: Database, stored_events: list[WireDict]) -> None:
    async with db.read() as conn:
        by_event = await events.count_by(conn, prefilter(event={"prefix": ["prefect."]}), "event")
        by_resource = await events.count_by(conn, prefilter(), "resource")

    assert [(r["value"], r["count"]) for r in by_event] == [
        ("prefect.flow-run.Completed", 1),
        ("prefect.flow-run.Pending", 1),
        ("prefect.flow-run.Running", 1),
        ("prefect.task-run.Completed", 1),
    ]
    assert [(r["value"], r["count"]) for r in by_resource] == [
        ("my.resource", 1),
        (FLOW_RUN, 3),
        ("prefect.task-run.x", 1),
    ]
    flow_run = by_resource[1]
    assert (flow_run["start_time"], flow_run["end_time"]) == (at(0), at(30))


async def test_trim_events_removes_events_and_their_resources(
    db: Database, stored_events: list[WireDict]
) -> None:
    async with db.write() as conn:
        first = await events.trim_events(conn, at(25), chunk=2)
    async with db.write() as conn:
        second = await events.trim_events(conn, at(25), chunk=2)
    async with db.write() as conn:
        third = await events.trim_events(conn, at(25), chunk=2)

    assert (first, second, third) == (2, 1, 0)
    assert await query(db, prefilter()) == (
        ["prefect.flow-run.Completed", "my.custom_event"],
        2,
    )
    async with db.read() as conn:
        left = (await conn.execute(sa.select(t.event_resources.c.event_id))).scalars().all()
    assert sorted(map(str, left)) == sorted([stored_events[3]["id"], stored_events[4]["id"]])
    # A trimmed event's related resources no longer match anything.
    assert await query(db, prefilter(related={"id": [FLOW_RUN]})) == ([], 0)


async def test_event_times_in_any_offset_are_stored_as_instants(db: Database) -> None:
    plus_two = timezone(timedelta(hours=2))
    shifted = event("shifted", 0, "r.shifted")
    shifted["occurred"] = at(0).astimezone(plus_two)  # same instant as T0
    naive = event("naive", 0, "r.naive")
    naive["occurred"] = at(5).replace(tzinfo=None)  # naive means UTC
    async with db.write() as conn:
        await events.insert_events(conn, [shifted, naive])

    async with db.read() as conn:
        page, _ = await events.query_events(conn, prefilter(), 10, 0, True)
    assert [(e["event"], e["occurred"]) for e in page] == [("shifted", T0), ("naive", at(5))]
    window = prefilter(occurred={"since": at(0).isoformat(), "until": at(4).isoformat()})
    assert await query(db, window) == (["shifted"], 1)


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        (
            "second",
            [
                ("2026-11-24T23:59:59", 1),
                ("2026-11-25T00:00:00", 1),
                ("2026-11-25T00:00:30", 1),
                ("2026-11-25T01:15:00", 1),
            ],
        ),
        (
            "minute",
            [("2026-11-24T23:59:00", 1), ("2026-11-25T00:00:00", 2), ("2026-11-25T01:15:00", 1)],
        ),
        (
            "hour",
            [("2026-11-24T23:00:00", 1), ("2026-11-25T00:00:00", 2), ("2026-11-25T01:00:00", 1)],
        ),
        ("day", [("2026-11-24T00:00:00", 1), ("2026-11-25T00:00:00", 3)]),
        ("week", [("2026-11-24T00:00:00", 1), ("2026-11-25T00:00:00", 3)]),
    ],
)
async def test_count_by_time_buckets_are_utc(
    db: Database, unit: str, expected: list[tuple[str, int]]
) -> None:
    midnight = datetime(2026, 11, 25, tzinfo=UTC)
    batch = [
        event("tick", 0, "r"),
        event("tick", 0, "r"),
        event("tick", 0, "r"),
        event("tick", 0, "r"),
    ]
    for item, moment in zip(
        batch,
        (
            midnight - timedelta(seconds=0.5),
            midnight,
            midnight + timedelta(seconds=30),
            midnight + timedelta(hours=1, minutes=15),
        ),
        strict=True,
    ):
        item["occurred"] = moment
    async with db.write() as conn:
        await events.insert_events(conn, batch)

    window = {"since": (midnight - timedelta(days=2)).isoformat(), "until": at(0).isoformat()}
    async with db.read() as conn:
        counts = await events.count_by_time(conn, prefilter(occurred=window), unit)

    assert counts == [
        (datetime.fromisoformat(stamp).replace(tzinfo=UTC), n) for stamp, n in expected
    ]
