"""Flower's control API refuses what it must, before any broker is asked.

* No ``HEADRACE_FLOWER_AUTH``: 403 with a detail naming the setting (the read
  API stays open). With it: 401 and ``WWW-Authenticate`` for missing or wrong
  credentials.
* No broker configured: 503. An unreachable broker: 503, no hang.
* Bad parameters: 400 with a detail saying what is wrong. An unknown worker: 404.

The broker URL here points at a closed port: nothing in this module needs one.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from tests import conftest

from headrace.api.app import create_app
from headrace.celery_monitor.fold import WorkerRow
from headrace.server import Server
from headrace.settings import Settings
from headrace.storage import celery_workers, migrate

AUTH = ("ops", "s3cret")
WORKER = "known@host"


@asynccontextmanager
async def api(tmp_path: Path, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app on a migrated SQLite database holding one known worker."""
    settings = Settings(
        home=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'c.db'}", **overrides
    )
    server = Server(settings, api=True, services=[])
    await migrate.upgrade(server.db)
    async with server.db.write() as conn:
        await celery_workers.upsert_workers(conn, [WorkerRow(hostname=WORKER)])
    transport = httpx.ASGITransport(app=create_app(server))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client
    finally:
        await server.db.dispose()


def closed_broker() -> str:
    return f"redis://127.0.0.1:{conftest.free_port()}/0"


async def test_refused_without_the_auth_setting(tmp_path: Path) -> None:
    async with api(tmp_path, celery_broker_url=closed_broker()) as client:
        for path in (f"/worker/shutdown/{WORKER}", "/task/revoke/abc"):
            response = await client.post(f"/flower/api{path}", auth=AUTH)
            assert response.status_code == 403, response.text
            assert "HEADRACE_FLOWER_AUTH" in response.json()["detail"]
        # The read API stays open, as before.
        assert (await client.get("/flower/api/workers")).status_code == 200


WRONG_CREDENTIALS = {
    "none": {},
    "wrong-password": {"Authorization": "Basic " + base64.b64encode(b"ops:wrong").decode()},
    "no-password": {"Authorization": "Basic " + base64.b64encode(b"ops").decode()},
    "garbled": {"Authorization": "Basic not-base64!"},
    "bearer": {"Authorization": "Bearer s3cret"},
}


async def test_wrong_credentials_get_401(tmp_path: Path) -> None:
    async with api(tmp_path, celery_broker_url=closed_broker(), flower_auth="ops:s3cret") as client:
        for case, headers in WRONG_CREDENTIALS.items():
            response = await client.post(f"/flower/api/worker/shutdown/{WORKER}", headers=headers)
            assert response.status_code == 401, (case, response.text)
            assert response.headers["www-authenticate"].startswith("Basic"), case
            assert "credentials" in response.json()["detail"], case


async def test_any_of_several_credentials_is_accepted(tmp_path: Path) -> None:
    async with api(tmp_path, flower_auth="admin:one,ops:s3cret") as client:
        # Past authentication: no broker is configured.
        response = await client.post("/flower/api/task/revoke/abc", auth=AUTH)
        assert response.status_code == 503
        assert "HEADRACE_CELERY_BROKER_URL" in response.json()["detail"]


async def test_unreachable_broker_is_503(tmp_path: Path) -> None:
    async with api(tmp_path, celery_broker_url=closed_broker(), flower_auth="ops:s3cret") as client:
        for path in (f"/worker/pool/grow/{WORKER}", "/task/revoke/abc"):
            response = await client.post(f"/flower/api{path}", auth=AUTH)
            assert response.status_code == 503, response.text
            assert response.json()["detail"].startswith("Broker unavailable")


BAD_PARAMETERS = [
    (f"/worker/pool/grow/{WORKER}", {"n": "many"}, "Invalid argument 'many' of type 'int'"),
    (f"/worker/pool/shrink/{WORKER}", {"n": "0"}, "n must be an integer of at least 1"),
    (f"/worker/pool/autoscale/{WORKER}", {"max": "3"}, "Missing argument min"),
    (f"/worker/pool/autoscale/{WORKER}", {"min": "5", "max": "3"}, "must not exceed max"),
    (f"/worker/queue/add-consumer/{WORKER}", {}, "Missing argument queue"),
    (f"/worker/queue/cancel-consumer/{WORKER}", {"queue": " "}, "Missing argument queue"),
    ("/task/revoke/abc", {"terminate": "maybe"}, "Invalid argument 'maybe' of type 'bool'"),
    ("/task/revoke/abc", {"terminate": "1", "signal": "SIGNOPE"}, "Unknown signal 'SIGNOPE'"),
    ("/task/revoke/%20", {}, "Missing task id in the path"),
    ("/task/rate-limit/tiny.add", {"ratelimit": "5/s"}, "Missing argument workername"),
    ("/task/rate-limit/tiny.add", {"workername": WORKER}, "Missing argument ratelimit"),
    (
        "/task/rate-limit/tiny.add",
        {"workername": WORKER, "ratelimit": "fast"},
        "Invalid rate limit 'fast'",
    ),
    (
        "/task/timeout/tiny.add",
        {"workername": WORKER, "soft": "-1"},
        "soft must be a positive number",
    ),
    (
        "/task/timeout/tiny.add",
        {"workername": WORKER, "soft": "9", "hard": "3"},
        "soft (9) must not exceed hard (3)",
    ),
]


async def test_bad_parameters_get_400(tmp_path: Path) -> None:
    async with api(tmp_path, celery_broker_url=closed_broker(), flower_auth="ops:s3cret") as client:
        for path, params, detail in BAD_PARAMETERS:
            for how in ("params", "data"):  # the query string or a urlencoded form body
                response = await client.post(f"/flower/api{path}", auth=AUTH, **{how: params})
                assert response.status_code == 400, (path, params, response.text)
                assert detail in response.json()["detail"], (path, params)


async def test_bodies_that_are_not_forms_get_400(tmp_path: Path) -> None:
    async with api(tmp_path, celery_broker_url=closed_broker(), flower_auth="ops:s3cret") as client:
        url = f"/flower/api/worker/queue/add-consumer/{WORKER}"
        response = await client.post(url, auth=AUTH, json={"queue": "q"})
        assert response.status_code == 400
        assert "x-www-form-urlencoded" in response.json()["detail"]
        response = await client.post(
            url,
            auth=AUTH,
            content=b"queue=%ff",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 400
        assert "urlencoded UTF-8" in response.json()["detail"]


async def test_unknown_worker_is_404(tmp_path: Path) -> None:
    async with api(tmp_path, celery_broker_url=closed_broker(), flower_auth="ops:s3cret") as client:
        for path, params in (
            ("/worker/shutdown/nobody@host", {}),
            ("/worker/pool/grow/nobody@host", {"n": "2"}),
            ("/worker/queue/add-consumer/nobody@host", {"queue": "q"}),
            ("/task/rate-limit/tiny.add", {"workername": "nobody@host", "ratelimit": "1/s"}),
            ("/task/timeout/tiny.add", {"workername": "nobody@host", "soft": "1"}),
        ):
            response = await client.post(f"/flower/api{path}", auth=AUTH, data=params)
            assert response.status_code == 404, (path, response.text)
            assert response.json() == {"detail": "Unknown worker 'nobody@host'"}
