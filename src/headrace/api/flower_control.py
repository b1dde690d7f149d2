"""Flower 2.2's control API under ``/flower``: worker shutdown, pools, consumers, tasks.

Same paths, methods, parameters (query string or a urlencoded form body, as
Tornado reads them) and ``{"message": ...}`` answers as Flower. Refused with 403
unless ``HEADRACE_FLOWER_AUTH`` is set (Flower's own rule: no control without
authentication); then HTTP Basic credentials must match one of its
``user:password`` pairs (401 otherwise). Errors carry a JSON ``detail``:
400 bad parameter, 404 unknown worker or task, 403 the worker refused (with its
reason, as Flower), 503 no broker configured or reachable, 504 no reply in time.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
import signal as signals
from collections.abc import Awaitable, Mapping
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, HTTPException, Request
from starlette.responses import Response

from headrace.api import deps
from headrace.api.flower import bool_arg, int_arg
from headrace.api.responses import JSON
from headrace.celery_monitor import control
from headrace.celery_monitor.broker import BrokerError

FORM_TYPE = "application/x-www-form-urlencoded"
REALM = 'Basic realm="headrace"'


async def _authorised(request: Request) -> None:
    """Flower's rule for its API: nothing without configured credentials."""
    allowed = deps.server(request).settings.flower_auth
    if not allowed:
        raise HTTPException(
            403,
            "Flower's control API is disabled: set HEADRACE_FLOWER_AUTH=user:password"
            " to enable it (callers then use HTTP Basic authentication)",
        )
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    given = b""
    if scheme.lower() == "basic":
        try:
            given = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            given = b""
    # Compare against every pair so the time taken does not tell which one matched.
    matched = False
    for pair in allowed.split(","):
        matched |= bool(given) and hmac.compare_digest(given, pair.encode())
    if not matched:
        raise HTTPException(
            401, "wrong or missing credentials (HTTP Basic)", headers={"WWW-Authenticate": REALM}
        )


router = APIRouter(prefix="/flower/api", dependencies=[Depends(_authorised)])


def _controller(request: Request) -> control.Controller:
    server = deps.server(request)
    url = server.settings.celery_broker_url
    if not url:
        raise HTTPException(503, "no Celery broker is configured (HEADRACE_CELERY_BROKER_URL)")
    # One per app: its semaphore bounds the threads that control calls hold.
    controller: control.Controller | None = getattr(request.app.state, "celery_control", None)
    if controller is None:
        controller = control.Controller(server.db, url)
        request.app.state.celery_control = controller
    return controller


async def _params(request: Request) -> dict[str, str]:
    """Query parameters, then a urlencoded body's (the body wins, as in Tornado)."""
    params = dict(request.query_params)
    body = await request.body()
    if not body.strip():
        return params
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        raise HTTPException(400, f"send parameters in the query string or as {FORM_TYPE}")
    try:
        params.update(
            parse_qsl(
                body.decode("utf-8"), keep_blank_values=True, strict_parsing=True, errors="strict"
            )
        )
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "the form body is not valid urlencoded UTF-8") from None
    return params


def _required(params: Mapping[str, str], name: str) -> str:
    value = (params.get(name) or "").strip()
    if not value:
        raise HTTPException(400, f"Missing argument {name}")
    return value


def _named(value: str, what: str) -> str:
    """A task id or task name from the path (Flower's ``(.+)``: anything but empty)."""
    if not value.strip():
        raise HTTPException(400, f"Missing {what} in the path")
    return value


def _required_int(params: Mapping[str, str], name: str, least: int) -> int:
    _required(params, name)
    value = int_arg(params, name, None)
    if value is None or value < least:
        raise HTTPException(400, f"{name} must be an integer of at least {least}")
    return value


