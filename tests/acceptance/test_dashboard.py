"""The dashboard's Celery pages in a real browser (headless system Chromium via Playwright).

``headrace server start`` runs with a Redis broker (its own database number);
Celery's own ``EventDispatcher`` publishes worker and task events, as workers do.
The pages must show them, filter them, show a task's every field, escape what
tasks carry, and show new events without a reload (the live feed). Stopping the
server with a page open must not wait on the page's stream.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer, _missing, make_server, wait_for
from tests.integration import celery_harness as h

pytestmark = pytest.mark.xdist_group("celery-broker")

CHROMIUM = "/usr/bin/chromium"
BROKER = "redis://127.0.0.1:6379/8"  # Redis prefixes pub/sub channels with the db number
DEADLINE_MS = 30_000  # generous: a shared 2-core machine
XSS = '<img src=x onerror="window.__xss=1">'


class Events:
    """Worker and task events, sent with Celery's own dispatcher (one per hostname)."""

    def __init__(self, url: str) -> None:
        from celery import Celery

        self.app = Celery("dashboard-test", broker=url, set_as_current=False)
        self.conn = self.app.connection_for_write()
        self.dispatchers: dict[str, Any] = {}

    def _send(self, hostname: str, kind: str, **fields: Any) -> None:
        if hostname not in self.dispatchers:
            self.dispatchers[hostname] = self.app.events.Dispatcher(
                self.conn, hostname=hostname, enabled=True
            )
        self.dispatchers[hostname].send(kind, **fields)

    def heartbeat(self, hostname: str) -> None:
        self._send(
            hostname,
            "worker-heartbeat",
            freq=60.0,
            active=1,
            processed=41,
            loadavg=[0.5, 0.25, 0.125],
            sw_ident="py-celery",
            sw_ver="5.4.0",
            sw_sys="Linux",
        )

    def task(self, hostname: str, name: str, args: str, outcome: str = "succeeded") -> str:
        task_id = f"{name.split('.')[-1]}-{uuid.uuid4().hex[:10]}"
        self._send(hostname, "task-received", uuid=task_id, name=name, args=args, kwargs="{'k': 1}")
        self._send(hostname, "task-started", uuid=task_id)
        if outcome == "succeeded":
            self._send(hostname, "task-succeeded", uuid=task_id, result="'done'", runtime=0.25)
        elif outcome == "failed":
            self._send(
                hostname,
                "task-failed",
                uuid=task_id,
                exception="ValueError('boom')",
                traceback='Traceback (most recent call last):\n  File "t.py"\nValueError: boom',
            )
        return task_id

    def close(self) -> None:
        for dispatcher in self.dispatchers.values():
            dispatcher.close()
        self.conn.release()


