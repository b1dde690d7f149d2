"""One frozen settings object, read from ``HEADRACE_*`` environment variables at the edge."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headrace.errors import ConfigError

LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


@dataclass(frozen=True)
class Settings:
    """Everything configurable about one headrace process.

    Attributes mirror the environment variables in ``ENV`` (see ``from_env``).
    """

    home: Path = field(default_factory=lambda: Path("~/.headrace").expanduser())
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 4200
    log_level: str = "INFO"
    services: bool = True
    events_retention_days: float = 7.0
    logs_retention_days: float = 7.0
    retention_chunk: int = 5000
    events_queue_size: int = 10_000
    events_batch_size: int = 1000
    events_flush_ms: float = 5.0
    events_backfill_minutes: float = 15.0
    max_body_bytes: int = 16 * 1024 * 1024
    max_event_bytes: int = 1024 * 1024
    db_pool_size: int = 10
    pg_statement_timeout_ms: int = 30_000
    pg_idle_in_transaction_timeout_ms: int = 10_000
    shutdown_timeout: float = 10.0
    scheduler_horizon_seconds: float = 600.0
    scheduler_min_runs: int = 3
    late_runs_after_seconds: float = 15.0
    cancelling_timeout_seconds: float = 300.0
    services_fallback_seconds: float = 300.0
    service_lease_seconds: float = 30.0
    task_run_lease_seconds: float = 30.0
    task_run_recheck_seconds: float = 120.0
    task_worker_silence_seconds: float = 60.0
    celery_broker_url: str = ""
    celery_event_queue: str = "headrace.celeryev"
    celery_enable_events: bool = True
    celery_reconnect_max_seconds: float = 60.0
    celery_queue_size: int = 50_000
    celery_max_field_bytes: int = 65_536
    celery_retention_days: float = 7.0
    flower_auth: str = field(default="", repr=False)  # holds passwords

    def __post_init__(self) -> None:
        if not self.database_url:
            db_file = self.home / "headrace.db"
            object.__setattr__(self, "database_url", f"sqlite+aiosqlite:///{db_file}")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with ``changes`` applied (used by CLI flags)."""
        return dataclasses.replace(self, **changes)


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("must be a positive integer")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not (number > 0 and math.isfinite(number)):
        raise ValueError("must be a positive, finite number")
    return number


def _port(value: str) -> int:
    number = int(value)
    if not 0 < number < 65536:
        raise ValueError("must be a TCP port between 1 and 65535")
    return number


def _log_level(value: str) -> str:
    level = value.upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
    return level


def _database_url(value: str) -> str:
    if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
    return value


def _celery_broker_url(value: str) -> str:
    scheme = value.split("://", 1)[0].lower() if "://" in value else ""
    if scheme not in ("redis", "rediss", "amqp", "amqps", "pyamqp"):
        raise ValueError("must be a redis://, rediss://, amqp:// or amqps:// broker URL")
    return value


def _basic_credentials(value: str) -> str:
    # Flower's --basic-auth format: ``user:password``, several separated by commas.
    for pair in value.split(","):
        user, sep, password = pair.partition(":")
        if not (user and sep and password):
            raise ValueError("must be user:password (several separated by commas)")
    return value


def _name(value: str) -> str:
    if not value or len(value) > 255:
        raise ValueError("must be 1 to 255 characters")
    return value


