"""``headrace`` command line: server start, services start/ls, db upgrade/reset, version."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from headrace import PREFECT_COMPAT_VERSION, __version__
from headrace.errors import ConfigError
from headrace.settings import Settings, from_env

if TYPE_CHECKING:
    from headrace.server import Server

logger = logging.getLogger("headrace")


def _settings(**overrides: object) -> Settings:
    try:
        settings = from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    changes = {k: v for k, v in overrides.items() if v is not None}
    return settings.replace(**changes) if changes else settings


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Alembic narrates every plugin it loads at INFO; keep start-up to our own lines.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLevelName(level)))


@click.group()
def main() -> None:
    """headrace: a light orchestration server for the Prefect 3 client."""


@main.command()
def version() -> None:
    """Print headrace's version and the Prefect API version it speaks."""
    click.echo(f"headrace {__version__} (Prefect API {PREFECT_COMPAT_VERSION})")


@main.group()
def server() -> None:
    """Run the API server."""


@server.command("start")
@click.option("--host", default=None, help="Interface to bind (default 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default 4200).")
@click.option("--no-services", is_flag=True, help="Serve the API only; run no services.")
def server_start(host: str | None, port: int | None, no_services: bool) -> None:
    """Apply migrations, then serve the API (and the services) until SIGINT/SIGTERM."""
    settings = _settings(host=host, port=port, services=False if no_services else None)
    _configure_logging(settings.log_level)
    asyncio.run(_serve(settings))


async def _migrate_if_behind(settings: Settings) -> None:
    """Apply pending migrations, in a child process so Alembic stays out of this one."""
    from headrace.storage import migrate
    from headrace.storage.db import Database

    migrations_db = Database(settings, component="migrate")
    try:
        pending = await migrate.current_revision(migrations_db) != migrate.head_revision()
    finally:
        await migrations_db.dispose()
    if pending:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "headrace.cli", "db", "upgrade"
        )
        if await child.wait() != 0:
            raise click.ClickException("database migration failed; see the log above")


def _server(settings: Settings, api: bool, services: list[str] | None) -> Server:
    from headrace.server import Server

    try:
        return Server(settings, api=api, services=services)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


async def _serve(settings: Settings) -> None:
    import uvicorn

    from headrace.api.app import create_app
    from headrace.events.durable_ws import DurableAckWSProtocol

    await _migrate_if_behind(settings)
    server = _server(settings, api=True, services=None if settings.services else [])
    app = create_app(server)
    server_class = _server_class()
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ws=DurableAckWSProtocol,
        ws_max_size=settings.max_event_bytes,
        # Events are small JSON; compressing them costs both sides more CPU than
        # it saves on loopback and LAN links.
        ws_per_message_deflate=False,
        ws_ping_interval=None,
        lifespan="on",
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_timeout),
    )
    logger.info(
        "headrace %s serving http://%s:%d/api (database: %s, services: %s)",
        __version__,
        settings.host,
        settings.port,
        "sqlite" if settings.is_sqlite else "postgresql",
        "on" if settings.services else "off",
    )
    uvicorn_server = server_class(config)
    uvicorn_server.on_exit = app.state.close_streams
    await uvicorn_server.serve()


def _server_class() -> type:
    import uvicorn

    class QuietExitServer(uvicorn.Server):
        """uvicorn, adjusted for an idle-friendly, clean-exit server.

        uvicorn re-raises SIGTERM/SIGINT after a graceful shutdown, so the process
        would die by the signal (-15); headrace has shut down cleanly by then and
        exits 0. uvicorn also wakes ten times a second to look for a pending exit;
        here the exit signal wakes the main loop, which otherwise ticks once a
        second (to keep the Date header current). ``on_exit`` (if set) is called
        on the exit signal: it ends long-lived responses (the dashboard's live
        streams), which uvicorn would otherwise wait for until its timeout.
        """

        on_exit: Callable[[], None] | None = None

        async def main_loop(self) -> None:
            self._exit_requested = asyncio.Event()
            counter = 0
            should_exit = await self.on_tick(counter)
            while not should_exit:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._exit_requested.wait(), 1.0)
                counter = (counter + 10) % 864000  # on_tick acts on multiples of 10
                should_exit = await self.on_tick(counter)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            if self.on_exit is not None:
                self.on_exit()
            exit_requested = getattr(self, "_exit_requested", None)
            if exit_requested is not None:
                exit_requested.set()

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.handle_exit, sig, None)
            try:
                yield
            finally:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)

    return QuietExitServer


