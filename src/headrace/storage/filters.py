"""Turn the client's filter bodies (``{"operator": "and_", field: {op: value}}``) into SQL.

Each resource declares its fields as ``name -> Field``; a Field knows its column and
which operators it accepts. Unknown operators and wrongly typed values raise
``InvalidInput`` (HTTP 422) instead of being ignored silently.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from headrace.errors import InvalidInput
from headrace.storage import dialect as dialects
from headrace.storage import tables as t

Clause = sa.ColumnElement[bool]


@dataclass(frozen=True)
class Context:
    dialect: str
    path: str


def _as_list(value: Any, ctx: Context) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidInput(f"{ctx.path} must be a list, got {type(value).__name__}")
    return value


def _as_bool(value: Any, ctx: Context) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{ctx.path} must be true or false")
    return value


def _as_uuid(value: Any, ctx: Context) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise InvalidInput(f"{ctx.path}: {value!r} is not a valid UUID") from None


def parse_datetime(value: Any, path: str = "value") -> datetime:
    """Parse the three datetime forms the client sends (``Z``, ``+00:00``, space-separated)."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip().replace(" ", "T", 1)
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidInput(f"{path}: {value!r} is not an ISO-8601 datetime") from None
    else:
        raise InvalidInput(f"{path} must be an ISO-8601 datetime string")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _str_ops(column: Any, ops: Mapping[str, Any], ctx: Context, uuid_values: bool) -> list[Clause]:
    out: list[Clause] = []
    conv: Callable[[Any, Context], Any] = _as_uuid if uuid_values else (lambda v, _c: str(v))
    for op, value in ops.items():
        if value is None or op == "operator":
            continue
        sub = Context(ctx.dialect, f"{ctx.path}.{op}")
        if op in ("any_", "id_", "type_"):
            out.append(column.in_([conv(v, sub) for v in _as_list(value, sub)]))
        elif op == "not_any_":
            items = [conv(v, sub) for v in _as_list(value, sub)]
            out.append(sa.or_(column.is_(None), column.not_in(items)))
        elif op == "eq_":
            out.append(column == conv(value, sub))
        elif op == "like_" and not uuid_values:
            out.append(column.ilike(f"%{value}%"))
        elif op == "startswith_" and not uuid_values:
            out.append(column.ilike(f"{value}%"))
        elif op == "is_null_":
            out.append(column.is_(None) if _as_bool(value, sub) else column.is_not(None))
        else:
            raise InvalidInput(f"{ctx.path}: unsupported operator {op!r}")
    return out


def _time_ops(column: Any, ops: Mapping[str, Any], ctx: Context) -> list[Clause]:
    out: list[Clause] = []
    for op, value in ops.items():
        if value is None or op == "operator":
            continue
        sub = f"{ctx.path}.{op}"
        if op == "before_":
            out.append(column <= parse_datetime(value, sub))
        elif op == "after_":
            out.append(column >= parse_datetime(value, sub))
        elif op == "is_null_":
            flag = _as_bool(value, Context(ctx.dialect, sub))
            out.append(column.is_(None) if flag else column.is_not(None))
        else:
            raise InvalidInput(f"{ctx.path}: unsupported operator {op!r}")
    return out


def _int_ops(column: Any, ops: Mapping[str, Any], ctx: Context) -> list[Clause]:
    out: list[Clause] = []
    for op, value in ops.items():
        if value is None or op == "operator":
            continue
        if op == "is_null_":
            out.append(column.is_(None) if value else column.is_not(None))
            continue
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise InvalidInput(f"{ctx.path}.{op} must be a number")
        if op == "ge_":
            out.append(column >= value)
        elif op == "le_":
            out.append(column <= value)
        else:
            raise InvalidInput(f"{ctx.path}: unsupported operator {op!r}")
    return out