def _get(server: RunningServer, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{server.port}{path}", params=params, timeout=10)


def _stored(server: RunningServer, task_ids: list[str]) -> bool:
    tasks = _get(server, "/flower/api/tasks").json()
    return all(tasks.get(i, {}).get("state") in ("SUCCESS", "FAILURE") for i in task_ids)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """The system Chromium under Playwright (never a downloaded browser)."""
    if not Path(CHROMIUM).exists():
        _missing(f"Chromium at {CHROMIUM} (`make browser` installs it)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _missing("the playwright package (the dev extra)")
    expect.set_options(timeout=DEADLINE_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context()
    page = context.new_page()
    page.set_default_timeout(DEADLINE_MS)
    errors: list[Any] = []
    page.on("pageerror", lambda error: errors.append(error))
    yield page
    context.close()
    assert not errors, f"errors in the page's scripts: {errors}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Events]]:
    """A server monitoring the broker, once it surely listens (Redis events are pub/sub)."""
    h.require_broker(BROKER)
    server = make_server(tmp_path_factory.mktemp("dashboard"), HEADRACE_CELERY_BROKER_URL=BROKER)
    events = Events(BROKER)
    try:
        server.start()

        def listening() -> bool:
            events.heartbeat("w1@dash")
            return "w1@dash" in _get(server, "/flower/api/workers", status="true").json()

        wait_for(listening, 60, "the monitor to hear a heartbeat")
        yield server, events
    finally:
        events.close()
        if server.process and server.process.poll() is None:
            server.stop()


def _base(server: RunningServer) -> str:
    return f"http://127.0.0.1:{server.port}"


def _open_live(page: Any, url: str) -> None:
    """Open a page and wait until its live feed is connected."""
    from playwright.sync_api import expect

    page.goto(url)
    expect(page.locator("#live")).to_have_text("live")
    page.evaluate("window.__notReloaded = true")


def test_pages_show_workers_and_tasks(cluster: tuple[RunningServer, Events], page: Any) -> None:
    from playwright.sync_api import expect

    server, events = cluster
    ok = [events.task("w1@dash", "proj.add", f"({i}, 1)") for i in range(3)]
    failed = events.task("w1@dash", "proj.fail", "(7,)", outcome="failed")
    xss = events.task("w1@dash", "proj.echo", f"({XSS!r},)")
    wait_for(lambda: _stored(server, [*ok, failed, xss]), 60, "the tasks to be stored")
    base = _base(server)

    page.goto(f"{base}/ui/celery/workers")
    worker = page.locator('tr[data-worker="w1@dash"]')
    expect(worker).to_contain_text("online")
    expect(worker).to_contain_text("41")  # processed
    expect(worker).to_contain_text("0.50, 0.25, 0.13")  # load average

    page.goto(f"{base}/ui/celery/tasks")
    for task_id in [*ok, failed, xss]:
        expect(page.locator(f'tr[data-uuid="{task_id}"]')).to_be_visible()
    # Attacker-controlled args are shown as text, never as markup.
    expect(page.locator(f'tr[data-uuid="{xss}"]')).to_contain_text(XSS)
    assert page.locator("main img").count() == 0
    assert page.evaluate("window.__xss") is None

    page.select_option('select[name="state"]', "FAILURE")
    page.click('button[type="submit"]')
    page.wait_for_url("**/ui/celery/tasks?state=FAILURE*")
    expect(page.locator("#rows tr")).to_have_count(1)
    expect(page.locator(f'tr[data-uuid="{failed}"]')).to_contain_text("FAILURE")

    page.click(f'tr[data-uuid="{failed}"] a')
    page.wait_for_url(f"**/ui/celery/tasks/{failed}")
    expect(page.locator('dd[data-field="state"]')).to_have_text("FAILURE")
    expect(page.locator('dd[data-field="args"]')).to_have_text("(7,)")
    expect(page.locator('dd[data-field="kwargs"]')).to_have_text("{'k': 1}")
    expect(page.locator('dd[data-field="exception"]')).to_have_text("ValueError('boom')")
    expect(page.locator('dd[data-field="traceback"]')).to_contain_text("ValueError: boom")
    expect(page.locator('dd[data-field="worker"]')).to_have_text("w1@dash")

    page.goto(f"{base}/ui/celery/tasks/{ok[0]}")
    expect(page.locator('dd[data-field="result"]')).to_have_text("'done'")
    expect(page.locator('dd[data-field="runtime"]')).to_have_text("0.250 s")

    page.goto(f"{base}/ui/celery/tasks/{xss}")
    expect(page.locator('dd[data-field="args"]')).to_contain_text(XSS)
    assert page.locator("main img").count() == 0
    assert page.evaluate("window.__xss") is None

    missing = page.goto(f"{base}/ui/celery/tasks/no-such-task")
    assert missing is not None and missing.status == 404
    expect(page.locator("h1")).to_have_text("Task not found")


def test_new_events_appear_without_a_reload(
    cluster: tuple[RunningServer, Events], page: Any
) -> None:
    from playwright.sync_api import expect

    server, events = cluster
    base = _base(server)

    _open_live(page, f"{base}/ui/celery/tasks")
    fresh = events.task("w1@dash", "proj.later", "('live',)")
    expect(page.locator(f'tr[data-uuid="{fresh}"]')).to_contain_text("SUCCESS")
    assert page.evaluate("window.__notReloaded") is True

    _open_live(page, f"{base}/ui/celery/workers")
    events.heartbeat("w2@dash")
    expect(page.locator('tr[data-worker="w2@dash"]')).to_contain_text("online")
    assert page.evaluate("window.__notReloaded") is True


def test_bad_query_parameters_get_400(cluster: tuple[RunningServer, Events]) -> None:
    server, _ = cluster
    for params in ({"limit": "0"}, {"limit": "x"}, {"sort_by": "nope"}, {"search": "("}):
        response = _get(server, "/ui/api/celery/tasks", **params)
        assert response.status_code == 400, (params, response.text)
        assert response.json()["detail"]
    assert _get(server, "/ui/api/celery/tasks/no-such-task").status_code == 404


def test_stopping_with_a_page_open(tmp_path: Path, page: Any) -> None:
    """The open stream ends on SIGTERM: uvicorn need not wait out its timeout for it."""
    server = make_server(tmp_path)
    server.start()
    try:
        _open_live(page, f"{_base(server)}/ui/celery/tasks")
        assert server.stop() == 0
        assert "timeout graceful shutdown exceeded" not in server.log()
    finally:
        if server.process and server.process.poll() is None:
            server.stop()
