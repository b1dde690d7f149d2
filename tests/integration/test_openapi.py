"""The OpenAPI document builds and lists the routes the client uses."""

from __future__ import annotations

from pathlib import Path

from headrace.api.app import create_app
from headrace.server import Server
from headrace.settings import Settings


def test_openapi_document_lists_the_p0_routes(tmp_path: Path) -> None:
    app = create_app(Server(Settings(home=tmp_path)))
    paths = app.openapi()["paths"]
    for path in (
        "/api/health",
        "/api/admin/version",
        "/api/flows/",
        "/api/flow_runs/",
        "/api/flow_runs/{run_id}/set_state",
        "/api/task_runs/",
        "/api/logs/",
        "/api/events/filter",
        "/api/deployments/",
    ):
        assert path in paths, path
    assert app.openapi_url == "/api/openapi.json"