def _tags_ops(column: Any, ops: Mapping[str, Any], ctx: Context) -> list[Clause]:
    out: list[Clause] = []
    for op, value in ops.items():
        if value is None or op == "operator":
            continue
        sub = Context(ctx.dialect, f"{ctx.path}.{op}")
        if op == "all_":
            tags = [str(v) for v in _as_list(value, sub)]
            out.extend(dialects.json_array_contains(column, tag, ctx.dialect) for tag in tags)
        elif op == "any_":
            tags = [str(v) for v in _as_list(value, sub)]
            out.append(
                sa.or_(*(dialects.json_array_contains(column, tag, ctx.dialect) for tag in tags))
                if tags
                else sa.false()
            )
        elif op == "is_null_":
            empty = dialects.json_array_empty(column, ctx.dialect)
            out.append(empty if _as_bool(value, sub) else sa.not_(empty))
        else:
            raise InvalidInput(f"{ctx.path}: unsupported operator {op!r}")
    return out


Compiler = Callable[[Mapping[str, Any], Context], list[Clause]]


def field_str(column: Any) -> Compiler:
    return lambda ops, ctx: _str_ops(column, ops, ctx, uuid_values=False)


def field_uuid(column: Any) -> Compiler:
    return lambda ops, ctx: _str_ops(column, ops, ctx, uuid_values=True)


def field_time(column: Any) -> Compiler:
    return lambda ops, ctx: _time_ops(column, ops, ctx)


def field_int(column: Any) -> Compiler:
    return lambda ops, ctx: _int_ops(column, ops, ctx)


def field_tags(column: Any) -> Compiler:
    return lambda ops, ctx: _tags_ops(column, ops, ctx)


def field_state(type_column: Any, name_column: Any) -> Compiler:
    fields = {"type": field_str(type_column), "name": field_str(name_column)}
    return lambda ops, ctx: _combine(fields, ops, ctx)


def _combine(fields: Mapping[str, Compiler], body: Mapping[str, Any], ctx: Context) -> list[Clause]:
    """Compile one filter object; its ``operator`` joins the fields (default ``and_``)."""
    if not isinstance(body, Mapping):
        raise InvalidInput(f"{ctx.path} must be an object")
    clauses: list[Clause] = []
    for name, ops in body.items():
        if ops is None or name == "operator":
            continue
        compiler = fields.get(name)
        if compiler is None:
            # The client sends fields that headrace does not model yet (e.g. labels);
            # rejecting them would break the client, so they constrain nothing.
            continue
        if not isinstance(ops, Mapping):
            raise InvalidInput(f"{ctx.path}.{name} must be an object")
        clauses.extend(compiler(ops, Context(ctx.dialect, f"{ctx.path}.{name}")))
    if not clauses:
        return []
    operator = body.get("operator", "and_") or "and_"
    if operator not in ("and_", "or_"):
        raise InvalidInput(f"{ctx.path}.operator must be 'and_' or 'or_'")
    return [sa.and_(*clauses) if operator == "and_" else sa.or_(*clauses)]


def where(fields: Mapping[str, Compiler], body: Any, dialect: str, path: str) -> Clause | None:
    """The WHERE clause for one filter object, or None when it constrains nothing."""
    if body is None:
        return None
    clauses = _combine(fields, body, Context(dialect, path))
    return clauses[0] if clauses else None


FLOW_FIELDS: dict[str, Compiler] = {
    "id": field_uuid(t.flows.c.id),
    "name": field_str(t.flows.c.name),
    "tags": field_tags(t.flows.c.tags),
}


def _parent_flow_run(ops: Mapping[str, Any], ctx: Context) -> list[Clause]:
    runs = [_as_uuid(v, ctx) for v in _as_list(ops.get("any_") or [], ctx)]
    parents = sa.select(t.task_runs.c.id).where(t.task_runs.c.flow_run_id.in_(runs))
    return [t.flow_runs.c.parent_task_run_id.in_(parents)] if "any_" in ops else []


