"""Run parameters against a deployment's parameter schema, worded as the reference words it."""

from __future__ import annotations

import pytest

from headrace import parameters
from headrace.errors import Conflict, InvalidInput

SCHEMA = {
    "title": "Parameters",
    "type": "object",
    "properties": {
        "x": {"title": "x", "type": "integer", "position": 0},
        "point": {"$ref": "#/definitions/Point", "position": 1},
    },
    "required": ["x"],
    "definitions": {
        "Point": {
            "type": "object",
            "properties": {"lat": {"type": "number"}},
            "required": ["lat"],
        }
    },
}


@pytest.mark.parametrize(
    ("given", "detail"),
    [
        (
            {"x": "a"},
            "Error creating flow run: Validation failed for field 'x'. "
            "Failure reason: 'a' is not of type 'integer'",
        ),
        (
            {},
            "Error creating flow run: Validation failed. "
            "Failure reason: 'x' is a required property",
        ),
        (
            {"x": 1, "point": {"lat": "north"}},
            "Error creating flow run: Validation failed for field 'point.lat'. "
            "Failure reason: 'north' is not of type 'number'",
        ),
    ],
)
def test_nonconforming_parameters_conflict(given: dict, detail: str) -> None:
    with pytest.raises(Conflict) as raised:
        parameters.check(given, SCHEMA, "creating flow run")
    assert str(raised.value) == detail


def test_conforming_parameters_pass() -> None:
    parameters.check({"x": 3, "point": {"lat": 1.5}}, SCHEMA, "creating flow run")


def test_an_update_may_leave_required_parameters_unset() -> None:
    parameters.check({"point": {}}, SCHEMA, "updating deployment", ignore_required=True)
    with pytest.raises(Conflict, match="field 'x'"):
        parameters.check({"x": 1.5}, SCHEMA, "updating deployment", ignore_required=True)


def test_enforcement_without_a_schema_conflicts() -> None:
    with pytest.raises(Conflict, match="does not have a valid parameter schema"):
        parameters.check({"x": 1}, None, "creating flow run")


def test_a_broken_schema_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="Invalid parameter schema"):
        parameters.check({"x": 1}, {"type": "no-such-type"}, "creating flow run")


def test_what_the_client_means_but_does_not_say() -> None:
    schema = {
        "type": "object",
        "properties": {
            "maybe": {"type": "string"},  # optional, no default: None allowed
            "pair": {"type": "array", "items": [{"type": "integer"}, {"type": "string"}]},
            "creds": {"$ref": "#/definitions/Creds"},
        },
        "definitions": {
            "Creds": {
                "type": "object",
                "block_type_slug": "creds",
                "title": "Creds",
                "properties": {"token": {"type": "string"}},
                "required": ["token"],
            }
        },
    }
    parameters.check(
        {
            "maybe": None,
            "pair": [1, "a"],
            "creds": {"$ref": "0b6d3d9e-5d39-4d2b-9d4c-6a1a4b0f7a11"},
        },
        schema,
        "creating flow run",
    )
    with pytest.raises(Conflict, match="field 'pair"):
        parameters.check({"pair": ["a", 1]}, schema, "creating flow run")
