"""EventFilter parsing (as the 3.9.1 client serializes it) and in-memory matching."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from pydantic import ValidationError

from headrace.events import filters
from headrace.events.filters import EventFilter, EventOrder, matches, sql_prefilter

FLOW_RUN = "prefect.flow-run.5b0e4a1c-5d3e-4f7e-9a6b-2f1d0c9e8a71"
FLOW = "prefect.flow.0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
DEPLOYMENT = "prefect.deployment.1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
WORK_POOL = "prefect.work-pool.6d1c3f1e-2b8a-4a51-9d39-2f0f6a3c9b11"
EVENT_ID = "01a21326-bd47-7788-926d-2e9c4af703f8"

# The flow-run Cancelling event the server emits (PREFECT_API.md, W2).
CANCELLING: dict[str, Any] = {
    "occurred": "2026-11-25T14:43:01.987146Z",
    "event": "prefect.flow-run.Cancelling",
    "resource": {
        "prefect.resource.id": FLOW_RUN,
        "prefect.resource.name": "nimble-dodo",
        "prefect.run-count": "1",
        "prefect.state-message": "",
        "prefect.state-name": "Cancelling",
        "prefect.state-type": "CANCELLING",
    },
    "related": [
        {"prefect.resource.id": FLOW, "prefect.resource.role": "flow",
         "prefect.resource.name": "c-flow"},
        {"prefect.resource.id": DEPLOYMENT, "prefect.resource.role": "deployment",
         "prefect.resource.name": "c-dep"},
        {"prefect.resource.id": WORK_POOL, "prefect.resource.role": "work-pool",
         "prefect.resource.name": "p1", "prefect.work-pool.type": "process"},
    ],
    "payload": {
        "intended": {"from": "RUNNING", "to": "CANCELLING"},
        "validated_state": {"type": "CANCELLING", "name": "Cancelling",
                            "message": "Connection timeout"},
    },
    "id": EVENT_ID,
    "follows": None,
    "received": "2026-11-25T14:43:02.000000Z",
}  # fmt: skip

# Captured from a runner's cancellation observer on /events/out (PREFECT_API.md, W2).
RUNNER_CANCELLATION = {
    "occurred": {"since": "2026-11-25T14:41:56.106466Z", "until": "2027-11-25T14:42:56.106466Z"},
    "event": {"prefix": None, "exclude_prefix": None,
              "name": ["prefect.flow-run.Cancelling"], "exclude_name": None},
    "resource": None, "related": None, "any_resource": None, "id": {"id": []},
    "text": None, "order": "DESC",
}  # fmt: skip

# `model_dump(mode="json")` of the TaskRunWaiter's filter (prefect/task_runs.py).
TASK_RUN_WAITER = {
    "occurred": {"since": "2026-05-29T00:00:00Z", "until": "2026-11-25T16:18:53.290465Z"},
    "event": {"prefix": None, "exclude_prefix": None,
              "name": ["prefect.task-run.Completed", "prefect.task-run.Failed",
                       "prefect.task-run.Crashed", "prefect.task-run.Cancelled"],
              "exclude_name": None},
    "resource": None, "related": None, "any_resource": None, "id": {"id": []},
    "text": None, "order": "DESC",
}  # fmt: skip

# The worker's cancellation observer (prefect/workers/base.py).
WORKER_CANCELLATION = {
    "occurred": {"since": "2026-05-29T00:00:00Z", "until": "2026-11-25T16:18:53.291195Z"},
    "event": {"prefix": None, "exclude_prefix": None,
              "name": ["prefect.flow-run.Cancelling"], "exclude_name": None},
    "resource": None, "related": None,
    "any_resource": {"id": [WORK_POOL], "id_prefix": None, "labels": None},
    "id": {"id": []}, "text": None, "order": "DESC",
}  # fmt: skip

# `wait_for_flow_run` (prefect/flow_runs.py).
WAIT_FOR_FLOW_RUN = {
    "occurred": {"since": "2026-05-29T00:00:00Z", "until": "2026-11-25T16:18:53.291730Z"},
    "event": {"prefix": ["prefect.flow-run"], "exclude_prefix": None, "name": None,
              "exclude_name": None},
    "resource": {"id": [FLOW_RUN], "id_prefix": None, "labels": None, "distinct": False},
    "related": None, "any_resource": None, "id": {"id": []}, "text": None, "order": "DESC",
}  # fmt: skip

WIDE = {"since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"}


def _filter(**parts: Any) -> EventFilter:
    return EventFilter.model_validate({"occurred": WIDE, **parts})


def _event(**changes: Any) -> dict[str, Any]:
    event = copy.deepcopy(CANCELLING)
    event.update(changes)
    return event


def _task_run_event(state: str) -> dict[str, Any]:
    return _event(
        occurred="2026-11-25T14:40:35.655997Z",
        event=f"prefect.task-run.{state}",
        resource={"prefect.resource.id": "prefect.task-run.01a21326-bd46-7cdf-8468-0dd8957ec317"},
    )


# -- the client's own filters -------------------------------------------------


@pytest.mark.parametrize(
    "captured", [RUNNER_CANCELLATION, TASK_RUN_WAITER, WORKER_CANCELLATION, WAIT_FOR_FLOW_RUN]
)
def test_client_filters_round_trip(captured: dict[str, Any]) -> None:
    flt = EventFilter.model_validate_json(json.dumps(captured))
    assert flt.model_dump(mode="json") == captured


@pytest.mark.parametrize(
    ("captured", "event", "expected"),
    [
        (RUNNER_CANCELLATION, _event(), True),
        (RUNNER_CANCELLATION, _event(event="prefect.flow-run.Running"), False),
        (RUNNER_CANCELLATION, _event(occurred="2026-11-25T14:41:56.106465Z"), False),
        (RUNNER_CANCELLATION, _event(occurred="2026-11-25T14:41:56.106466Z"), True),
        (RUNNER_CANCELLATION, _event(occurred="2027-11-25T14:42:56.106466Z"), True),
        (RUNNER_CANCELLATION, _event(occurred="2027-11-25T14:42:56.106467Z"), False),
        (TASK_RUN_WAITER, _task_run_event("Completed"), True),
        (TASK_RUN_WAITER, _task_run_event("Crashed"), True),
        (TASK_RUN_WAITER, _task_run_event("Running"), False),
        (TASK_RUN_WAITER, _task_run_event("Completed") | {"occurred": "2026-05-28T23:59Z"}, False),
        (WORKER_CANCELLATION, _event(occurred="2026-11-25T14:43:01Z"), True),
        (WORKER_CANCELLATION, _event(occurred="2026-11-25T14:43:01Z", related=[]), False),
        (WAIT_FOR_FLOW_RUN, _event(occurred="2026-11-25T14:43:01Z"), True),
        (WAIT_FOR_FLOW_RUN, _event(occurred="2026-11-25T14:43:01Z", event="prefect.flow.x"), False),
    ],
)  # fmt: skip
def test_client_filters_match(captured: dict[str, Any], event: dict, expected: bool) -> None:
    assert matches(EventFilter.model_validate(captured), event) is expected


# -- parsing ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25T14:40:35.509104Z", datetime(2026, 11, 25, 14, 40, 35, 509104, UTC)),
        ("2026-11-25T14:40:35.509104+00:00", datetime(2026, 11, 25, 14, 40, 35, 509104, UTC)),
        ("2026-11-25 14:40:35.509104+00:00", datetime(2026, 11, 25, 14, 40, 35, 509104, UTC)),
        ("2026-11-25T14:40:35", datetime(2026, 11, 25, 14, 40, 35, tzinfo=UTC)),
        ("2026-11-25T16:40:35+02:00", datetime(2026, 11, 25, 14, 40, 35, tzinfo=UTC)),
    ],
)
def test_datetime_forms(text: str, expected: datetime) -> None:
    flt = EventFilter.model_validate({"occurred": {"since": text, "until": text}})
    assert flt.occurred.since == expected
    assert flt.occurred.since.utcoffset() == timedelta(0)
    assert matches(flt, _event(occurred=text))
    assert matches(flt, _event(occurred=expected))
    assert matches(flt, _event(occurred=expected.replace(tzinfo=None)))
    assert not matches(flt, _event(occurred=expected + timedelta(microseconds=1)))


@pytest.mark.parametrize("body", [{}, {"occurred": None}, {"occurred": {}}])
def test_missing_occurred_defaults_to_180_days_back_until_now(body: dict) -> None:
    before = datetime.now(UTC)
    flt = EventFilter.model_validate(body)
    midnight = before.replace(hour=0, minute=0, second=0, microsecond=0)
    assert flt.occurred.since == midnight - timedelta(days=180)
    assert before <= flt.occurred.until <= datetime.now(UTC)


@pytest.mark.parametrize(
    "body",
    [
        {"event": None, "resource": None, "related": None, "any_resource": None,
         "id": None, "text": None, "order": None},
        {"event": {}, "resource": {}, "related": {}, "any_resource": {}, "id": {}},
        {"event": {"prefix": [], "exclude_prefix": [], "name": [], "exclude_name": []},
         "resource": {"id": [], "id_prefix": [], "labels": {}, "distinct": None},
         "related": {"id": [], "role": [], "resources_in_roles": [], "labels": {}},
         "any_resource": {"id": [], "id_prefix": [], "labels": {}},
         "id": {"id": []}, "text": {"query": "  "}},
        {"related": [], "any_resource": []},
        {"surprise": 1, "event": {"surprise": 2}, "occurred": {**WIDE, "surprise": 3}},
    ],
)  # fmt: skip
def test_null_empty_and_unknown_mean_no_constraint(body: dict) -> None:
    flt = EventFilter.model_validate({"occurred": WIDE, **body})
    assert flt.order is EventOrder.DESC
    assert matches(flt, _event())
    assert matches(flt, _event(related=[], payload={}))


@pytest.mark.parametrize(
    "body",
    [
        {"order": "asc"},
        {"order": "SIDEWAYS"},
        {"occurred": {"since": "yesterday"}},
        {"event": {"name": "prefect.flow-run.Cancelling"}},
        {"event": {"name": [1]}},
        {"event": []},
        {"resource": {"labels": {"a": None}}},
        {"resource": {"labels": {"a": [1]}}},
        {"resource": {"distinct": "maybe"}},
        {"related": {"resources_in_roles": [["only-id"]]}},
        {"related": {"resources_in_roles": [["id", "role", "extra"]]}},
        {"id": {"id": ["not-a-uuid"]}},
        {"text": {"query": "x" * 201}},
        {"text": {}},
    ],
)
def test_invalid_values_raise(body: dict) -> None:
    with pytest.raises(ValidationError):
        EventFilter.model_validate(body)


def test_filter_is_frozen_and_copies_recompile() -> None:
    flt = _filter(event={"name": ["prefect.flow-run.Cancelling"]})
    assert matches(flt, _event())
    with pytest.raises(ValidationError):
        flt.order = EventOrder.ASC  # type: ignore[misc]
    widened = flt.model_copy(update={"event": None, "order": EventOrder.ASC})
    assert matches(widened, _event(event="anything"))
    assert not matches(flt, _event(event="anything"))
    assert flt == EventFilter.model_validate(flt.model_dump())


# -- matching, field by field ---------------------------------------------------

MATCH_CASES: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    # event names
    ("prefix hit", {"event": {"prefix": ["x.", "prefect.flow-run."]}}, {}, True),
    ("prefix miss", {"event": {"prefix": ["prefect.task-run."]}}, {}, False),
    ("exclude_prefix", {"event": {"exclude_prefix": ["prefect.flow-run"]}}, {}, False),
    ("exclude_prefix other", {"event": {"exclude_prefix": ["prefect.task"]}}, {}, True),
    ("name exact", {"event": {"name": ["prefect.flow-run.Cancelling"]}}, {}, True),
    ("name is not prefix", {"event": {"name": ["prefect.flow-run."]}}, {}, False),
    ("exclude_name", {"event": {"exclude_name": ["prefect.flow-run.Cancelling"]}}, {}, False),
    ("prefix and exclude_name",
     {"event": {"prefix": ["prefect."], "exclude_name": ["prefect.flow-run.Running"]}}, {}, True),
    # event ids
    ("id hit", {"id": {"id": [EVENT_ID]}}, {}, True),
    ("id upper-case", {"id": {"id": [EVENT_ID.upper()]}}, {}, True),
    ("id as UUID", {"id": {"id": [EVENT_ID]}}, {"id": UUID(EVENT_ID)}, True),
    ("id miss", {"id": {"id": ["01a21326-bd47-7788-926d-2e9c4af703f9"]}}, {}, False),
    # primary resource
    ("resource id", {"resource": {"id": [FLOW_RUN, "other"]}}, {}, True),
    ("resource id miss", {"resource": {"id": [FLOW]}}, {}, False),
    ("resource id_prefix", {"resource": {"id_prefix": ["prefect.flow-run."]}}, {}, True),
    ("resource id_prefix miss", {"resource": {"id_prefix": ["prefect.flow."]}}, {}, False),
    ("resource labels", {"resource": {"labels": {"prefect.state-type": "CANCELLING"}}}, {}, True),
    ("resource labels miss", {"resource": {"labels": {"prefect.state-type": ["RUNNING"]}}}, {},
     False),
    ("resource labels AND", {"resource": {"labels": {"prefect.state-type": "CANCELLING",
                                                     "prefect.run-count": "2"}}}, {}, False),
    ("resource id as label",
     {"resource": {"labels": {"prefect.resource.id": "prefect.flow-run.*"}}}, {}, True),
    ("resource distinct ignored", {"resource": {"distinct": True}}, {}, True),
    ("resource never looks at related", {"resource": {"id": [FLOW]}}, {}, False),
    # related
    ("related id", {"related": {"id": [FLOW]}}, {}, True),
    ("related id miss", {"related": {"id": ["prefect.flow.other"]}}, {}, False),
    ("related never looks at primary", {"related": {"id": [FLOW_RUN]}}, {}, False),
    ("related role", {"related": {"role": ["deployment", "tag"]}}, {}, True),
    ("related role miss", {"related": {"role": ["tag"]}}, {}, False),
    ("related id+role same resource", {"related": {"id": [FLOW], "role": ["flow"]}}, {}, True),
    ("related id+role different resources", {"related": {"id": [FLOW], "role": ["deployment"]}},
     {}, False),
    ("resources_in_roles", {"related": {"resources_in_roles": [[FLOW, "deployment"],
                                                               [DEPLOYMENT, "deployment"]]}},
     {}, True),
    ("resources_in_roles crossed", {"related": {"resources_in_roles": [[FLOW, "deployment"]]}},
     {}, False),
    ("related labels", {"related": {"labels": {"prefect.work-pool.type": "process"}}}, {}, True),
    ("related labels+role", {"related": {"role": ["flow"],
                                         "labels": {"prefect.work-pool.type": "process"}}},
     {}, False),
    ("related role as label", {"related": {"labels": {"prefect.resource.role": "work-*"}}}, {},
     True),
    ("related with no related resources", {"related": {"role": ["flow"]}}, {"related": []},
     False),
    ("related list is AND", {"related": [{"role": ["flow"]}, {"role": ["work-pool"]}]}, {}, True),
    ("related list AND miss", {"related": [{"role": ["flow"]}, {"role": ["tag"]}]}, {}, False),
    # any resource
    ("any_resource primary", {"any_resource": {"id": [FLOW_RUN]}}, {}, True),
    ("any_resource related", {"any_resource": {"id": [WORK_POOL]}}, {}, True),
    ("any_resource miss", {"any_resource": {"id": ["prefect.work-pool.other"]}}, {}, False),
    ("any_resource id_prefix", {"any_resource": {"id_prefix": ["prefect.deployment."]}}, {}, True),
    ("any_resource criteria on one resource",
     {"any_resource": {"id": [FLOW], "labels": {"prefect.resource.name": "p1"}}}, {}, False),
    ("any_resource labels", {"any_resource": {"labels": {"prefect.resource.name": "c-*"}}}, {},
     True),
    ("any_resource list is AND", {"any_resource": [{"id": [FLOW]}, {"id": [WORK_POOL]}]}, {}, True),
    ("any_resource list AND miss", {"any_resource": [{"id": [FLOW]}, {"id": ["nope"]}]}, {},
     False),
    # text
    ("text in name", {"text": {"query": "CANCELLING"}}, {}, True),
    ("text in label value", {"text": {"query": "nimble"}}, {}, True),
    ("text not in label keys", {"text": {"query": "prefect.run-count"}}, {}, False),
    ("text in related value", {"text": {"query": "c-dep"}}, {}, True),
    ("text in payload key", {"text": {"query": "validated_state"}}, {}, True),
    ("text phrase", {"text": {"query": '"connection timeout"'}}, {}, True),
    ("text phrase miss", {"text": {"query": '"timeout connection"'}}, {}, False),
    ("text any-of", {"text": {"query": "zzz dodo"}}, {}, True),
    ("text exclude", {"text": {"query": "dodo -timeout"}}, {}, False),
    ("text exclude bang", {"text": {"query": "!zzz"}}, {}, True),
    ("text required", {"text": {"query": "dodo +zzz"}}, {}, False),
    ("text required all", {"text": {"query": "+dodo +p1"}}, {}, True),
    # everything together
    ("all fields", {"event": {"prefix": ["prefect.flow-run."]},
                    "resource": {"labels": {"prefect.state-name": ["Cancel*"]}},
                    "related": {"resources_in_roles": [[WORK_POOL, "work-pool"]]},
                    "any_resource": {"id_prefix": ["prefect.flow."]},
                    "id": {"id": [EVENT_ID]}, "text": {"query": "+process"}}, {}, True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "changes", "expected"),
    [
        pytest.param(body, changes, expected, id=name)
        for name, body, changes, expected in MATCH_CASES
    ],
)
def test_matches(body: dict, changes: dict, expected: bool) -> None:
    assert matches(_filter(**body), _event(**changes)) is expected


@pytest.mark.parametrize(
    ("occurred", "expected"),
    [
        ("not a date", False),
        (None, False),
        (12345, False),
        ("2026-11-25 14:43:01.987146+00:00", True),
        ("2026-11-25T15:43:01.987146+01:00", True),
        ("2026-11-25T14:43:01.987146", True),
    ],
)
def test_event_occurred_forms(occurred: Any, expected: bool) -> None:
    flt = EventFilter.model_validate(RUNNER_CANCELLATION)
    assert matches(flt, _event(occurred=occurred)) is expected


# -- label patterns -------------------------------------------------------------


@pytest.mark.parametrize(
    ("patterns", "value", "expected"),
    [
        ("alpha", "alpha", True),
        ("alpha", "alphabet", False),
        ("alpha", "Alpha", False),
        ("alpha*", "alphabet", True),
        ("alpha*", "alpha", True),
        ("alpha*", "xalpha", False),
        ("*bet", "alphabet", True),
        ("a*b*t", "alphabet", True),
        ("a?c", "abc", True),
        ("a?c", "abbc", False),
        ("a[bx]c", "axc", True),
        ("!alpha", "beta", True),
        ("!alpha", "alpha", False),
        ("!alpha*", "alphabet", False),
        ("!alpha*", "beta", True),
        ("*", "", True),
        (["beta", "alpha*"], "alphabet", True),
        (["!alpha", "!beta"], "alpha", True),  # any pattern may match
        ([], "alpha", False),
        ("alpha", None, False),
        ("!alpha", None, False),  # a missing label never matches
    ],
)
def test_label_patterns(patterns: str | list[str], value: str | None, expected: bool) -> None:
    resource = {"prefect.resource.id": "r"} | ({"label": value} if value is not None else {})
    assert filters.label_matcher({"label": patterns})(resource) is expected


# -- text query parser ------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "include", "exclude", "required"),
    [
        ("", [], [], []),
        ("   ", [], [], []),
        ("Error", ["error"], [], []),
        ("error -debug", ["error"], ["debug"], []),
        ("!debug +must", [], ["debug"], ["must"]),
        ('"connection timeout" x', ["connection timeout", "x"], [], []),
        ('-"two words"', [], ["two words"], []),
        ('"say \\"hi\\""', ['say "hi"'], [], []),
        ('"back\\\\slash \\n"', ["back\\slash \\n"], [], []),
        ('"unclosed phrase', ["unclosed phrase"], [], []),
        ("- lone", ["lone"], [], []),
        ('a"b', ["a", "b"], [], []),
        ('""', [], [], []),
    ],
)
def test_parse_text_query(query: str, include: list, exclude: list, required: list) -> None:
    assert filters.parse_text_query(query) == (include, exclude, required)


# -- SQL prefilter -----------------------------------------------------------------


def test_sql_prefilter_of_an_empty_filter() -> None:
    pre = sql_prefilter(_filter())
    assert pre == {
        "since": datetime(2000, 1, 1, tzinfo=UTC),
        "until": datetime(2100, 1, 1, tzinfo=UTC),
        "names": None,
        "prefixes": None,
        "exclude_names": [],
        "exclude_prefixes": [],
        "resource_ids": None,
        "resource_id_prefixes": None,
        "event_ids": None,
        "related": [],
        "distinct": False,
        "order": EventOrder.DESC,
    }


def test_sql_prefilter_exposes_column_criteria() -> None:
    flt = _filter(
        event={"prefix": ["a."], "exclude_prefix": ["a.b"], "name": ["n"], "exclude_name": ["m"]},
        resource={"id": ["r1"], "id_prefix": ["r."], "labels": {"x": "y"}, "distinct": True},
        related=[
            {"id": [FLOW], "role": ["flow"]},
            {"resources_in_roles": [[DEPLOYMENT, "deployment"]]},
            {"labels": {"x": "y"}},
        ],
        id={"id": [EVENT_ID]},
        order="ASC",
    )
    pre = sql_prefilter(flt)
    assert pre["names"] == ["n"]
    assert pre["prefixes"] == ["a."]
    assert pre["exclude_names"] == ["m"]
    assert pre["exclude_prefixes"] == ["a.b"]
    assert pre["resource_ids"] == ["r1"]
    assert pre["resource_id_prefixes"] == ["r."]
    assert pre["event_ids"] == [UUID(EVENT_ID)]
    assert pre["related"] == [
        {"ids": [FLOW], "roles": ["flow"], "resources_in_roles": None},
        {"ids": None, "roles": None, "resources_in_roles": [(DEPLOYMENT, "deployment")]},
    ]
    assert pre["distinct"] is True
    assert pre["order"] is EventOrder.ASC
