"""Block rules without I/O: schema checksums, secret hiding and restoring, references.

``data/block_schemas.json`` was produced once with the prefect==3.9.1 client: for
``Secret``, ``Webhook``, ``LocalFileSystem`` and two user blocks (``Inner`` with a
``SecretStr``; ``Outer`` nesting ``Inner`` and ``LocalFileSystem`` and holding a
plain pydantic model and an enum), it holds the ``fields`` the client sends in
``POST /block_schemas/`` and the checksum ``Block._calculate_schema_checksum()``
gave.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from headrace import blocks
from headrace.errors import InvalidInput
from headrace.storage import variables

PINNED = json.loads((Path(__file__).parent / "data" / "block_schemas.json").read_text())


@pytest.mark.parametrize("pinned", PINNED, ids=[p["block"] for p in PINNED])
def test_checksum_equals_the_clients(pinned: dict[str, Any]) -> None:
    assert blocks.schema_checksum(pinned["fields"]) == pinned["checksum"]


def test_checksum_of_the_captured_secret_schema() -> None:
    """The Secret checksum the reference answered in the captured g_misc traffic."""
    secret = next(p for p in PINNED if p["block"] == "Secret")
    assert blocks.schema_checksum(secret["fields"]) == (
        "sha256:c078ed9c1e813e224c0b353d7ad4564a11d51d3198d9ac0686478165a1911c78"
    )


def test_checksum_ignores_secret_fields_and_block_definitions() -> None:
    outer = next(p for p in PINNED if p["block"] == "Outer")["fields"]
    assert set(outer["definitions"]) == {"Inner", "LocalFileSystem", "Mode", "Options"}
    without_blocks = {
        **outer,
        "secret_fields": ["anything.else"],
        "definitions": {k: outer["definitions"][k] for k in ("Mode", "Options")},
    }
    assert blocks.schema_checksum(without_blocks) == blocks.schema_checksum(outer)
    changed = {**outer, "title": "Other"}
    assert blocks.schema_checksum(changed) != blocks.schema_checksum(outer)


def test_checksum_drops_definitions_none_of_which_are_kept() -> None:
    plain = {"title": "T", "properties": {"a": {"$ref": "#/definitions/Empty"}}}
    assert blocks.schema_checksum({**plain, "definitions": {"Empty": {}}}) == (
        blocks.schema_checksum(plain)
    )


def test_checksum_survives_recursive_definitions() -> None:
    node = {"properties": {"next": {"$ref": "#/definitions/Node"}}}
    fields = {"properties": {"head": {"$ref": "#/definitions/Node"}}, "definitions": {"Node": node}}
    assert blocks.schema_checksum(fields).startswith("sha256:")


SECRETS = ["token", "child.password", "headers.*", "opaque"]


def test_obfuscate_hides_plain_nested_and_wildcard_secrets() -> None:
    data = {
        "token": "abc",
        "user": "ada",
        "child": {"password": "pw", "host": "h"},
        "headers": {"Authorization": "Bearer x", "nested": {"k": 1}},
        "opaque": {"json": "object"},
    }
    hidden = blocks.obfuscate(data, SECRETS)
    assert hidden == {
        "token": "********",
        "user": "ada",
        "child": {"password": "********", "host": "h"},
        "headers": {"Authorization": "********", "nested": {"k": "********"}},
        "opaque": "********",
    }
    assert data["token"] == "abc", "the input is not modified"


def test_obfuscate_leaves_unset_and_absent_secrets() -> None:
    assert blocks.obfuscate({"token": None}, SECRETS) == {"token": None}
    assert blocks.obfuscate({"child": "not an object"}, SECRETS) == {"child": "not an object"}
    assert blocks.obfuscate({}, SECRETS) == {}
    assert blocks.obfuscate({"headers": {}}, SECRETS) == {"headers": "********"}


def test_hidden_secrets_sent_back_keep_their_stored_values() -> None:
    current = {"token": "abc", "child": {"password": "pw"}, "headers": {"A": "1", "B": "2"}}
    update = {
        "token": "********",
        "child": {"password": "new"},
        "headers": {"A": "********", "B": "3", "C": "********"},
    }
    merged = blocks.keep_hidden_secrets(update, current, SECRETS)
    assert merged == {
        "token": "abc",
        "child": {"password": "new"},
        "headers": {"A": "1", "B": "3", "C": "********"},
    }


def test_asterisks_in_a_field_that_is_not_secret_are_a_value() -> None:
    merged = blocks.keep_hidden_secrets({"user": "********"}, {"user": "ada"}, SECRETS)
    assert merged == {"user": "********"}


def test_references_are_top_level_dollar_refs() -> None:
    data = {
        "child": {"$ref": {"block_document_id": "1b0c7d0e-0000-4000-8000-000000000001"}},
        "inline": {"token": "x"},
        "deep": {"inner": {"$ref": {"block_document_id": "ignored"}}},
        "broken": {"$ref": {"other": 1}},
    }
    assert blocks.references(data) == {"child": "1b0c7d0e-0000-4000-8000-000000000001"}


@pytest.mark.parametrize(
    "value", [None, "x" * 4998, list(range(1000)), {"k": "v" * 4990}, True, 1.5]
)
def test_variable_values_within_the_limit(value: Any) -> None:
    variables.check_value(value)


@pytest.mark.parametrize("value", ["x" * 4999, ["y" * 5000], {"k": "é" * 2500}])
def test_variable_values_over_the_limit(value: Any) -> None:
    """Counted as the client counts: compact JSON, in UTF-8 bytes (quotes included)."""
    with pytest.raises(InvalidInput, match="less than 5000"):
        variables.check_value(value)


def test_variable_values_must_serialize() -> None:
    with pytest.raises(InvalidInput, match="serializable"):
        variables.check_value(2**70)