def _boolean(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _path(value: str) -> Path:
    if not value:
        raise ValueError("must not be empty")
    try:
        return Path(value).expanduser()
    except RuntimeError as exc:  # "~user" naming an unknown user
        raise ValueError(str(exc)) from None


# environment variable -> (field, parser)
ENV: dict[str, tuple[str, Callable[[str], Any]]] = {
    "HEADRACE_HOME": ("home", _path),
    "HEADRACE_DATABASE_URL": ("database_url", _database_url),
    "HEADRACE_HOST": ("host", str),
    "HEADRACE_PORT": ("port", _port),
    "HEADRACE_LOG_LEVEL": ("log_level", _log_level),
    "HEADRACE_EVENTS_RETENTION_DAYS": ("events_retention_days", _positive_float),
    "HEADRACE_LOGS_RETENTION_DAYS": ("logs_retention_days", _positive_float),
    "HEADRACE_RETENTION_CHUNK": ("retention_chunk", _positive_int),
    "HEADRACE_EVENTS_QUEUE_SIZE": ("events_queue_size", _positive_int),
    "HEADRACE_EVENTS_BATCH_SIZE": ("events_batch_size", _positive_int),
    "HEADRACE_EVENTS_FLUSH_MS": ("events_flush_ms", _positive_float),
    "HEADRACE_EVENTS_BACKFILL_MINUTES": ("events_backfill_minutes", _positive_float),
    "HEADRACE_MAX_BODY_BYTES": ("max_body_bytes", _positive_int),
    "HEADRACE_MAX_EVENT_BYTES": ("max_event_bytes", _positive_int),
    "HEADRACE_DB_POOL_SIZE": ("db_pool_size", _positive_int),
    "HEADRACE_PG_STATEMENT_TIMEOUT_MS": ("pg_statement_timeout_ms", _positive_int),
    "HEADRACE_PG_IDLE_IN_TRANSACTION_TIMEOUT_MS": (
        "pg_idle_in_transaction_timeout_ms",
        _positive_int,
    ),
    "HEADRACE_SHUTDOWN_TIMEOUT": ("shutdown_timeout", _positive_float),
    "HEADRACE_SCHEDULER_HORIZON_SECONDS": ("scheduler_horizon_seconds", _positive_float),
    "HEADRACE_SCHEDULER_MIN_RUNS": ("scheduler_min_runs", _positive_int),
    "HEADRACE_LATE_RUNS_AFTER_SECONDS": ("late_runs_after_seconds", _positive_float),
    "HEADRACE_CANCELLING_TIMEOUT_SECONDS": ("cancelling_timeout_seconds", _positive_float),
    "HEADRACE_SERVICES_FALLBACK_SECONDS": ("services_fallback_seconds", _positive_float),
    "HEADRACE_SERVICE_LEASE_SECONDS": ("service_lease_seconds", _positive_float),
    "HEADRACE_TASK_RUN_LEASE_SECONDS": ("task_run_lease_seconds", _positive_float),
    "HEADRACE_TASK_RUN_RECHECK_SECONDS": ("task_run_recheck_seconds", _positive_float),
    "HEADRACE_TASK_WORKER_SILENCE_SECONDS": ("task_worker_silence_seconds", _positive_float),
    "HEADRACE_CELERY_BROKER_URL": ("celery_broker_url", _celery_broker_url),
    "HEADRACE_CELERY_EVENT_QUEUE": ("celery_event_queue", _name),
    "HEADRACE_CELERY_ENABLE_EVENTS": ("celery_enable_events", _boolean),
    "HEADRACE_CELERY_RECONNECT_MAX_SECONDS": ("celery_reconnect_max_seconds", _positive_float),
    "HEADRACE_CELERY_QUEUE_SIZE": ("celery_queue_size", _positive_int),
    "HEADRACE_CELERY_MAX_FIELD_BYTES": ("celery_max_field_bytes", _positive_int),
    "HEADRACE_CELERY_RETENTION_DAYS": ("celery_retention_days", _positive_float),
    "HEADRACE_FLOWER_AUTH": ("flower_auth", _basic_credentials),
}

_SECRETS = frozenset({"HEADRACE_FLOWER_AUTH"})  # never echoed in an error


def from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from ``HEADRACE_*`` variables.

    Args:
        environ: the environment to read; ``os.environ`` when omitted.

    Raises:
        ConfigError: naming the first variable whose value is invalid.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, (attr, parse) in ENV.items():
        raw = environ.get(name)
        if raw is None or raw == "":
            continue
        try:
            values[attr] = parse(raw.strip())
        except ValueError as exc:
            shown = "<hidden>" if name in _SECRETS else repr(raw)
            raise ConfigError(f"{name}={shown} is invalid: {exc}") from None
    return Settings(**values)
