"""``headrace.settings``: defaults, every ``HEADRACE_*`` variable, and invalid values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from headrace.errors import ConfigError
from headrace.settings import ENV, Settings, from_env


def test_defaults() -> None:
    settings = from_env({})

    home = Path("~/.headrace").expanduser()
    assert settings == Settings()
    assert settings.home == home
    assert settings.database_url == f"sqlite+aiosqlite:///{home / 'headrace.db'}"
    assert settings.is_sqlite
    assert (settings.host, settings.port, settings.log_level) == ("127.0.0.1", 4200, "INFO")
    assert settings.services is True
    assert settings.events_retention_days == 7.0
    assert settings.logs_retention_days == 7.0
    assert settings.retention_chunk == 5000
    assert settings.events_queue_size == 10_000
    assert settings.events_batch_size == 1000
    assert settings.events_flush_ms == 5.0
    assert settings.events_backfill_minutes == 15.0
    assert settings.max_body_bytes == 16 * 1024 * 1024
    assert settings.max_event_bytes == 1024 * 1024
    assert settings.db_pool_size == 10
    assert settings.pg_statement_timeout_ms == 30_000
    assert settings.pg_idle_in_transaction_timeout_ms == 10_000
    assert settings.shutdown_timeout == 10.0
    assert settings.late_runs_after_seconds == 15.0
    assert settings.cancelling_timeout_seconds == 300.0
    assert settings.services_fallback_seconds == 300.0
    assert settings.service_lease_seconds == 30.0
    assert settings.celery_broker_url == ""
    assert settings.celery_event_queue == "headrace.celeryev"
    assert settings.celery_enable_events is True
    assert settings.celery_reconnect_max_seconds == 60.0
    assert settings.celery_queue_size == 50_000
    assert settings.celery_max_field_bytes == 65_536
    assert settings.celery_retention_days == 7.0


def test_sqlite_file_follows_home(tmp_path: Path) -> None:
    settings = from_env({"HEADRACE_HOME": str(tmp_path)})

    assert settings.home == tmp_path
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'headrace.db'}"


def test_explicit_database_url_wins_over_home(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://u@db:5432/x"
    settings = from_env({"HEADRACE_HOME": str(tmp_path), "HEADRACE_DATABASE_URL": url})

    assert settings.database_url == url
    assert not settings.is_sqlite


# variable -> (raw value, expected attribute value)
VALID: dict[str, tuple[str, Any]] = {
    "HEADRACE_HOME": ("/srv/headrace", Path("/srv/headrace")),
    "HEADRACE_DATABASE_URL": (
        "postgresql+asyncpg://postgres@127.0.0.1:5432/hr",
        "postgresql+asyncpg://postgres@127.0.0.1:5432/hr",
    ),
    "HEADRACE_HOST": ("0.0.0.0", "0.0.0.0"),
    "HEADRACE_PORT": ("8080", 8080),
    "HEADRACE_LOG_LEVEL": ("debug", "DEBUG"),
    "HEADRACE_EVENTS_RETENTION_DAYS": ("1.5", 1.5),
    "HEADRACE_LOGS_RETENTION_DAYS": ("30", 30.0),
    "HEADRACE_RETENTION_CHUNK": ("100", 100),
    "HEADRACE_EVENTS_QUEUE_SIZE": ("500", 500),
    "HEADRACE_EVENTS_BATCH_SIZE": ("50", 50),
    "HEADRACE_EVENTS_FLUSH_MS": ("0.5", 0.5),
    "HEADRACE_EVENTS_BACKFILL_MINUTES": ("60", 60.0),
    "HEADRACE_MAX_BODY_BYTES": ("1048576", 1048576),
    "HEADRACE_MAX_EVENT_BYTES": ("2048", 2048),
    "HEADRACE_DB_POOL_SIZE": ("3", 3),
    "HEADRACE_PG_STATEMENT_TIMEOUT_MS": ("1500", 1500),
    "HEADRACE_PG_IDLE_IN_TRANSACTION_TIMEOUT_MS": ("2500", 2500),
    "HEADRACE_SHUTDOWN_TIMEOUT": ("2.5", 2.5),
    "HEADRACE_SCHEDULER_HORIZON_SECONDS": ("120", 120.0),
    "HEADRACE_SCHEDULER_MIN_RUNS": ("5", 5),
    "HEADRACE_LATE_RUNS_AFTER_SECONDS": ("30", 30.0),
    "HEADRACE_CANCELLING_TIMEOUT_SECONDS": ("60.5", 60.5),
    "HEADRACE_SERVICES_FALLBACK_SECONDS": ("600", 600.0),
    "HEADRACE_SERVICE_LEASE_SECONDS": ("5", 5.0),
    "HEADRACE_TASK_RUN_LEASE_SECONDS": ("12", 12.0),
    "HEADRACE_TASK_RUN_RECHECK_SECONDS": ("90", 90.0),
    "HEADRACE_TASK_WORKER_SILENCE_SECONDS": ("45", 45.0),
    "HEADRACE_CELERY_BROKER_URL": ("redis://127.0.0.1:6379/7", "redis://127.0.0.1:6379/7"),
    "HEADRACE_CELERY_EVENT_QUEUE": ("mon.events", "mon.events"),
    "HEADRACE_CELERY_ENABLE_EVENTS": ("false", False),
    "HEADRACE_CELERY_RECONNECT_MAX_SECONDS": ("5", 5.0),
    "HEADRACE_CELERY_QUEUE_SIZE": ("2000", 2000),
    "HEADRACE_CELERY_MAX_FIELD_BYTES": ("1024", 1024),
    "HEADRACE_CELERY_RETENTION_DAYS": ("0.5", 0.5),
    "HEADRACE_FLOWER_AUTH": ("ops:s3cret,admin:p:w", "ops:s3cret,admin:p:w"),
}


def test_every_variable_has_a_valid_case() -> None:
    assert set(VALID) == set(ENV)


@pytest.mark.parametrize(("name", "raw", "expected"), [(k, *v) for k, v in VALID.items()])
def test_each_variable_is_parsed(name: str, raw: str, expected: Any) -> None:
    settings = from_env({name: raw})

    attr = ENV[name][0]
    assert getattr(settings, attr) == expected
    assert type(getattr(settings, attr)) is type(expected)
    # Nothing else moved.
    others = {f: v for f, v in vars(Settings()).items() if f not in (attr, "database_url")}
    assert {f: getattr(settings, f) for f in others} == others


def test_all_variables_together() -> None:
    settings = from_env({name: raw for name, (raw, _) in VALID.items()})

    for name, (_, expected) in VALID.items():
        assert getattr(settings, ENV[name][0]) == expected, name


def test_surrounding_whitespace_is_ignored() -> None:
    settings = from_env({"HEADRACE_PORT": " 9000\n", "HEADRACE_LOG_LEVEL": " warning "})

    assert settings.port == 9000
    assert settings.log_level == "WARNING"


def test_empty_value_means_default() -> None:
    assert from_env({"HEADRACE_PORT": "", "HEADRACE_LOG_LEVEL": ""}) == Settings()


def test_home_expands_user() -> None:
    assert from_env({"HEADRACE_HOME": "~/hr"}).home == Path("~/hr").expanduser()


def test_unrelated_variables_are_ignored() -> None:
    assert from_env({"HEADRACE_NOPE": "x", "PREFECT_API_URL": "http://x"}) == Settings()


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HEADRACE_PORT", "4321")

    assert from_env().port == 4321


def test_replace_returns_a_changed_copy() -> None:
    base = Settings()

    changed = base.replace(port=1234)

    assert changed.port == 1234
    assert base.port == 4200


INVALID: list[tuple[str, str]] = [
    ("HEADRACE_HOME", "   "),
    ("HEADRACE_HOME", "~no-such-user-headrace/x"),
    ("HEADRACE_DATABASE_URL", "mysql://root@localhost/hr"),
    ("HEADRACE_DATABASE_URL", "sqlite:///plain-driver.db"),
    ("HEADRACE_DATABASE_URL", "postgresql://postgres@localhost/hr"),
    ("HEADRACE_PORT", "http"),
    ("HEADRACE_PORT", "0"),
    ("HEADRACE_PORT", "65536"),
    ("HEADRACE_PORT", "-1"),
    ("HEADRACE_PORT", "80.5"),
    ("HEADRACE_LOG_LEVEL", "LOUD"),
    ("HEADRACE_LOG_LEVEL", "TRACE"),
    ("HEADRACE_EVENTS_RETENTION_DAYS", "0"),
    ("HEADRACE_EVENTS_RETENTION_DAYS", "-1"),
    ("HEADRACE_EVENTS_RETENTION_DAYS", "nan"),
    ("HEADRACE_EVENTS_RETENTION_DAYS", "inf"),
    ("HEADRACE_EVENTS_RETENTION_DAYS", "week"),
    ("HEADRACE_LOGS_RETENTION_DAYS", "0"),
    ("HEADRACE_LOGS_RETENTION_DAYS", "inf"),
    ("HEADRACE_RETENTION_CHUNK", "0"),
    ("HEADRACE_RETENTION_CHUNK", "1.5"),
    ("HEADRACE_EVENTS_QUEUE_SIZE", "-10"),
    ("HEADRACE_EVENTS_QUEUE_SIZE", "many"),
    ("HEADRACE_EVENTS_BATCH_SIZE", "0"),
    ("HEADRACE_EVENTS_FLUSH_MS", "0"),
    ("HEADRACE_EVENTS_FLUSH_MS", "-5"),
    ("HEADRACE_EVENTS_BACKFILL_MINUTES", "0"),
    ("HEADRACE_EVENTS_BACKFILL_MINUTES", "soon"),
    ("HEADRACE_MAX_BODY_BYTES", "0"),
    ("HEADRACE_MAX_BODY_BYTES", "16MB"),
    ("HEADRACE_MAX_EVENT_BYTES", "-1"),
    ("HEADRACE_DB_POOL_SIZE", "0"),
    ("HEADRACE_DB_POOL_SIZE", "ten"),
    ("HEADRACE_PG_STATEMENT_TIMEOUT_MS", "0"),
    ("HEADRACE_PG_STATEMENT_TIMEOUT_MS", "30s"),
    ("HEADRACE_PG_IDLE_IN_TRANSACTION_TIMEOUT_MS", "-1"),
    ("HEADRACE_SHUTDOWN_TIMEOUT", "0"),
    ("HEADRACE_SCHEDULER_HORIZON_SECONDS", "-1"),
    ("HEADRACE_SCHEDULER_MIN_RUNS", "0"),
    ("HEADRACE_LATE_RUNS_AFTER_SECONDS", "0"),
    ("HEADRACE_LATE_RUNS_AFTER_SECONDS", "15s"),
    ("HEADRACE_CANCELLING_TIMEOUT_SECONDS", "-1"),
    ("HEADRACE_SERVICES_FALLBACK_SECONDS", "inf"),
    ("HEADRACE_SERVICE_LEASE_SECONDS", "0"),
    ("HEADRACE_TASK_RUN_LEASE_SECONDS", "-1"),
    ("HEADRACE_TASK_RUN_RECHECK_SECONDS", "nan"),
    ("HEADRACE_TASK_WORKER_SILENCE_SECONDS", "0"),
    ("HEADRACE_SHUTDOWN_TIMEOUT", "inf"),
    ("HEADRACE_SHUTDOWN_TIMEOUT", "forever"),
    ("HEADRACE_CELERY_BROKER_URL", "http://127.0.0.1:6379"),
    ("HEADRACE_CELERY_BROKER_URL", "127.0.0.1:5672"),
    ("HEADRACE_CELERY_EVENT_QUEUE", "q" * 256),
    ("HEADRACE_CELERY_ENABLE_EVENTS", "sometimes"),
    ("HEADRACE_CELERY_RECONNECT_MAX_SECONDS", "0"),
    ("HEADRACE_CELERY_QUEUE_SIZE", "0"),
    ("HEADRACE_CELERY_MAX_FIELD_BYTES", "64KB"),
    ("HEADRACE_CELERY_RETENTION_DAYS", "-7"),
    ("HEADRACE_FLOWER_AUTH", "ops"),
    ("HEADRACE_FLOWER_AUTH", "ops:s3cret,:nouser"),
    ("HEADRACE_FLOWER_AUTH", "ops:"),
]


def test_every_variable_except_host_has_an_invalid_case() -> None:
    # HEADRACE_HOST accepts any string.
    assert {name for name, _ in INVALID} == set(ENV) - {"HEADRACE_HOST"}


@pytest.mark.parametrize(("name", "raw"), INVALID)
def test_invalid_value_raises_config_error_naming_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        from_env({name: raw})

    assert name in str(info.value)


def test_first_invalid_variable_is_named_even_among_valid_ones() -> None:
    env = {name: raw for name, (raw, _) in VALID.items()} | {"HEADRACE_DB_POOL_SIZE": "-2"}

    with pytest.raises(ConfigError, match="HEADRACE_DB_POOL_SIZE"):
        from_env(env)


def test_flower_credentials_are_never_echoed() -> None:
    with pytest.raises(ConfigError) as refused:
        from_env({"HEADRACE_FLOWER_AUTH": "a:secretpw,nocolon"})

    assert "HEADRACE_FLOWER_AUTH" in str(refused.value)
    assert "secretpw" not in str(refused.value)
    assert "secretpw" not in repr(from_env({"HEADRACE_FLOWER_AUTH": "a:secretpw"}))
