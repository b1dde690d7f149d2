"""Variables, artifacts and blocks with the real client and CLI, on SQLite (P2.3-P2.5)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance import eventsock as es
from tests.conftest import RunningServer, run_client

SCRIPTS = Path(__file__).parent / "scripts"


def script(server: RunningServer, name: str, tmp_path: Path, *args: str) -> Any:
    ran = run_client(server, [str(SCRIPTS / name), *args], tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:] + server.log()
    return json.loads(ran.stdout.strip().splitlines()[-1])


def cli(server: RunningServer, tmp_path: Path, *args: str, ok: bool = True) -> str:
    ran = run_client(server, ["-m", "prefect", *args], tmp_path)
    output = ran.stdout + ran.stderr
    if ok:
        assert ran.returncode == 0, f"prefect {' '.join(args)}:\n{output[-3000:]}"
    else:
        assert ran.returncode != 0, f"prefect {' '.join(args)} should fail:\n{output[-3000:]}"
    return output


def test_variables_and_artifacts(sqlite_server: RunningServer, tmp_path: Path) -> None:
    result = script(sqlite_server, "variables_artifacts.py", tmp_path)
    variables = result["variables"]
    assert variables["read"] == {
        "v-str": "text",
        "v-int": 42,
        "v-float": 2.5,
        "v-bool": False,
        "v-null": None,
        "v-list": [1, "two", None, {"three": 3}],
        "v-dict": {"nested": {"list": [1.5, True]}},
    }
    assert "already exists" in variables["refused"]
    assert variables["overwritten"] == "overwritten"
    assert (variables["missing"], variables["after_unset"]) == ("fallback", "gone")

    artifacts = result["artifacts"]
    assert artifacts["report"] == {"data": "# second", "description": "newer"}
    assert artifacts["progress"] == {
        "id": artifacts["progress_id"],
        "data": 75.0,
        "type": "progress",
    }
    assert artifacts["task_md"]["task_run_id"] not in ("", "None")
    latest = {c["key"]: c for c in artifacts["latest"]}
    assert list(latest) == ["image", "link", "progress", "report", "table", "task-md"]
    assert json.loads(latest["table"]["data"]) == [{"a": 1, "b": 2}, {"a": 3, "b": None}]

    listed = cli(sqlite_server, tmp_path, "variable", "ls")
    assert "v-dict" in listed and "v-null" not in listed
    assert cli(sqlite_server, tmp_path, "variable", "get", "v-int").strip().endswith("42")
    cli(sqlite_server, tmp_path, "variable", "set", "v-cli", "hello")
    cli(sqlite_server, tmp_path, "variable", "set", "v-cli", "again", ok=False)
    cli(sqlite_server, tmp_path, "variable", "set", "v-cli", "again", "--overwrite")
    assert "'again'" in cli(sqlite_server, tmp_path, "variable", "inspect", "v-cli")
    cli(sqlite_server, tmp_path, "variable", "unset", "v-cli")
    assert "not found" in cli(sqlite_server, tmp_path, "variable", "unset", "v-cli", ok=False)

    listed = cli(sqlite_server, tmp_path, "artifact", "ls")
    for key in latest:
        assert key in listed
    assert "75.0" in cli(sqlite_server, tmp_path, "artifact", "inspect", "progress")
    cli(sqlite_server, tmp_path, "artifact", "delete", "--id", artifacts["progress_id"])
    cli(sqlite_server, tmp_path, "artifact", "inspect", "progress", ok=False)
    assert "2 artifact(s)" in cli(sqlite_server, tmp_path, "artifact", "delete", "report")


def test_blocks(sqlite_server: RunningServer, tmp_path: Path) -> None:
    result = script(sqlite_server, "blocks_roundtrip.py", tmp_path)
    assert "overwrite=True" in result["refused"]
    assert result["plain"] == "rotated"
    assert result["json"] == {"user": "ada", "key": "k"}
    service = result["service"]
    assert (service["host"], service["password"], service["token"]) == ("db.local", "pw", "tok-1")
    assert service["nested_id"] == service["creds_id"], "the nested block keeps its identity"
    assert service["options"] == {"ssl": True}
    assert result["inline_token"] == "inline-tok"
    assert result["overwritten_host"] == "db.remote"
    assert result["hidden"] == {
        "host": "db.remote",
        "password": "********",
        "options": None,
        "credentials": {"token": "********", "user": "ada"},
    }
    assert result["local_basepath"] == "/tmp/headrace-blocks"
    assert result["deleted"]

    listed = cli(sqlite_server, tmp_path, "block", "ls")
    for name in ("plain-secret", "json-secret", "creds", "service", "local"):
        assert name in listed
    assert "inline-service" not in listed
    types = cli(sqlite_server, tmp_path, "block", "type", "ls")
    for slug in ("secret", "serviceconnection", "apicredentials", "local-file-system"):
        assert slug in types
    inspected = cli(sqlite_server, tmp_path, "block", "inspect", "secret/plain-secret")
    assert "********" in inspected and "rotated" not in inspected
    cli(sqlite_server, tmp_path, "block", "delete", "secret/plain-secret")
    assert "plain-secret" not in cli(sqlite_server, tmp_path, "block", "ls")
    cli(sqlite_server, tmp_path, "block", "delete", "secret/plain-secret", ok=False)


@pytest.fixture
async def api(sqlite_server: RunningServer) -> Any:
    async with es.http(sqlite_server.api_url + "/") as http:
        yield http
        assert (await http.get("health")).status_code == 200


async def test_bad_input(api: httpx.AsyncClient) -> None:
    missing = str(uuid.uuid4())
    # Variables: duplicate names, oversized values, bad names, unknown names and ids.
    assert (await api.post("variables/", json={"name": "v", "value": 1})).status_code == 201
    detail = es.assert_error(await api.post("variables/", json={"name": "v", "value": 2}), 409)
    assert "already exists" in detail
    es.assert_error(await api.post("variables/", json={"name": "big", "value": "x" * 5000}), 422)
    es.assert_error(await api.patch("variables/name/v", json={"value": ["y" * 5000]}), 422)
    es.assert_error(await api.post("variables/", json={"name": "Bad Name", "value": 1}), 422)
    es.assert_error(await api.post("variables/", json={"name": "no-value"}), 422)
    es.assert_error(await api.patch("variables/name/nope", json={"value": 1}), 404)
    es.assert_error(await api.delete("variables/name/nope"), 404)
    es.assert_error(await api.get(f"variables/{missing}"), 404)
    es.assert_error(await api.get("variables/not-a-uuid"), 422)
    es.assert_error(await api.post("variables/filter", json={"sort": "SIDEWAYS"}), 422)
    es.assert_error(
        await api.post("variables/filter", json={"variables": {"id": {"any_": 3}}}), 422
    )

    # Artifacts.
    es.assert_error(await api.post("artifacts/", json={"key": "Not_A_Key"}), 422)
    es.assert_error(await api.post("artifacts/", json={"metadata_": {"k": 1}}), 422)
    es.assert_error(await api.patch(f"artifacts/{missing}", json={"data": 1}), 404)
    es.assert_error(await api.delete(f"artifacts/{missing}"), 404)
    es.assert_error(await api.get("artifacts/no-such-key/latest"), 404)

    # Blocks.
    block_type = {"name": "Thing", "slug": "thing"}
    created = await api.post("block_types/", json=block_type)
    assert created.status_code == 201, created.text
    type_id = created.json()["id"]
    es.assert_error(await api.post("block_types/", json=block_type), 409)
    es.assert_error(await api.post("block_types/", json={"name": "X", "slug": "Bad Slug"}), 422)
    es.assert_error(await api.get("block_types/slug/nope"), 404)
    es.assert_error(await api.patch(f"block_types/{missing}", json={"description": "d"}), 404)
    es.assert_error(
        await api.post("block_schemas/", json={"fields": {}, "block_type_id": missing}), 404
    )
    schema = await api.post(
        "block_schemas/", json={"fields": {"title": "T"}, "block_type_id": type_id}
    )
    assert schema.status_code == 201, schema.text
    same = await api.post(
        "block_schemas/", json={"fields": {"title": "T"}, "block_type_id": type_id}
    )
    assert (same.status_code, same.json()["id"]) == (200, schema.json()["id"])
    es.assert_error(await api.get("block_schemas/checksum/sha256:nope"), 404)
    document = {"name": "doc", "block_schema_id": schema.json()["id"], "block_type_id": type_id}
    assert (await api.post("block_documents/", json=document)).status_code == 201
    es.assert_error(await api.post("block_documents/", json=document), 409)
    es.assert_error(await api.post("block_documents/", json={**document, "name": None}), 422)
    es.assert_error(await api.post("block_documents/", json={**document, "name": "Bad_Name"}), 422)
    es.assert_error(
        await api.post(
            "block_documents/", json={**document, "name": "d2", "block_schema_id": missing}
        ),
        404,
    )
    dangling = {"x": {"$ref": {"block_document_id": missing}}}
    es.assert_error(
        await api.post("block_documents/", json={**document, "name": "d3", "data": dangling}), 404
    )
    es.assert_error(await api.get(f"block_documents/{missing}"), 404)
    es.assert_error(await api.patch(f"block_documents/{missing}", json={"data": {}}), 404)
    es.assert_error(await api.delete(f"block_documents/{missing}"), 404)
    es.assert_error(await api.get("block_types/slug/thing/block_documents/name/nope"), 404)
    malformed = await api.post(
        "block_documents/", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    es.assert_error(malformed, 422)


def test_default_result_storage(sqlite_server: RunningServer, tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    ran = script(sqlite_server, "result_storage.py", tmp_path, str(results))
    assert ran["initial"] is None
    status, detail = ran["refused"]
    assert status == 422 and "cannot be used for result storage" in detail
    assert ran["set"]
    # A flow that persists its result, with no storage of its own, used the server's.
    assert ran["result"] == 42
    assert ran["files"], "the result was not written to the server's default storage"
    assert ran["cleared"] is None
    assert ran["after_delete"] is None, "deleting the block it names unsets it"


async def test_default_result_storage_bad_input(api: httpx.AsyncClient) -> None:
    missing = str(uuid.uuid4())
    unknown = await api.put("admin/storage", json={"default_result_storage_block_id": missing})
    assert unknown.status_code == 404 and missing in unknown.json()["detail"]
    for body in ({}, {"default_result_storage_block_id": "nope"}, [1]):
        bad = await api.put("admin/storage", json=body)
        assert bad.status_code == 422 and bad.json()["detail"]
    assert (await api.delete("admin/storage")).status_code == 204
    assert (await api.get("admin/storage")).json() == {"default_result_storage_block_id": None}
