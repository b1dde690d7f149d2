"""Storage contract for variables, artifacts and blocks, on SQLite and Postgres."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from tests.integration.test_storage_contract import T0, at, make_flow, make_run

from headrace import blocks
from headrace.errors import AlreadyExists, InvalidInput, NotFound
from headrace.storage import (
    artifacts,
    block_documents,
    block_schemas,
    block_types,
    configuration,
    variables,
)
from headrace.storage.db import Database
from headrace.types import WireDict

# -- variables -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["text", 42, 55.0, 2**53 + 1, True, None, [1, "a", None], {"a": {"b": [1.5]}}],
    ids=repr,
)
async def test_variable_values_of_every_json_type_round_trip(db: Database, value: Any) -> None:
    async with db.write() as conn:
        await variables.create_variable(conn, {"name": "v", "value": value}, T0)
    async with db.read() as conn:
        found = await variables.read_variable_by_name(conn, "v")
    assert found["value"] == value and type(found["value"]) is type(value)
    assert found["tags"] == [] and found["created"] == T0


async def test_variable_names_are_unique_and_updates_apply_set_fields(db: Database) -> None:
    async with db.write() as conn:
        first = await variables.create_variable(conn, {"name": "a", "value": 1, "tags": ["x"]}, T0)
        await variables.create_variable(conn, {"name": "b", "value": 2}, T0)
    async with db.write() as conn:
        with pytest.raises(AlreadyExists, match="'a' already exists"):
            await variables.create_variable(conn, {"name": "a", "value": 3}, T0)
    async with db.write() as conn:
        await variables.update_variable(conn, {"value": "new"}, at(1), name="a")
    async with db.read() as conn:
        found = await variables.read_variable(conn, first["id"])
    assert (found["value"], found["tags"], found["updated"]) == ("new", ["x"], at(1))
    async with db.write() as conn:
        with pytest.raises(AlreadyExists):
            await variables.update_variable(conn, {"name": "b"}, at(2), name="a")
        with pytest.raises(NotFound):
            await variables.update_variable(conn, {"value": 1}, at(2), name="nope")
        with pytest.raises(InvalidInput):
            await variables.update_variable(conn, {"value": "x" * 5000}, at(2), name="a")
    async with db.write() as conn:
        await variables.update_variable(conn, {"name": "c"}, at(3), variable_id=first["id"])
        await variables.delete_variable(conn, name="b")
        with pytest.raises(NotFound):
            await variables.delete_variable(conn, name="b")
    async with db.read() as conn:
        names = [v["name"] for v in await variables.filter_variables(conn, {}, None, None)]
    assert names == ["c"]


async def test_variable_filters_and_sorts(db: Database) -> None:
    async with db.write() as conn:
        for i, (name, tags) in enumerate(
            [("beta", ["t1"]), ("alpha", ["t1", "t2"]), ("gamma", [])]
        ):
            await variables.create_variable(conn, {"name": name, "value": i, "tags": tags}, at(i))

    async def names(body: WireDict, limit: int | None = None) -> list[str]:
        async with db.read() as conn:
            return [v["name"] for v in await variables.filter_variables(conn, body, limit, None)]

    assert await names({}) == ["alpha", "beta", "gamma"]
    assert await names({"sort": "CREATED_DESC"}, limit=2) == ["gamma", "alpha"]
    assert await names({"variables": {"name": {"like_": "ET"}}}) == ["beta"]
    assert await names({"variables": {"tags": {"all_": ["t1", "t2"]}}}) == ["alpha"]
    assert await names({"variables": {"tags": {"is_null_": True}}}) == ["gamma"]
    assert await names({"variables": {"name": {"any_": ["gamma", "beta"]}}}) == ["beta", "gamma"]
    async with db.read() as conn:
        assert await variables.count_variables(conn, {"variables": {"tags": {"all_": ["t1"]}}}) == 2
        with pytest.raises(InvalidInput):
            await variables.filter_variables(conn, {"sort": "BOGUS"}, None, None)


# -- artifacts -------------------------------------------------------------------------


async def make_artifact(db: Database, seconds: float, **body: Any) -> WireDict:
    async with db.write() as conn:
        return await artifacts.create_artifact(conn, body, at(seconds))


async def test_artifacts_keep_every_version_and_the_latest_per_key(db: Database) -> None:
    orphan_task = str(uuid.uuid4())  # a task run the server never heard of
    first = await make_artifact(db, 0, key="report", type="markdown", data="# v1")
    second = await make_artifact(
        db, 1, key="report", type="table", data='[{"a": 1}]', task_run_id=orphan_task
    )
    progress = await make_artifact(db, 2, key="progress", type="progress", data=10.0)
    await make_artifact(db, 3, type="link", data="https://example.com")
    async with db.read() as conn:
        latest = await artifacts.read_latest_artifact(conn, "report")
        collections = await artifacts.filter_latest_artifacts(conn, {"sort": "KEY_ASC"}, 10, 0)
        everything = await artifacts.filter_artifacts(conn, {}, None, None)
    assert latest["id"] == second["id"] and latest["task_run_id"] == orphan_task
    assert [(c["key"], c["latest_id"], c["type"]) for c in collections] == [
        ("progress", progress["id"], "progress"),
        ("report", second["id"], "table"),
    ]
    report = collections[1]
    assert report["created"] == at(0) and report["updated"] == at(1)
    assert len(everything) == 4 and everything[0]["type"] == "link", "ID_DESC by default"

    async with db.write() as conn:
        await artifacts.update_artifact(conn, progress["id"], {"data": 55.5}, at(4))
        await artifacts.delete_artifact(conn, second["id"], at(5))
    async with db.read() as conn:
        assert (await artifacts.read_artifact(conn, progress["id"]))["data"] == 55.5
        assert (await artifacts.read_latest_artifact(conn, "report"))["id"] == first["id"]
    async with db.write() as conn:
        await artifacts.delete_artifact(conn, first["id"], at(6))
        with pytest.raises(NotFound):
            await artifacts.delete_artifact(conn, first["id"], at(6))
        with pytest.raises(NotFound):
            await artifacts.update_artifact(conn, first["id"], {"data": 1}, at(6))
    async with db.read() as conn:
        with pytest.raises(NotFound):
            await artifacts.read_latest_artifact(conn, "report")
        assert await artifacts.count_latest_artifacts(conn, {}) == 1


async def test_artifact_filters(db: Database) -> None:
    flow = await make_flow(db)
    run = await make_run(db, flow["id"], tags=["nightly"])
    await make_artifact(db, 0, key="a", type="markdown", flow_run_id=run["id"])
    await make_artifact(db, 1, key="b", type="table")
    await make_artifact(db, 2, type="result", metadata_={"k": "v" * 600})

    async def keys(body: WireDict) -> list[Any]:
        async with db.read() as conn:
            return [a["key"] for a in await artifacts.filter_artifacts(conn, body, None, None)]

    assert await keys({"artifacts": {"key": {"any_": ["a"]}}}) == ["a"]
    assert await keys({"artifacts": {"key": {"exists_": False}}}) == [None]
    assert await keys({"artifacts": {"key": {"exists_": True}}, "sort": "KEY_DESC"}) == ["b", "a"]
    assert await keys({"artifacts": {"type": {"not_any_": ["result", "table"]}}}) == ["a"]
    assert await keys({"flow_runs": {"tags": {"all_": ["nightly"]}}}) == ["a"]
    assert await keys({"flows": {"name": {"any_": ["other"]}}}) == []
    async with db.read() as conn:
        latest = await artifacts.filter_latest_artifacts(
            conn, {"artifacts": {"flow_run_id": {"any_": [run["id"]]}}}, None, None
        )
        unkeyed = await artifacts.filter_artifacts(
            conn, {"artifacts": {"type": {"any_": ["result"]}}}, None, None
        )
    assert [c["key"] for c in latest] == ["a"]
    assert unkeyed[0]["metadata_"] == {"k": "v" * 500 + "..."}


# -- blocks -----------------------------------------------------------------------------

SECRET_FIELDS = {
    "title": "Creds",
    "block_type_slug": "creds",
    "properties": {"token": {"type": "string"}, "user": {"type": "string"}},
    "secret_fields": ["token"],
    "block_schema_references": {},
}
CONN_FIELDS = {
    "title": "Conn",
    "block_type_slug": "conn",
    "properties": {"creds": {"$ref": "#/definitions/Creds"}, "password": {"type": "string"}},
    "secret_fields": ["creds.token", "password"],
    "block_schema_references": {
        "creds": {"block_type_slug": "creds", "block_schema_checksum": "sha256:x"}
    },
    "definitions": {"Creds": SECRET_FIELDS},
}


async def register(db: Database, slug: str, fields: WireDict) -> tuple[WireDict, WireDict]:
    async with db.write() as conn:
        block_type = await block_types.create_block_type(
            conn, {"name": slug.title(), "slug": slug}, T0
        )
        schema, created = await block_schemas.create_block_schema(
            conn, {"fields": fields, "block_type_id": block_type["id"], "version": "1"}, T0
        )
    assert created
    return block_type, schema


async def save(db: Database, schema: WireDict, name: str | None, data: WireDict) -> WireDict:
    body = {
        "name": name,
        "data": data,
        "block_schema_id": schema["id"],
        "block_type_id": schema["block_type_id"],
        "is_anonymous": name is None,
    }
    async with db.write() as conn:
        return await block_documents.create_block_document(conn, body, T0)


async def test_block_types_and_schemas(db: Database) -> None:
    block_type, schema = await register(db, "creds", SECRET_FIELDS)
    assert schema["checksum"] == blocks.schema_checksum(SECRET_FIELDS)
    assert schema["block_type"]["slug"] == "creds" and schema["capabilities"] == []
    async with db.write() as conn:
        with pytest.raises(AlreadyExists):
            await block_types.create_block_type(conn, {"name": "Again", "slug": "creds"}, T0)
        again, created = await block_schemas.create_block_schema(
            conn, {"fields": SECRET_FIELDS, "block_type_id": block_type["id"], "version": "1"}, T0
        )
        assert not created and again["id"] == schema["id"]
        newer, created = await block_schemas.create_block_schema(
            conn,
            {
                "fields": SECRET_FIELDS,
                "block_type_id": block_type["id"],
                "version": "2",
                "capabilities": ["read-path"],
            },
            at(1),
        )
        assert created
        with pytest.raises(NotFound):
            await block_schemas.create_block_schema(
                conn, {"fields": {}, "block_type_id": str(uuid.uuid4())}, T0
            )
        await block_types.update_block_type(conn, block_type["id"], {"description": "d"}, at(2))
    async with db.read() as conn:
        by_checksum = await block_schemas.read_block_schema_by_checksum(
            conn, schema["checksum"], None
        )
        assert by_checksum["id"] == newer["id"], "the newest without a version"
        with pytest.raises(NotFound):
            await block_schemas.read_block_schema_by_checksum(conn, schema["checksum"], "3")
        body = {"block_schemas": {"block_capabilities": {"all_": ["read-path"]}}}
        assert [
            s["id"] for s in await block_schemas.filter_block_schemas(conn, body, None, None)
        ] == [newer["id"]]
        types = await block_types.filter_block_types(conn, body, None, None)
        assert [(bt["slug"], bt["description"]) for bt in types] == [("creds", "d")]
        assert await block_schemas.read_capabilities(conn) == ["read-path"]


async def test_documents_hide_secrets_resolve_references_and_merge(db: Database) -> None:
    _, creds_schema = await register(db, "creds", SECRET_FIELDS)
    conn_type, conn_schema = await register(db, "conn", CONN_FIELDS)
    creds = await save(db, creds_schema, "c1", {"token": "tok", "user": "ada"})
    assert creds["data"] == {"token": "********", "user": "ada"}
    parent = await save(
        db,
        conn_schema,
        "p1",
        {"creds": {"$ref": {"block_document_id": creds["id"]}}, "password": "pw"},
    )
    assert parent["data"] == {"password": "********", "creds": {"token": "********", "user": "ada"}}
    assert parent["block_document_references"]["creds"]["block_document"]["id"] == creds["id"]
    async with db.read() as conn:
        clear = await block_documents.read_block_document_by_name(conn, "conn", "p1", True)
    assert clear["data"] == {"password": "pw", "creds": {"token": "tok", "user": "ada"}}
    assert clear["block_type"]["slug"] == "conn" and clear["block_type_name"] == "Conn"
    assert clear["block_schema"]["fields"] == CONN_FIELDS

    async with db.write() as conn:
        with pytest.raises(AlreadyExists):
            await block_documents.create_block_document(
                conn,
                {
                    "name": "p1",
                    "data": {},
                    "block_schema_id": conn_schema["id"],
                    "block_type_id": conn_type["id"],
                },
                T0,
            )
        # Obfuscated secrets sent back keep their values; merge keeps other keys.
        await block_documents.update_block_document(
            conn, parent["id"], {"data": {"password": "********", "extra": 1}}, at(1)
        )
        # A reference back to the parent would form a cycle.
        with pytest.raises(InvalidInput, match="cycle"):
            await block_documents.update_block_document(
                conn,
                creds["id"],
                {"data": {"loop": {"$ref": {"block_document_id": parent["id"]}}}},
                at(1),
            )
    async with db.read() as conn:
        merged = await block_documents.read_block_document(conn, parent["id"], True)
    assert merged["data"] == {
        "password": "pw",
        "extra": 1,
        "creds": {"token": "tok", "user": "ada"},
    }
    async with db.write() as conn:
        await block_documents.update_block_document(
            conn, parent["id"], {"data": {"password": "new"}, "merge_existing_data": False}, at(2)
        )
        await block_documents.delete_block_document(conn, creds["id"])
        with pytest.raises(NotFound):
            await block_documents.delete_block_document(conn, creds["id"])
    async with db.read() as conn:
        replaced = await block_documents.read_block_document(conn, parent["id"], True)
    assert replaced["data"] == {"password": "new"} and replaced["block_document_references"] == {}


async def test_document_filters_anonymous_documents_and_cascades(db: Database) -> None:
    creds_type, creds_schema = await register(db, "creds", SECRET_FIELDS)
    _, conn_schema = await register(db, "conn", CONN_FIELDS)
    await save(db, creds_schema, "b-doc", {"token": "1"})
    await save(db, conn_schema, "a-doc", {"password": "2"})
    anonymous = await save(db, creds_schema, None, {"token": "3"})
    assert anonymous["name"].startswith("anonymous-") and anonymous["is_anonymous"]

    async def names(body: WireDict) -> list[str]:
        async with db.read() as conn:
            found = await block_documents.filter_block_documents(conn, body, None, None, False)
        return [d["name"] for d in found]

    assert await names({}) == ["a-doc", "b-doc"], "anonymous documents left out by default"
    assert len(await names({"block_documents": {"is_anonymous": None}})) == 3
    assert await names({"block_types": {"slug": {"any_": ["creds"]}}}) == ["b-doc"]
    assert await names({"sort": "NAME_DESC"}) == ["b-doc", "a-doc"]
    assert await names({"block_schemas": {"id": {"any_": [conn_schema["id"]]}}}) == ["a-doc"]
    async with db.read() as conn:
        assert await block_documents.count_block_documents(conn, {}) == 2
        read_anonymous = await block_documents.read_block_document(conn, anonymous["id"], False)
    assert read_anonymous["data"] == {"token": "********"}
    async with db.write() as conn:
        with pytest.raises(NotFound):
            await save_in(
                conn, creds_schema, {"x": {"$ref": {"block_document_id": str(uuid.uuid4())}}}
            )
        await block_types.delete_block_type(conn, creds_type["id"])
        with pytest.raises(NotFound):
            await block_types.read_block_type(conn, creds_type["id"])
    assert await names({"block_documents": {"is_anonymous": None}}) == ["a-doc"]


async def save_in(conn: Any, schema: WireDict, data: WireDict) -> WireDict:
    body = {
        "name": "dangling",
        "data": data,
        "block_schema_id": schema["id"],
        "block_type_id": schema["block_type_id"],
    }
    return await block_documents.create_block_document(conn, body, T0)


async def test_default_result_storage_needs_a_writable_block_and_goes_with_it(
    db: Database,
) -> None:
    _, plain = await register(db, "creds", SECRET_FIELDS)
    async with db.write() as conn:
        writable, _ = await block_schemas.create_block_schema(
            conn,
            {
                "fields": CONN_FIELDS,
                "block_type_id": plain["block_type_id"],
                "version": "2",
                "capabilities": ["read-path", "write-path"],
            },
            T0,
        )
    secret = await save(db, plain, "s", {"token": "t", "user": "u"})
    store = await save(db, writable, "w", {"host": "h", "password": "p", "credentials": None})
    async with db.write() as conn:
        with pytest.raises(InvalidInput, match="cannot be used for result storage"):
            await configuration.set_default_result_storage(conn, secret["id"], T0)
        with pytest.raises(NotFound):
            await configuration.set_default_result_storage(conn, str(uuid.uuid4()), T0)
        await configuration.set_default_result_storage(conn, store["id"], T0)
        # Setting it again replaces the row (an upsert on both backends).
        await configuration.set_default_result_storage(conn, store["id"], at(1))
    async with db.read() as conn:
        found = await configuration.read_default_result_storage(conn)
    assert found == {"default_result_storage_block_id": store["id"]}
    async with db.write() as conn:
        await block_documents.delete_block_document(conn, store["id"])
    async with db.read() as conn:
        found = await configuration.read_default_result_storage(conn)
    assert found == {"default_result_storage_block_id": None}