@main.group()
def services() -> None:
    """Run or list the singleton services (scheduler, late runs, ...)."""


@services.command("start")
@click.option(
    "--only",
    "only",
    multiple=True,
    metavar="NAME",
    help="Run only this service (repeatable; default: all). See `headrace services ls`.",
)
def services_start(only: tuple[str, ...]) -> None:
    """Run services without the API, until SIGINT/SIGTERM.

    Several such processes (and API processes) may share one Postgres database:
    each singleton service runs in one process at a time, and moves to another
    when its lease lapses.
    """
    from headrace.server import SERVICES

    unknown = sorted(set(only) - set(SERVICES))
    if unknown:
        raise click.BadParameter(
            f"unknown service(s) {', '.join(unknown)}; known: {', '.join(SERVICES)}",
            param_hint="--only",
        )
    settings = _settings()
    _configure_logging(settings.log_level)
    asyncio.run(_run_services(settings, list(only) or None))


async def _run_services(settings: Settings, only: list[str] | None) -> None:
    await _migrate_if_behind(settings)
    server = _server(settings, api=False, services=only)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    logger.info(
        "headrace %s running services %s (database: %s)",
        __version__,
        ", ".join(only or server.singletons),
        "sqlite" if settings.is_sqlite else "postgresql",
    )
    await stop.wait()
    logger.info("stopping services")
    await server.stop()


@services.command("ls")
def services_ls() -> None:
    """List the services and which process holds each one's lease now."""
    from headrace.server import SERVICES

    settings = _settings()
    leases = asyncio.run(_read_leases(settings))
    now = datetime.now(UTC)
    click.echo(f"{'SERVICE':<22} {'HELD BY':<40} {'LEASE':<14} DESCRIPTION")
    for name, description in SERVICES.items():
        lease = leases.get(name)
        if lease is None or lease.expires <= now:
            holder, until = "-", "-"
        else:
            holder, until = lease.holder, f"{(lease.expires - now).total_seconds():.0f}s left"
        click.echo(f"{name:<22} {holder:<40} {until:<14} {description}")


async def _read_leases(settings: Settings) -> dict[str, Any]:
    from headrace.storage import service_leases
    from headrace.storage.db import Database

    database = Database(settings, component="cli")
    try:
        async with database.read() as conn:
            return {lease.name: lease for lease in await service_leases.read(conn)}
    except Exception as exc:
        logger.debug("cannot read service leases: %s", exc)
        return {}
    finally:
        await database.dispose()


@main.group()
def db() -> None:
    """Manage the database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    settings = _settings()
    _configure_logging(settings.log_level)
    asyncio.run(_migrate(settings, reset=False))
    click.echo("database is up to date")


@db.command("reset")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def db_reset(yes: bool) -> None:
    """Drop all headrace data and recreate the schema."""
    settings = _settings()
    if not yes:
        click.confirm(f"Erase every headrace table in {settings.database_url}?", abort=True)
    _configure_logging(settings.log_level)
    asyncio.run(_migrate(settings, reset=True))
    click.echo("database was reset")


async def _migrate(settings: Settings, reset: bool) -> None:
    from headrace.storage import migrate
    from headrace.storage.db import Database

    database = Database(settings, component="migrate")
    try:
        await (migrate.reset(database) if reset else migrate.upgrade(database))
    finally:
        await database.dispose()


@main.group()
def celery() -> None:
    """Monitor a Celery cluster (Flower's job, on headrace's database)."""


@celery.command("monitor")
@click.option(
    "--broker",
    default=None,
    metavar="URL",
    help="Celery broker, redis://… or amqp://… (default: HEADRACE_CELERY_BROKER_URL).",
)
def celery_monitor(broker: str | None) -> None:
    """Run only the Celery monitor, without the API, until SIGINT/SIGTERM.

    It writes to the database the API processes read (``/flower/...``); like the
    other singleton services it runs in one process at a time.
    """
    from headrace.settings import ENV

    settings = _settings()
    if broker is not None:
        try:
            ENV["HEADRACE_CELERY_BROKER_URL"][1](broker)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--broker") from None
        settings = settings.replace(celery_broker_url=broker)
    if not settings.celery_broker_url:
        raise click.UsageError("give --broker URL or set HEADRACE_CELERY_BROKER_URL")
    _configure_logging(settings.log_level)
    asyncio.run(_run_services(settings, ["celery-monitor"]))


if __name__ == "__main__":  # pragma: no cover
    main()
