"""Shared fixtures: throwaway Postgres databases and headrace server subprocesses."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_ADMIN_DSN = os.environ.get("HEADRACE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _missing(what: str) -> None:
    """Skip locally, fail in CI: a CI run must exercise every backend."""
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true")
    pytest.skip(f"{what} is not available")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def _psql(sql: str) -> None:
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty Postgres database for one test; dropped afterwards."""
    if not _pg_available():
        _missing("PostgreSQL on 127.0.0.1:5432")
    name = f"headrace_test_{uuid.uuid4().hex[:12]}"
    _psql(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class RunningServer:
    """A ``headrace server start`` subprocess."""

    home: Path
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    extra_args: list[str] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self, timeout: float = 90.0) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "headrace.cli",
                "server",
                "start",
                "--port",
                str(self.port),
                *self.extra_args,
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"headrace exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.api_url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"headrace did not become healthy:\n{self.log()}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait; returns the exit code."""
        assert self.process is not None
        self.process.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


def make_server(tmp_path: Path, database_url: str | None = None, **env: str) -> RunningServer:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("HEADRACE_", "PREFECT_"))}
    environ.update({"HEADRACE_HOME": str(home), "HEADRACE_LOG_LEVEL": "INFO", **env})
    if database_url:
        environ["HEADRACE_DATABASE_URL"] = database_url
    return RunningServer(home, free_port(), environ, tmp_path / "server.log")


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[RunningServer]:
    server = make_server(tmp_path)
    server.start()
    yield server
    if server.process and server.process.poll() is None:
        server.stop()


@pytest.fixture
def postgres_server(tmp_path: Path, pg_url: str) -> Iterator[RunningServer]:
    server = make_server(tmp_path, pg_url)
    server.start()
    yield server
    if server.process and server.process.poll() is None:
        server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def any_server(request: pytest.FixtureRequest) -> RunningServer:
    """The same test on both backends."""
    name = "sqlite_server" if request.param == "sqlite" else "postgres_server"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


def client_python() -> str:
    """The interpreter of the client venv (prefect==3.9.1), made by the Makefile."""
    path = os.environ.get("HEADRACE_CLIENT_PYTHON") or str(ROOT / ".venv-client" / "bin" / "python")
    if not Path(path).exists():
        _missing(f"the Prefect client venv ({path}); run `make client`")
    return path


def run_client(
    server: RunningServer, args: list[str], tmp_path: Path, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run the real Prefect client (a script or ``-m prefect ...``) against ``server``."""
    prefect_home = tmp_path / "prefect-home"
    prefect_home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "HEADRACE_"))}
    env.update(
        {
            "PREFECT_API_URL": server.api_url,
            "PREFECT_HOME": str(prefect_home),
            "PREFECT_LOGGING_LEVEL": "INFO",
            "PREFECT_CLI_PROMPT": "false",
            "COLUMNS": "250",
        }
    )
    return subprocess.run(
        [client_python(), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
    )


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> None:
    """Poll ``predicate`` every 0.3 s until it is truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")