_fr = t.flow_runs.c
FLOW_RUN_FIELDS: dict[str, Compiler] = {
    "id": field_uuid(_fr.id),
    "name": field_str(_fr.name),
    "tags": field_tags(_fr.tags),
    "deployment_id": field_uuid(_fr.deployment_id),
    "work_queue_name": field_str(_fr.work_queue_name),
    "state": field_state(_fr.state_type, _fr.state_name),
    "flow_version": field_str(_fr.flow_version),
    "start_time": field_time(_fr.start_time),
    "end_time": field_time(_fr.end_time),
    "expected_start_time": field_time(_fr.expected_start_time),
    "next_scheduled_start_time": field_time(_fr.next_scheduled_start_time),
    "parent_flow_run_id": _parent_flow_run,
    "parent_task_run_id": field_uuid(_fr.parent_task_run_id),
    "idempotency_key": field_str(_fr.idempotency_key),
    "flow_id": field_uuid(_fr.flow_id),
}


def _subflow_runs(ops: Mapping[str, Any], ctx: Context) -> list[Clause]:
    if ops.get("exists_") is None:
        return []
    parents = sa.select(_fr.parent_task_run_id).where(_fr.parent_task_run_id.is_not(None))
    exists = _as_bool(ops["exists_"], ctx)
    column = t.task_runs.c.id
    return [column.in_(parents) if exists else column.not_in(parents)]


_tr = t.task_runs.c
TASK_RUN_FIELDS: dict[str, Compiler] = {
    "id": field_uuid(_tr.id),
    "name": field_str(_tr.name),
    "tags": field_tags(_tr.tags),
    "state": field_state(_tr.state_type, _tr.state_name),
    "start_time": field_time(_tr.start_time),
    "end_time": field_time(_tr.end_time),
    "expected_start_time": field_time(_tr.expected_start_time),
    "subflow_runs": _subflow_runs,
    "flow_run_id": field_uuid(_tr.flow_run_id),
}

_lg = t.logs.c
LOG_FIELDS: dict[str, Compiler] = {
    "level": field_int(_lg.level),
    "timestamp": field_time(_lg.timestamp),
    "flow_run_id": field_uuid(_lg.flow_run_id),
    "task_run_id": field_uuid(_lg.task_run_id),
    "name": field_str(_lg.name),
    "text": lambda ops, ctx: [_lg.message.ilike(f"%{ops['query']}%")] if ops.get("query") else [],
}


def _bool_ops(column: Any, ops: Mapping[str, Any], ctx: Context) -> list[Clause]:
    if ops.get("eq_") is None:
        return []
    return [column.is_(sa.true()) if _as_bool(ops["eq_"], ctx) else column.is_(sa.false())]


def field_bool(column: Any) -> Compiler:
    return lambda ops, ctx: _bool_ops(column, ops, ctx)


_dp = t.deployments.c
DEPLOYMENT_FIELDS: dict[str, Compiler] = {
    "id": field_uuid(_dp.id),
    "name": field_str(_dp.name),
    "paused": field_bool(_dp.paused),
    "tags": field_tags(_dp.tags),
    "work_queue_name": field_str(_dp.work_queue_name),
    "work_queue_id": field_uuid(_dp.work_queue_id),
    "concurrency_limit": field_int(_dp.concurrency_limit),
    "flow_id": field_uuid(_dp.flow_id),
}

_wp = t.work_pools.c
WORK_POOL_FIELDS: dict[str, Compiler] = {
    "id": field_uuid(_wp.id),
    "name": field_str(_wp.name),
    "type": field_str(_wp.type),
}

_wq = t.work_queues.c
WORK_QUEUE_FIELDS: dict[str, Compiler] = {
    "id": field_uuid(_wq.id),
    "name": field_str(_wq.name),
}