def _seconds(params: Mapping[str, str], name: str) -> float | None:
    raw = (params.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise HTTPException(400, f"Invalid argument '{raw}' of type 'float'") from None
    if not (value > 0 and math.isfinite(value)):
        raise HTTPException(400, f"{name} must be a positive number of seconds")
    return value


def _signal_name(params: Mapping[str, str]) -> str:
    """A signal for ``terminate``: ``TERM``, ``SIGKILL``, ... (Celery wants upper case)."""
    name = (params.get("signal") or "SIGTERM").strip().upper()
    full = name if name.startswith("SIG") else f"SIG{name}"
    if full not in signals.Signals.__members__:
        raise HTTPException(400, f"Unknown signal '{name}', expected a name such as SIGTERM")
    return full


def _rate(params: Mapping[str, str]) -> str:
    """Celery's rate string: ``N``, ``N/s``, ``N/m`` or ``N/h`` (0 removes the limit)."""
    value = _required(params, "ratelimit")
    number, _, unit = value.partition("/")
    try:
        valid = math.isfinite(float(number)) and float(number) >= 0 and unit in ("", "s", "m", "h")
    except ValueError:
        valid = False
    if not valid:
        raise HTTPException(
            400, f"Invalid rate limit '{value}', expected e.g. 10/s, 100/m, 1000/h or 0"
        )
    return value


async def _answer(call: Awaitable[str]) -> Response:
    """``{"message": ...}``, or the control error as a status with ``detail``."""
    try:
        return JSON({"message": await call})
    except control.WorkerRefused as exc:
        raise HTTPException(403, str(exc)) from None
    except control.NoReply as exc:
        raise HTTPException(504, str(exc)) from None
    except BrokerError as exc:
        raise HTTPException(503, f"Broker unavailable: {exc}") from None


@router.post("/worker/shutdown/{workername:path}")
async def worker_shutdown(workername: str, request: Request) -> Response:
    return await _answer(_controller(request).shutdown(workername))


@router.post("/worker/pool/restart/{workername:path}")
async def pool_restart(workername: str, request: Request) -> Response:
    return await _answer(_controller(request).pool_restart(workername))


async def _pool_processes(request: Request) -> int:
    """The ``n`` of pool grow/shrink (default 1; 400 below 1)."""
    n = int_arg(await _params(request), "n", 1) or 0
    if n < 1:
        raise HTTPException(400, "n must be an integer of at least 1")
    return n


@router.post("/worker/pool/grow/{workername:path}")
async def pool_grow(workername: str, request: Request) -> Response:
    controller = _controller(request)
    return await _answer(controller.pool_grow(workername, await _pool_processes(request)))


@router.post("/worker/pool/shrink/{workername:path}")
async def pool_shrink(workername: str, request: Request) -> Response:
    controller = _controller(request)
    return await _answer(controller.pool_shrink(workername, await _pool_processes(request)))


@router.post("/worker/pool/autoscale/{workername:path}")
async def pool_autoscale(workername: str, request: Request) -> Response:
    controller = _controller(request)
    params = await _params(request)
    minimum = _required_int(params, "min", 0)
    maximum = _required_int(params, "max", 1)
    if minimum > maximum:
        raise HTTPException(400, f"min ({minimum}) must not exceed max ({maximum})")
    return await _answer(controller.autoscale(workername, minimum, maximum))


@router.post("/worker/queue/add-consumer/{workername:path}")
async def add_consumer(workername: str, request: Request) -> Response:
    controller = _controller(request)
    queue = _required(await _params(request), "queue")
    return await _answer(controller.add_consumer(workername, queue))


@router.post("/worker/queue/cancel-consumer/{workername:path}")
async def cancel_consumer(workername: str, request: Request) -> Response:
    controller = _controller(request)
    queue = _required(await _params(request), "queue")
    return await _answer(controller.cancel_consumer(workername, queue))


@router.post("/task/revoke/{taskid:path}")
async def task_revoke(taskid: str, request: Request) -> Response:
    controller = _controller(request)
    params = await _params(request)
    terminate = bool_arg(params, "terminate")
    task_id = _named(taskid, "task id")
    return await _answer(controller.revoke(task_id, terminate, _signal_name(params)))


@router.post("/task/rate-limit/{taskname:path}")
async def task_rate_limit(taskname: str, request: Request) -> Response:
    controller = _controller(request)
    params = await _params(request)
    name, worker = _named(taskname, "task name"), _required(params, "workername")
    return await _answer(controller.rate_limit(name, worker, _rate(params)))


@router.post("/task/timeout/{taskname:path}")
async def task_timeout(taskname: str, request: Request) -> Response:
    controller = _controller(request)
    params = await _params(request)
    name, worker = _named(taskname, "task name"), _required(params, "workername")
    soft, hard = _seconds(params, "soft"), _seconds(params, "hard")
    if soft is not None and hard is not None and soft > hard:
        raise HTTPException(400, f"soft ({soft:g}) must not exceed hard ({hard:g})")
    return await _answer(controller.time_limit(name, worker, soft, hard))