# A worker's status is computed from its heartbeat at read time, so only its stored
# fields are SQL filters; ``status`` is applied by storage.work_pools.
WORKER_FIELDS: dict[str, Compiler] = {
    "name": field_str(t.workers.c.name),
    "last_heartbeat_time": field_time(t.workers.c.last_heartbeat_time),
}


def sort_clause(sorts: Mapping[str, list[Any]], value: Any, default: str) -> list[Any]:
    """ORDER BY for a sort name such as ``CREATED_DESC``; unknown names are a 422."""
    key = value or default
    if key not in sorts:
        raise InvalidInput(f"unknown sort {key!r}; expected one of {', '.join(sorts)}")
    return sorts[key]


FLOW_SORTS: dict[str, list[Any]] = {
    "CREATED_DESC": [t.flows.c.created.desc(), t.flows.c.id],
    "UPDATED_DESC": [t.flows.c.updated.desc(), t.flows.c.id],
    "NAME_ASC": [t.flows.c.name.asc()],
    "NAME_DESC": [t.flows.c.name.desc()],
}

FLOW_RUN_SORTS: dict[str, list[Any]] = {
    "ID_DESC": [_fr.id.desc()],
    "START_TIME_ASC": [sa.func.coalesce(_fr.start_time, _fr.expected_start_time).asc(), _fr.id],
    "START_TIME_DESC": [
        sa.func.coalesce(_fr.start_time, _fr.expected_start_time).desc(),
        _fr.id,
    ],
    "EXPECTED_START_TIME_ASC": [_fr.expected_start_time.asc(), _fr.id],
    "EXPECTED_START_TIME_DESC": [_fr.expected_start_time.desc(), _fr.id],
    "NAME_ASC": [_fr.name.asc()],
    "NAME_DESC": [_fr.name.desc()],
    "NEXT_SCHEDULED_START_TIME_ASC": [_fr.next_scheduled_start_time.asc(), _fr.id],
    "END_TIME_DESC": [_fr.end_time.desc(), _fr.id],
    "CREATED_DESC": [_fr.created.desc(), _fr.id],
    "UPDATED_DESC": [_fr.updated.desc(), _fr.id],
}

TASK_RUN_SORTS: dict[str, list[Any]] = {
    "ID_DESC": [_tr.id.desc()],
    "EXPECTED_START_TIME_ASC": [_tr.expected_start_time.asc(), _tr.id],
    "EXPECTED_START_TIME_DESC": [_tr.expected_start_time.desc(), _tr.id],
    "NAME_ASC": [_tr.name.asc()],
    "NAME_DESC": [_tr.name.desc()],
    "NEXT_SCHEDULED_START_TIME_ASC": [_tr.next_scheduled_start_time.asc(), _tr.id],
    "END_TIME_DESC": [_tr.end_time.desc(), _tr.id],
    "DURATION_ASC": [_tr.total_run_time.asc(), _tr.id],
    "DURATION_DESC": [_tr.total_run_time.desc(), _tr.id],
    "CREATED_DESC": [_tr.created.desc(), _tr.id],
    "UPDATED_DESC": [_tr.updated.desc(), _tr.id],
}

LOG_SORTS: dict[str, list[Any]] = {
    "TIMESTAMP_ASC": [_lg.timestamp.asc(), _lg.id],
    "TIMESTAMP_DESC": [_lg.timestamp.desc(), _lg.id],
}

DEPLOYMENT_SORTS: dict[str, list[Any]] = {
    "CREATED_DESC": [_dp.created.desc(), _dp.id],
    "UPDATED_DESC": [_dp.updated.desc(), _dp.id],
    "NAME_ASC": [_dp.name.asc(), _dp.id],
    "NAME_DESC": [_dp.name.desc(), _dp.id],
    "CONCURRENCY_LIMIT_ASC": [_dp.concurrency_limit.asc(), _dp.id],
    "CONCURRENCY_LIMIT_DESC": [_dp.concurrency_limit.desc(), _dp.id],
}
